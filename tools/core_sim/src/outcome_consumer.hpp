#pragma once
// Private to core-sim: the consumer of the adapter's stream (adapter.<cc>.payments.v1, or .v2
// with CoreSimOptions::outcomes_version "v2"). A StreamConsumer whose handler is the
// OutcomeApplier of that version (outcomes queued per message, applied to the accounts
// set-wise at the batch's end), with gaps fetched from the adapter's
// catch-up API when CoreSimOptions::adapter_catch_up_url is set (else a gap stalls its
// partition), and a lost last outcome repaired as the adapter repairs its own.
//
// Thread safety: the consumer runs its own thread once started; see consumer.hpp.

#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "clearing/core_sim/account_commands.hpp"
#include "clearing/core_sim/core_sim.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/sagas/account.hpp"

namespace clearing::core_sim {

// Created, not started; `store` and `cache` must outlive it. The error says what failed.
tl::expected<std::unique_ptr<external_streams::StreamConsumer>, std::string> make_outcome_consumer(
    eventstore::EventStore& store, AccountCache& cache, const CoreSimOptions& options,
    sagas::Country country, const std::string& adapter_stream,
    const external_streams::KafkaClientOptions& kafka);

}  // namespace clearing::core_sim
