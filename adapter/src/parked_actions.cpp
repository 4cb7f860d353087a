#include "clearing/adapter/parked_actions.hpp"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>

#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/parking.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/text.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/aggregate.hpp"
#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/names.hpp"

namespace clearing::adapter {
namespace {

using http::HttpResponse;
using Json = nlohmann::json;

struct Action {
  std::int64_t parked_id = 0;
  std::string reason;
  Json extra = Json::object();  // the fields `extra_fields` allowed, as given
};

// The id and the body {"reason": TEXT} of an action (and the `extra_fields` it takes); the
// operator is never in it.
tl::expected<Action, HttpResponse> parse_action(
    const std::string& id, const std::string& body, const std::string& operator_name,
    std::initializer_list<std::string_view> extra_fields = {}) {
  if (operator_name.empty())
    return tl::unexpected(
        HttpResponse::error(403, "FORBIDDEN", "an operator action needs a named token"));
  Action action;
  const auto [ptr, ec] = std::from_chars(id.data(), id.data() + id.size(), action.parked_id);
  if (id.empty() || id.front() == '-' || ec != std::errc{} || ptr != id.data() + id.size() ||
      action.parked_id < 1)
    return tl::unexpected(
        HttpResponse::error(400, "bad_parked_id", "a parked message id is a positive integer"));
  const auto json = Json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return tl::unexpected(HttpResponse::error(400, "bad_body", "the body must be a JSON object"));
  for (const auto& [key, value] : json.items()) {
    if (std::find(extra_fields.begin(), extra_fields.end(), key) != extra_fields.end()) {
      action.extra[key] = value;
      continue;
    }
    if (key != "reason") {
      std::string known = "reason";
      for (const auto field : extra_fields) known += ", " + std::string(field);
      return tl::unexpected(HttpResponse::error(400, "bad_body",
                                                "unknown field '" + base::escape_text(key, 64) +
                                                    "' (" + known +
                                                    "; the operator is the token's name)"));
    }
    if (!value.is_string() || !base::is_printable_utf8(value.get<std::string>()) ||
        value.get<std::string>().size() > kParkedActionReasonBytesMax)
      return tl::unexpected(HttpResponse::error(400, "bad_body",
                                                "reason must be printable text of at most " +
                                                    std::to_string(kParkedActionReasonBytesMax) +
                                                    " bytes"));
    action.reason = value.get<std::string>();
  }
  if (action.reason.empty())
    return tl::unexpected(
        HttpResponse::error(400, "missing_reason", "reason is required: why, in words"));
  return action;
}

struct Refusal {
  int status;
  std::string code, message;
};

// Only an open message can be acted on, once.
std::optional<Refusal> refuse_unless_open(std::int64_t id, const std::string& state) {
  if (state == kParkedOpen) return std::nullopt;
  return Refusal{409, "not_open", "parked message " + std::to_string(id) + " is " + state};
}

Refusal unknown_parked(std::int64_t id) {
  return Refusal{404, "unknown_parked_message", "no parked message " + std::to_string(id)};
}

// Close and replay act on an open parked message; a parked incoming payment's money has
// arrived, so it is booked or returned instead.
std::optional<Refusal> refuse_message_action(std::int64_t id, const std::string& state,
                                             bool incoming_payment) {
  if (auto refused = refuse_unless_open(id, state)) return refused;
  if (!incoming_payment) return std::nullopt;
  return Refusal{409, "incoming_payment",
                 "parked message " + std::to_string(id) +
                     " is an incoming payment: the money arrived, book it or return it (POST "
                     "/parked/{id}/book or /return)"};
}

eventstore::StoreResult<std::string> append_action(eventstore::EventStore& store,
                                                   eventstore::Transaction& tx,
                                                   std::int64_t parked_id, std::string_view type,
                                                   Json data, const std::string& correlation_id) {
  const auto id = base::new_uuid();
  Json extra{{"operator", data.value("operator", "")}};
  const eventstore::EventData event{
      eventstore::EventId{id}, std::string(type), std::move(data),
      eventstore::Metadata{correlation_id.empty() ? id : correlation_id, id, nullptr,
                           std::move(extra)},
      eventstore::kFirstSchemaVersion};
  auto appended = store.append(tx, eventstore::StreamId{parked_stream(parked_id)},
                               eventstore::ExpectedVersion::any(), std::span(&event, 1));
  if (!appended) return tl::unexpected(appended.error());
  return id;
}

HttpResponse answer(const std::optional<Refusal>& refused,
                    const eventstore::StoreResult<void>& done, Json body) {
  if (!done) return HttpResponse::error(503, "unavailable", "the database is unavailable");
  if (refused) return HttpResponse::error(refused->status, refused->code, refused->message);
  return HttpResponse::json(200, body.dump());
}

// What the replayed message did to its transfer, by the events it decided.
std::string outcome_of(const eventstore::Decision<sagas::TransferDecider>& decision) {
  if (decision.events.empty()) return "already_applied";
  const auto& first = decision.events.front();
  if (std::holds_alternative<sagas::TransferInitiated>(first)) return "initiated";
  if (std::holds_alternative<sagas::TransferRejected>(first)) return "rejected";
  if (std::holds_alternative<sagas::DuplicateTransferRequestRefused>(first))
    return "duplicate_refused";
  return "decided";
}

}  // namespace

std::string parked_stream(std::int64_t parked_id) { return "parked-" + std::to_string(parked_id); }

HttpResponse close_parked(eventstore::EventStore& store, const std::string& id,
                          const std::string& body, const std::string& operator_name) {
  auto action = parse_action(id, body, operator_name);
  if (!action) return std::move(action.error());
  std::optional<Refusal> refused;
  std::string event_id;
  auto done =
      store.pool().transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
        refused.reset();
        const auto state = lock_parked_state(tx, action->parked_id);
        if (!state) {
          refused = unknown_parked(action->parked_id);
          return {};
        }
        if ((refused = refuse_message_action(action->parked_id, state->state,
                                             state->payment_id.has_value())))
          return {};
        set_parked_state(tx, action->parked_id, kParkedClosed);
        auto appended = append_action(store, tx, action->parked_id, kParkedMessageClosedType,
                                      {{"parked_id", action->parked_id},
                                       {"reason", action->reason},
                                       {"operator", operator_name}},
                                      state->correlation_id.value_or(""));
        if (!appended) return tl::unexpected(appended.error());
        event_id = *appended;
        return {};
      });
  if (done && !refused)
    base::module_logger("parking")->info("parked_closed id={} operator={} event_id={}",
                                         action->parked_id, operator_name, event_id);
  return answer(refused, done,
                {{"parked_id", action->parked_id},
                 {"state", kParkedClosed},
                 {"operator", operator_name},
                 {"event_id", event_id}});
}

HttpResponse replay_parked(TransferService& transfers, const InboundRules& rules,
                           const std::string& id, const std::string& body,
                           const std::string& operator_name, base::Timestamp now) {
  auto action = parse_action(id, body, operator_name);
  if (!action) return std::move(action.error());
  auto& pool = transfers.store().pool();
  std::optional<Refusal> refused;
  std::string event_id, outcome, transfer_id;
  auto done = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
    refused.reset();
    auto row = parked_for_action(tx, action->parked_id, pool.protector());
    if (!row) {  // unknown_id: the only refusal parked_for_action has
      refused = unknown_parked(action->parked_id);
      return {};
    }
    if ((refused =
             refuse_message_action(action->parked_id, row->state, row->payment_id.has_value())))
      return {};
    if (row->source != "kafka") {
      refused = Refusal{409, "not_replayable",
                        "only messages of the core's stream (source kafka) go back into the "
                        "inbound path; this one came from " +
                            row->source + ": close it once it is handled"};
      return {};
    }
    auto result =
        replay_inbound(tx, transfers, rules, now, {std::move(row->raw), row->topic, row->partition},
                       {{"operator", operator_name}, {"replay_of_parked", row->id}});
    if (!result) {
      // Decided before anything is written: the message stays open.
      refused = Refusal{422, external_streams::to_string(result.error().code),
                        "the message still cannot be used: " + result.error().message};
      return {};
    }
    if (!*result) {
      if (auto* error = std::get_if<eventstore::StoreError>(&result->error()))
        return tl::unexpected(*error);
      refused = Refusal{422, "refused",
                        "the saga refused the message: " +
                            std::get<sagas::TransferRefusal>(result->error()).message};
      return {};
    }
    outcome = outcome_of(**result);
    transfer_id = (*result)->state.request.transfer_id;
    set_parked_state(tx, action->parked_id, kParkedReplayed);
    auto appended =
        append_action(transfers.store(), tx, action->parked_id, kParkedMessageReplayedType,
                      {{"parked_id", action->parked_id},
                       {"reason", action->reason},
                       {"operator", operator_name},
                       {"outcome", outcome},
                       {"transfer_id", transfer_id}},
                      row->correlation_id.value_or(""));
    if (!appended) return tl::unexpected(appended.error());
    event_id = *appended;
    return {};
  });
  if (done && !refused)
    base::module_logger("parking")->info(
        "parked_replayed id={} operator={} outcome={} transfer_id={} event_id={}",
        action->parked_id, operator_name, outcome, transfer_id, event_id);
  return answer(refused, done,
                {{"parked_id", action->parked_id},
                 {"state", kParkedReplayed},
                 {"operator", operator_name},
                 {"event_id", event_id},
                 {"outcome", outcome},
                 {"transfer_id", transfer_id}});
}

namespace {

using IncomingAggregate =
    eventstore::Aggregate<sagas::IncomingPaymentDecider, sagas::IncomingPaymentCodec>;

// What the saga's refusal of an operator's action answers.
Refusal refusal_of(const sagas::IncomingPaymentRefusal& refusal) {
  using Code = sagas::IncomingPaymentRefusalCode;
  const int status = refusal.code == Code::not_bookable        ? 422
                     : refusal.code == Code::incomplete_action ? 400
                                                               : 409;
  return Refusal{status, std::string(sagas::incoming_refusal_code_name(refusal.code)),
                 refusal.message};
}

// The booking's corrections from the body: amount_minor_units (an integer > 0, in the adapter's
// currency) and creditor_account (text; the scheme as the clearing's: two letters first mean
// IBAN). Their validity is the saga's to judge.
tl::expected<sagas::BookParkedIncomingPayment, HttpResponse> booking_of(
    const Action& action, const std::string& operator_name, const sagas::CountryRules& rules) {
  sagas::BookParkedIncomingPayment book{operator_name, action.reason, std::nullopt, std::nullopt,
                                        rules};
  if (const auto it = action.extra.find("amount_minor_units"); it != action.extra.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
      return tl::unexpected(
          HttpResponse::error(400, "bad_body",
                              "amount_minor_units must be a positive integer (minor units of " +
                                  std::string(rules.currency.code()) + ")"));
    book.amount_minor_units = it->get<std::int64_t>();
  }
  if (const auto it = action.extra.find("creditor_account"); it != action.extra.end()) {
    if (!it->is_string() || it->get<std::string>().empty() || it->get<std::string>().size() > 64 ||
        !base::is_printable_utf8(it->get<std::string>()))
      return tl::unexpected(HttpResponse::error(
          400, "bad_body", "creditor_account must be an account number of at most 64 bytes"));
    const auto& text = it->get_ref<const std::string&>();
    book.creditor_account = sagas::Account{sagas::account_scheme_of_text(text), text};
  }
  return book;
}

// Book or return: the row locked and open, of a payment; the saga decides; the row's state is
// written with the event. The payment's stream is found by the row's clearing reference: the
// sealed raw is never opened. The saga's load of that stream opens its events' personal data
// as every load does (the event store, through the pool's protector): a booking publishes the
// payment's parties to the core, so it needs them; a return needs only the payment's status.
HttpResponse settle_parked_payment(eventstore::EventStore& store, const std::string& id,
                                   const std::string& body, const std::string& operator_name,
                                   const sagas::CountryRules& rules, bool booking) {
  auto action =
      booking ? parse_action(id, body, operator_name, {"amount_minor_units", "creditor_account"})
              : parse_action(id, body, operator_name);
  if (!action) return std::move(action.error());
  sagas::IncomingPaymentCommand command =
      sagas::ReturnParkedIncomingPayment{operator_name, action->reason};
  if (booking) {
    auto book = booking_of(*action, operator_name, rules);
    if (!book) return std::move(book.error());
    command = std::move(*book);
  }
  const auto target = booking ? kParkedBooked : kParkedReturned;
  auto& pool = store.pool();
  IncomingAggregate payments{store};
  std::optional<Refusal> refused;
  std::string event_id, payment_id;
  Json corrected = Json::array();
  auto done = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
    refused.reset();
    const auto row = lock_parked_state(tx, action->parked_id);
    if (!row) {
      refused = unknown_parked(action->parked_id);
      return {};
    }
    if (!row->payment_id) {
      refused = Refusal{409, "not_incoming_payment",
                        "parked message " + std::to_string(action->parked_id) +
                            " is not an incoming payment: close or replay it"};
      return {};
    }
    if ((refused = refuse_unless_open(action->parked_id, row->state))) return {};
    const auto& reference = row->clearing_reference;
    if (!reference) {
      refused = Refusal{409, "unknown_payment",
                        "parked message " + std::to_string(action->parked_id) +
                            " names no readable clearing reference"};
      return {};
    }
    payment_id = *row->payment_id;
    auto decided =
        payments.handle(tx, incoming_payment_stream(*reference), command,
                        eventstore::CommandContext{
                            payment_id,
                            row->correlation_id.value_or(payment_id),
                            nullptr,
                            {},
                            {{"operator", operator_name}, {"parked_id", action->parked_id}}});
    if (!decided) {
      if (auto* error = std::get_if<eventstore::StoreError>(&decided.error()))
        return tl::unexpected(*error);
      refused = refusal_of(std::get<sagas::IncomingPaymentRefusal>(decided.error()));
      return {};
    }
    CLEARING_ASSERT(decided->events.size() == 1);
    if (const auto* booked =
            std::get_if<sagas::IncomingPaymentBookedByOperator>(&decided->events.front()))
      corrected = booked->corrected_fields;
    event_id = decided->event_ids.front().value();
    // Locked and open above: written. Its clearing reference too, when it came from the event.
    const bool written = set_parked_payment_state(tx, {payment_id, *reference, target});
    CLEARING_ASSERT(written);
    return {};
  });
  if (done && !refused)
    base::module_logger("parking")->info(
        "parked_payment_{} id={} payment_id={} operator={} event_id={}", target, action->parked_id,
        payment_id, operator_name, event_id);
  Json answered{{"parked_id", action->parked_id},
                {"payment_id", payment_id},
                {"state", target},
                {"operator", operator_name},
                {"event_id", event_id}};
  if (booking) {
    answered["corrected_fields"] = corrected;
    answered["note"] =
        "booked: published to the core as an incoming payment (IncomingPaymentReceived)";
  } else {
    answered["note"] = std::string(kReturnNote);
  }
  return answer(refused, done, std::move(answered));
}

}  // namespace

HttpResponse book_parked_payment(eventstore::EventStore& store, const std::string& id,
                                 const std::string& body, const std::string& operator_name,
                                 const sagas::CountryRules& rules) {
  return settle_parked_payment(store, id, body, operator_name, rules, true);
}

HttpResponse return_parked_payment(eventstore::EventStore& store, const std::string& id,
                                   const std::string& body, const std::string& operator_name) {
  return settle_parked_payment(store, id, body, operator_name, {}, false);
}

void add_parked_action_routes(http::HttpServer& server, TransferService& transfers,
                              InboundRules rules) {
  const http::RouteOptions operator_role{.role = http::kRoleOperator};
  // Book's copy of the country's rules, taken before replay's route takes `rules` whole.
  sagas::CountryRules country = rules.rules;
  server.route(
      "POST", "/parked/{id}/close",
      [&transfers](const http::HttpRequest& request) {
        return close_parked(transfers.store(), request.params.at("id"), request.body,
                            request.principal);
      },
      operator_role);
  server.route(
      "POST", "/parked/{id}/replay",
      [&transfers, rules = std::move(rules)](const http::HttpRequest& request) {
        return replay_parked(transfers, rules, request.params.at("id"), request.body,
                             request.principal, base::SystemClock{}.now());
      },
      operator_role);
  server.route(
      "POST", "/parked/{id}/book",
      [&transfers, country = std::move(country)](const http::HttpRequest& request) {
        return book_parked_payment(transfers.store(), request.params.at("id"), request.body,
                                   request.principal, country);
      },
      operator_role);
  server.route(
      "POST", "/parked/{id}/return",
      [&transfers](const http::HttpRequest& request) {
        return return_parked_payment(transfers.store(), request.params.at("id"), request.body,
                                     request.principal);
      },
      operator_role);
}

}  // namespace clearing::adapter
