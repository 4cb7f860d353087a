#include "clearing/adapter/parked_actions.hpp"

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>

#include "clearing/adapter/parking.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/text.hpp"
#include "clearing/base/uuid.hpp"

namespace clearing::adapter {
namespace {

using http::HttpResponse;
using Json = nlohmann::json;

struct Action {
  std::int64_t parked_id = 0;
  std::string reason;
};

// The id and the body {"reason": TEXT} of either action; the operator is never in it.
tl::expected<Action, HttpResponse> parse_action(const std::string& id, const std::string& body,
                                                const std::string& operator_name) {
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
    if (key != "reason")
      return tl::unexpected(
          HttpResponse::error(400, "bad_body",
                              "unknown field '" + base::escape_text(key, 64) +
                                  "' (reason; the operator is the token's name)"));
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
          refused = Refusal{404, "unknown_parked_message",
                            "no parked message " + std::to_string(action->parked_id)};
          return {};
        }
        if ((refused = refuse_unless_open(action->parked_id, state->state))) return {};
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
      refused = Refusal{404, "unknown_parked_message",
                        "no parked message " + std::to_string(action->parked_id)};
      return {};
    }
    if ((refused = refuse_unless_open(action->parked_id, row->state))) return {};
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

void add_parked_action_routes(http::HttpServer& server, TransferService& transfers,
                              InboundRules rules) {
  const http::RouteOptions operator_role{.role = http::kRoleOperator};
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
}

}  // namespace clearing::adapter
