#include "clearing/adapter/transfer_api.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <sstream>

#include <pqxx/pqxx>

#include "clearing/base/uuid.hpp"

namespace clearing::adapter {
namespace {

using Json = nlohmann::json;

// The answer class a stored event records, or "" for events that are not answers.
std::string answer_class_of(const eventstore::RecordedEvent& e) {
  static const std::map<std::string, std::string> kClasses{
      {"TransferSettled", "settled"},          {"TransferAcceptedPending", "pending"},
      {"ClearingOutcomeUnknown", "unknown"},    {"ClearingReportedInProgress", "in_progress"},
      {"IdempotencyKeyConflictDetected", "key_reused"}, {"ClearingUnavailable", "maintenance"},
      {"ClearingReportedNotFound", "not_found"}, {"ClearingUnauthorized", "unauthorized"}};
  if (e.type == "TransferRejected") return e.data.value("attempt", 0) > 0 ? "rejected" : "";
  const auto it = kClasses.find(e.type);
  return it == kClasses.end() ? "" : it->second;
}

std::string summary_of(const eventstore::RecordedEvent& e) {
  const auto& d = e.data;
  auto s = [&](const char* k) { return d.contains(k) && d[k].is_string() ? d[k].get<std::string>() : std::string(); };
  if (e.type == "TransferInitiated") return "request accepted; deadline " + s("deadline_at");
  if (e.type == "RetryScheduled")
    return s("action") + " attempt " + std::to_string(d.value("attempt", 0)) + " due " + s("due_at") + " (" + s("reason") + ")";
  if (e.type == "TransferRejected") return "rejected " + s("reason_code") + ": " + s("reason");
  if (e.type == "TransferSettled") return "settled, clearing reference " + s("clearing_reference") + ", " + s("settlement_date");
  if (e.type == "TransferAcceptedPending")
    return "pending, clearing reference " + s("clearing_reference") + ", expected " + s("expected_settlement_date");
  if (e.type == "ClearingOutcomeUnknown") return "outcome unknown: " + s("cause");
  if (e.type == "ClearingUnavailable") return "maintenance, retry after " + std::to_string(d.value("retry_after_ms", 0)) + " ms";
  if (e.type == "TransferUnderInvestigation")
    return "UNDER INVESTIGATION after " + std::to_string(d.value("attempts", 0)) + " attempts: " + s("last_error");
  if (e.type == "TransferResolvedManually")
    return "resolved manually as " + s("outcome") + " by " + s("operator_name") + ": " + s("reason");
  if (e.type == "ContradictingClearingAnswerReceived") return "ALARM: clearing contradicts the outcome (" + s("answer") + ")";
  if (e.type == "DuplicateTransferRequestRefused") return "second, different request refused (DUPL)";
  if (e.type == "IdempotencyKeyConflictDetected") return "DEFECT: idempotency key reused with another body; parked for people";
  return "";
}

Json event_json(const eventstore::RecordedEvent& e) {
  return {{"at", base::format_timestamp(e.recorded_at)}, {"kind", "internal"},       {"type", e.type},
          {"version", e.version.value()},               {"event_id", e.event_id.value()},
          {"causation_id", e.metadata.causation_id},    {"summary", summary_of(e)}, {"data", e.data}};
}

}  // namespace

tl::expected<Json, std::string> build_trace(eventstore::ConnectionPool& pool, TransferService& transfers,
                                            const std::string& transfer_id) {
  auto result = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<Json> {
    auto events = transfers.store().read_stream(tx, transfer_stream(transfer_id));
    if (!events) return tl::unexpected(events.error());
    if (events->empty()) return Json(nullptr);
    auto loaded = transfers.load(tx, transfer_id);
    if (!loaded) return tl::unexpected(loaded.error());
    const auto& state = loaded->state;
    Json trace{{"transfer_id", transfer_id},
               {"state", {{"status", std::string(sagas::state_name(state))},
                          {"attempt", state.attempt},
                          {"clearing_reference", state.clearing_reference},
                          {"settlement_date", state.settlement_date},
                          {"reason_code", state.reason_code},
                          {"reason", state.reason},
                          {"correlation_id", state.correlation_id},
                          {"deadline_at", base::format_timestamp(state.deadline_at)}}}};
    const auto& first = events->front();
    trace["core_event"] = {{"event_id", first.metadata.causation_id}, {"source", first.metadata.source}};
    Json timeline = Json::array(), attempts = Json::array();
    std::map<int, std::string> action_of_attempt{{1, "submit"}};
    for (const auto& e : *events) {
      if (e.type == "RetryScheduled") action_of_attempt[e.data.value("attempt", 0)] = e.data.value("action", "");
      timeline.push_back(event_json(e));
      const auto cls = answer_class_of(e);
      if (!cls.empty()) {
        const int attempt = e.data.value("attempt", 0);
        attempts.push_back({{"attempt", attempt},
                            {"action", action_of_attempt.count(attempt) ? action_of_attempt[attempt] : ""},
                            {"answer_class", cls},
                            {"latency_ms", e.data.value("latency_ms", 0)},
                            {"at", base::format_timestamp(e.recorded_at)},
                            {"event_id", e.event_id.value()}});
      }
    }
    const auto external = tx.exec_params(
        "select stream, partition, seq, type, event_id::text, source_event_id::text,"
        " to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        " seq <= (select published from external_stream_heads h where h.stream = x.stream and h.partition = x.partition)"
        " from external_events x where entity_key = $1 order by recorded_at, stream, seq",
        transfer_id);
    for (const auto& row : external)
      timeline.push_back({{"at", row[6].as<std::string>()}, {"kind", "external"}, {"stream", row[0].as<std::string>()},
                          {"partition", row[1].as<int>()}, {"seq", row[2].as<std::int64_t>()},
                          {"type", row[3].as<std::string>()}, {"event_id", row[4].as<std::string>()},
                          {"source_event_id", row[5].as<std::string>()}, {"published", row[7].as<bool>()}});
    std::stable_sort(timeline.begin(), timeline.end(),
                     [](const Json& a, const Json& b) { return a["at"].get<std::string>() < b["at"].get<std::string>(); });
    trace["timeline"] = std::move(timeline);
    trace["clearing_attempts"] = std::move(attempts);
    const auto work = tx.exec_params(
        "select action, attempt, due_at_ms, coalesce(lease_owner, '') from transfer_work where transfer_id = $1", transfer_id);
    if (work.empty()) {
      trace["pending"] = nullptr;
    } else {
      trace["pending"] = {{"action", work[0][0].as<std::string>()}, {"attempt", work[0][1].as<int>()},
                          {"due_at", base::format_timestamp(base::Timestamp{std::chrono::milliseconds{work[0][2].as<std::int64_t>()}})},
                          {"claimed_by", work[0][3].as<std::string>()}};
    }
    return trace;
  });
  if (!result) return tl::unexpected(result.error().message);
  if (result->is_null()) return tl::unexpected("no transfer " + transfer_id);
  return *result;
}

std::string render_trace(const Json& t) {
  std::ostringstream out;
  const auto& st = t["state"];
  out << "Transfer " << t["transfer_id"].get<std::string>() << "\n";
  out << "  state:       " << st["status"].get<std::string>();
  if (!st["clearing_reference"].get<std::string>().empty())
    out << " (clearing reference " << st["clearing_reference"].get<std::string>() << ")";
  if (!st["reason_code"].get<std::string>().empty())
    out << " (" << st["reason_code"].get<std::string>() << ": " << st["reason"].get<std::string>() << ")";
  out << "\n  correlation: " << st["correlation_id"].get<std::string>() << "\n";
  const auto& source = t["core_event"]["source"];
  out << "  started by:  ";
  if (source.is_object() && source.contains("stream"))
    out << source.value("stream", "") << " partition " << source.value("partition", 0) << " seq "
        << source.value("seq", 0) << " (event " << t["core_event"]["event_id"].get<std::string>() << ")\n";
  else
    out << "event " << t["core_event"]["event_id"].get<std::string>() << "\n";
  out << "\n";
  for (const auto& step : t["timeline"]) {
    out << "  " << step["at"].get<std::string>() << "  ";
    if (step["kind"] == "external") {
      out << "published " << step["stream"].get<std::string>() << " p" << step["partition"].get<int>() << " seq "
          << step["seq"].get<std::int64_t>() << " " << step["type"].get<std::string>() << " (from event "
          << step["source_event_id"].get<std::string>().substr(0, 8) << ", "
          << (step["published"].get<bool>() ? "on Kafka" : "not yet on Kafka") << ")\n";
      continue;
    }
    std::string type = step["type"].get<std::string>();
    type.resize(std::max<std::size_t>(type.size(), 34), ' ');
    out << type << step["summary"].get<std::string>();
    const auto& d = step["data"];
    if (d.contains("attempt") && step["type"] != "RetryScheduled" && d.contains("latency_ms"))
      out << " [attempt " << d["attempt"].get<int>() << ", " << d["latency_ms"].get<std::int64_t>() << " ms]";
    out << "\n";
  }
  out << "\n  clearing attempts: " << t["clearing_attempts"].size() << "\n";
  for (const auto& a : t["clearing_attempts"])
    out << "    attempt " << a["attempt"].get<int>() << " " << a["action"].get<std::string>() << " -> "
        << a["answer_class"].get<std::string>() << " in " << a["latency_ms"].get<std::int64_t>() << " ms\n";
  if (t["pending"].is_null())
    out << "  pending:     nothing\n";
  else
    out << "  pending:     " << t["pending"]["action"].get<std::string>() << " attempt "
        << t["pending"]["attempt"].get<int>() << " due " << t["pending"]["due_at"].get<std::string>() << "\n";
  return out.str();
}

void add_transfer_routes(HttpServer& server, eventstore::ConnectionPool& pool, TransferService& transfers) {
  server.route("GET", "/transfers/{id}", [&pool, &transfers](const HttpRequest& request) {
    const auto& id = request.params.at("id");
    if (id.empty() || id.size() > 200) return HttpResponse::error(400, "bad_transfer_id", "transfer id must be 1..200 characters");
    auto trace = build_trace(pool, transfers, id);
    if (!trace) {
      if (trace.error().rfind("no transfer", 0) == 0) return HttpResponse::error(404, "unknown_transfer", trace.error());
      return HttpResponse::error(503, "unavailable", "the event store is unavailable");
    }
    return HttpResponse::json(200, trace->dump());
  });
  server.route("GET", "/parked", [&pool](const HttpRequest& request) {
    int limit = 100;
    if (auto it = request.query.find("limit"); it != request.query.end()) {
      const auto& text = it->second;
      const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
      if (ec != std::errc{} || ptr != text.data() + text.size() || limit < 1 || limit > kParkedPageMax)
        return HttpResponse::error(400, "bad_limit", "limit must be an integer in [1, 1000]");
    }
    const auto reason_it = request.query.find("reason");
    const std::optional<std::string> reason =
        reason_it == request.query.end() ? std::nullopt : std::optional<std::string>(reason_it->second);
    auto rows = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<Json> {
      Json out = Json::array();
      for (const auto& row : tx.exec_params(
               "select id, source, reason_code, reason, raw, topic, kafka_partition, kafka_offset, correlation_id,"
               " to_char(parked_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') from parked_messages"
               " where ($1::text is null or reason_code = $1) order by id desc limit $2",
               reason, limit)) {
        out.push_back({{"id", row[0].as<std::int64_t>()}, {"source", row[1].as<std::string>()},
                       {"reason_code", row[2].as<std::string>()}, {"reason", row[3].as<std::string>()},
                       {"raw", row[4].as<std::string>()},
                       {"topic", row[5].is_null() ? Json(nullptr) : Json(row[5].as<std::string>())},
                       {"partition", row[6].is_null() ? Json(nullptr) : Json(row[6].as<int>())},
                       {"offset", row[7].is_null() ? Json(nullptr) : Json(row[7].as<std::int64_t>())},
                       {"correlation_id", row[8].is_null() ? Json(nullptr) : Json(row[8].as<std::string>())},
                       {"parked_at", row[9].as<std::string>()}});
      }
      return out;
    });
    if (!rows) return HttpResponse::error(503, "unavailable", "the database is unavailable");
    return HttpResponse::json(200, Json{{"parked", *rows}}.dump());
  });
}

}  // namespace clearing::adapter
