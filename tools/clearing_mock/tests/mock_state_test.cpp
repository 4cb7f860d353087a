// The mock's rules without a network: idempotency, validation, cut-off, feed, fault schedule.

#include "clearing/clearing_mock/mock_state.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using namespace clearing::clearing_mock;
using nlohmann::json;

namespace {

std::string body(std::string reference, std::string creditor = "DK5000400440116243",
                 std::int64_t amount = 125000, std::string currency = "DKK") {
  return json{{"reference", reference},
              {"amount_minor", amount},
              {"currency", currency},
              {"debtor_account", "5301-0001234567"},
              {"debtor_name", "Ada Lovelace"},
              {"creditor_account", creditor},
              {"creditor_name", "Charles Babbage"},
              {"remittance_info", "Invoice 42"}}
      .dump();
}

HttpAnswer submit(MockState& state, const std::string& key, const std::string& text) {
  if (auto immediate = state.begin_submit(key, text)) return *immediate;
  return state.execute_submit(key);
}

std::string field(const HttpAnswer& answer, const char* name) {
  return json::parse(answer.body).value(name, "");
}

}  // namespace

TEST_CASE("a valid transfer executes once and its answer is replayed for the same body") {
  MockState state(MockOptions{});
  const auto first = submit(state, "t1", body("t1"));
  CHECK(first.status == 201);
  CHECK(field(first, "status") == "ACSC");
  // Same content, other key order and spacing: still the same body.
  auto reordered = json::parse(body("t1"));
  const auto replay = submit(state, "t1", "  " + reordered.dump(2));
  CHECK(replay.body == first.body);
  CHECK(replay.status == 201);
  const auto other = submit(state, "t1", body("t1", "DK5000400440116243", 999));
  CHECK(other.status == 422);
  const auto rows = state.ledger();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].execution_count == 1);
  CHECK(state.stats().replays == 1);
}

TEST_CASE("a key in progress answers 409; an abandoned key leaves no trace") {
  MockState state(MockOptions{});
  REQUIRE_FALSE(state.begin_submit("t1", body("t1")).has_value());
  CHECK(state.begin_submit("t1", body("t1"))->status == 409);
  CHECK(state.inquire("t1").status == 409);
  state.abandon_submit("t1");
  CHECK(state.inquire("t1").status == 404);
  CHECK(submit(state, "t1", body("t1")).status == 201);
}

TEST_CASE("validation: 400 for malformed requests, RJCT with ISO 20022 codes") {
  MockOptions options;
  options.amount_minor_max = 1'000'000;
  MockState state(options);
  CHECK(submit(state, "a", "not json").status == 400);
  CHECK(submit(state, "a", body("b")).status == 400);  // key differs from reference
  CHECK(submit(state, "a", body("a", "DK5000400440116243", 0)).status == 400);
  CHECK(submit(state, "", body("")).status == 400);
  const struct {
    std::string creditor;
    std::int64_t amount;
    std::string currency;
    std::string code;
  } cases[] = {
      {"DK5000400440116244", 100, "DKK", "AC01"},    {"5301-0000000004", 100, "DKK", "AC04"},
      {"5301-0000000006", 100, "DKK", "AC06"},       {"5301-0000000001", 100, "SEK", "AM03"},
      {"5301-0000000001", 2'000'000, "DKK", "AM02"},
  };
  int n = 0;
  for (const auto& c : cases) {
    const auto key = "r" + std::to_string(n++);
    const auto answer = submit(state, key, body(key, c.creditor, c.amount, c.currency));
    CHECK(answer.status == 200);
    CHECK(field(answer, "status") == "RJCT");
    CHECK(field(answer, "reason_code") == c.code);
    CHECK(field(state.inquire(key), "reason_code") == c.code);
  }
  for (const auto& row : state.ledger()) CHECK(row.execution_count == 0);
}

TEST_CASE("after the cut-off a transfer is PDNG and settles on the N-th inquiry") {
  MockOptions options;
  options.cutoff_minute_utc = 14 * 60;
  options.settle_after_inquiries = 2;
  // Friday 2026-11-27 15:00 UTC: after the cut-off, next weekday is Monday 2026-11-30.
  options.now = [] {
    return std::chrono::sys_days{std::chrono::year{2026} / 11 / 27} + std::chrono::hours{15};
  };
  MockState state(options);
  const auto accepted = submit(state, "t1", body("t1"));
  CHECK(accepted.status == 202);
  CHECK(field(accepted, "status") == "PDNG");
  CHECK(field(accepted, "settlement_date") == "2026-11-30");
  CHECK(field(state.inquire("t1"), "status") == "PDNG");
  CHECK(field(state.inquire("t1"), "status") == "ACSC");
  CHECK(field(state.inquire("t1"), "status") == "ACSC");
  CHECK(state.ledger()[0].status == "ACSC");
  CHECK(state.ledger()[0].execution_count == 1);
}

TEST_CASE("before the cut-off a transfer settles at once with today's date") {
  MockOptions options;
  options.cutoff_minute_utc = 14 * 60;
  options.now = [] {
    return std::chrono::sys_days{std::chrono::year{2026} / 11 / 27} + std::chrono::hours{9};
  };
  MockState state(options);
  const auto answer = submit(state, "t1", body("t1"));
  CHECK(answer.status == 201);
  CHECK(field(answer, "settlement_date") == "2026-11-27");
}

TEST_CASE("one seed gives one fault schedule") {
  MockOptions options;
  options.seed = 42;
  options.faults.http_500 = 0.3;
  options.faults.close_after_execute = 0.3;
  options.faults.delay = 0.5;
  options.faults.delay_ms_max = 100;
  MockState first(options);
  MockState second(options);
  int faults = 0;
  for (int i = 0; i < 200; ++i) {
    const auto a = first.plan_faults(Endpoint::submit);
    const auto b = second.plan_faults(Endpoint::submit);
    CHECK(a.fault == b.fault);
    CHECK(a.delay_ms == b.delay_ms);
    faults += a.fault != FaultClass::none ? 1 : 0;
  }
  CHECK(faults > 0);
  CHECK(faults < 200);
}

TEST_CASE("faults are changed by partial JSON; bad settings are refused") {
  FaultSettings settings;
  REQUIRE(apply_faults_json(settings, R"({"http_500":0.5,"hold_ms":100})"));
  CHECK(settings.http_500 == 0.5);
  CHECK(settings.hold_ms == 100);
  CHECK_FALSE(apply_faults_json(settings, R"({"http_500":2})"));
  CHECK_FALSE(apply_faults_json(settings, R"({"no_such_fault":0.1})"));
  CHECK_FALSE(apply_faults_json(settings, R"({"delay_ms_min":5,"delay_ms_max":1})"));
  CHECK(settings.http_500 == 0.5);
}

TEST_CASE("the incoming feed pages by cursor and re-sends with its probability") {
  MockOptions options;
  options.incoming_generated = 5;
  options.incoming_resend_probability = 1.0;
  MockState state(options);
  auto page = json::parse(state.incoming("limit=3").body);
  REQUIRE(page["payments"].size() == 3);
  CHECK(page["next_cursor"] == "000000000003");
  page = json::parse(state.incoming("after=000000000003&limit=3").body);
  REQUIRE(page["payments"].size() == 3);  // the re-sent one, then 4 and 5
  CHECK(page["payments"][0]["cursor"] == "000000000003");
  CHECK(page["next_cursor"] == "000000000005");
  CHECK(state
            .add_incoming(R"({"clearing_reference":"X1","amount_minor":5,"currency":"DKK",
      "debtor_account":"a","creditor_account":"b"})")
            .status == 201);
  page = json::parse(state.incoming("after=000000000005").body);
  CHECK(page["payments"].back()["clearing_reference"] == "X1");
  CHECK(state.incoming("limit=0").status == 400);
}
