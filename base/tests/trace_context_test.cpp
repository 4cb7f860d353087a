#include "clearing/base/trace_context.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace clearing::base;

namespace {
// The specification's examples (W3C Trace Context, sections 3.2 and 3.3).
constexpr const char* kSpecParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr const char* kSpecState = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
}  // namespace

TEST_CASE("traceparent: the specification's example is read and formatted again unchanged") {
  const auto context = parse_traceparent(kSpecParent, kSpecState);
  REQUIRE(context.has_value());
  CHECK(context->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(context->span_id == "00f067aa0ba902b7");
  CHECK(context->flags == 0x01);
  CHECK(context->sampled());
  CHECK(context->tracestate == kSpecState);
  CHECK(context->traceparent() == kSpecParent);

  const auto unsampled =
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(unsampled.has_value());
  CHECK_FALSE(unsampled->sampled());
  CHECK(unsampled->tracestate.empty());
}

TEST_CASE("traceparent: malformed and hostile input is refused whole") {
  const char* refused[] = {
      "",
      "00",
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // version ff is invalid
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // upper case, non-hex digits
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // wrong lengths and separators
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
      "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // version 00 with anything after it
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
      // a later version must continue with '-'
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (const char* text : refused) {
    CAPTURE(text);
    CHECK_FALSE(parse_traceparent(text).has_value());
  }
  // A NUL in the middle is no hex digit.
  std::string with_nul = kSpecParent;
  with_nul[10] = '\0';
  CHECK_FALSE(parse_traceparent(with_nul).has_value());
  // Megabytes of text are refused without being read through.
  CHECK_FALSE(parse_traceparent(std::string(1 << 20, 'a')).has_value());
}

TEST_CASE("traceparent: a later version is read by its version 00 fields") {
  const auto later = parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-"
      "will-be-like");
  REQUIRE(later.has_value());
  CHECK(later->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(later->flags == 0x01);  // flags unknown to version 00 are not passed on
  CHECK(later->traceparent() == kSpecParent);
  CHECK(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").has_value());
}

TEST_CASE("tracestate is kept as given within its bounds, else dropped") {
  CHECK(bounded_tracestate(kSpecState) == kSpecState);
  CHECK(bounded_tracestate("") == "");
  const std::string longest(kTraceStateBytesMax, 'a');
  CHECK(bounded_tracestate(longest) == longest);
  CHECK(bounded_tracestate(longest + "a") == "");
  std::string members;
  for (std::size_t i = 0; i < kTraceStateMembersMax; ++i)
    members += (i ? ",k" : "k") + std::to_string(i) + "=v";
  CHECK(bounded_tracestate(members) == members);
  CHECK(bounded_tracestate(members + ",x=y") == "");
  CHECK(bounded_tracestate("a=b\r\nX-Injected: 1") == "");
  CHECK(bounded_tracestate(std::string("a=\x80", 3)) == "");
  // A bad tracestate does not refuse the traceparent: it is dropped.
  const auto context = parse_traceparent(kSpecParent, "a=b\nc");
  REQUIRE(context.has_value());
  CHECK(context->tracestate.empty());
}

TEST_CASE("new ids: distinct, well formed, never zero; children keep trace and state") {
  std::set<std::string> traces;
  std::set<std::string> spans;
  for (int i = 0; i < 1000; ++i) {
    const auto context = new_trace(i % 2 == 0);
    CHECK(is_trace_hex(context.trace_id, 32));
    CHECK(is_trace_hex(context.span_id, 16));
    CHECK(context.sampled() == (i % 2 == 0));
    CHECK(parse_traceparent(context.traceparent()) == context);
    traces.insert(context.trace_id);
    spans.insert(context.span_id);
  }
  CHECK(traces.size() == 1000);
  CHECK(spans.size() == 1000);
  auto parent = *parse_traceparent(kSpecParent, kSpecState);
  const auto child = child_of(parent);
  CHECK(child.trace_id == parent.trace_id);
  CHECK(child.flags == parent.flags);
  CHECK(child.tracestate == parent.tracestate);
  CHECK(child.span_id != parent.span_id);
  CHECK(is_trace_hex(child.span_id, 16));
}
