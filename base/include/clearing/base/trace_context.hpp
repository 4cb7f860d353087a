#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header
// (version 00: 32 hex digits of trace id, 16 of parent span id, 2 of flags, lower case)
// and `tracestate`, kept as given when it is within the bounds below. A context that
// arrives malformed is refused whole (nullopt) and the caller starts a new trace.
//
// Ids come from a generator seeded from std::random_device (the kernel's CSPRNG), one per
// thread: unpredictable, never all zero. Std only, so any module may carry a context.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clearing::base {

// The longest tracestate kept (the specification's limit for what a vendor must propagate);
// a longer one, or one with more list members than kTraceStateMembersMax, is dropped.
inline constexpr std::size_t kTraceStateBytesMax = 512;
inline constexpr std::size_t kTraceStateMembersMax = 32;

struct TraceContext {
  std::string trace_id;    // 32 lower-case hex digits, not all zero
  std::string span_id;     // 16 lower-case hex digits, not all zero: the caller's span
  std::uint8_t flags = 0;  // bit 0: sampled
  std::string tracestate;  // as received (bounded), empty when none

  bool sampled() const noexcept { return (flags & 0x01) != 0; }
  // "00-<trace id>-<span id>-<flags>".
  std::string traceparent() const;

  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

// Reads a traceparent header (and its tracestate, kept when valid and bounded, else
// dropped). Refused (nullopt): a wrong length or separator, upper-case or non-hex digits,
// version ff, all-zero trace or span id, a version 00 header with anything after it.
// A higher version is read by its version 00 fields when followed by nothing or '-' (as the
// specification asks) and is formatted again as version 00.
std::optional<TraceContext> parse_traceparent(std::string_view traceparent,
                                              std::string_view tracestate = {});

// The tracestate kept: the text as given when it has at most kTraceStateMembersMax
// comma-separated members, at most kTraceStateBytesMax bytes and printable ASCII only;
// empty otherwise.
std::string bounded_tracestate(std::string_view tracestate);

// Fresh ids, never all zero. Thread safe.
std::string new_trace_id();
std::string new_span_id();

// A new trace: new trace and span ids, sampled or not.
TraceContext new_trace(bool sampled);

// The context of a new span under `parent`: same trace, flags and tracestate, a new span id.
TraceContext child_of(const TraceContext& parent);

// True for `length` lower-case hex digits that are not all zero.
bool is_trace_hex(std::string_view text, std::size_t length) noexcept;

}  // namespace clearing::base
