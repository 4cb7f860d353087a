#include "clearing/external_streams/trace_metadata.hpp"

namespace clearing::external_streams {

nlohmann::json trace_json(const base::TraceContext& context) {
  nlohmann::json j = {{"traceparent", context.traceparent()}};
  if (!context.tracestate.empty()) j["tracestate"] = context.tracestate;
  return j;
}

nlohmann::json with_trace(nlohmann::json extra, const base::TraceContext& context) {
  if (!extra.is_object()) extra = nlohmann::json::object();
  extra["trace"] = trace_json(context);
  return extra;
}

std::optional<base::TraceContext> trace_from_json(const nlohmann::json& trace) {
  if (!trace.is_object()) return std::nullopt;
  const auto parent = trace.find("traceparent");
  if (parent == trace.end() || !parent->is_string()) return std::nullopt;
  const auto state = trace.find("tracestate");
  const bool has_state = state != trace.end() && state->is_string();
  return base::parse_traceparent(parent->get_ref<const std::string&>(),
                                 has_state ? state->get_ref<const std::string&>() : "");
}

std::optional<base::TraceContext> trace_from_extra(const nlohmann::json& extra) {
  if (!extra.is_object()) return std::nullopt;
  const auto trace = extra.find("trace");
  return trace == extra.end() ? std::nullopt : trace_from_json(*trace);
}

}  // namespace clearing::external_streams
