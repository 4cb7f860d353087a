// The core's story of one transfer: see transfer_story.hpp.

#include "clearing/core_sim/transfer_story.hpp"

#include <algorithm>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/external_streams/payments_codec.hpp"
#include "clearing/http/server.hpp"

namespace clearing::core_sim {
namespace {

using Json = nlohmann::json;

// Timestamps as the adapter's trace writes them, so both sides sort as one text order.
constexpr const char* kAt = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

std::string at_sql(const std::string& column) {
  return "to_char(" + column + " at time zone 'UTC', " + kAt + ")";
}

std::string text_or_empty(const pqxx::field& field) {
  return field.is_null() ? std::string() : field.as<std::string>();
}

// The account events the transfer row names (its reservation and its resolution), by their
// unique ids: never the account's whole stream. The account is not named.
void add_account_events(eventstore::Transaction& tx, const std::vector<std::string>& ids,
                        Json& events) {
  Json wanted = Json::array();
  for (const auto& id : ids)
    if (!id.empty()) wanted.push_back(id);
  if (wanted.empty()) return;
  const auto rows = tx.exec_params(
      "select " + at_sql("recorded_at") +
          ", type, event_id::text, data::text, metadata::text from events"
          " where event_id = any(array(select jsonb_array_elements_text($1::jsonb)::uuid))",
      wanted.dump());
  for (const auto& row : rows) {
    const auto data = Json::parse(row[3].c_str());
    const auto metadata = Json::parse(row[4].c_str());
    Json step{{"at", row[0].as<std::string>()},
              {"type", row[1].as<std::string>()},
              {"event_id", row[2].as<std::string>()},
              {"causation_id", metadata.value("causation_id", "")},
              {"correlation_id", metadata.value("correlation_id", "")}};
    if (data.contains("amount")) step["amount"] = data["amount"];
    if (data.contains("reason_code")) step["reason_code"] = data["reason_code"];
    if (metadata.contains("source") && metadata["source"].is_object())
      step["source"] = metadata["source"];
    events.push_back(std::move(step));
  }
}

// The TransferRequested the core published, at the instant its batch committed.
void add_requests(eventstore::Transaction& tx, const std::string& transfer_id,
                  const std::string& requested_at, Json& events) {
  const auto rows = tx.exec_params(
      "select stream, partition, seq, type, event_id::text, source_event_id::text, correlation_id,"
      " seq <= (select published from external_stream_heads h where h.stream = x.stream and"
      " h.partition = x.partition)"
      " from external_events x where entity_key = $1 order by stream, partition, seq",
      transfer_id);
  for (const auto& row : rows)
    events.push_back({{"at", requested_at},
                      {"type", row[3].as<std::string>()},
                      {"event_id", row[4].as<std::string>()},
                      {"causation_id", row[5].as<std::string>()},
                      {"correlation_id", row[6].as<std::string>()},
                      {"stream", row[0].as<std::string>()},
                      {"partition", row[1].as<int>()},
                      {"seq", row[2].as<std::int64_t>()},
                      {"source_event_id", row[5].as<std::string>()},
                      {"published", !row[7].is_null() && row[7].as<bool>()}});
}

// The adapter's outcomes the core refused to apply (core_violations: rare, a small table).
void add_violations(eventstore::Transaction& tx, const std::string& transfer_id,
                    const std::string& correlation_id, Json& events) {
  const auto rows = tx.exec_params("select " + at_sql("recorded_at") +
                                       ", kind, message_type, stream, partition, seq, event_id"
                                       " from core_violations where transfer_id = $1 order by id",
                                   transfer_id);
  for (const auto& row : rows)
    events.push_back({{"at", row[0].as<std::string>()},
                      {"type", "OutcomeNotApplied"},
                      {"event_id", ""},
                      {"causation_id", row[6].as<std::string>()},
                      {"correlation_id", correlation_id},
                      {"violation", row[1].as<std::string>()},
                      {"message_type", row[2].as<std::string>()},
                      {"source",
                       {{"stream", row[3].as<std::string>()},
                        {"partition", row[4].as<int>()},
                        {"seq", row[5].as<std::int64_t>()}}}});
}

// A transfer the core refused itself: never published, so its story is one step.
std::optional<Json> refused_story(eventstore::Transaction& tx, const std::string& transfer_id) {
  const auto rows = tx.exec_params(
      "select " + at_sql("refused_at") + ", reason from core_refused where transfer_id = $1",
      transfer_id);
  if (rows.empty()) return std::nullopt;
  Json events = Json::array();
  events.push_back({{"at", rows[0][0].as<std::string>()},
                    {"type", "TransferRefused"},
                    {"event_id", ""},
                    {"causation_id", ""},
                    {"correlation_id", ""},
                    {"reason", rows[0][1].as<std::string>()}});
  return Json{{"transfer_id", transfer_id},
              {"status", "refused"},
              {"reason_code", ""},
              {"correlation_id", ""},
              {"pending_seen", false},
              {"under_investigation_seen", false},
              {"dupl_seen", 0},
              {"events", std::move(events)}};
}

std::optional<Json> story_in(eventstore::Transaction& tx, const std::string& transfer_id) {
  const auto rows = tx.exec_params(
      "select status, reason_code, correlation_id, reserved_event_id, resolved_event_id, " +
          at_sql("requested_at") +
          ", pending_seen, under_investigation_seen, dupl_seen"
          " from core_transfers where transfer_id = $1",
      transfer_id);
  if (rows.empty()) return refused_story(tx, transfer_id);
  const auto& row = rows[0];
  const auto correlation_id = row[2].as<std::string>();
  Json events = Json::array();
  add_account_events(tx, {row[3].as<std::string>(), text_or_empty(row[4])}, events);
  add_requests(tx, transfer_id, row[5].as<std::string>(), events);
  add_violations(tx, transfer_id, correlation_id, events);
  // Time order; within one instant the core's causal order (a reservation before its request).
  const auto rank = [](const Json& e) {
    const auto& type = e["type"];
    return type == "FundsReserved" ? 0 : type == "TransferRequested" ? 1 : 2;
  };
  std::stable_sort(events.begin(), events.end(), [&](const Json& a, const Json& b) {
    const auto& at_a = a["at"].get_ref<const std::string&>();
    const auto& at_b = b["at"].get_ref<const std::string&>();
    return at_a != at_b ? at_a < at_b : rank(a) < rank(b);
  });
  return Json{
      {"transfer_id", transfer_id},           {"status", row[0].as<std::string>()},
      {"reason_code", text_or_empty(row[1])}, {"correlation_id", correlation_id},
      {"pending_seen", row[6].as<bool>()},    {"under_investigation_seen", row[7].as<bool>()},
      {"dupl_seen", row[8].as<int>()},        {"events", std::move(events)}};
}

}  // namespace

eventstore::StoreResult<std::optional<Json>> read_transfer_story(eventstore::ConnectionPool& pool,
                                                                 const std::string& transfer_id) {
  return pool.transact(
      [&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::optional<Json>> {
        return story_in(tx, transfer_id);
      });
}

void add_transfer_story_route(http::HttpServer& server, eventstore::ConnectionPool& pool) {
  server.route(
      "GET", "/transfers/{transfer_id}/story",
      [&pool](const http::HttpRequest& request) {
        const auto& id = request.params.at("transfer_id");
        if (!external_streams::payments::is_transfer_id(id))
          return http::HttpResponse::error(
              400, "bad_transfer_id",
              "a transfer id is 1.." +
                  std::to_string(external_streams::payments::kTransferIdBytesMax) +
                  " characters of [A-Za-z0-9._:-]");
        auto story = read_transfer_story(pool, id);
        if (!story)
          return http::HttpResponse::error(503, "unavailable",
                                           "the core's database is unavailable");
        if (!*story) return http::HttpResponse::error(404, "unknown_transfer", "no transfer " + id);
        CLEARING_ASSERT((**story)["events"].is_array());
        return http::HttpResponse::json(200, (**story).dump());
      },
      http::RouteOptions{.role = http::kRoleReader});
}

}  // namespace clearing::core_sim
