// The contract table, answer by answer, without a network.

#include "clearing/clearing_client/classify.hpp"

#include <doctest/doctest.h>

#include <cstdio>
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
  CHECK(result.error().message.find("base_url") != std::string::npos);
  CHECK(result.error().field == "base_url");
  options.base_url = "http://127.0.0.1:8080/api";
  CHECK(validate_options(options));
  options.in_flight_max = 0;
  result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().message.find("in_flight_max") != std::string::npos);
  CHECK(result.error().field == "in_flight_max");
  options.in_flight_max = 4;
  options.bearer_token.clear();
  result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().field == "bearer_token");
  const auto started = ClearingClient::start(options);
  REQUIRE_FALSE(started);
  CHECK(started.error() == result.error());
}

TEST_CASE("adaptive concurrency's bounds are checked only when it is on") {
  ClientOptions options;
  options.base_url = "http://127.0.0.1:8080";
  options.bearer_token = "t";
  options.in_flight_max = 8;
  options.concurrency_initial = 16;  // above in_flight_max: irrelevant while fixed
  CHECK(validate_options(options));
  options.adaptive_concurrency = true;
  auto result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().field == "concurrency_initial");
  CHECK(result.error().message ==
        "clearing client option concurrency_initial must be in [4, 8], got 16");
  options.concurrency_initial = 8;
  CHECK(validate_options(options));
  options.concurrency_min = 0;
  result = validate_options(options);
  REQUIRE_FALSE(result);
  CHECK(result.error().field == "concurrency_min");
  options.concurrency_min = 9;
  CHECK(validate_options(options).error().field == "concurrency_min");
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
// A page whose envelope breaks the contract: a failure, nothing taken.
void check_feed_violation(const IncomingPage& page, std::string_view detail_part) {
  INFO("cause=", to_string(page.failure.cause), " detail=", page.failure.detail);
  CHECK_FALSE(page.ok);
  CHECK(page.payments.empty());
  CHECK(page.rejected.empty());
  CHECK(page.failure.cause == UnknownCause::contract_violation);
  CHECK(page.failure.detail.find(detail_part) != std::string::npos);
}
// A page whose one payment breaks the contract: the page is taken, the payment rejected.
void check_payment_violation(const IncomingPage& page, std::string_view reason_part,
                             UnknownCause cause = UnknownCause::contract_violation) {
  INFO("cause=", to_string(page.failure.cause), " detail=", page.failure.detail);
  REQUIRE(page.ok);
  CHECK(page.payments.empty());
  REQUIRE(page.rejected.size() == 1);
  INFO("reason=", page.rejected[0].reason);
  CHECK(page.rejected[0].cause == cause);
  CHECK(page.rejected[0].reason.find(reason_part) != std::string::npos);
}
}  // namespace

TEST_CASE("the incoming feed: every payment field and the cursors are checked") {
  // Overrides come after the defaults: a repeated key, so first that is refused.
  check_payment_violation(classify_incoming(200, feed_page(R"(,"debtor_name":"x")"), std::nullopt),
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
    check_payment_violation(with(field, R"("a\u0000")"), field);
    check_payment_violation(with(field, "\"" + std::string(2'000, 'x') + "\""), field);
  }
  check_payment_violation(with("cursor", R"("0 1")"), "cursor");
  check_payment_violation(with("cursor", R"("Ø1")"), "cursor");
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
    check_payment_violation(with("amount_minor", amount), "amount_minor",
                            UnknownCause::unparsable_body);
  }
  CHECK(with("amount_minor", "9223372036854775807").payments.at(0).amount_minor ==
        9223372036854775807);
  CHECK(with("debtor_name", "null").ok);
}

namespace {
// One payment's JSON text, built by hand so that it can carry bytes no JSON library writes.
// `extra` is appended inside the object as it is.
std::string payment_text(int number, std::string_view debtor_name_json = R"("Ada Lovelace")",
                         std::string_view amount = "5000", std::string_view extra = "") {
  char cursor[16];
  std::snprintf(cursor, sizeof cursor, "%012d", number);
  return std::string(R"({"cursor":")") + cursor + R"(","clearing_reference":"CR-)" +
         std::to_string(number) + R"(","amount_minor":)" + std::string(amount) +
         R"(,"currency":"DKK","debtor_account":"DE89370400440532013000","debtor_name":)" +
         std::string(debtor_name_json) +
         R"(,"creditor_account":"5301-0001234567","creditor_name":"Charles Babbage",)"
         R"("remittance_info":"Invoice 42","received_at":"2026-11-26T09:00:00Z")" +
         std::string(extra) + "}";
}
std::string page_of(const std::vector<std::string>& elements,
                    std::string_view next_cursor = R"("000000000099")") {
  std::string page = R"({"payments":[)";
  for (std::size_t i = 0; i < elements.size(); ++i) page += (i ? ",\n  " : "") + elements[i];
  return page + R"(],"next_cursor":)" + std::string(next_cursor) + "}";
}
}  // namespace

TEST_CASE(
    "one payment that breaks the contract costs only itself: the good ones are taken, "
    "each bad one is a typed rejection with its raw text, reason and identity") {
  const std::string oversize_name = "\"" + std::string(kPartyNameBytesMax + 1, 'x') + "\"";
  const std::vector<std::string> elements = {
      payment_text(1),
      payment_text(2, R"("Ada\u0000Lovelace")"),  // NUL, escaped
      payment_text(3),
      payment_text(4, oversize_name),                // over its limit
      payment_text(5, R"("Ada Lovelace")", "-700"),  // not a positive amount
      payment_text(6, R"("Ada Lovelace")", "5000", R"(,"amount_minor":9)"),  // repeated key
      payment_text(7, "\"Ada \xff\xfe Lovelace\""),                          // invalid UTF-8, raw
      payment_text(8, std::string("\"Ada \x01 Lovelace\"")),                 // a raw control byte
      payment_text(9),
  };
  const auto page = classify_incoming(200, page_of(elements), std::nullopt);
  INFO("detail=", page.failure.detail);
  REQUIRE(page.ok);
  CHECK(page.next_cursor == std::optional<std::string>("000000000099"));
  REQUIRE(page.payments.size() == 3);
  CHECK(page.payments[0].clearing_reference == "CR-1");
  CHECK(page.payments[1].clearing_reference == "CR-3");
  CHECK(page.payments[2].clearing_reference == "CR-9");
  CHECK(page.payments[2].debtor_name == "Ada Lovelace");

  struct Expected {
    std::size_t index;
    UnknownCause cause;
    std::string_view reason;
  };
  const Expected expected[] = {
      {1, UnknownCause::contract_violation,
       "payment field debtor_name contains a control character"},
      {3, UnknownCause::contract_violation, "payment field debtor_name is 1025 bytes, limit 1024"},
      {4, UnknownCause::unparsable_body,
       "payment amount_minor missing or not a positive 64-bit integer"},
      {5, UnknownCause::contract_violation, "payment repeats a JSON key"},
      {6, UnknownCause::contract_violation, "payment field debtor_name is not valid UTF-8"},
      {7, UnknownCause::contract_violation,
       "payment field debtor_name contains a control character"},
  };
  REQUIRE(page.rejected.size() == std::size(expected));
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    const auto& rejected = page.rejected[i];
    CAPTURE(i);
    INFO("reason=", rejected.reason);
    CHECK(rejected.index == expected[i].index);
    CHECK(rejected.cause == expected[i].cause);
    CHECK(rejected.reason == expected[i].reason);
    // The element exactly as received, whatever bytes it holds.
    CHECK(rejected.raw == elements[expected[i].index]);
    CHECK(rejected.raw_bytes == elements[expected[i].index].size());
    // Named by the fields that are readable and valid on their own.
    char cursor[16];
    std::snprintf(cursor, sizeof cursor, "%012zu", expected[i].index + 1);
    CHECK(rejected.cursor == std::optional<std::string>(cursor));
    CHECK(rejected.clearing_reference ==
          std::optional<std::string>("CR-" + std::to_string(expected[i].index + 1)));
    // Never a value: no part of any name, and one storable line.
    CHECK(rejected.reason.find("Ada") == std::string::npos);
    CHECK(rejected.reason.find("xxx") == std::string::npos);
    CHECK(clearing::base::is_printable_utf8(rejected.reason));
    CHECK(rejected.reason.size() <= kDetailBytesMax);
  }
}

TEST_CASE(
    "a rejected payment: its raw kept cut at kRejectedPaymentRawBytesMax, its identity "
    "only when readable and valid, a field it makes up never named") {
  // Over every limit: the raw is cut, its full length noted.
  const std::string huge =
      payment_text(1, "\"" + std::string(2 * kRejectedPaymentRawBytesMax, 'x') + "\"");
  auto page = classify_incoming(200, page_of({huge}), std::nullopt);
  REQUIRE(page.ok);
  REQUIRE(page.rejected.size() == 1);
  CHECK(page.rejected[0].raw == huge.substr(0, kRejectedPaymentRawBytesMax));
  CHECK(page.rejected[0].raw_bytes == huge.size());
  CHECK(page.rejected[0].clearing_reference == std::optional<std::string>("CR-1"));

  // A repeated cursor says two things: no cursor is taken, the reference still is.
  page = classify_incoming(
      200, page_of({payment_text(2, R"("n")", "5", R"(,"cursor":"000000000777")")}), std::nullopt);
  REQUIRE(page.rejected.size() == 1);
  CHECK_FALSE(page.rejected[0].cursor);
  CHECK(page.rejected[0].clearing_reference == std::optional<std::string>("CR-2"));

  // A reference with invalid UTF-8 or a NUL is no identity; the cursor still is.
  for (std::string_view reference : {"\"CR-\xc3\"", R"("CR-\u0000")", R"("")"}) {
    CAPTURE(reference);
    std::string element = payment_text(3);
    const auto at = element.find(R"("CR-3")");
    element.replace(at, 6, reference);
    page = classify_incoming(200, page_of({element}), std::nullopt);
    REQUIRE(page.rejected.size() == 1);
    CHECK(page.rejected[0].cursor == std::optional<std::string>("000000000003"));
    CHECK_FALSE(page.rejected[0].clearing_reference);
  }

  // Invalid text under a key the contract does not know: rejected, the key never echoed.
  page = classify_incoming(
      200, page_of({payment_text(4, R"("n")", "5", ",\"Ada Lovelace 5301\":\"\xff\"")}),
      std::nullopt);
  REQUIRE(page.rejected.size() == 1);
  CHECK(page.rejected[0].reason == "a payment field the contract does not name is not valid UTF-8");

  // Elements that are no payment at all: each costs only itself.
  page = classify_incoming(
      200, page_of({"5", R"("text")", "[1,2]", R"({"a":tru})", "null", payment_text(5)}),
      std::nullopt);
  REQUIRE(page.ok);
  REQUIRE(page.payments.size() == 1);
  REQUIRE(page.rejected.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(page.rejected[i].index == i);
    CHECK(page.rejected[i].cause == UnknownCause::unparsable_body);
    CHECK_FALSE(page.rejected[i].cursor);
  }
  CHECK(page.rejected[0].reason == "payment is not an object");
  CHECK(page.rejected[3].reason == "payment is not valid JSON");
  CHECK(page.rejected[3].raw == R"({"a":tru})");
}

TEST_CASE("a page whose envelope breaks the contract is still a failure: nothing in it is taken") {
  const auto good = payment_text(1);
  struct Case {
    std::string body;
    UnknownCause cause;
    std::string_view detail;
  };
  const Case cases[] = {
      // Not well formed around the payments: where one element ends is not known.
      {R"({"payments":[)" + good + R"(,{"debtor_name":"open],"next_cursor":"1"})",
       UnknownCause::unparsable_body, "well-formed"},
      {R"({"payments":[)" + good + R"(,,)" + good + R"(],"next_cursor":"1"})",
       UnknownCause::unparsable_body, "well-formed"},
      {R"({"payments":[)" + good + R"(,],"next_cursor":"1"})", UnknownCause::unparsable_body,
       "well-formed"},
      {R"({"payments":[{"a":[}],"next_cursor":"1"})", UnknownCause::unparsable_body, "well-formed"},
      {R"({"payments":[)" + good + R"(],"next_cursor":"1"} trailing)",
       UnknownCause::unparsable_body, "well-formed"},
      {"[" + good + "]", UnknownCause::unparsable_body, "well-formed"},
      // The envelope itself.
      {R"({"payments":[)" + good + R"(]})", UnknownCause::unparsable_body, "without next_cursor"},
      {R"({"payments":[)" + good + R"(],"next_cursor":"0 1"})", UnknownCause::contract_violation,
       "next_cursor"},
      {R"({"payments":[)" + good + R"(],"next_cursor":"1","next_cursor":"2"})",
       UnknownCause::contract_violation, "repeats"},
      {R"({"payments":[)" + good + R"(],"payments":[],"next_cursor":"1"})",
       UnknownCause::contract_violation, "repeats"},
      {R"({"payments":{},"next_cursor":"1"})", UnknownCause::unparsable_body, "no payments array"},
      {R"({"payments":[)" + good + R"(],"next_cursor":"1","note":"\xff"})",
       UnknownCause::unparsable_body, "not a JSON object"},
      {R"({"error":{"code":"DOWN"},"payments":[]})", UnknownCause::error_body_200, "DOWN"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body.substr(0, 120));
    const auto page = classify_incoming(200, c.body, std::nullopt);
    INFO("detail=", page.failure.detail);
    CHECK_FALSE(page.ok);
    CHECK(page.payments.empty());
    CHECK(page.rejected.empty());
    CHECK(page.failure.cause == c.cause);
    CHECK(page.failure.detail.find(c.detail) != std::string::npos);
  }
  // The key may be written with escapes: still the payments array.
  const auto escaped = classify_incoming(
      200, R"({"p\u0061yments":[)" + good + R"(],"next_cursor":"1"})", std::nullopt);
  CHECK(escaped.ok);
  CHECK(escaped.payments.size() == 1);
  // An empty page with no next_cursor is sound (nothing new yet).
  const auto empty = classify_incoming(200, R"({"payments":[ ]})", std::nullopt);
  CHECK(empty.ok);
  CHECK_FALSE(empty.next_cursor);
}
