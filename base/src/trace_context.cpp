#include "clearing/base/trace_context.hpp"

#include <array>
#include <random>

namespace clearing::base {
namespace {

constexpr char kHex[] = "0123456789abcdef";

bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

int hex_value(char c) noexcept { return c <= '9' ? c - '0' : c - 'a' + 10; }

std::mt19937_64& engine() {
  thread_local std::mt19937_64 e{[] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device(),
                      device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }()};
  return e;
}

// `words` 64-bit words of random hex, drawn again in the (2^-64) case of all zero.
std::string random_hex(int words) {
  std::string out;
  for (;;) {
    out.clear();
    bool zero = true;
    for (int w = 0; w < words; ++w) {
      const std::uint64_t v = engine()();
      zero = zero && v == 0;
      for (int i = 60; i >= 0; i -= 4) out.push_back(kHex[(v >> i) & 0x0f]);
    }
    if (!zero) return out;
  }
}

}  // namespace

bool is_trace_hex(std::string_view text, std::size_t length) noexcept {
  if (text.size() != length) return false;
  bool zero = true;
  for (char c : text) {
    if (!is_lower_hex(c)) return false;
    zero = zero && c == '0';
  }
  return !zero;
}

std::string TraceContext::traceparent() const {
  std::string out = "00-";
  out += trace_id;
  out += '-';
  out += span_id;
  out += '-';
  out.push_back(kHex[flags >> 4]);
  out.push_back(kHex[flags & 0x0f]);
  return out;
}

std::optional<TraceContext> parse_traceparent(std::string_view text, std::string_view tracestate) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  constexpr std::size_t kLength = 55;
  if (text.size() < kLength) return std::nullopt;
  if (!is_lower_hex(text[0]) || !is_lower_hex(text[1])) return std::nullopt;
  const std::string_view version = text.substr(0, 2);
  if (version == "ff") return std::nullopt;
  if (version == "00" ? text.size() != kLength : text.size() > kLength && text[kLength] != '-')
    return std::nullopt;
  if (text[2] != '-' || text[35] != '-' || text[52] != '-') return std::nullopt;
  const auto trace_id = text.substr(3, 32);
  const auto span_id = text.substr(36, 16);
  const auto flags = text.substr(53, 2);
  if (!is_trace_hex(trace_id, 32) || !is_trace_hex(span_id, 16)) return std::nullopt;
  if (!is_lower_hex(flags[0]) || !is_lower_hex(flags[1])) return std::nullopt;
  TraceContext context;
  context.trace_id = std::string(trace_id);
  context.span_id = std::string(span_id);
  context.flags = static_cast<std::uint8_t>(hex_value(flags[0]) * 16 + hex_value(flags[1]));
  // A later version's other flags mean nothing to version 00: only `sampled` is kept.
  if (version != "00") context.flags &= 0x01;
  context.tracestate = bounded_tracestate(tracestate);
  return context;
}

std::string bounded_tracestate(std::string_view text) {
  if (text.size() > kTraceStateBytesMax) return {};
  std::size_t members = 1;
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return {};
    if (c == ',') ++members;
  }
  if (members > kTraceStateMembersMax) return {};
  return std::string(text);
}

std::string new_trace_id() { return random_hex(2); }

std::string new_span_id() { return random_hex(1); }

TraceContext new_trace(bool sampled) {
  return TraceContext{
      new_trace_id(), new_span_id(), static_cast<std::uint8_t>(sampled ? 1 : 0), {}};
}

TraceContext child_of(const TraceContext& parent) {
  TraceContext child = parent;
  child.span_id = new_span_id();
  return child;
}

}  // namespace clearing::base
