// The core's database before a run: see database_setup.hpp.

#include "database_setup.hpp"

#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/core_sim_schema.hpp"
#include "clearing/eventstore/migrations.hpp"

namespace clearing::core_sim {

using eventstore::StoreResult;
using eventstore::Transaction;

tl::expected<void, std::string> prepare_database(eventstore::ConnectionPool& pool,
                                                 const external_streams::StreamSpec& core_stream) {
  for (const auto* migrations :
       {&eventstore::eventstore_migrations(), &external_streams::external_streams_migrations(),
        &core_sim_migrations()}) {
    auto applied = eventstore::apply_migrations(pool, *migrations);
    if (!applied) return tl::unexpected("migrations: " + applied.error().message);
  }
  const std::vector<external_streams::StreamSpec> streams{core_stream};
  if (auto ensured = external_streams::ensure_streams(pool, streams); !ensured)
    return tl::unexpected("streams: " + ensured.error().message);
  return {};
}

tl::expected<void, std::string> open_accounts(
    eventstore::EventStore& store, AccountCache& cache,
    const std::vector<std::pair<std::string, sagas::Currency>>& wanted,
    std::int64_t opening_balance_minor) {
  const auto log = base::module_logger("core_sim");
  AccountStates local;
  auto opened = store.pool().transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
    local.clear();
    std::vector<AccountCommandRequest> commands;
    commands.reserve(wanted.size());
    for (const auto& [id, currency] : wanted)
      commands.push_back({id, OpenAccount{id, sagas::Money{opening_balance_minor, currency}},
                          eventstore::CommandContext{base::new_uuid(), "", nullptr, "open|" + id}});
    auto handled = handle_account_commands(store, tx, commands, cache, local);
    if (!handled) return tl::unexpected(handled.error());
    AccountProjection projection;
    std::int64_t count = 0;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const auto& result = handled->results[i];
      if (!result) {
        log->warn("account not opened account_id={} reason={}", commands[i].account_id,
                  result.error().message);
        continue;
      }
      if (!result->event_ids.empty()) ++count;
      projection.add(result->state);
    }
    projection.write(tx);
    return count;
  });
  if (!opened) return tl::unexpected("opening accounts: " + opened.error().message);
  cache.merge(local);
  log->info("accounts ready total={} opened_now={}", wanted.size(), *opened);
  return {};
}

}  // namespace clearing::core_sim
