#pragma once
// Where an event keeps its W3C trace context: metadata.extra.trace =
// {"traceparent": "00-...", "tracestate": "..."} (tracestate only when not empty). Written by
// whatever appends the event (the inbound consumer, the dispatcher's answers), read by whatever
// follows from it days later (the dispatcher's next call, the derivation, the relay), so a
// trace survives restarts and retries.

#include <nlohmann/json.hpp>
#include <optional>

#include "clearing/base/trace_context.hpp"

namespace clearing::external_streams {

// {"traceparent": ..., "tracestate": ...}: the value kept under "trace".
nlohmann::json trace_json(const base::TraceContext& context);

// `extra` with "trace" set (a null or non-object `extra` becomes an object).
nlohmann::json with_trace(nlohmann::json extra, const base::TraceContext& context);

// The context kept in `trace` (the value under "trace"); nullopt when absent or invalid.
std::optional<base::TraceContext> trace_from_json(const nlohmann::json& trace);

// The context kept in an event's metadata.extra; nullopt when none.
std::optional<base::TraceContext> trace_from_extra(const nlohmann::json& extra);

}  // namespace clearing::external_streams
