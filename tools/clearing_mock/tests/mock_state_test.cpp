// The mock's rules without a network: idempotency, validation, cut-off, feed, fault schedule.

#include "clearing/clearing_mock/mock_state.hpp"

#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "transfer_body.hpp"

using namespace clearing::clearing_mock;
using clearing::clearing_mock::testing::transfer_body;
using nlohmann::json;

namespace {

// A clearing with its cut-off at 14:00 UTC, on Friday 2026-11-27 at `hour_utc`.
MockOptions friday_with_cutoff_at_14(int hour_utc) {
  MockOptions options;
  options.cutoff_minute_utc = 14 * 60;
  options.now = [hour_utc] {
    return std::chrono::sys_days{std::chrono::year{2026} / 11 / 27} + std::chrono::hours{hour_utc};
  };
  return options;
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
  const auto first = submit(state, "t1", transfer_body("t1"));
  CHECK(first.status == 201);
  CHECK(field(first, "status") == "ACSC");
  // Same content, other key order and spacing: still the same body.
  auto reordered = json::parse(transfer_body("t1"));
  const auto replay = submit(state, "t1", "  " + reordered.dump(2));
  CHECK(replay.body == first.body);
  CHECK(replay.status == 201);
  const auto other = submit(state, "t1", transfer_body("t1", "DK5000400440116243", 999));
  CHECK(other.status == 422);
  const auto rows = state.ledger();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].execution_count == 1);
  CHECK(state.stats().replays == 1);
}

TEST_CASE("remittance information is optional: a body without it executes like any other") {
  MockState state(MockOptions{});
  auto body = json::parse(transfer_body("no-remittance"));
  body.erase("remittance_info");
  const auto answer = submit(state, "no-remittance", body.dump());
  CHECK(answer.status == 201);
  CHECK(field(answer, "status") == "ACSC");
  CHECK(state.ledger().size() == 1);
}

TEST_CASE("a key in progress answers 409; an abandoned key leaves no trace") {
  MockState state(MockOptions{});
  REQUIRE_FALSE(state.begin_submit("t1", transfer_body("t1")).has_value());
  CHECK(state.begin_submit("t1", transfer_body("t1"))->status == 409);
  CHECK(state.inquire("t1").status == 409);
  state.abandon_submit("t1");
  CHECK(state.inquire("t1").status == 404);
  CHECK(submit(state, "t1", transfer_body("t1")).status == 201);
}

TEST_CASE("validation: 400 for malformed requests, RJCT with ISO 20022 codes") {
  MockOptions options;
  options.amount_minor_max = 1'000'000;
  MockState state(options);
  CHECK(submit(state, "a", "not json").status == 400);
  CHECK(submit(state, "a", transfer_body("b")).status == 400);  // key differs from reference
  CHECK(submit(state, "a", transfer_body("a", "DK5000400440116243", 0)).status == 400);
  CHECK(submit(state, "", transfer_body("")).status == 400);
  // The contract's codec reads the body (decode_submit_body); the mock's own rules come after.
  const auto error_of = [](const HttpAnswer& answer) {
    CHECK(answer.status == 400);
    return json::parse(answer.body).at("error").value("message", "");
  };
  auto body = json::parse(transfer_body("a"));
  body["amount_minor"] = "125000";
  CHECK(error_of(submit(state, "a", body.dump())) == "amount_minor is not an integer");
  body = json::parse(transfer_body("a"));
  body["debtor_name"] = "";
  CHECK(error_of(submit(state, "a", body.dump())) == "empty field debtor_name");
  body.erase("debtor_name");
  CHECK(error_of(submit(state, "a", body.dump())) == "debtor_name is not a string");
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
    const auto answer = submit(state, key, transfer_body(key, c.creditor, c.amount, c.currency));
    CHECK(answer.status == 200);
    CHECK(field(answer, "status") == "RJCT");
    CHECK(field(answer, "reason_code") == c.code);
    CHECK(field(state.inquire(key), "reason_code") == c.code);
  }
  for (const auto& row : state.ledger()) CHECK(row.execution_count == 0);
}

TEST_CASE("after the cut-off a transfer is PDNG and settles on the N-th inquiry") {
  // Friday 2026-11-27 15:00 UTC: after the cut-off, next weekday is Monday 2026-11-30.
  auto options = friday_with_cutoff_at_14(15);
  options.settle_after_inquiries = 2;
  MockState state(options);
  const auto accepted = submit(state, "t1", transfer_body("t1"));
  CHECK(accepted.status == 202);
  CHECK(field(accepted, "status") == "PDNG");
  CHECK(field(accepted, "settlement_date") == "2026-11-30");
  CHECK(field(state.inquire("t1"), "status") == "PDNG");
  CHECK(field(state.inquire("t1"), "status") == "ACSC");
  CHECK(field(state.inquire("t1"), "status") == "ACSC");
  CHECK(state.ledger()[0].status == "ACSC");
  CHECK(state.ledger()[0].execution_count == 1);
}

TEST_CASE(
    "after the cut-off a PDNG transfer settles on the next business day of the country's "
    "calendar: a holiday and a bank closing day on the next weekdays are skipped") {
  // Friday 2026-11-27 after the cut-off; Monday 30 November a holiday, Tuesday 1 December a
  // bank closing day: Wednesday 2 December.
  auto options = friday_with_cutoff_at_14(15);
  using namespace std::chrono;
  options.business_days.holidays = {year{2026} / 11 / 30};
  options.business_days.bank_closing_days = {year{2026} / 12 / 1};
  MockState state(options);
  const auto accepted = submit(state, "t1", transfer_body("t1"));
  CHECK(accepted.status == 202);
  CHECK(field(accepted, "settlement_date") == "2026-12-02");
  // The replay and the settled inquiry keep that date.
  CHECK(field(submit(state, "t1", transfer_body("t1")), "settlement_date") == "2026-12-02");
  state.inquire("t1");
  CHECK(field(state.inquire("t1"), "settlement_date") == "2026-12-02");
}

TEST_CASE("a country's weekend comes from its calendar too") {
  // A Friday-Saturday weekend: Friday after the cut-off settles on Sunday 2026-11-29.
  auto options = friday_with_cutoff_at_14(15);
  options.business_days.weekend = {std::chrono::Friday, std::chrono::Saturday};
  MockState state(options);
  CHECK(field(submit(state, "t1", transfer_body("t1")), "settlement_date") == "2026-11-29");
}

TEST_CASE("before the cut-off a transfer settles at once with today's date") {
  const auto options = friday_with_cutoff_at_14(9);
  MockState state(options);
  const auto answer = submit(state, "t1", transfer_body("t1"));
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

TEST_CASE(
    "hostile answers are off by default, and turning them on leaves the classic schedule as it "
    "was") {
  MockOptions options;
  options.seed = 42;
  options.faults.http_500 = 0.2;
  options.faults.delay = 0.3;
  options.faults.delay_ms_max = 50;
  MockState classic(options);
  options.faults.stray_response = 0.25;
  options.faults.duplicate_response = 0.25;
  options.faults.nul_field = 0.25;
  options.faults.oversize_field = 0.25;
  MockState hostile(options);
  MockState hostile_again(options);
  std::map<HostileFault, int> drawn;
  for (int i = 0; i < 400; ++i) {
    const auto a = classic.plan_faults(Endpoint::submit);
    const auto b = hostile.plan_faults(Endpoint::submit);
    CHECK(a.fault == b.fault);
    CHECK(a.delay_ms == b.delay_ms);
    CHECK(classic.plan_hostile(Endpoint::submit).fault == HostileFault::none);
    const auto h = hostile.plan_hostile(Endpoint::inquire);
    const auto again = hostile_again.plan_hostile(Endpoint::inquire);
    CHECK(h.fault == again.fault);
    CHECK(h.stray_delay_ms == again.stray_delay_ms);
    CHECK(h.stray_rejects == again.stray_rejects);
    CHECK(h.stray_delay_ms <= options.faults.stray_delay_ms_max);
    ++drawn[h.fault];
    // The feed is never hostile.
    CHECK(hostile.plan_hostile(Endpoint::incoming).fault == HostileFault::none);
  }
  // The first class whose draw is below its probability wins: every class comes up.
  for (int i = 0; i < kHostileFaultCount; ++i) CHECK(drawn[static_cast<HostileFault>(i)] > 0);
  // Drawn is not carried out: nothing is counted yet.
  for (int i = 1; i < kHostileFaultCount; ++i)
    CHECK(hostile.stats().faults.at(std::string(to_string(static_cast<HostileFault>(i)))) == 0);
}

TEST_CASE("a NUL or a 1 MB field damages the answer on the wire, never the ledger or the replay") {
  MockOptions options;
  MockState state(options);
  const auto real = submit(state, "T-1", transfer_body("T-1"));
  REQUIRE(real.status == 201);
  const auto nul = state.hostile_answer(HostileFault::nul_field, real);
  REQUIRE(nul);
  const auto reference = field(real, "clearing_reference");
  CHECK(field(*nul, "clearing_reference") == reference + std::string(1, '\0') + "X");
  CHECK(nul->body.find("\\u0000") != std::string::npos);
  const auto oversize = state.hostile_answer(HostileFault::oversize_field, real);
  REQUIRE(oversize);
  CHECK(field(*oversize, "clearing_reference").size() == reference.size() + kOversizeFieldBytes);

  const auto rejected = submit(state, "T-2", transfer_body("T-2", "5301-0000000004"));
  REQUIRE(field(rejected, "status") == "RJCT");
  const auto nul_reason = state.hostile_answer(HostileFault::nul_field, rejected);
  REQUIRE(nul_reason);
  CHECK(field(*nul_reason, "reason").find('\0') != std::string::npos);
  CHECK(field(*nul_reason, "reason_code") == "AC04");

  // Not a transfer answer, or another fault: nothing to damage.
  CHECK_FALSE(state.hostile_answer(HostileFault::nul_field,
                                   HttpAnswer{404, R"({"error":{"code":"NOT_FOUND"}})", {}}));
  CHECK_FALSE(state.hostile_answer(HostileFault::stray_response, real));
  CHECK(state.stats().faults.at("nul_field") == 2);
  CHECK(state.stats().faults.at("oversize_field") == 1);

  // The truth stays: one execution, the real reference replayed and inquired.
  CHECK(submit(state, "T-1", transfer_body("T-1")).body == real.body);
  CHECK(field(state.inquire("T-1"), "clearing_reference") == reference);
  const auto ledger = state.ledger();
  REQUIRE(ledger.size() == 2);
  CHECK(ledger[0].clearing_reference == reference);
  CHECK(ledger[0].execution_count == 1);
  CHECK(state.stats().executions_total == 1);
}

TEST_CASE("a stray answer is made up: a fresh clearing reference, a reference only when late") {
  MockOptions options;
  options.seed = 9;
  MockState state(options);
  const auto at_once = state.stray_answer(HostilePlan{HostileFault::stray_response, 0, false});
  CHECK(at_once.status == 201);
  CHECK(field(at_once, "status") == "ACSC");
  CHECK(field(at_once, "clearing_reference").rfind("STRAY9-", 0) == 0);
  CHECK_FALSE(json::parse(at_once.body).contains("reference"));
  const auto late = state.stray_answer(HostilePlan{HostileFault::stray_response, 5, true});
  CHECK(late.status == 200);
  CHECK(field(late, "status") == "RJCT");
  CHECK(field(late, "reason_code") == "AC04");
  CHECK(field(late, "reference").rfind("stray-9-", 0) == 0);
  CHECK(field(state.stray_answer(HostilePlan{HostileFault::stray_response, 0, false}),
              "clearing_reference") != field(at_once, "clearing_reference"));
  CHECK(state.ledger().empty());
  CHECK(state.stats().executions_total == 0);
}

TEST_CASE("the hostile settings are fault settings like the others") {
  FaultSettings settings;
  REQUIRE(apply_faults_json(settings,
                            R"({"stray_response":0.5,"nul_field":0.1,"stray_delay_ms_max":7})"));
  CHECK(settings.stray_response == 0.5);
  CHECK(settings.nul_field == 0.1);
  CHECK(settings.stray_delay_ms_max == 7);
  CHECK_FALSE(apply_faults_json(settings, R"({"oversize_field":1.5})"));
  CHECK_FALSE(apply_faults_json(settings, R"({"stray_delay_ms_max":100000})"));
  CHECK(json::parse(faults_to_json(settings)).at("duplicate_response") == 0);
}

namespace {

// A valid Finnish transfer: EUR between two FI IBANs (FI has no BBANs).
std::string finnish_body(const std::string& reference) {
  auto body = json::parse(transfer_body(reference, "FI2112345600000785", 125000, "EUR"));
  body["debtor_account"] = "FI1410093000123458";
  return body.dump();
}

}  // namespace

TEST_CASE("Finland: EUR between FI IBANs executes; a BBAN, DKK or a Danish IBAN is refused") {
  MockOptions options;
  options.country = clearing::sagas::Country::fi;
  MockState state(options);
  CHECK(submit(state, "fi-1", finnish_body("fi-1")).status == 201);
  auto bban = json::parse(finnish_body("fi-2"));
  bban["debtor_account"] = "5301-0001234567";
  CHECK(field(submit(state, "fi-2", bban.dump()), "reason_code") == "AC01");
  auto dkk = json::parse(finnish_body("fi-3"));
  dkk["currency"] = "DKK";
  CHECK(field(submit(state, "fi-3", dkk.dump()), "reason_code") == "AM03");
  auto danish = json::parse(finnish_body("fi-4"));
  danish["creditor_account"] = "DK5000400440116243";
  CHECK(field(submit(state, "fi-4", danish.dump()), "reason_code") == "AC01");
}

TEST_CASE("SEPA Instant: with scheme_timeout on, FI transfers are rejected AB05 or AB06") {
  MockOptions options;
  options.country = clearing::sagas::Country::fi;
  options.faults.scheme_timeout = 1;
  MockState state(options);
  const auto first = submit(state, "fi-1", finnish_body("fi-1"));
  CHECK(first.status == 200);
  CHECK(field(first, "status") == "RJCT");
  CHECK(field(first, "reason_code") == "AB05");
  const auto second = submit(state, "fi-2", finnish_body("fi-2"));
  CHECK(field(second, "reason_code") == "AB06");
  // The answer is replayed for the key; the ledger has the rejections, nothing executed.
  CHECK(submit(state, "fi-1", finnish_body("fi-1")).body == first.body);
  const auto rows = state.ledger();
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) {
    CHECK(row.status == "RJCT");
    CHECK(row.execution_count == 0);
  }
  CHECK(state.stats().faults.at("scheme_timeout") == 2);
  // Off again: the next transfer executes.
  auto off = state.faults();
  off.scheme_timeout = 0;
  state.set_faults(off);
  CHECK(submit(state, "fi-3", finnish_body("fi-3")).status == 201);
}

TEST_CASE("scheme_timeout is SEPA Instant's only: a DK clearing ignores it") {
  MockOptions options;
  options.faults.scheme_timeout = 1;
  MockState state(options);
  CHECK(submit(state, "t1", transfer_body("t1")).status == 201);
}
