#pragma once
// Operator actions on parked messages (issue 22), through the API with an operator token;
// each is an event in the stream "parked-<id>" that names the operator (the token's name,
// never text from the body) and the reason, written in one transaction with the message's
// state (parked_messages.state):
//   POST /parked/{id}/close  {"reason"}   the message is done with: ParkedMessageClosed
//                                         {parked_id, reason, operator}
//   POST /parked/{id}/replay {"reason"}   after its cause was fixed, the raw value goes back
//                                         into the inbound path once (inbound.hpp
//                                         replay_inbound): ParkedMessageReplayed {parked_id,
//                                         reason, operator, outcome, transfer_id}
// and on a parked incoming payment (kind "incoming_payment": the saga parked it, the money
// arrived), decided by its saga and recorded in the payment's own stream
// (incoming-payment-<clearing reference>, the row's: its sealed raw is not opened for it), the
// row's state written with it:
//   POST /parked/{id}/book   {"reason"[, "amount_minor_units", "creditor_account"]}
//                            IncomingPaymentBookedByOperator: published to the core as an
//                            incoming payment (IncomingPaymentReceived, ...), once; the
//                            corrections make it valid (the amount in the adapter's currency,
//                            the creditor's account), else 422 not_bookable
//   POST /parked/{id}/return {"reason"}
//                            IncomingPaymentReturnedByOperator: the operator's decision only.
//                            The clearing API has no return call: the money goes back by the
//                            bank's manual process (docs/clearing-api-proposal.md proposes one).
//                            Nothing is published to the core.
// A payment is not closed or replayed (409 incoming_payment); a message is not booked or
// returned (409 not_incoming_payment); a payment booked or returned already is 409 not_open.
// Answers: 200 {"parked_id", "state", "operator", "event_id"[, "outcome", "transfer_id"]};
// 400 a bad id or body, a missing reason; 403 no operator name; 404 unknown id; 409 a message
// that is not open (closed or replayed already: a second replay), or one that is not of the
// core's stream; 422 a replay whose input still cannot be used (the message stays open, its
// reason in the answer); 503 the database. Nothing is written but on 200.

#include <string>
#include <string_view>

#include "clearing/adapter/inbound.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/http/server.hpp"

namespace clearing::adapter {

inline constexpr std::string_view kParkedMessageClosedType = "ParkedMessageClosed";
inline constexpr std::string_view kParkedMessageReplayedType = "ParkedMessageReplayed";
inline constexpr std::size_t kParkedActionReasonBytesMax = 2000;

// The stream of a parked message's actions.
std::string parked_stream(std::int64_t parked_id);

http::HttpResponse close_parked(eventstore::EventStore& store, const std::string& id,
                                const std::string& body, const std::string& operator_name);

http::HttpResponse replay_parked(TransferService& transfers, const InboundRules& rules,
                                 const std::string& id, const std::string& body,
                                 const std::string& operator_name, base::Timestamp now);

inline constexpr std::string_view kReturnNote =
    "returned: recorded as the operator's decision; the clearing API has no return call, so the "
    "money goes back to the payer by the bank's manual process (a return call is proposed in "
    "docs/clearing-api-proposal.md)";

http::HttpResponse book_parked_payment(eventstore::EventStore& store, const std::string& id,
                                       const std::string& body, const std::string& operator_name,
                                       const sagas::CountryRules& rules);

http::HttpResponse return_parked_payment(eventstore::EventStore& store, const std::string& id,
                                         const std::string& body, const std::string& operator_name);

// The four routes, role operator.
void add_parked_action_routes(http::HttpServer& server, TransferService& transfers,
                              InboundRules rules);

}  // namespace clearing::adapter
