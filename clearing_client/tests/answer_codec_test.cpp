// Golden test of the clearing's side of the contract (shared/contracts/clearing-api.md): each
// answer body the clearing writes, to the exact text, and read back by the client's
// classification to the class and values the contract's table gives it; a feed payment as a
// page element, read back by the feed's classification.

#include "clearing/clearing_client/answer_codec.hpp"

#include <doctest/doctest.h>

#include <string>

#include "clearing/clearing_client/classify.hpp"
#include "client_test_support.hpp"

using namespace clearing::clearing_client;

namespace {

ClearingAnswer read_back(CallKind kind, int status, const std::string& body,
                         std::string_view reference = "t-1") {
  return classify_answer(kind, status, body, std::nullopt, reference);
}

IncomingPayment contract_payment() {
  return IncomingPayment{.cursor = "000000000017",
                         .clearing_reference = "CLR-9",
                         .amount_minor = 50000,
                         .currency = "DKK",
                         .debtor_account = "DK5000400440116243",
                         .debtor_name = "Ada Lovelace",
                         .creditor_account = "5301-0001234567",
                         .creditor_name = "Charles Babbage",
                         .remittance_info = "Invoice 42",
                         .received_at = "2026-11-26T09:00:00Z"};
}

}  // namespace

TEST_CASE("an accepted answer: ACSC on 201, PDNG on 202, the same bodies on inquiry") {
  const AcceptedBody settled{.clearing_reference = "CLR-1", .settlement_date = "2026-11-26"};
  const std::string text = encode_answer_body(settled);
  CHECK(text == R"({"clearing_reference":"CLR-1","settlement_date":"2026-11-26","status":"ACSC"})");
  for (const auto& [kind, status] : {std::pair{CallKind::submit, 201}, {CallKind::inquire, 200}}) {
    const auto answer = read_back(kind, status, text);
    CHECK(answer.answer_class == AnswerClass::settled);
    CHECK(answer.clearing_reference == "CLR-1");
    CHECK(answer.settlement_date == "2026-11-26");
  }

  AcceptedBody pending = settled;
  pending.pending = true;
  const std::string pending_text = encode_answer_body(pending);
  CHECK(pending_text ==
        R"({"clearing_reference":"CLR-1","settlement_date":"2026-11-26","status":"PDNG"})");
  CHECK(read_back(CallKind::submit, 202, pending_text).answer_class == AnswerClass::pending);
  CHECK(read_back(CallKind::inquire, 200, pending_text).answer_class == AnswerClass::pending);
}

TEST_CASE("a rejection: RJCT with its reason, on 200") {
  const std::string text =
      encode_answer_body(RejectedBody{.reason_code = "AC04", .reason = "creditor account closed"});
  CHECK(text == R"({"reason":"creditor account closed","reason_code":"AC04","status":"RJCT"})");
  const auto answer = read_back(CallKind::submit, 200, text);
  CHECK(answer.answer_class == AnswerClass::rejected);
  CHECK(answer.reason_code == "AC04");
  CHECK(answer.reason == "creditor account closed");
}

TEST_CASE("an echoed reference is the request's, or the answer is another request's") {
  const AcceptedBody echoed{
      .clearing_reference = "CLR-1", .settlement_date = "2026-11-26", .reference = "t-1"};
  const std::string text = encode_answer_body(echoed);
  CHECK(
      text ==
      R"({"clearing_reference":"CLR-1","reference":"t-1","settlement_date":"2026-11-26","status":"ACSC"})");
  CHECK(read_back(CallKind::submit, 201, text, "t-1").answer_class == AnswerClass::settled);
  const auto stray = read_back(CallKind::submit, 201, text, "t-2");
  CHECK(stray.answer_class == AnswerClass::unknown);
  CHECK(stray.cause == UnknownCause::reference_mismatch);

  const std::string rejected = encode_answer_body(
      RejectedBody{.reason_code = "AC04", .reason = "closed", .reference = "t-1"});
  CHECK(rejected ==
        R"({"reason":"closed","reason_code":"AC04","reference":"t-1","status":"RJCT"})");
  CHECK(read_back(CallKind::submit, 200, rejected, "t-2").cause ==
        UnknownCause::reference_mismatch);
}

TEST_CASE("error bodies: each status of the table gets its class") {
  const auto body = [](const char* code) {
    return encode_answer_body(ErrorBody{.code = code, .message = "m"});
  };
  CHECK(body("IN_PROGRESS") == R"({"error":{"code":"IN_PROGRESS","message":"m"}})");
  CHECK(read_back(CallKind::submit, 409, body("IN_PROGRESS")).answer_class ==
        AnswerClass::in_progress);
  CHECK(read_back(CallKind::submit, 422, body("IDEMPOTENCY_KEY_REUSED")).answer_class ==
        AnswerClass::key_reused);
  CHECK(read_back(CallKind::submit, 400, body("FF01")).answer_class ==
        AnswerClass::malformed_request);
  CHECK(read_back(CallKind::inquire, 404, body("NOT_FOUND")).answer_class ==
        AnswerClass::not_found);
  const auto behind_200 = read_back(CallKind::submit, 200, body("MAINFRAME_ERROR"));
  CHECK(behind_200.answer_class == AnswerClass::unknown);
  CHECK(behind_200.cause == UnknownCause::error_body_200);
  const auto server = read_back(CallKind::submit, 500, body("INTERNAL"));
  CHECK(server.answer_class == AnswerClass::unknown);
  CHECK(server.cause == UnknownCause::server_error);
}

TEST_CASE("text that is not UTF-8 is replaced, never thrown on") {
  const std::string text =
      encode_answer_body(RejectedBody{.reason_code = "AC04", .reason = std::string("a\xff")});
  CHECK(text == "{\"reason\":\"a\xef\xbf\xbd\",\"reason_code\":\"AC04\",\"status\":\"RJCT\"}");
}

TEST_CASE("a feed payment as a page element: every field, read back whole") {
  const IncomingPayment payment = contract_payment();
  const std::string element = encode_incoming_payment(payment);
  CHECK(
      element ==
      R"({"amount_minor":50000,"clearing_reference":"CLR-9","creditor_account":"5301-0001234567",)"
      R"("creditor_name":"Charles Babbage","currency":"DKK","cursor":"000000000017",)"
      R"("debtor_account":"DK5000400440116243","debtor_name":"Ada Lovelace",)"
      R"("received_at":"2026-11-26T09:00:00Z","remittance_info":"Invoice 42"})");
  const auto page = classify_incoming(
      200, R"({"payments":[)" + element + R"(],"next_cursor":"000000000017"})", std::nullopt);
  REQUIRE(page.ok);
  REQUIRE(page.payments.size() == 1);
  CHECK(page.rejected.empty());
  const IncomingPayment& read = page.payments.front();
  CHECK(read.cursor == payment.cursor);
  CHECK(read.clearing_reference == payment.clearing_reference);
  CHECK(read.received_at == payment.received_at);
  testing::check_same_payment_fields(read, payment);
}
