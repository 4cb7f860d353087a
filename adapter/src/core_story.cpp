// The core's story merged into the adapter's trace: see core_story.hpp.

#include "clearing/adapter/core_story.hpp"

#include <algorithm>

#include "clearing/base/assert.hpp"
#include "clearing/base/text.hpp"
#include "clearing/config/config.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/url.hpp"

namespace clearing::adapter {
namespace {

using Json = nlohmann::json;

constexpr std::size_t kShownBytesMax = 200;  // of one text from the core, on the terminal
constexpr std::size_t kTypeColumn = 34;      // as render_trace pads the adapter's types

// A string member, or "" (the core's answer is checked for shape, not for every member).
std::string text(const Json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

// Text from the core as it may reach a terminal: no control characters, bounded.
std::string shown(const std::string& value) { return base::escape_text(value, kShownBytesMax); }

std::string short_id(const std::string& id) { return shown(id.substr(0, 8)); }

std::string position(const Json& where) {
  if (!where.is_object()) return "";
  const auto number = [&](const char* key) {
    const auto found = where.find(key);
    return found != where.end() && found->is_number_integer()
               ? std::to_string(found->get<std::int64_t>())
               : std::string("?");
  };
  return shown(text(where, "stream")) + " p" + number("partition") + " seq " + number("seq");
}

// Why an answer is not a story, or nothing.
std::optional<std::string> not_a_story(const Json& story) {
  if (!story.is_object()) return "not a JSON object";
  const auto events = story.find("events");
  if (events == story.end() || !events->is_array()) return "no \"events\" array";
  for (const auto& e : *events)
    if (!e.is_object() || !e.contains("at") || !e["at"].is_string() || !e.contains("type") ||
        !e["type"].is_string())
      return "an event without \"at\" and \"type\"";
  return std::nullopt;
}

// The adapter's published message (a timeline step of kind "external") with this event id.
const Json* published_message(const Json& trace, const std::string& event_id) {
  if (event_id.empty() || !trace.contains("timeline")) return nullptr;
  for (const auto& step : trace["timeline"])
    if (step.value("kind", "") == "external" && text(step, "event_id") == event_id) return &step;
  return nullptr;
}

std::string describe_outcome_applied(const Json& trace, const Json& step) {
  const auto& type = step["type"].get_ref<const std::string&>();
  std::string out = type == "ReservationCompleted"
                        ? "reservation completed"
                        : "reservation released (" + shown(text(step, "reason_code")) + ")";
  const auto cause = text(step, "causation_id");
  out +=
      ", applying " + position(step.value("source", Json())) + " (event " + short_id(cause) + ")";
  if (const auto* message = published_message(trace, cause))
    out += ": the adapter's " + shown(text(*message, "type"));
  return out;
}

}  // namespace

tl::expected<Json, std::string> fetch_core_story(const CoreStoryClientOptions& options,
                                                 const std::string& transfer_id) {
  std::string base = options.base_url;
  while (base.ends_with('/')) base.pop_back();
  const auto where = config::redact_http_url(base);
  const auto url = base + "/transfers/" + http::percent_encode(transfer_id) + "/story";
  auto answer = http::send({.url = url,
                            .bearer_token = options.bearer_token,
                            .timeout_ms = options.timeout_ms,
                            .body_bytes_max = kCoreStoryBytesMax,
                            .tls = options.tls});
  if (!answer)
    return tl::unexpected("the core at " + where + " did not answer: " + answer.error().message);
  const auto body = Json::parse(answer->body, nullptr, false);
  const auto status = std::to_string(answer->status);
  if (answer->status == 401 || answer->status == 403)
    return tl::unexpected("the core at " + where + " refused the token (HTTP " + status +
                          "): check " + options.token_setting);
  std::string said;
  if (body.is_object() && body.contains("error") && body["error"].is_object())
    said = shown(text(body["error"], "code") + ": " + text(body["error"], "message"));
  if (answer->status == 404 && said.starts_with("unknown_transfer"))
    return tl::unexpected("the core does not know transfer " + shown(transfer_id) + " (HTTP 404)");
  if (answer->status == 404)
    return tl::unexpected("the core at " + where + " serves no story (HTTP 404 " + said +
                          "): check " + options.url_setting);
  if (answer->status != 200)
    return tl::unexpected("the core at " + where + " answered HTTP " + status +
                          (said.empty() ? "" : " " + said));
  if (const auto why = not_a_story(body))
    return tl::unexpected("the core's answer is not a story: " + *why);
  return body;
}

void merge_core_story(Json& trace, const Json& story) {
  CLEARING_ASSERT(trace.is_object() && trace["timeline"].is_array());
  CLEARING_ASSERT(!not_a_story(story).has_value());
  auto& timeline = trace["timeline"];
  for (auto& step : timeline) step["side"] = "adapter";
  const auto& events = story["events"];
  const auto count = std::min(events.size(), kCoreStoryEventsMax);
  for (std::size_t i = 0; i < count; ++i) {
    Json step = events[i];
    step["kind"] = "core";
    step["side"] = "core";
    timeline.push_back(std::move(step));
  }
  std::stable_sort(timeline.begin(), timeline.end(), [](const Json& a, const Json& b) {
    return a["at"].get_ref<const std::string&>() < b["at"].get_ref<const std::string&>();
  });
  Json summary = story;
  summary.erase("events");
  summary["events_merged"] = count;
  summary["events_left_out"] = events.size() - count;
  trace["core_story"] = std::move(summary);
}

void mark_core_story_missing(Json& trace, const std::string& why) {
  trace["core_story"] = Json{{"missing", why}};
}

std::string core_story_header(const Json& trace) {
  if (!trace.contains("core_story")) return "";
  const auto& core = trace["core_story"];
  if (core.contains("missing"))
    return "  core:        the core's side is missing: " + text(core, "missing") + "\n";
  std::string out = "  core:        " + shown(text(core, "status"));
  if (!text(core, "reason_code").empty()) out += " (" + shown(text(core, "reason_code")) + ")";
  if (core.value("pending_seen", false)) out += ", saw pending";
  if (core.value("under_investigation_seen", false)) out += ", saw under investigation";
  const auto left_out = core.value("events_left_out", std::size_t{0});
  if (left_out > 0) out += "; " + std::to_string(left_out) + " more core events not shown";
  return out + "\n";
}

std::string side_column(const Json& trace, const Json& step) {
  if (!trace.contains("core_story") || trace["core_story"].contains("missing")) return "";
  return step.value("side", "") == "core" ? "core     " : "adapter  ";
}

std::string describe_core_step(const Json& trace, const Json& step) {
  const auto type = shown(text(step, "type"));
  std::string line = type;
  line.resize(std::max(line.size(), kTypeColumn), ' ');
  const auto event_id = text(step, "event_id");
  if (type == "FundsReserved") {
    const auto amount = step.value("amount", Json::object());
    const auto minor = amount.contains("minor_units") && amount["minor_units"].is_number_integer()
                           ? std::to_string(amount["minor_units"].get<std::int64_t>())
                           : std::string("?");
    return line + "funds reserved: " + minor + " " + shown(text(amount, "currency")) +
           " minor units (event " + short_id(event_id) + ")";
  }
  if (type == "TransferRequested") {
    line += "published " + position(step) + " (event " + short_id(event_id) + ", from event " +
            short_id(text(step, "source_event_id")) + ", " +
            (step.value("published", false) ? "on Kafka" : "not yet on Kafka") + ")";
    const auto& core_event = trace.value("core_event", Json::object());
    if (!event_id.empty() && text(core_event, "event_id") == event_id)
      line += ": the adapter's core event";
    return line;
  }
  if (type == "ReservationCompleted" || type == "ReservationReleased")
    return line + describe_outcome_applied(trace, step);
  if (type == "OutcomeNotApplied")
    return line + "ALARM: " + shown(text(step, "message_type")) + " not applied (" +
           shown(text(step, "violation")) + "), " + position(step.value("source", Json())) +
           " (event " + short_id(text(step, "causation_id")) + ")";
  if (type == "TransferRefused")
    return line + "refused by the core (" + shown(text(step, "reason")) + "), never published";
  return line + "(event " + short_id(event_id) + ")";
}

}  // namespace clearing::adapter
