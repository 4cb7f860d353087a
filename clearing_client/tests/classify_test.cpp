// The contract table, answer by answer, without a network.

#include "clearing/clearing_client/classify.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "clearing/base/text.hpp"
#include "clearing/clearing_client/client.hpp"

using namespace clearing::clearing_client;

namespace {
// The request's key in every call below.
constexpr std::string_view kKey = "t-1";

ClearingAnswer submit(int status, std::string_view body,
                      std::optional<std::string_view> retry_after = std::nullopt) {
  return classify_answer(CallKind::submit, status, body, retry_after, kKey);
}
ClearingAnswer inquire(int status, std::string_view body) {
  return classify_answer(CallKind::inquire, status, body, std::nullopt, kKey);
}
}  // namespace

TEST_CASE("201 ACSC is settled with reference and date") {
  const auto answer =
      submit(201, R"({"status":"ACSC","clearing_reference":"C1","settlement_date":"2026-11-26"})");
  CHECK(answer.answer_class == AnswerClass::settled);
  CHECK(answer.cause == UnknownCause::none);
  CHECK(answer.clearing_reference == "C1");
  CHECK(answer.settlement_date == "2026-11-26");
}

TEST_CASE("202 PDNG is pending") {
  const auto answer =
      submit(202, R"({"status":"PDNG","clearing_reference":"C1","settlement_date":"2026-11-27"})");
  CHECK(answer.answer_class == AnswerClass::pending);
}

TEST_CASE("200 RJCT is rejected with the reason code") {
  const auto answer = submit(200, R"({"status":"RJCT","reason_code":"AC04","reason":"closed"})");
  CHECK(answer.answer_class == AnswerClass::rejected);
  CHECK(answer.reason_code == "AC04");
  CHECK(answer.reason == "closed");
}

TEST_CASE("200 with an error body is unknown/error_body_200") {
  const auto answer = submit(200, R"({"error":{"code":"ABEND","message":"S0C7"}})");
  CHECK(answer.answer_class == AnswerClass::unknown);
  CHECK(answer.cause == UnknownCause::error_body_200);
  CHECK(answer.detail == "ABEND: S0C7");
}

TEST_CASE("answers that make no sense are unknown/unparsable_body") {
  CHECK(submit(201, R"({"status":"ACSC","settlement_date":"2026-11-26"})").cause ==
        UnknownCause::unparsable_body);
  CHECK(submit(201, R"({"status":"WHAT","clearing_reference":"C"})").cause ==
        UnknownCause::unparsable_body);
  CHECK(submit(201, "<html>").cause == UnknownCause::unparsable_body);
  CHECK(submit(200, R"({"status":"RJCT"})").cause == UnknownCause::unparsable_body);
  CHECK(submit(200, R"({"status":"ACSC","clearing_reference":"C","settlement_date":"d"})").cause ==
        UnknownCause::unparsable_body);
  CHECK(submit(201, R"([1,2])").cause == UnknownCause::unparsable_body);
}

TEST_CASE("4xx classes") {
  CHECK(submit(400, R"({"error":{"code":"FF01"}})").answer_class == AnswerClass::malformed_request);
  CHECK(submit(401, "").answer_class == AnswerClass::unauthorized);
  CHECK(submit(409, R"({"error":{"code":"IN_PROGRESS"}})").answer_class ==
        AnswerClass::in_progress);
  CHECK(submit(422, R"({"error":{"code":"IDEMPOTENCY_KEY_REUSED"}})").answer_class ==
        AnswerClass::key_reused);
  CHECK(inquire(404, R"({"error":{"code":"NOT_FOUND"}})").answer_class == AnswerClass::not_found);
  // A 404 that is not the clearing's NOT_FOUND proves nothing.
  CHECK(inquire(404, "<html>nginx</html>").cause == UnknownCause::unexpected_status);
  CHECK(submit(404, R"({"error":{"code":"NOT_FOUND"}})").cause == UnknownCause::unexpected_status);
  CHECK(submit(418, "").cause == UnknownCause::unexpected_status);
}

TEST_CASE("5xx: maintenance with Retry-After, else server_error") {
  auto answer = submit(503, "", "7");
  CHECK(answer.answer_class == AnswerClass::maintenance);
  CHECK(answer.retry_after_ms == 7000);
  CHECK(submit(503, "").retry_after_ms == kRetryAfterDefaultMs);
  CHECK(submit(503, "", "soon").retry_after_ms == kRetryAfterDefaultMs);
  CHECK(submit(503, "", "-3").retry_after_ms == kRetryAfterDefaultMs);
  CHECK(submit(503, "", "999999999").retry_after_ms == kRetryAfterMaxMs);
  for (int status : {500, 502, 504}) {
    CHECK(submit(status, "x").cause == UnknownCause::server_error);
  }
}

TEST_CASE("inquiry accepts every final and pending status with 200") {
  CHECK(inquire(200, R"({"status":"ACSC","clearing_reference":"C","settlement_date":"2026-11-26"})")
            .answer_class == AnswerClass::settled);
  CHECK(inquire(200, R"({"status":"PDNG","clearing_reference":"C","settlement_date":"2026-11-27"})")
            .answer_class == AnswerClass::pending);
  CHECK(inquire(200, R"({"status":"RJCT","reason_code":"AC01"})").answer_class ==
        AnswerClass::rejected);
}

TEST_CASE("incoming feed parsing") {
  const auto page = classify_incoming(
      200,
      R"({"payments":[{"cursor":"000000000001","clearing_reference":"R1","amount_minor":5,
          "currency":"DKK","debtor_account":"a","debtor_name":"n","creditor_account":"b",
          "creditor_name":"m","remittance_info":"r","received_at":"2026-11-26T09:00:00Z"}],
          "next_cursor":"000000000001"})",
      std::nullopt);
  REQUIRE(page.ok);
  REQUIRE(page.payments.size() == 1);
  CHECK(page.payments[0].amount_minor == 5);
  CHECK(page.next_cursor == std::optional<std::string>("000000000001"));
  CHECK_FALSE(classify_incoming(200, R"({"payments":[{"cursor":"1"}]})", std::nullopt).ok);
  CHECK(classify_incoming(503, "", "2").failure.retry_after_ms == 2000);
  CHECK(classify_incoming(200, "garbage", std::nullopt).failure.cause ==
        UnknownCause::unparsable_body);
}

TEST_CASE("enum names are stable") {
  CHECK(to_string(AnswerClass::key_reused) == "key_reused");
  CHECK(to_string(UnknownCause::error_body_200) == "error_body_200");
}

TEST_CASE("options are validated with a clear message") {
  ClientOptions options;
  options.base_url = "ftp://x";
  options.bearer_token = "t";
  auto result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().find("base_url") != std::string::npos);
  options.base_url = "http://127.0.0.1:8080/api";
  CHECK(validate_options(options));
  options.in_flight_max = 0;
  result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().find("in_flight_max") != std::string::npos);
  options.in_flight_max = 4;
  options.bearer_token.clear();
  CHECK_FALSE(validate_options(options));
  CHECK_FALSE(ClearingClient::create(options));
}

// ---- issue 16: a 400 decides only with the clearing's own error body -------------------------

TEST_CASE(
    "a 400 or 422 that is not the clearing's own error body decides nothing: "
    "unknown/unexpected_status") {
  // A proxy's HTML page used to become a permanent FF01 rejection.
  const auto html = submit(400, "<html><body><h1>400 Bad Request</h1>nginx</body></html>");
  CHECK(html.answer_class == AnswerClass::unknown);
  CHECK(html.cause == UnknownCause::unexpected_status);
  CHECK(html.http_status == 400);
  for (std::string_view body :
       {"", "not json", R"({"message":"bad request"})", R"({"error":"FF01"})", R"({"error":{}})",
        R"({"error":{"code":""}})", R"([{"error":{"code":"FF01"}}])",
        R"({"error":{"code":"FF01"},"error":{"code":"FF01"}})"}) {
    CAPTURE(body);
    CHECK(submit(400, body).cause == UnknownCause::unexpected_status);
    CHECK(inquire(400, body).cause == UnknownCause::unexpected_status);
    CHECK(submit(422, body).cause == UnknownCause::unexpected_status);
    CHECK(classify_incoming(400, body, std::nullopt).failure.cause ==
          UnknownCause::unexpected_status);
  }
  // The clearing's own error body still is what the contract says.
  CHECK(submit(400, R"({"error":{"code":"FF01","message":"amount"}})").answer_class ==
        AnswerClass::malformed_request);
  CHECK(inquire(400, R"({"error":{"code":"FF01"}})").answer_class ==
        AnswerClass::malformed_request);
  CHECK(submit(422, R"({"error":{"code":"IDEMPOTENCY_KEY_REUSED"}})").answer_class ==
        AnswerClass::key_reused);
}

// ---- issue 16: an answer naming another reference is nobody's answer -------------------------

TEST_CASE("an answer whose reference is not the request's key is unknown/reference_mismatch") {
  constexpr std::string_view kSettled =
      R"({"status":"ACSC","clearing_reference":"C1","settlement_date":"2026-11-26","reference":"t-2"})";
  const auto stray = submit(201, kSettled);
  CHECK(stray.answer_class == AnswerClass::unknown);
  CHECK(stray.cause == UnknownCause::reference_mismatch);
  CHECK(stray.clearing_reference.empty());
  CHECK(inquire(200, kSettled).cause == UnknownCause::reference_mismatch);
  for (std::string_view body : {R"({"status":"RJCT","reason_code":"AC04","reference":"t-2"})",
                                R"({"status":"RJCT","reason_code":"AC04","reference":1})",
                                R"({"status":"RJCT","reason_code":"AC04","reference":null})",
                                R"({"status":"RJCT","reason_code":"AC04","reference":"T-1"})",
                                R"({"status":"RJCT","reason_code":"AC04","reference":"t-1 "})"}) {
    CAPTURE(body);
    CHECK(submit(200, body).cause == UnknownCause::reference_mismatch);
    CHECK(inquire(200, body).cause == UnknownCause::reference_mismatch);
  }
  // Whatever the status: a 404 NOT_FOUND or a 400 about another key says nothing of this one.
  CHECK(inquire(404, R"({"error":{"code":"NOT_FOUND"},"reference":"t-2"})").cause ==
        UnknownCause::reference_mismatch);
  CHECK(submit(400, R"({"error":{"code":"FF01"},"reference":"t-2"})").cause ==
        UnknownCause::reference_mismatch);
  // The request's own key, or none (the contract's bodies carry none), is taken.
  const auto own = submit(
      201,
      R"({"status":"ACSC","clearing_reference":"C1","settlement_date":"2026-11-26","reference":"t-1"})");
  CHECK(own.answer_class == AnswerClass::settled);
  CHECK(own.clearing_reference == "C1");
  CHECK(inquire(200, R"({"status":"RJCT","reason_code":"AC04","reference":"t-1"})").answer_class ==
        AnswerClass::rejected);
  CHECK(to_string(UnknownCause::reference_mismatch) == "reference_mismatch");
}

// ---- issue 16: every field is checked against the contract before it decides -----------------

namespace {
std::string acsc(std::string_view reference, std::string_view date = "2026-11-26") {
  return R"({"status":"ACSC","clearing_reference":")" + std::string(reference) +
         R"(","settlement_date":")" + std::string(date) + R"("})";
}
std::string rjct(std::string_view code, std::string_view reason_json = R"("closed")") {
  return R"({"status":"RJCT","reason_code":")" + std::string(code) + R"(","reason":)" +
         std::string(reason_json) + "}";
}
void check_violation(const ClearingAnswer& answer, std::string_view field) {
  INFO("answer=", to_string(answer.answer_class), " cause=", to_string(answer.cause),
       " detail=", answer.detail);
  CHECK(answer.answer_class == AnswerClass::unknown);
  CHECK(answer.cause == UnknownCause::contract_violation);
  CHECK(answer.detail.find(field) != std::string::npos);
  CHECK(answer.clearing_reference.empty());
  CHECK(answer.reason_code.empty());
  CHECK(answer.reason.empty());
}
}  // namespace

TEST_CASE(
    "clearing_reference: no control characters (NUL also escaped), at most "
    "kClearingReferenceBytesMax bytes") {
  for (std::string_view reference : {R"(A\u0000B)", R"(A\u0007B)", R"(A\u001fB)", R"(A\u007fB)",
                                     R"(A\u0085B)", "A\\nB", "A\\tB"}) {
    CAPTURE(reference);
    check_violation(submit(201, acsc(reference)), "clearing_reference");
    check_violation(
        submit(202, R"({"status":"PDNG","clearing_reference":")" + std::string(reference) +
                        R"(","settlement_date":"2026-11-27"})"),
        "clearing_reference");
    check_violation(inquire(200, acsc(reference)), "clearing_reference");
  }
  const auto megabyte = submit(201, acsc(std::string(1'000'000, 'A')));
  check_violation(megabyte, "clearing_reference");
  CHECK(megabyte.detail == "clearing_reference is 1000000 bytes, limit 64");
  CHECK(submit(201, acsc(std::string(kClearingReferenceBytesMax, 'A'))).answer_class ==
        AnswerClass::settled);
  check_violation(submit(201, acsc(std::string(kClearingReferenceBytesMax + 1, 'A'))),
                  "clearing_reference");
  // Any well-formed text is fine.
  CHECK(submit(201, acsc("CLR-Ø-\u00e9")).clearing_reference == "CLR-Ø-\u00e9");
}

TEST_CASE("settlement_date: a real calendar date YYYY-MM-DD") {
  for (std::string_view date :
       {"2026-02-30", "2026-02-29", "2026-13-01", "2026-00-10", "2026-11-00", "2026-11-32",
        "0000-01-01", "26-11-26", "2026-1-026", "2026/11/26", "2026-11-26T00:00:00Z", " 2026-11-26",
        "2026-11-2a", "+026-11-26", "d"}) {
    CAPTURE(date);
    check_violation(submit(201, acsc("C1", date)), "settlement_date");
    check_violation(inquire(200, acsc("C1", date)), "settlement_date");
  }
  for (std::string_view date : {"2024-02-29", "2026-12-31", "2026-01-01", "2000-02-29"}) {
    CAPTURE(date);
    const auto answer = submit(201, acsc("C1", date));
    CHECK(answer.answer_class == AnswerClass::settled);
    CHECK(answer.settlement_date == date);
  }
}

TEST_CASE(
    "reason_code: exactly four upper-case ASCII letters or digits; reason: text within "
    "kReasonBytesMax") {
  for (std::string_view code :
       {"ac04", "AC0", "AC044", "AC-4", "AC 4", R"(AC0\u0000)", "ÅC04", "AC0١"}) {
    CAPTURE(code);
    check_violation(submit(200, rjct(code)), "reason_code");
    check_violation(inquire(200, rjct(code)), "reason_code");
  }
  for (std::string_view code : {"AC04", "MS03", "NARR", "AM02"}) {
    CHECK(submit(200, rjct(code)).reason_code == code);
  }
  check_violation(submit(200, rjct("AC04", R"("closed\u0000account")")), "reason");
  check_violation(submit(200, rjct("AC04", R"("closed\u001baccount")")), "reason");
  check_violation(submit(200, rjct("AC04", "42")), "reason");
  check_violation(submit(200, rjct("AC04", "\"" + std::string(kReasonBytesMax + 1, 'r') + "\"")),
                  "reason");
  CHECK(submit(200, rjct("AC04", "\"" + std::string(kReasonBytesMax, 'r') + "\"")).answer_class ==
        AnswerClass::rejected);
  const auto without_reason = submit(200, rjct("AC04", "null"));
  CHECK(without_reason.answer_class == AnswerClass::rejected);
  CHECK(without_reason.reason.empty());
}

TEST_CASE("status: bounded text; a body that repeats a key is refused, wherever the key is") {
  check_violation(
      submit(201,
             R"({"status":"ACSC\u0000","clearing_reference":"C","settlement_date":"2026-11-26"})"),
      "status");
  const auto long_status = submit(201, R"({"status":")" + std::string(100'000, 'S') + R"("})");
  check_violation(long_status, "status");
  CHECK(long_status.detail == "status is 100000 bytes, limit 4");
  // nlohmann::json keeps the last of two equal keys: this answer read as a settlement.
  for (
      std::string_view body :
      {R"({"status":"RJCT","reason_code":"AC04","status":"ACSC","clearing_reference":"C","settlement_date":"2026-11-26"})",
       R"({"status":"ACSC","clearing_reference":"C","clearing_reference":"D","settlement_date":"2026-11-26"})",
       R"({"status":"ACSC","clearing_reference":"C","settlement_date":"2026-11-26","x":{"a":1,"a":2}})"}) {
    CAPTURE(body);
    const auto answer = submit(201, body);
    CHECK(answer.cause == UnknownCause::contract_violation);
    CHECK(answer.detail == "body repeats a JSON key");
  }
  // Equal keys in different objects are no repetition.
  CHECK(
      submit(
          201,
          R"({"status":"ACSC","clearing_reference":"C","settlement_date":"2026-11-26","x":{"status":1}})")
          .answer_class == AnswerClass::settled);
  // Not UTF-8, or an escape that is no character: not JSON at all.
  CHECK(submit(201,
               "{\"status\":\"ACSC\",\"clearing_reference\":\"C\xff\",\"settlement_date\":\"2026-"
               "11-26\"}")
            .cause == UnknownCause::unparsable_body);
  CHECK(submit(201, acsc(R"(C\ud800)")).cause == UnknownCause::unparsable_body);
  CHECK(to_string(UnknownCause::contract_violation) == "contract_violation");
}

TEST_CASE("every detail is one storable line within kDetailBytesMax, whatever the body said") {
  // A proxy's page of 2-byte characters, with a NUL, a newline and a byte that is no UTF-8:
  // clipped on a code-point boundary (the old clip() could cut 'Ø' in half), the rest escaped.
  std::string page = "<html>";
  for (int i = 0; i < 150; ++i) page += "Ø";
  page += std::string("\0\n\xff", 3);
  auto check_storable = [](const std::string& detail) {
    INFO("detail=", detail);
    CHECK(detail.size() <= kDetailBytesMax);
    CHECK(clearing::base::is_printable_utf8(detail));
  };
  for (int status : {500, 502, 503, 401, 418, 400}) {
    CAPTURE(status);
    check_storable(submit(status, page).detail);
    check_storable(submit(status, "<p>\xc3</p>" + std::string("\0", 1)).detail);
    check_storable(submit(status, std::string(kDetailBytesMax - 1, 'x') + "Ø").detail);
  }
  const auto error = submit(
      200, R"({"error":{"code":"AB\u0000END","message":")" + std::string(500, 'm') + R"("}})");
  CHECK(error.cause == UnknownCause::error_body_200);
  check_storable(error.detail);
  CHECK(error.detail.starts_with("AB\\x00END: mmm"));
  check_storable(classify_incoming(502, page, std::nullopt).failure.detail);
}

namespace {
std::string feed_page(std::string_view payment_overrides,
                      std::string_view next_cursor = "\"000000000001\"") {
  return R"({"payments":[{"cursor":"000000000001","clearing_reference":"R1","amount_minor":5,)"
         R"("currency":"DKK","debtor_account":"a","debtor_name":"n","creditor_account":"b",)"
         R"("creditor_name":"m","remittance_info":"r","received_at":"2026-11-26T09:00:00Z")" +
         std::string(payment_overrides) + R"(}],"next_cursor":)" + std::string(next_cursor) + "}";
}
void check_feed_violation(const IncomingPage& page, std::string_view detail_part) {
  INFO("cause=", to_string(page.failure.cause), " detail=", page.failure.detail);
  CHECK_FALSE(page.ok);
  CHECK(page.payments.empty());
  CHECK(page.failure.cause == UnknownCause::contract_violation);
  CHECK(page.failure.detail.find(detail_part) != std::string::npos);
}
}  // namespace

TEST_CASE("the incoming feed: every payment field and the cursors are checked") {
  // Overrides come after the defaults: a repeated key, so first that is refused.
  check_feed_violation(classify_incoming(200, feed_page(R"(,"debtor_name":"x")"), std::nullopt),
                       "repeats");
  const auto base = feed_page("");
  REQUIRE(classify_incoming(200, base, std::nullopt).ok);
  auto with = [&](std::string_view field, std::string_view value_json) {
    nlohmann::json page = nlohmann::json::parse(base);
    page["payments"][0][std::string(field)] = nlohmann::json::parse(value_json);
    return classify_incoming(200, page.dump(), std::nullopt);
  };
  for (const char* field :
       {"cursor", "clearing_reference", "currency", "debtor_account", "debtor_name",
        "creditor_account", "creditor_name", "remittance_info", "received_at"}) {
    CAPTURE(field);
    check_feed_violation(with(field, R"("a\u0000")"), field);
    check_feed_violation(with(field, "\"" + std::string(2'000, 'x') + "\""), field);
  }
  check_feed_violation(with("cursor", R"("0 1")"), "cursor");
  check_feed_violation(with("cursor", R"("Ø1")"), "cursor");
  check_feed_violation(classify_incoming(200, feed_page("", R"("0 1")"), std::nullopt),
                       "next_cursor");
  check_feed_violation(
      classify_incoming(200, feed_page("", "\"" + std::string(kCursorBytesMax + 1, '1') + "\""),
                        std::nullopt),
      "next_cursor");
  // An amount past 2^63-1 used to wrap.
  for (std::string_view amount :
       {"9223372036854775808", "18446744073709551615", "0", "-5", "1.5"}) {
    CAPTURE(amount);
    const auto page = with("amount_minor", amount);
    CHECK_FALSE(page.ok);
    CHECK(page.failure.cause == UnknownCause::unparsable_body);
  }
  CHECK(with("amount_minor", "9223372036854775807").payments.at(0).amount_minor ==
        9223372036854775807);
  CHECK(with("debtor_name", "null").ok);
}
