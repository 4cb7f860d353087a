#include "clearing/adapter/answer_mapping.hpp"

#include <doctest/doctest.h>

#include <set>

#include "clearing/clearing_client/classify.hpp"

using namespace clearing;
using clearing_client::AnswerClass;
using sagas::ClearingAnswerClass;

TEST_CASE("every client answer class maps to its own saga answer class") {
  const std::vector<std::pair<AnswerClass, ClearingAnswerClass>> table{
      {AnswerClass::settled, ClearingAnswerClass::settled},
      {AnswerClass::pending, ClearingAnswerClass::pending},
      {AnswerClass::rejected, ClearingAnswerClass::rejected},
      {AnswerClass::unknown, ClearingAnswerClass::unknown},
      {AnswerClass::in_progress, ClearingAnswerClass::in_progress},
      {AnswerClass::key_reused, ClearingAnswerClass::key_reused},
      {AnswerClass::maintenance, ClearingAnswerClass::maintenance},
      {AnswerClass::malformed_request, ClearingAnswerClass::malformed_request},
      {AnswerClass::not_found, ClearingAnswerClass::not_found},
      {AnswerClass::unauthorized, ClearingAnswerClass::unauthorized},
  };
  std::set<ClearingAnswerClass> targets;
  for (const auto& [from, to] : table) {
    CAPTURE(clearing_client::to_string(from));
    CHECK(adapter::to_saga_class(from) == to);
    targets.insert(adapter::to_saga_class(from));
  }
  CHECK(targets.size() == table.size());
}

TEST_CASE("an unknown outcome keeps its cause and HTTP status, never body text") {
  clearing_client::ClearingAnswer answer;
  answer.answer_class = AnswerClass::unknown;
  answer.cause = clearing_client::UnknownCause::server_error;
  answer.http_status = 502;
  answer.detail = "body mentions DK5000400440116243";
  const auto command =
      adapter::to_command(answer, "t-1", 3, sagas::ClearingAction::submit,
                          base::Timestamp{std::chrono::milliseconds{5000}}, 123, {});
  CHECK(command.cls == ClearingAnswerClass::unknown);
  CHECK(command.cause == "server_error (HTTP 502)");
  CHECK(command.attempt == 3);
  CHECK(command.jitter_permille == 123);
  CHECK(command.now.time_since_epoch().count() == 5000);

  answer.cause = clearing_client::UnknownCause::timeout;
  answer.http_status = 0;
  CHECK(adapter::unknown_cause_text(answer) == "timeout");
}

TEST_CASE("a rejection carries the clearing's reason code and text; maintenance its Retry-After") {
  clearing_client::ClearingAnswer rejected;
  rejected.answer_class = AnswerClass::rejected;
  rejected.reason_code = "AC04";
  rejected.reason = "account closed";
  const auto r = adapter::to_command(rejected, "t", 1, sagas::ClearingAction::submit, {}, 0, {});
  CHECK(r.reason_code == "AC04");
  CHECK(r.reason == "account closed");
  CHECK(r.cause.empty());

  clearing_client::ClearingAnswer maintenance;
  maintenance.answer_class = AnswerClass::maintenance;
  maintenance.retry_after_ms = 120'000;
  const auto m =
      adapter::to_command(maintenance, "t", 1, sagas::ClearingAction::inquiry, {}, 0, {});
  CHECK(m.retry_after_ms == 120'000);
  CHECK(m.kind == sagas::ClearingAction::inquiry);
}

TEST_CASE("the submit body carries the transfer id as reference and the request's fields") {
  sagas::TransferRequest request;
  request.transfer_id = "0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a11";
  request.amount = {125000, *sagas::Currency::parse("DKK")};
  request.debtor = {"Ada Lovelace", {sagas::AccountScheme::bban, "5301-0001234567"}};
  request.creditor = {"Charles Babbage", {sagas::AccountScheme::iban, "DK5000400440116243"}};
  request.remittance_info = "Invoice 42";
  const auto body = adapter::to_submit_request(request);
  CHECK(body.reference == request.transfer_id);
  CHECK(body.amount_minor == 125000);
  CHECK(body.currency == "DKK");
  CHECK(body.debtor_account == "5301-0001234567");
  CHECK(body.creditor_name == "Charles Babbage");
  CHECK(body.remittance_info == "Invoice 42");
}

TEST_CASE("SEPA Instant's timeouts AB05 and AB06 are the scheme's rejections, the code kept") {
  // Finland's clearing answers a transfer within seconds or rejects it with the scheme's
  // codes: AB05 (timeout at the creditor's bank), AB06 (timeout at the instructed agent).
  // They are final answers of the clearing, so a rejection like any other RJCT, never an
  // unknown outcome the adapter would retry.
  for (const auto& [code, text] : {std::pair{"AB05", "timeout at the creditor agent"},
                                   std::pair{"AB06", "timeout at the instructed agent"}}) {
    CAPTURE(code);
    const auto answer =
        clearing_client::classify_answer(clearing_client::CallKind::submit, 200,
                                         std::string(R"({"status":"RJCT","reason_code":")") + code +
                                             R"(","reason":")" + text + R"("})",
                                         std::nullopt, "t-1");
    CHECK(answer.answer_class == AnswerClass::rejected);
    const auto command =
        adapter::to_command(answer, "t-1", 1, sagas::ClearingAction::submit, {}, 0, {});
    CHECK(command.cls == ClearingAnswerClass::rejected);
    CHECK(command.reason_code == code);
    CHECK(command.reason == text);
    CHECK(command.cause.empty());
  }
}
