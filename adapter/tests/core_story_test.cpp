// The core's story merged into a trace (core_story.hpp), from given JSON: one timeline in time
// order with each step's side, the links named, text from the core escaped, and the line that
// says why the core's side is missing.

#include "clearing/adapter/core_story.hpp"

#include <doctest/doctest.h>

#include "clearing/adapter/transfer_api.hpp"

using namespace clearing;
using Json = nlohmann::json;

namespace {

Json adapter_trace() {
  return Json::parse(R"({
    "transfer_id": "t-1",
    "state": {"status": "succeeded", "attempt": 1, "clearing_reference": "CR-1",
              "settlement_date": "2026-11-26", "reason_code": "", "reason": "",
              "correlation_id": "c-1", "deadline_at": "2026-11-26T10:00:00.000Z"},
    "core_event": {"event_id": "req-0001-aaaa", "source": {"stream": "core.dk.payments.v1",
                   "partition": 0, "seq": 2}},
    "timeline": [
      {"at": "2026-11-26T09:00:01.000Z", "kind": "internal", "type": "TransferInitiated",
       "version": 1, "event_id": "i-1", "causation_id": "req-0001-aaaa", "summary": "accepted",
       "data": {}},
      {"at": "2026-11-26T09:00:02.000Z", "kind": "external", "stream": "adapter.dk.payments.v1",
       "partition": 0, "seq": 4, "type": "TransferSucceeded", "event_id": "out-0001-bbbb",
       "source_event_id": "i-2", "published": true}],
    "clearing_attempts": [], "pending": null})");
}

Json core_story() {
  return Json::parse(R"({"transfer_id": "t-1", "status": "succeeded", "reason_code": "",
    "pending_seen": false, "under_investigation_seen": false, "events": [
      {"at": "2026-11-26T09:00:00.100Z", "type": "FundsReserved", "event_id": "res-0001-cccc",
       "amount": {"minor_units": 4200, "currency": "DKK"}},
      {"at": "2026-11-26T09:00:00.200Z", "type": "TransferRequested", "event_id": "req-0001-aaaa",
       "source_event_id": "res-0001-cccc", "stream": "core.dk.payments.v1", "partition": 0,
       "seq": 2, "published": true},
      {"at": "2026-11-26T09:00:03.000Z", "type": "ReservationCompleted", "event_id": "done-1",
       "causation_id": "out-0001-bbbb", "source": {"stream": "adapter.dk.payments.v1",
       "partition": 0, "seq": 4}},
      {"at": "2026-11-26T09:00:04.000Z", "type": "OutcomeNotApplied", "violation":
       "double_completion\u001b[31m", "message_type": "TransferSucceeded", "causation_id": "x"}]})");
}

}  // namespace

TEST_CASE("the core's story joins the timeline in time order, each line marked, links named") {
  auto trace = adapter_trace();
  adapter::merge_core_story(trace, core_story());
  std::vector<std::string> order;
  for (const auto& step : trace["timeline"])
    order.push_back(step["side"].get<std::string>() + ":" + step["type"].get<std::string>());
  CHECK(order == std::vector<std::string>{"core:FundsReserved", "core:TransferRequested",
                                          "adapter:TransferInitiated", "adapter:TransferSucceeded",
                                          "core:ReservationCompleted", "core:OutcomeNotApplied"});
  CHECK(trace["core_story"]["status"] == "succeeded");
  CHECK_FALSE(trace["core_story"].contains("events"));
  const auto text = adapter::render_trace(trace);
  MESSAGE(text);
  CHECK(text.find("  core:        succeeded\n") != std::string::npos);
  CHECK(text.find("core     TransferRequested") != std::string::npos);
  CHECK(text.find("(event req-0001, from event res-0001, on Kafka): the adapter's core event") !=
        std::string::npos);
  CHECK(text.find("adapter  published adapter.dk.payments.v1 p0 seq 4 TransferSucceeded (event "
                  "out-0001, ") != std::string::npos);
  CHECK(text.find("applying adapter.dk.payments.v1 p0 seq 4 (event out-0001): the adapter's "
                  "TransferSucceeded") != std::string::npos);
  // A control character from the core never reaches the terminal.
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find("double_completion\\x1b[31m") != std::string::npos);
}

TEST_CASE("without the core's side: the adapter's lines as they were, and one line saying why") {
  const auto plain = adapter::render_trace(adapter_trace());
  auto trace = adapter_trace();
  adapter::mark_core_story_missing(trace, "the core at http://core:1 did not answer: connect");
  const auto text = adapter::render_trace(trace);
  CHECK(text.find("  core:        the core's side is missing: the core at http://core:1 did "
                  "not answer: connect\n") != std::string::npos);
  // Exactly the adapter's story plus that line.
  auto without = text;
  without.erase(without.find("  core:"),
                without.find('\n', without.find("  core:")) - without.find("  core:") + 1);
  CHECK(without == plain);
}

TEST_CASE("a core that does not answer: one line naming where, without the token") {
  const auto refused = adapter::fetch_core_story(
      {.base_url = "http://127.0.0.1:1", .bearer_token = "secret-core-token"}, "t-1");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().starts_with("the core at http://127.0.0.1:1 did not answer: "));
  CHECK(refused.error().find("secret-core-token") == std::string::npos);
}
