// The transfer sources (JSONL, seeded generator) and the report's pure parts.

#include "clearing/core_sim/transfer_source.hpp"

#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "clearing/core_sim/core_sim.hpp"

using namespace clearing;
using namespace clearing::core_sim;
using sagas::Account;
using sagas::AccountScheme;
using sagas::Country;

namespace {

Account account_of(const nlohmann::json& party) {
  return Account{*sagas::parse_scheme(party["account"]["scheme"].get<std::string>()),
                 party["account"]["id"].get<std::string>()};
}

const base::Timestamp kNow{std::chrono::milliseconds(1'800'000'000'000)};

}  // namespace

TEST_CASE("JSONL: good lines become requests; bad lines are skipped and counted, never a crash") {
  std::istringstream in(
      R"({"transfer_id":"t-1","account_id":"a-1","amount":{"minor_units":125000,"currency":"DKK"},)"
      R"("debtor":{"name":"Ada","account":{"scheme":"BBAN","id":"5301-0001234567"}},)"
      R"("creditor":{"name":"Charles","account":{"scheme":"IBAN","id":"DK5000400440116243"}},)"
      R"("remittance_info":"Invoice 42","requested_at":"2026-11-26T09:00:00Z"})"
      "\n"
      "this is { not json\n"
      "\n"
      "   \r\n"
      "[1, 2, 3]\n"
      R"({"transfer_id":"t-3","amount":{"minor_units":5,"currency":"DKK"}})"
      "\n"
      R"({"transfer_id":"t-4","account_id":"a-1","amount":{"minor_units":"5","currency":"DKK"}})"
      "\n"
      R"({"transfer_id":"t-5","account_id":"a-1","amount":{"minor_units":5,"currency":"dkk"}})"
      "\n"
      R"({"transfer_id":"t-6","account_id":"a-2","amount":{"minor_units":7,"currency":"SEK"}})"
      "\r\n"
      R"({"transfer_id":"t-7","account_id":"a-3","amount":{"minor_units":1,"currency":"DKK"})");  // truncated
  const auto source = parse_jsonl(in);
  CHECK(source.lines_read == 10);
  REQUIRE(source.requests.size() == 2);
  CHECK(source.lines_skipped == 6);
  REQUIRE(source.skipped.size() == 6);
  CHECK(source.skipped[0].line_number == 2);
  CHECK(source.skipped[0].reason == "not valid JSON");
  CHECK(source.skipped[1].reason == "not a JSON object");
  CHECK(source.skipped[2].reason == "account_id is missing or empty");
  CHECK(source.skipped[3].reason == "amount.minor_units is not an integer");
  CHECK(source.skipped[4].reason == "amount.currency is not an ISO 4217 code");
  CHECK(source.skipped[5].line_number == 10);

  const auto& first = source.requests[0];
  CHECK(first.transfer_id == "t-1");
  CHECK(first.account_id == "a-1");
  CHECK(first.amount.minor_units == 125000);
  CHECK(first.amount.currency.code() == "DKK");
  CHECK(first.data["remittance_info"] == "Invoice 42");  // passed through as is
  CHECK_FALSE(first.expected_reason_code.has_value());
  CHECK(source.requests[1].amount.currency.code() == "SEK");
}

TEST_CASE("JSONL: an over-long line is skipped; a missing file is an error") {
  std::string huge =
      R"({"transfer_id":"t","account_id":"a","amount":{"minor_units":1,"currency":"DKK"},"x":")";
  huge += std::string(kJsonlLineBytesMax, 'x') + "\"}\n";
  std::istringstream in(huge);
  const auto source = parse_jsonl(in);
  CHECK(source.requests.empty());
  CHECK(source.lines_skipped == 1);
  CHECK_FALSE(read_jsonl_file("/nonexistent/transfers.jsonl").has_value());
}

TEST_CASE("generator: account numbers validate (valid ones) and fail (bad ones)") {
  for (auto country : {Country::dk, Country::se, Country::no, Country::fi}) {
    CAPTURE(sagas::country_code(country));
    // Finland's accounts are IBANs only: where a BBAN is asked for, an IBAN comes.
    const auto bban_or_iban = country == Country::fi ? AccountScheme::iban : AccountScheme::bban;
    Random random(42);
    for (int i = 0; i < 500; ++i) {
      for (auto scheme : {AccountScheme::bban, AccountScheme::iban}) {
        const auto a = valid_account(country, scheme, random);
        CHECK(a.scheme == (scheme == AccountScheme::bban ? bban_or_iban : scheme));
        CHECK(sagas::validate_account(country, a).has_value());
        CHECK_FALSE(a.id.ends_with("0004"));
        CHECK_FALSE(a.id.ends_with("0006"));
      }
      const auto bad = iban_with_bad_checksum(country, random);
      auto checked = sagas::validate_account(country, bad);
      REQUIRE_FALSE(checked.has_value());
      CHECK(checked.error() == sagas::AccountError::checksum_mismatch);
      for (std::string suffix : {"0004", "0006"}) {
        const auto special = bban_ending_with(country, suffix, random);
        CHECK(special.scheme == bban_or_iban);
        CHECK(special.id.ends_with(suffix));
        CHECK(sagas::validate_account(country, special).has_value());
      }
    }
  }
}

TEST_CASE("generator: requests per kind carry what makes the adapter answer as expected") {
  for (auto country : {Country::dk, Country::se, Country::no, Country::fi}) {
    CAPTURE(sagas::country_code(country));
    const auto bban_or_iban = country == Country::fi ? AccountScheme::iban : AccountScheme::bban;
    GeneratorOptions options{country, 7, 0.5, 20, 50'000'000};
    std::map<RequestKind, int> kinds;
    std::set<std::string> ids;
    for (std::int64_t i = 0; i < 2000; ++i) {
      const auto g = generate_request(options, i, kNow);
      const auto& r = g.request;
      const auto& d = r.data;
      ++kinds[g.kind];
      ids.insert(r.transfer_id);
      // The contract's shape, always.
      CHECK(d["transfer_id"] == r.transfer_id);
      CHECK(d["account_id"] == r.account_id);
      CHECK(d["amount"]["minor_units"] == r.amount.minor_units);
      CHECK(d["amount"]["currency"] == std::string(r.amount.currency.code()));
      CHECK(d["debtor"]["name"].is_string());
      CHECK(d["creditor"]["name"].is_string());
      CHECK(d["remittance_info"].is_string());
      base::Timestamp at;
      CHECK(base::parse_timestamp(d["requested_at"].get<std::string>(), at));
      CHECK(r.expected_reason_code == std::string(expected_reason_code(g.kind)));
      CHECK(sagas::validate_account(country, account_of(d["debtor"])).has_value());

      const auto creditor = account_of(d["creditor"]);
      const bool creditor_valid = sagas::validate_account(country, creditor).has_value();
      const bool domestic = r.amount.currency == sagas::country_currency(country);
      const bool within_limit =
          r.amount.minor_units > 0 && r.amount.minor_units <= options.amount_limit_minor;
      switch (g.kind) {
        case RequestKind::valid:
          CHECK((creditor_valid && domestic && within_limit));
          CHECK_FALSE(creditor.id.ends_with("0004"));
          CHECK_FALSE(creditor.id.ends_with("0006"));
          CHECK(r.account_id != foreign_account_id(country));
          break;
        case RequestKind::bad_checksum:
          CHECK_FALSE(creditor_valid);
          CHECK((domestic && within_limit));
          break;
        case RequestKind::wrong_currency:
          CHECK((creditor_valid && within_limit));
          CHECK_FALSE(domestic);
          CHECK(r.account_id == foreign_account_id(country));
          break;
        case RequestKind::over_limit:
          CHECK((creditor_valid && domestic));
          CHECK(r.amount.minor_units > options.amount_limit_minor);
          break;
        case RequestKind::closed_account:
          CHECK((creditor_valid && domestic && within_limit));
          CHECK((creditor.scheme == bban_or_iban && creditor.id.ends_with("0004")));
          break;
        case RequestKind::blocked_account:
          CHECK((creditor_valid && domestic && within_limit));
          CHECK((creditor.scheme == bban_or_iban && creditor.id.ends_with("0006")));
          break;
      }
    }
    CHECK(ids.size() == 2000);
    CHECK(kinds.size() == 6);  // every kind occurs at a 50% invalid share
    CHECK(kinds[RequestKind::valid] > 800);
    CHECK(kinds[RequestKind::valid] < 1200);
  }
}

TEST_CASE("generator: the same seed and index give the same request; the invalid share holds") {
  GeneratorOptions options{Country::dk, 99, 0.05, 100, 1'000'000'000};
  for (std::int64_t i = 0; i < 50; ++i) {
    auto a = generate_request(options, i, kNow);
    auto b = generate_request(options, i, kNow);
    CHECK(a.request.data == b.request.data);
  }
  GeneratorOptions other = options;
  other.seed = 100;
  CHECK(generate_request(options, 0, kNow).request.transfer_id !=
        generate_request(other, 0, kNow).request.transfer_id);
  int invalid = 0;
  for (std::int64_t i = 0; i < 4000; ++i)
    invalid += generate_request(options, i, kNow).kind != RequestKind::valid;
  CHECK(invalid > 120);
  CHECK(invalid < 280);
  GeneratorOptions none = options;
  none.invalid_share = 0;
  for (std::int64_t i = 0; i < 500; ++i)
    CHECK(generate_request(none, i, kNow).kind == RequestKind::valid);
}

TEST_CASE("percentile: nearest rank") {
  CHECK(percentile({}, 0.5) == 0.0);
  CHECK(percentile({7.0}, 0.99) == 7.0);
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  CHECK(percentile(hundred, 0.5) == 50.0);
  CHECK(percentile(hundred, 0.95) == 95.0);
  CHECK(percentile(hundred, 0.99) == 99.0);
  CHECK(percentile(hundred, 1.0) == 100.0);
  CHECK(percentile(hundred, 0.0) == 1.0);
}

TEST_CASE("report: text and JSON carry the same figures") {
  Report r;
  r.country = "dk";
  r.planned = 10;
  r.requested = 9;
  r.succeeded = 7;
  r.rejected = 2;
  r.rejected_by_reason = {{"AC01", 1}, {"AC04", 1}};
  r.violations.double_completion = 1;
  r.resolved_exactly_once = false;
  r.latency = {9, 10.0, 20.0, 30.0, 40.0};
  const auto json = to_json(r);
  CHECK(json["requested"] == 9);
  CHECK(json["rejected_by_reason"]["AC04"] == 1);
  CHECK(json["violations"]["double_completion"] == 1);
  CHECK(json["violations"]["total"] == 1);
  CHECK(json["resolved_exactly_once"] == false);
  CHECK(json["latency_ms"]["p99"] == 30.0);
  const auto text = to_text(r);
  CHECK(text.find("rejected                    2  (AC01 1, AC04 1)") != std::string::npos);
  CHECK(text.find("resolved exactly once       NO") != std::string::npos);
  CHECK(text.find("p50 10.0  p95 20.0  p99 30.0") != std::string::npos);
}

TEST_CASE("generator: the wrong-currency requests of a euro country come in SEK") {
  CHECK(foreign_currency(Country::dk) == "EUR");
  CHECK(foreign_account_id(Country::no) == "acct-eur-0001");
  CHECK(foreign_currency(Country::fi) == "SEK");
  CHECK(foreign_account_id(Country::fi) == "acct-sek-0001");
}
