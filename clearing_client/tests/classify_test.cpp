// The contract table, answer by answer, without a network.

#include "clearing/clearing_client/classify.hpp"

#include <doctest/doctest.h>

#include "clearing/clearing_client/client.hpp"

using namespace clearing::clearing_client;

namespace {
ClearingAnswer submit(int status, std::string_view body,
                      std::optional<std::string_view> retry_after = std::nullopt) {
  return classify_answer(CallKind::submit, status, body, retry_after);
}
ClearingAnswer inquire(int status, std::string_view body) {
  return classify_answer(CallKind::inquire, status, body, std::nullopt);
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
  CHECK(inquire(200, R"({"status":"ACSC","clearing_reference":"C","settlement_date":"d"})")
            .answer_class == AnswerClass::settled);
  CHECK(inquire(200, R"({"status":"PDNG","clearing_reference":"C","settlement_date":"d"})")
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
