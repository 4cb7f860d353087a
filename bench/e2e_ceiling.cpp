#include "e2e_ceiling.hpp"

#include <atomic>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "clearing/support/scratch_database.hpp"
#include "e2e_common.hpp"
#include "e2e_database.hpp"

namespace clearing::bench::e2e {

Ceiling run_ceiling(const Options& options, int clients) {
  const auto url = support::fresh_database(options.server_url, "e2e_commit_ceiling");
  {
    auto c = connect(url);
    pqxx::nontransaction tx(*c);
    tx.exec(
        "create table commit_ceiling (id bigserial primary key, client int not null,"
        " at timestamptz not null default clock_timestamp())");
  }
  std::vector<std::unique_ptr<pqxx::connection>> connections;
  for (int i = 0; i < clients; ++i) {
    connections.push_back(connect(url));
    connections.back()->prepare("insert_one", "insert into commit_ceiling (client) values ($1)");
  }
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::int64_t> counts(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> errors(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      try {
        while (!stop.load()) {
          // As the adapter commits: BEGIN, one statement, COMMIT (pqxx::work).
          pqxx::work tx(*connections[static_cast<std::size_t>(i)]);
          tx.exec_prepared("insert_one", i);
          tx.commit();
          ++counts[static_cast<std::size_t>(i)];
        }
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  const auto begun = Clock::now();
  go.store(true);
  std::this_thread::sleep_for(std::chrono::seconds(options.ceiling_seconds));
  stop.store(true);
  for (auto& t : threads) t.join();
  Ceiling out;
  out.clients = clients;
  out.seconds = seconds_since(begun);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (!errors[i].empty())
      throw Failure("commit ceiling: client " + std::to_string(i) + ": " + errors[i]);
    out.commits += counts[i];
  }
  out.per_s = static_cast<double>(out.commits) / out.seconds;
  return out;
}

}  // namespace clearing::bench::e2e
