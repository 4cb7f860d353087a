#pragma once
// Private to core-sim: what start() does to the core's own database before anything runs:
// the migrations (eventstore, external_streams, core_sim), the partitions of the core's
// stream, and the accounts the source debits. Both steps are idempotent, so a restart
// over the same database repeats them harmlessly.
//
// Thread safety: run from start()'s thread, before the relay, consumer and publisher.

#include <cstdint>
#include <string>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "clearing/core_sim/account_commands.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::core_sim {

// The migrations, then the stream's partitions; the error names the step that failed.
tl::expected<void, std::string> prepare_database(eventstore::ConnectionPool& pool,
                                                 const external_streams::StreamSpec& core_stream);

// Opens each account with `opening_balance_minor` of its currency in one transaction; an
// account opened before stays as it is (an account that cannot be opened is logged and
// left out). The committed states enter `cache`.
tl::expected<void, std::string> open_accounts(
    eventstore::EventStore& store, AccountCache& cache,
    const std::vector<std::pair<std::string, sagas::Currency>>& wanted,
    std::int64_t opening_balance_minor);

}  // namespace clearing::core_sim
