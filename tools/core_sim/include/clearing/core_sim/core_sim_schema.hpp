#pragma once
// core-sim's own tables, beside the event store's and the external streams' (applied by
// CoreSim::start, in that order). Projections and records, all written in the same
// transaction as the events or stream messages they belong to:
//   core_transfers          one row per requested transfer: account, stream position,
//                           status (open | succeeded | rejected), reason code, what was
//                           seen (pending, under investigation, DUPL), and the instants of
//                           the request's commit and of the outcome applied (latency)
//   core_refused            transfers the core refused itself (never published)
//   core_violations         outcomes that could not be applied: one row each, with kind
//   core_parked_messages    unusable messages of adapter.<cc>.payments.v1 (or .v2), with reason
//   core_outcome_sources    the adapter's internal event (source_event_id) of each transfer
//                           message handled, and the stream, partition and seq that brought it
//   core_incoming_payments  IncomingPaymentReceived, one row per payment id
//   core_accounts           balance and reserved amount per account (projection)

#include <vector>

#include "clearing/eventstore/migrations.hpp"

namespace clearing::core_sim {

const std::vector<eventstore::Migration>& core_sim_migrations();

}  // namespace clearing::core_sim
