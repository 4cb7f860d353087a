#pragma once
// The core's story of one transfer (issue 22, item 3): what core-sim did with it and why, for
// `clearing-adapter trace`, which merges it with the adapter's side (docs/core-story.md).
//
//   GET /transfers/{transfer_id}/story   on the server of the core's catch-up API, behind the
//                                        same bearer token (the role reader)
//
// 200 {"transfer_id", "status": "open"|"succeeded"|"rejected"|"refused", "reason_code",
//      "correlation_id", "pending_seen", "under_investigation_seen", "dupl_seen",
//      "events": [...]} with the events in time order, each {"at" (UTC, ms), "type",
//      "event_id", "causation_id", "correlation_id", ...}:
//   - FundsReserved: the reservation (account event; "amount" {minor_units, currency});
//   - TransferRequested: the message the core published ("stream", "partition", "seq",
//     "source_event_id" = the FundsReserved event, "published": on Kafka yet); "at" is the
//     instant its transaction committed, as near as SQL sees it (core_transfers.requested_at);
//   - ReservationCompleted / ReservationReleased: the account event that applied the
//     adapter's outcome; "causation_id" is the adapter's message (its event_id) and "source"
//     {stream, partition, seq} where it came from; "reason_code" when released;
//   - OutcomeNotApplied: an outcome of the adapter the core refused ("violation": its kind,
//     "message_type", "stream", "partition", "seq", "event_id" = the adapter's message);
//   - TransferRefused: the core refused the request itself and never published it ("reason").
// No account id, name or account number: the account's stream is left out on purpose (the
// adapter's trace does not show accounts either). 400 bad_transfer_id (not 1..200 characters
// of [A-Za-z0-9._:-]); 404 unknown_transfer; 503 the database.
//
// Thread safety: read_transfer_story and the route's handler from any thread (one pooled
// connection per call).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>

#include "clearing/eventstore/database.hpp"

namespace clearing::http {
class HttpServer;  // Beast stays out of this header
}

namespace clearing::core_sim {

// The story of `transfer_id` (see above); nullopt when the core never heard of it.
eventstore::StoreResult<std::optional<nlohmann::json>> read_transfer_story(
    eventstore::ConnectionPool& pool, const std::string& transfer_id);

// The route above. `pool` must outlive the server's handlers.
void add_transfer_story_route(http::HttpServer& server, eventstore::ConnectionPool& pool);

}  // namespace clearing::core_sim
