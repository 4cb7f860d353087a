#pragma once
// Shared set-up for the event store's database tests.

#include <atomic>
#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "test_database.hpp"

namespace clearing::eventstore::testing {

struct StoreFixture {
  clearing::testing::TestDatabase database;
  std::unique_ptr<ConnectionPool> pool;
  std::unique_ptr<EventStore> store;

  explicit StoreFixture(std::size_t connections_max = 16) {
    DatabaseOptions options;
    options.url = database.url();
    options.connections_max = connections_max;
    pool = std::make_unique<ConnectionPool>(options);
    auto applied = apply_migrations(*pool, eventstore_migrations());
    if (!applied) throw std::runtime_error("migrations failed: " + applied.error().message);
    store = std::make_unique<EventStore>(*pool);
  }
};

// Waits until every transaction that wrote events so far lies below the horizon under
// which read_all_after (and so a subscription) hands events out. The horizon is the
// server's oldest running transaction: a test running beside this one on the same server
// (ctest -j) can hold it back for a moment.
inline void wait_for_horizon(ConnectionPool& pool) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto below = pool.transact([](Transaction& tx) -> StoreResult<bool> {
      return tx
          .exec(
              "select coalesce((select max(transaction_id) from events)"
              " < pg_snapshot_xmin(pg_current_snapshot()), true)")[0][0]
          .as<bool>();
    });
    if (below && *below) return;
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error(
          "the server's oldest transaction did not move past this test's events in 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Waits until `flag` is set by another thread.
inline void wait_for(const std::atomic<bool>& flag) {
  while (!flag) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// A transaction held open on a thread of its own, so that a test can act against its rows
// and locks: it runs `work` (wait_until_worked() returns once it has), then `hold`, and
// commits when `hold` returns. result() joins the thread and answers what `work` answered;
// call it before the end of the test, as std::thread asks.
template <class T>
class HeldTransaction {
 public:
  template <class Work, class Hold>
  HeldTransaction(ConnectionPool& pool, Work work, Hold hold)
      : thread_([this, &pool, work = std::move(work), hold = std::move(hold)]() mutable {
          result_ = pool.transact([&](Transaction& tx) -> StoreResult<T> {
            auto done = work(tx);
            worked_ = true;
            hold();
            return done;
          });
        }) {}
  HeldTransaction(const HeldTransaction&) = delete;
  HeldTransaction& operator=(const HeldTransaction&) = delete;

  void wait_until_worked() const { wait_for(worked_); }
  StoreResult<T> result() {
    thread_.join();
    return std::move(result_);
  }

 private:
  std::atomic<bool> worked_{false};
  StoreResult<T> result_ = tl::unexpected(StoreError{StoreErrc::internal, "not run"});
  std::thread thread_;  // last: it starts once the members above exist
};

inline EventData make_event(std::string type, nlohmann::json data = nlohmann::json::object(),
                            std::string correlation = "corr-1") {
  return EventData{EventId{base::new_uuid()}, std::move(type), std::move(data),
                   Metadata{std::move(correlation), "cause-1", nullptr, nullptr}};
}

}  // namespace clearing::eventstore::testing
