#include "clearing/adapter/transfer_api.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>

#include "clearing/adapter/core_story.hpp"
#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/parked_actions.hpp"
#include "clearing/adapter/parking.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/base/text.hpp"
#include "clearing/base/uuid.hpp"

namespace clearing::adapter {
namespace {

using http::HttpRequest;
using http::HttpResponse;

using Json = nlohmann::json;

// The answer class a stored event records, or "" for events that are not answers.
std::string answer_class_of(const eventstore::RecordedEvent& e) {
  static const std::map<std::string, std::string> kClasses{
      {"TransferSettled", "settled"},
      {"TransferAcceptedPending", "pending"},
      {"ClearingOutcomeUnknown", "unknown"},
      {"ClearingReportedInProgress", "in_progress"},
      {"IdempotencyKeyConflictDetected", "key_reused"},
      {"ClearingUnavailable", "maintenance"},
      {"ClearingReportedNotFound", "not_found"},
      {"ClearingUnauthorized", "unauthorized"}};
  if (e.type == "TransferRejected") return e.data.value("attempt", 0) > 0 ? "rejected" : "";
  const auto it = kClasses.find(e.type);
  return it == kClasses.end() ? "" : it->second;
}

std::string summary_of(const eventstore::RecordedEvent& e) {
  const auto& d = e.data;
  auto s = [&](const char* k) {
    return d.contains(k) && d[k].is_string() ? d[k].get<std::string>() : std::string();
  };
  if (e.type == "TransferInitiated") return "request accepted; deadline " + s("deadline_at");
  if (e.type == "RetryScheduled")
    return s("action") + " attempt " + std::to_string(d.value("attempt", 0)) + " due " +
           s("due_at") + " (" + s("reason") + ")";
  if (e.type == "TransferRejected") return "rejected " + s("reason_code") + ": " + s("reason");
  if (e.type == "TransferSettled")
    return "settled, clearing reference " + s("clearing_reference") + ", " + s("settlement_date");
  if (e.type == "TransferAcceptedPending")
    return "pending, clearing reference " + s("clearing_reference") + ", expected " +
           s("expected_settlement_date");
  if (e.type == "ClearingOutcomeUnknown") return "outcome unknown: " + s("cause");
  if (e.type == "ClearingUnavailable")
    return "maintenance, retry after " + std::to_string(d.value("retry_after_ms", 0)) + " ms";
  if (e.type == "SubmissionDeferred")
    return s("action") + " attempt " + std::to_string(d.value("attempt", 0)) + " deferred until " +
           s("until") + ": maintenance window " + s("window");
  if (e.type == "TransferUnderInvestigation")
    return "UNDER INVESTIGATION after " + std::to_string(d.value("attempts", 0)) +
           " attempts: " + s("last_error");
  if (e.type == "TransferResolvedManually")
    return "resolved manually as " + s("outcome") + " by " + s("operator_name") + ": " +
           s("reason");
  if (e.type == "ContradictingClearingAnswerReceived")
    return "ALARM: clearing contradicts the outcome (" + s("answer") + ")";
  if (e.type == "DuplicateTransferRequestRefused")
    return "second, different request refused (DUPL)";
  if (e.type == "IdempotencyKeyConflictDetected")
    return "DEFECT: idempotency key reused with another body; parked for people";
  // Operators' actions on parked input (parked_actions.hpp): who and why.
  const auto by = [&] { return " by " + s("operator") + ": " + s("reason"); };
  const auto parked_id = [&] { return std::to_string(d.value("parked_id", std::int64_t{0})); };
  if (e.type == "ParkedMessageClosed") return "parked message " + parked_id() + " closed" + by();
  if (e.type == "ParkedMessageReplayed")
    return "parked message " + parked_id() + " replayed (" + s("outcome") + ")" + by();
  if (e.type == "IncomingPaymentParked")
    return "incoming payment parked " + s("reason_code") + ": " + s("reason");
  if (e.type == "IncomingPaymentRecorded") return "incoming payment recorded";
  if (e.type == "IncomingPaymentBookedByOperator") {
    std::string corrected;
    for (const auto& f : d.value("corrected_fields", Json::array()))
      if (f.is_string()) corrected += (corrected.empty() ? "" : ", ") + f.get<std::string>();
    return "booked" + (corrected.empty() ? "" : " (corrected: " + corrected + ")") + by();
  }
  if (e.type == "IncomingPaymentReturnedByOperator")
    return "returned to the payer (the bank's manual process)" + by();
  return "";
}

Json event_json(const eventstore::RecordedEvent& e);

// The outbound messages of an entity (a transfer, an incoming payment), as timeline steps.
std::vector<Json> external_steps(eventstore::Transaction& tx, const std::string& entity_key) {
  const auto rows = tx.exec_params(
      "select stream, partition, seq, type, event_id::text, source_event_id::text,"
      " to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
      " seq <= (select published from external_stream_heads h where h.stream = x.stream and "
      "h.partition = x.partition)"
      " from external_events x where entity_key = $1 order by recorded_at, stream, seq",
      entity_key);
  std::vector<Json> steps;
  for (const auto& row : rows)
    steps.push_back({{"at", row[6].as<std::string>()},
                     {"kind", "external"},
                     {"stream", row[0].as<std::string>()},
                     {"partition", row[1].as<int>()},
                     {"seq", row[2].as<std::int64_t>()},
                     {"type", row[3].as<std::string>()},
                     {"event_id", row[4].as<std::string>()},
                     {"source_event_id", row[5].as<std::string>()},
                     {"published", row[7].as<bool>()}});
  return steps;
}

// A timeline in time order (steps of the same instant keep their order).
template <class Steps>
void sort_timeline(Steps& timeline) {
  std::stable_sort(timeline.begin(), timeline.end(), [](const Json& a, const Json& b) {
    return a["at"].get<std::string>() < b["at"].get<std::string>();
  });
}

// The events of the parked messages of a business flow (stream parked-<id>): the operators'
// close and replay, each with its stream. Parked rows are few; each stream is read by its key.
eventstore::StoreResult<std::vector<Json>> parked_actions_of(eventstore::Transaction& tx,
                                                             eventstore::EventStore& store,
                                                             const std::string& correlation_id) {
  std::vector<Json> steps;
  if (correlation_id.empty()) return steps;
  const auto rows = tx.exec_params(
      "select id from parked_messages where correlation_id = $1 order by id", correlation_id);
  for (const auto& row : rows) {
    const eventstore::StreamId stream{parked_stream(row[0].as<std::int64_t>())};
    auto events = store.read_stream(tx, stream);
    if (!events) return tl::unexpected(events.error());
    for (const auto& e : *events) {
      auto step = event_json(e);
      step["stream"] = stream.value();
      steps.push_back(std::move(step));
    }
  }
  return steps;
}

Json event_json(const eventstore::RecordedEvent& e) {
  return {{"at", base::format_timestamp(e.recorded_at)},
          {"kind", "internal"},
          {"type", e.type},
          {"version", e.version.value()},
          {"event_id", e.event_id.value()},
          {"causation_id", e.metadata.causation_id},
          {"summary", summary_of(e)},
          {"data", e.data}};
}

// An integer in [min, max] written in decimal digits only (no sign, no spaces).
std::optional<std::int64_t> parse_integer(const std::string& text, std::int64_t min,
                                          std::int64_t max) {
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || text.front() == '-' || ec != std::errc{} || ptr != text.data() + text.size())
    return std::nullopt;
  if (value < min || value > max) return std::nullopt;
  return value;
}

// The largest from_byte of GET /parked/{id}: a bytea holds at most 1 GB.
constexpr std::int64_t kFromByteMax = std::int64_t{1} << 30;

struct QueryRefusal {
  std::string code, message;
};

// GET /parked's query: limit, reason, before_id; anything else is refused, so that a
// misspelt cursor is not silently the first page again.
tl::expected<ParkedListing, QueryRefusal> parse_parked_listing(
    const std::map<std::string, std::string>& query) {
  ParkedListing listing;
  for (const auto& [key, value] : query) {
    if (key == "limit") {
      const auto limit = parse_integer(value, 1, kParkedPageMax);
      if (!limit)
        return tl::unexpected(QueryRefusal{"bad_limit", "limit must be an integer in [1, 1000]"});
      listing.limit = static_cast<int>(*limit);
    } else if (key == "before_id") {
      const auto before = parse_integer(value, 1, std::numeric_limits<std::int64_t>::max());
      if (!before)
        return tl::unexpected(
            QueryRefusal{"bad_before_id", "before_id must be a positive integer"});
      listing.before_id = *before;
    } else if (key == "reason") {
      // Compared with stored reason codes, which are printable and bounded: anything else
      // matches nothing, and invalid UTF-8 would fail the query (503) instead.
      if (value.empty() || value.size() > kParkedReasonCodeBytesMax ||
          !base::is_printable_utf8(value))
        return tl::unexpected(QueryRefusal{
            "bad_reason", "reason must be a reason code (printable, at most 64 bytes)"});
      listing.reason_code = value;
    } else {
      return tl::unexpected(QueryRefusal{
          "unknown_parameter", "the query parameters are limit, before_id and reason; not " +
                                   base::escape_text(key, 64)});
    }
  }
  return listing;
}

}  // namespace

tl::expected<Json, std::string> build_trace(eventstore::ConnectionPool& pool,
                                            TransferService& transfers,
                                            const std::string& transfer_id) {
  auto result = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<Json> {
    auto events = transfers.store().read_stream(tx, transfer_stream(transfer_id));
    if (!events) return tl::unexpected(events.error());
    if (events->empty()) return Json(nullptr);
    auto loaded = transfers.load(tx, transfer_id);
    if (!loaded) return tl::unexpected(loaded.error());
    const auto& state = loaded->state;
    Json trace{{"transfer_id", transfer_id},
               {"state",
                {{"status", std::string(sagas::state_name(state))},
                 {"attempt", state.attempt},
                 {"clearing_reference", state.clearing_reference},
                 {"settlement_date", state.settlement_date},
                 {"reason_code", state.reason_code},
                 {"reason", state.reason},
                 {"correlation_id", state.correlation_id},
                 {"deadline_at", base::format_timestamp(state.deadline_at)}}}};
    const auto& first = events->front();
    trace["core_event"] = {{"event_id", first.metadata.causation_id},
                           {"source", first.metadata.source}};
    Json timeline = Json::array(), attempts = Json::array();
    std::map<int, std::string> action_of_attempt{{1, "submit"}};
    for (const auto& e : *events) {
      if (e.type == "RetryScheduled")
        action_of_attempt[e.data.value("attempt", 0)] = e.data.value("action", "");
      timeline.push_back(event_json(e));
      const auto cls = answer_class_of(e);
      if (!cls.empty()) {
        const int attempt = e.data.value("attempt", 0);
        attempts.push_back(
            {{"attempt", attempt},
             {"action", action_of_attempt.count(attempt) ? action_of_attempt[attempt] : ""},
             {"answer_class", cls},
             {"latency_ms", e.data.value("latency_ms", 0)},
             {"at", base::format_timestamp(e.recorded_at)},
             {"event_id", e.event_id.value()}});
      }
    }
    // Operators' actions on the transfer's parked messages (closed, replayed): the messages
    // of its business flow, by their correlation id.
    if (auto actions = parked_actions_of(tx, transfers.store(), state.correlation_id); !actions)
      return tl::unexpected(actions.error());
    else
      for (auto& step : *actions) timeline.push_back(std::move(step));
    for (auto& step : external_steps(tx, transfer_id)) timeline.push_back(std::move(step));
    sort_timeline(timeline);
    trace["timeline"] = std::move(timeline);
    trace["clearing_attempts"] = std::move(attempts);
    const auto work = tx.exec_params(
        "select action, attempt, due_at_ms, coalesce(lease_owner, '') from transfer_work where "
        "transfer_id = $1",
        transfer_id);
    if (work.empty()) {
      trace["pending"] = nullptr;
    } else {
      trace["pending"] = {
          {"action", work[0][0].as<std::string>()},
          {"attempt", work[0][1].as<int>()},
          {"due_at", base::format_timestamp(base::Timestamp{
                         std::chrono::milliseconds{work[0][2].as<std::int64_t>()}})},
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
    out << " (" << st["reason_code"].get<std::string>() << ": " << st["reason"].get<std::string>()
        << ")";
  out << "\n  correlation: " << st["correlation_id"].get<std::string>() << "\n";
  const auto& source = t["core_event"]["source"];
  out << "  started by:  ";
  if (source.is_object() && source.contains("stream"))
    out << source.value("stream", "") << " partition " << source.value("partition", 0) << " seq "
        << source.value("seq", 0) << " (event " << t["core_event"]["event_id"].get<std::string>()
        << ")\n";
  else
    out << "event " << t["core_event"]["event_id"].get<std::string>() << "\n";
  out << core_story_header(t) << "\n";
  for (const auto& step : t["timeline"]) {
    const auto side = side_column(t, step);
    out << "  " << step["at"].get<std::string>() << "  " << side;
    if (step["kind"] == "core") {
      out << describe_core_step(t, step) << "\n";
      continue;
    }
    if (step["kind"] == "external") {
      out << "published " << step["stream"].get<std::string>() << " p"
          << step["partition"].get<int>() << " seq " << step["seq"].get<std::int64_t>() << " "
          << step["type"].get<std::string>() << " ("
          << (side.empty() ? ""
                           : "event " + step["event_id"].get<std::string>().substr(0, 8) + ", ")
          << "from event " << step["source_event_id"].get<std::string>().substr(0, 8) << ", "
          << (step["published"].get<bool>() ? "on Kafka" : "not yet on Kafka") << ")\n";
      continue;
    }
    std::string type = step["type"].get<std::string>();
    type.resize(std::max<std::size_t>(type.size(), 34), ' ');
    out << type << step["summary"].get<std::string>();
    const auto& d = step["data"];
    if (d.contains("attempt") && step["type"] != "RetryScheduled" && d.contains("latency_ms"))
      out << " [attempt " << d["attempt"].get<int>() << ", " << d["latency_ms"].get<std::int64_t>()
          << " ms]";
    out << "\n";
  }
  out << "\n  clearing attempts: " << t["clearing_attempts"].size() << "\n";
  for (const auto& a : t["clearing_attempts"])
    out << "    attempt " << a["attempt"].get<int>() << " " << a["action"].get<std::string>()
        << " -> " << a["answer_class"].get<std::string>() << " in "
        << a["latency_ms"].get<std::int64_t>() << " ms\n";
  if (t["pending"].is_null())
    out << "  pending:     nothing\n";
  else
    out << "  pending:     " << t["pending"]["action"].get<std::string>() << " attempt "
        << t["pending"]["attempt"].get<int>() << " due "
        << t["pending"]["due_at"].get<std::string>() << "\n";
  return out.str();
}

tl::expected<Json, std::string> build_parked_trace(eventstore::ConnectionPool& pool,
                                                   eventstore::EventStore& store,
                                                   const std::string& key) {
  auto result = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<Json> {
    std::optional<std::int64_t> id =
        parse_integer(key, 1, std::numeric_limits<std::int64_t>::max());
    if (!id) {
      const auto rows = tx.exec_params("select id from parked_messages where payment_id = $1", key);
      if (rows.empty()) return Json(nullptr);
      id = rows[0][0].as<std::int64_t>();
    }
    // The row, never its raw: the story reads without the data key (the CLI may have none).
    const auto rows = tx.exec_params(
        "select source, reason_code, reason, state, correlation_id, payment_id,"
        " to_char(parked_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), topic,"
        " kafka_partition, kafka_offset from parked_messages where id = $1",
        *id);
    if (rows.empty()) return Json(nullptr);
    const auto& r0 = rows[0];
    const auto optional_text = [](const pqxx::field& f) {
      return f.is_null() ? Json(nullptr) : Json(f.as<std::string>());
    };
    Json row{{"source", r0[0].as<std::string>()},
             {"reason_code", r0[1].as<std::string>()},
             {"reason", r0[2].as<std::string>()},
             {"state", r0[3].as<std::string>()},
             {"correlation_id", optional_text(r0[4])},
             {"kind", r0[5].is_null() ? "message" : "incoming_payment"},
             {"parked_at", r0[6].as<std::string>()},
             {"topic", optional_text(r0[7])},
             {"partition", r0[8].is_null() ? Json(nullptr) : Json(r0[8].as<std::int32_t>())},
             {"offset", r0[9].is_null() ? Json(nullptr) : Json(r0[9].as<std::int64_t>())}};
    if (!r0[5].is_null()) row["payment_id"] = r0[5].as<std::string>();
    std::vector<Json> timeline;
    auto add_stream = [&](const eventstore::StreamId& stream) -> eventstore::StoreResult<void> {
      auto events = store.read_stream(tx, stream);
      if (!events) return tl::unexpected(events.error());
      for (const auto& e : *events) {
        auto step = event_json(e);
        step["stream"] = stream.value();
        timeline.push_back(std::move(step));
      }
      return {};
    };
    if (auto added = add_stream(eventstore::StreamId{parked_stream(*id)}); !added)
      return tl::unexpected(added.error());
    Json trace{{"parked_id", *id}};
    for (const char* field : {"kind", "source", "reason_code", "reason", "state", "correlation_id",
                              "parked_at", "topic", "partition", "offset"})
      trace[field] = row.value(field, Json(nullptr));
    if (row.contains("payment_id")) {
      // A parked incoming payment: its own stream (the operator's booking or return) and what
      // reached the core.
      const auto payment_id = row["payment_id"].get<std::string>();
      trace["payment_id"] = payment_id;
      // Its stream, by the parked event.
      if (const auto reference = parked_event_reference(tx, payment_id)) {
        trace["clearing_reference"] = *reference;
        if (auto added = add_stream(incoming_payment_stream(*reference)); !added)
          return tl::unexpected(added.error());
      }
      for (auto& step : external_steps(tx, payment_id)) timeline.push_back(std::move(step));
    }
    sort_timeline(timeline);
    trace["timeline"] = std::move(timeline);
    return trace;
  });
  if (!result) return tl::unexpected(result.error().message);
  if (result->is_null()) return tl::unexpected("no parked message or parked payment " + key);
  return *result;
}

std::string render_parked_trace(const Json& t) {
  std::ostringstream out;
  const bool payment = t.contains("payment_id");
  out << (payment ? "Parked incoming payment " : "Parked message ") << t["parked_id"] << "\n";
  if (payment) {
    out << "  payment:     " << t["payment_id"].get<std::string>();
    if (t.contains("clearing_reference"))
      out << " (clearing reference " << t["clearing_reference"].get<std::string>() << ")";
    out << "\n";
  }
  out << "  state:       " << t["state"].get<std::string>() << "\n";
  out << "  parked:      " << t["parked_at"].get<std::string>() << " from "
      << t["source"].get<std::string>() << " (" << t["reason_code"].get<std::string>() << ": "
      << t["reason"].get<std::string>() << ")\n";
  if (t["correlation_id"].is_string())
    out << "  correlation: " << t["correlation_id"].get<std::string>() << "\n";
  out << "\n";
  for (const auto& step : t["timeline"]) {
    out << "  " << step["at"].get<std::string>() << "  ";
    if (step["kind"] == "external") {
      out << "published " << step["stream"].get<std::string>() << " p"
          << step["partition"].get<int>() << " seq " << step["seq"].get<std::int64_t>() << " "
          << step["type"].get<std::string>() << " ("
          << (step["published"].get<bool>() ? "on Kafka" : "not yet on Kafka") << ")\n";
      continue;
    }
    std::string type = step["type"].get<std::string>();
    type.resize(std::max<std::size_t>(type.size(), 34), ' ');
    out << type << step["summary"].get<std::string>() << "\n";
  }
  if (t["timeline"].empty()) out << "  no operator action yet\n";
  return out.str();
}

namespace {

// A resolution's body: {"outcome": "succeeded"|"rejected", "reason": TEXT,
// "clearing_reference": R (succeeded), "settlement_date": "YYYY-MM-DD" (succeeded, optional),
// "reason_code": C (rejected)}. The operator is never in it: it is the token's name.
tl::expected<sagas::ResolveManually, HttpResponse> parse_resolution(const std::string& body) {
  const auto bad = [](std::string code, std::string message) {
    return tl::unexpected(HttpResponse::error(400, std::move(code), std::move(message)));
  };
  const auto json = Json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return bad("bad_body", "the body must be a JSON object");
  std::map<std::string, std::string> fields;
  for (const auto& [key, value] : json.items()) {
    if (key != "outcome" && key != "reason" && key != "clearing_reference" &&
        key != "settlement_date" && key != "reason_code")
      return bad("bad_body", "unknown field '" + key +
                                 "' (outcome, reason, clearing_reference, settlement_date, "
                                 "reason_code; the operator is the token's name)");
    if (!value.is_string() || !base::is_printable_utf8(value.get<std::string>()) ||
        value.get<std::string>().size() > kResolutionFieldBytesMax)
      return bad("bad_body", "field '" + key + "' must be printable text of at most " +
                                 std::to_string(kResolutionFieldBytesMax) + " bytes");
    fields[key] = value.get<std::string>();
  }
  sagas::ResolveManually command;
  const auto outcome = sagas::parse_manual_outcome(fields["outcome"]);
  if (!outcome) return bad("bad_outcome", "outcome must be succeeded or rejected");
  command.outcome = *outcome;
  command.reason = fields["reason"];
  if (command.reason.empty()) return bad("missing_reason", "reason is required: why, in words");
  command.clearing_reference = fields["clearing_reference"];
  command.settlement_date = fields["settlement_date"];
  command.reason_code = fields["reason_code"];
  if (*outcome == sagas::ManualOutcome::succeeded) {
    if (command.clearing_reference.empty())
      return bad("missing_clearing_reference",
                 "outcome succeeded needs clearing_reference (as confirmed with the clearing)");
    if (!command.reason_code.empty()) return bad("bad_body", "reason_code is for outcome rejected");
    if (!command.settlement_date.empty() && !base::parse_date(command.settlement_date))
      return bad("bad_settlement_date", "settlement_date must be YYYY-MM-DD");
  } else {
    if (command.reason_code.empty())
      return bad("missing_reason_code",
                 "outcome rejected needs reason_code (an ISO 20022 code, e.g. AC04)");
    if (!command.clearing_reference.empty() || !command.settlement_date.empty())
      return bad("bad_body", "clearing_reference and settlement_date are for outcome succeeded");
  }
  return command;
}

int status_of(sagas::TransferRefusalCode code) {
  switch (code) {
    case sagas::TransferRefusalCode::unknown_transfer:
      return 404;
    case sagas::TransferRefusalCode::incomplete_resolution:
      return 400;
    case sagas::TransferRefusalCode::transfer_id_mismatch:
    case sagas::TransferRefusalCode::answer_kind_mismatch:
    case sagas::TransferRefusalCode::already_terminal:
    case sagas::TransferRefusalCode::not_under_investigation:
      break;
  }
  return 409;
}

}  // namespace

HttpResponse resolve_transfer(TransferService& transfers, const std::string& transfer_id,
                              const std::string& body, const std::string& operator_name,
                              base::Timestamp now, const config::CountryConfig& country) {
  if (operator_name.empty())
    return HttpResponse::error(403, "FORBIDDEN", "an operator action needs a named token");
  if (transfer_id.empty() || transfer_id.size() > 200)
    return HttpResponse::error(400, "bad_transfer_id", "transfer id must be 1..200 characters");
  auto parsed = parse_resolution(body);
  if (!parsed) return std::move(parsed.error());
  auto command = std::move(*parsed);
  // The contract's settlement date is YYYY-MM-DD, never empty: without one from the operator,
  // the day the country's calendar settles a transfer accepted now.
  if (command.outcome == sagas::ManualOutcome::succeeded && command.settlement_date.empty())
    command.settlement_date = config::format_date(country.settlement_date(now));
  command.transfer_id = transfer_id;
  command.operator_name = operator_name;
  command.now = now;
  bool unknown = false;
  TransferResult result = tl::unexpected(eventstore::CommandFailure<sagas::TransferDecider>{
      eventstore::StoreError{eventstore::StoreErrc::internal, "not run"}});
  // The events this correction corrects (everything recorded since the investigation began,
  // or the whole stream) are read in the transaction that decides, and named in the
  // correcting event's metadata with the operator.
  auto done = transfers.store().pool().transact_with_retry(
      [&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
        unknown = false;
        auto events = transfers.store().read_stream(tx, transfer_stream(transfer_id));
        if (!events) return tl::unexpected(events.error());
        if (events->empty()) {
          unknown = true;
          return {};
        }
        Json corrects = Json::array();
        for (const auto& e : *events)
          if (e.type != "TransferInitiated" && e.type != "RetryScheduled")
            corrects.push_back(e.event_id.value());
        const eventstore::CommandContext context{
            events->front().metadata.correlation_id,
            events->back().event_id.value(),
            nullptr,
            "",
            {{"corrects", corrects}, {"operator", operator_name}}};
        result = transfers.execute(tx, command, context);
        if (!result && std::holds_alternative<eventstore::StoreError>(result.error()))
          return tl::unexpected(std::get<eventstore::StoreError>(result.error()));
        return {};
      });
  if (!done) return HttpResponse::error(503, "unavailable", "the event store is unavailable");
  if (unknown) return HttpResponse::error(404, "unknown_transfer", "no transfer " + transfer_id);
  if (!result) {
    const auto& refusal = std::get<sagas::TransferRefusal>(result.error());
    return HttpResponse::error(status_of(refusal.code),
                               std::string(sagas::refusal_code_name(refusal.code)),
                               refusal.message);
  }
  return HttpResponse::json(
      200, Json{{"transfer_id", transfer_id},
                {"outcome", std::string(sagas::manual_outcome_name(command.outcome))},
                {"operator", operator_name}}
               .dump());
}

void add_transfer_routes(http::HttpServer& server, eventstore::ConnectionPool& pool,
                         TransferService& transfers, const TransferRoutesOptions& options) {
  const http::RouteOptions reader{.role = http::kRoleReader};
  server.route(
      "POST", "/transfers/{id}/resolve",
      [&transfers, country = options.country](const HttpRequest& request) {
        return resolve_transfer(transfers, request.params.at("id"), request.body, request.principal,
                                base::SystemClock{}.now(), country);
      },
      http::RouteOptions{.role = http::kRoleOperator});
  add_parked_action_routes(server, transfers, options.inbound);
  server.route(
      "GET", "/transfers/{id}",
      [&pool, &transfers](const HttpRequest& request) {
        const auto& id = request.params.at("id");
        if (id.empty() || id.size() > 200)
          return HttpResponse::error(400, "bad_transfer_id",
                                     "transfer id must be 1..200 characters");
        auto trace = build_trace(pool, transfers, id);
        if (!trace) {
          if (trace.error().rfind("no transfer", 0) == 0)
            return HttpResponse::error(404, "unknown_transfer", trace.error());
          return HttpResponse::error(503, "unavailable", "the event store is unavailable");
        }
        return HttpResponse::json(200, trace->dump());
      },
      reader);
  server.route(
      "GET", "/parked",
      [&pool](const HttpRequest& request) {
        auto listing = parse_parked_listing(request.query);
        if (!listing)
          return HttpResponse::error(400, listing.error().code, listing.error().message);
        auto page =
            pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::string> {
              return parked_page(tx, *listing, pool.protector());
            });
        if (!page) return HttpResponse::error(503, "unavailable", "the database is unavailable");
        return HttpResponse::json(200, std::move(*page));
      },
      reader);
  server.route(
      "GET", "/parked/{id}",
      [&pool](const HttpRequest& request) {
        const auto id =
            parse_integer(request.params.at("id"), 1, std::numeric_limits<std::int64_t>::max());
        if (!id)
          return HttpResponse::error(400, "bad_parked_id",
                                     "a parked message id is a positive integer");
        std::int64_t from_byte = 0;
        for (const auto& [key, value] : request.query) {
          if (key != "from_byte")
            return HttpResponse::error(400, "unknown_parameter",
                                       "the only query parameter is from_byte");
          const auto parsed = parse_integer(value, 0, kFromByteMax);
          if (!parsed)
            return HttpResponse::error(400, "bad_from_byte",
                                       "from_byte must be an integer in [0, 2^30]");
          from_byte = *parsed;
        }
        std::optional<ParkedReadError> refused;
        auto message =
            pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::string> {
              auto read = parked_message(tx, *id, from_byte, pool.protector());
              if (read) return std::move(*read);
              refused = read.error();
              return std::string();
            });
        if (!message) return HttpResponse::error(503, "unavailable", "the database is unavailable");
        if (refused == ParkedReadError::unknown_id)
          return HttpResponse::error(404, "unknown_parked_message",
                                     "no parked message " + std::to_string(*id));
        if (refused == ParkedReadError::beyond_end)
          return HttpResponse::error(400, "bad_from_byte",
                                     "from_byte is past the end of the raw value");
        return HttpResponse::json(200, std::move(*message));
      },
      reader);
}

}  // namespace clearing::adapter
