#include "clearing/eventstore/prepared.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>

namespace clearing::eventstore {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kReplanFirst{1000};
// Entries of connections closed since are dropped wholesale past this many (a pool
// holds a few dozen): the next use of each statement then counts from there.
constexpr std::size_t kConnectionsTracked = 512;

struct StatementPlan {
  SteadyClock::time_point prepared_at;
  std::chrono::milliseconds next_after;
};

struct ConnectionPlans {
  int backend_pid = 0;  // a connection object reused for another server session starts over
  std::unordered_map<std::string, StatementPlan> statements;
};

std::atomic<std::int64_t> g_replan_after_max_ms{60'000};
std::mutex g_mutex;
std::unordered_map<const pqxx::connection_base*, ConnectionPlans> g_connections;

}  // namespace

void set_replan_after_max(std::chrono::milliseconds interval) {
  g_replan_after_max_ms = interval.count();
}

std::string prepare_here(pqxx::transaction_base& tx, const PreparedSql& statement) {
  auto& conn = tx.conn();
  const auto now = SteadyClock::now();
  const std::chrono::milliseconds most{g_replan_after_max_ms.load()};
  bool replan = false;
  {
    std::lock_guard lock(g_mutex);
    if (g_connections.size() > kConnectionsTracked) g_connections.clear();
    auto& plans = g_connections[&conn];
    const int pid = conn.backendpid();
    if (plans.backend_pid != pid) plans = ConnectionPlans{pid, {}};
    auto [it, first] = plans.statements.try_emplace(
        statement.name, StatementPlan{now, std::min(kReplanFirst, most)});
    if (!first && now - it->second.prepared_at >= it->second.next_after) {
      replan = true;
      it->second = {now, std::min(it->second.next_after * 2, most)};
    }
  }
  std::string name(statement.name);
  // libpqxx sends DEALLOCATE for a statement the server has, and forgets the name; the
  // next execution prepares it again with the tables as they are now.
  if (replan) conn.unprepare(name);
  // Registering a name again with the same text does nothing (libpqxx compares them).
  conn.prepare(name, statement.sql);
  return name;
}

}  // namespace clearing::eventstore
