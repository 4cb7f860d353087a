#pragma once
// The story of a transfer (`trace`) and the HTTP routes that read the adapter's state:
//   GET /transfers/{id}   state and full history (the trace as JSON)
//   GET /parked           what was parked, and why: newest first, in pages of at most
//                         kParkedAnswerBytesMax bytes (?reason=&limit=&before_id=; parking.hpp)
//   GET /parked/{id}      one parked message with its raw value (?from_byte=)
// Those read the database only; they are for support people and tools, with a token of
// the role `reader`. One acts, with a token of the role `operator` (issue 21):
//   POST /transfers/{id}/resolve   people settle a transfer under investigation or parked
//                         for review (resolve_transfer)

#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/config/config.hpp"
#include "clearing/http/server.hpp"

namespace clearing::adapter {

// The trace as JSON: state, the core event that started it, every internal event with
// its cause, every clearing attempt with its answer class and latency, every external
// message with its seq, and what is still pending. nullopt-like error when unknown.
tl::expected<nlohmann::json, std::string> build_trace(eventstore::ConnectionPool& pool,
                                                      TransferService& transfers,
                                                      const std::string& transfer_id);

// The same, for a person: one line per step, in time order. With the core's story merged
// (core_story.hpp), a line under the header says the core's state or why its side is missing,
// and each step is marked core or adapter.
std::string render_trace(const nlohmann::json& trace);

// The story of a parked message or parked incoming payment (issue 22): `key` is its parked id
// (GET /parked) or a parked payment's payment id. Its row (never its raw), the operators'
// actions on it (stream parked-<id>: close, replay), and for a payment its own stream
// (IncomingPaymentParked, then booked or returned by an operator, each naming operator and
// reason) and its outbound messages. A transfer's trace shows the close and replay of its
// parked messages (those of its correlation id) in its timeline.
tl::expected<nlohmann::json, std::string> build_parked_trace(eventstore::ConnectionPool& pool,
                                                             eventstore::EventStore& store,
                                                             const std::string& key);
std::string render_parked_trace(const nlohmann::json& trace);

// The longest text field of a resolution's body.
inline constexpr std::size_t kResolutionFieldBytesMax = 2000;

// POST /transfers/{id}/resolve: the one way people settle a transfer under investigation or
// parked for review. `body`: {"outcome": "succeeded"|"rejected", "reason": TEXT,
// "clearing_reference": R (required for succeeded), "settlement_date": "YYYY-MM-DD"
// (optional, succeeded: without it, the day a transfer accepted `now` settles by the country's
// calendar, CountryConfig::settlement_date, so the date is never empty), "reason_code": C
// (required for rejected)}. The event
// (TransferResolvedManually) names `operator_name`, the name of the token that asked, as its
// operator_name and in its metadata ("operator"), with the events it corrects ("corrects");
// the body cannot name anyone. Answers: 200 {"transfer_id", "outcome", "operator"}; 400 a bad
// body, a missing reason, an unknown outcome, a missing reference or code; 403 no operator
// name (authentication disabled); 404 unknown transfer; 409 a transfer that has its outcome
// or is still handled automatically; 503 the database. Nothing is written but on 200.
http::HttpResponse resolve_transfer(TransferService& transfers, const std::string& transfer_id,
                                    const std::string& body, const std::string& operator_name,
                                    base::Timestamp now, const config::CountryConfig& country);

// What the routes need of the configuration.
struct TransferRoutesOptions {
  config::CountryConfig country;  // its calendar: a resolution's default settlement date
  InboundRules inbound;           // a replayed parked message is checked as the consumer does
};

// The routes above, each with its role, and the actions on parked messages
// (parked_actions.hpp: POST /parked/{id}/close and /replay, role operator).
void add_transfer_routes(http::HttpServer& server, eventstore::ConnectionPool& pool,
                         TransferService& transfers, const TransferRoutesOptions& options);

}  // namespace clearing::adapter
