#pragma once
// Golden events: one of each persisted event type with its stored JSON (compared parsed)
// and the exact text the event store holds, at each schema version it was ever stored at.
// The stored forms are a contract with every event ever written: never edit a text; a change
// of shape adds a golden at the new version beside the old one (docs/event-versions.md).
// Used by sagas/tests/codec_test.cpp and by the adapter's `events check` test, which stores
// them in a real database.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/transfer_codec.hpp"

namespace clearing::sagas::golden {

using base::Timestamp;
using eventstore::SchemaVersion;

inline Timestamp at(std::int64_t ms_after_t0) {
  using namespace std::chrono;
  return Timestamp{sys_days{year{2026} / 11 / 26}.time_since_epoch() + hours{9} +
                   milliseconds{ms_after_t0}};
}
inline Money dkk(std::int64_t minor) { return Money{minor, *Currency::parse("DKK")}; }
inline Party ada() {
  return Party{"Ada Lovelace", Account{AccountScheme::bban, "5301-0001234567"}};
}
inline Party charles() {
  return Party{"Charles Babbage", Account{AccountScheme::iban, "DK5000400440116243"}};
}
inline const std::string kId = "7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f";

inline TransferInitiated initiated() {
  return TransferInitiated{.request = TransferRequest{.transfer_id = kId,
                                                      .account_id = "core-account-17",
                                                      .amount = dkk(125000),
                                                      .debtor = ada(),
                                                      .creditor = charles(),
                                                      .remittance_info = "Invoice 42",
                                                      .requested_at = at(0)},
                           .correlation_id = "corr-1",
                           .initiated_at = at(123),
                           .deadline_at = at(3'600'123),
                           .idempotency_key = kId};
}

// One persisted event and its two goldens: its stored JSON (compared parsed) and the text
// the event store writes (data.dump()), byte for byte: the first would not see a change of
// key order, spacing or number format. The texts were taken from the encoder before the
// decider's request struct and designated initialisers (issue 18 item 5), and must never be
// edited. `version` is the schema version they were stored at: a change of shape adds a
// golden at the new version and keeps the old one, which must still read as `event`.
template <class Variant>
struct Golden {
  Variant event;
  std::string_view type;
  std::string json;
  std::string text;
  SchemaVersion version{1};
};

// One of each Transfer event.
inline std::vector<Golden<TransferEvent>> transfer_goldens() {
  return {
      {initiated(), "TransferInitiated",
       R"({
        "transfer_id": "7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f", "account_id": "core-account-17",
        "amount": {"minor_units": 125000, "currency": "DKK"},
        "debtor": {"name": "Ada Lovelace", "account": {"scheme": "BBAN", "id": "5301-0001234567"}},
        "creditor": {"name": "Charles Babbage",
                     "account": {"scheme": "IBAN", "id": "DK5000400440116243"}},
        "remittance_info": "Invoice 42", "requested_at": "2026-11-26T09:00:00.000Z",
        "correlation_id": "corr-1", "initiated_at": "2026-11-26T09:00:00.123Z",
        "deadline_at": "2026-11-26T10:00:00.123Z",
        "idempotency_key": "7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f"})",
       R"({"account_id":"core-account-17","amount":{"currency":"DKK","minor_units":125000},)"
       R"("correlation_id":"corr-1","creditor":{"account":{"id":"DK5000400440116243",)"
       R"("scheme":"IBAN"},"name":"Charles Babbage"},"deadline_at":"2026-11-26T10:00:00.123Z",)"
       R"("debtor":{"account":{"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"},)"
       R"("idempotency_key":"7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f",)"
       R"("initiated_at":"2026-11-26T09:00:00.123Z","remittance_info":"Invoice 42",)"
       R"("requested_at":"2026-11-26T09:00:00.000Z",)"
       R"("transfer_id":"7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f"})"},
      {TransferRejected{.transfer_id = "t-1",
                        .attempt = 2,
                        .reason_code = "AC04",
                        .reason = "account closed",
                        .latency_ms = 42},
       "TransferRejected",
       R"({"transfer_id": "t-1", "attempt": 2, "reason_code": "AC04", "reason": "account closed",
          "latency_ms": 42})",
       R"({"attempt":2,"latency_ms":42,"reason":"account closed","reason_code":"AC04",)"
       R"("transfer_id":"t-1"})"},
      {DuplicateTransferRequestRefused{.transfer_id = "t-1",
                                       .reason_code = "DUPL",
                                       .reason = "different request",
                                       .differing_fields = {"amount", "creditor"},
                                       .correlation_id = "corr-2",
                                       .received_at = at(5)},
       "DuplicateTransferRequestRefused",
       R"({"transfer_id": "t-1", "reason_code": "DUPL", "reason": "different request",
          "differing_fields": ["amount", "creditor"], "correlation_id": "corr-2",
          "received_at": "2026-11-26T09:00:00.005Z"})",
       R"({"correlation_id":"corr-2","differing_fields":["amount","creditor"],)"
       R"("reason":"different request","reason_code":"DUPL",)"
       R"("received_at":"2026-11-26T09:00:00.005Z","transfer_id":"t-1"})"},
      {RetryScheduled{.transfer_id = "t-1",
                      .idempotency_key = "t-1",
                      .action = ClearingAction::inquiry,
                      .attempt = 4,
                      .due_at = at(60'000),
                      .reason = "outcome unknown"},
       "RetryScheduled",
       R"({"transfer_id": "t-1", "idempotency_key": "t-1", "action": "inquiry", "attempt": 4,
          "due_at": "2026-11-26T09:01:00.000Z", "reason": "outcome unknown"})",
       R"({"action":"inquiry","attempt":4,"due_at":"2026-11-26T09:01:00.000Z",)"
       R"("idempotency_key":"t-1","reason":"outcome unknown","transfer_id":"t-1"})"},
      {TransferSettled{.transfer_id = "t-1",
                       .attempt = 1,
                       .clearing_reference = "CR-1",
                       .settlement_date = "2026-11-26",
                       .latency_ms = 42},
       "TransferSettled",
       R"({"transfer_id": "t-1", "attempt": 1, "clearing_reference": "CR-1",
          "settlement_date": "2026-11-26", "latency_ms": 42})",
       R"({"attempt":1,"clearing_reference":"CR-1","latency_ms":42,)"
       R"("settlement_date":"2026-11-26","transfer_id":"t-1"})"},
      {TransferAcceptedPending{.transfer_id = "t-1",
                               .attempt = 1,
                               .clearing_reference = "CR-1",
                               .expected_settlement_date = "2026-11-27",
                               .latency_ms = 42},
       "TransferAcceptedPending",
       R"({"transfer_id": "t-1", "attempt": 1, "clearing_reference": "CR-1",
          "expected_settlement_date": "2026-11-27", "latency_ms": 42})",
       R"({"attempt":1,"clearing_reference":"CR-1","expected_settlement_date":"2026-11-27",)"
       R"("latency_ms":42,"transfer_id":"t-1"})"},
      {ClearingOutcomeUnknown{
           .transfer_id = "t-1", .attempt = 3, .cause = "timeout", .latency_ms = 5000},
       "ClearingOutcomeUnknown",
       R"({"transfer_id": "t-1", "attempt": 3, "cause": "timeout", "latency_ms": 5000})",
       R"({"attempt":3,"cause":"timeout","latency_ms":5000,"transfer_id":"t-1"})"},
      {ClearingReportedInProgress{.transfer_id = "t-1", .attempt = 3, .latency_ms = 7},
       "ClearingReportedInProgress", R"({"transfer_id": "t-1", "attempt": 3, "latency_ms": 7})",
       R"({"attempt":3,"latency_ms":7,"transfer_id":"t-1"})"},
      {IdempotencyKeyConflictDetected{.transfer_id = "t-1",
                                      .attempt = 2,
                                      .idempotency_key = "t-1",
                                      .reason = "other body",
                                      .latency_ms = 9},
       "IdempotencyKeyConflictDetected",
       R"({"transfer_id": "t-1", "attempt": 2, "idempotency_key": "t-1", "reason": "other body",
          "latency_ms": 9})",
       R"({"attempt":2,"idempotency_key":"t-1","latency_ms":9,"reason":"other body",)"
       R"("transfer_id":"t-1"})"},
      {ClearingUnavailable{
           .transfer_id = "t-1", .attempt = 2, .retry_after_ms = 120000, .latency_ms = 3},
       "ClearingUnavailable",
       R"({"transfer_id": "t-1", "attempt": 2, "retry_after_ms": 120000, "latency_ms": 3})",
       R"({"attempt":2,"latency_ms":3,"retry_after_ms":120000,"transfer_id":"t-1"})"},
      {ClearingReportedNotFound{.transfer_id = "t-1", .attempt = 5, .latency_ms = 4},
       "ClearingReportedNotFound", R"({"transfer_id": "t-1", "attempt": 5, "latency_ms": 4})",
       R"({"attempt":5,"latency_ms":4,"transfer_id":"t-1"})"},
      {ClearingUnauthorized{.transfer_id = "t-1", .attempt = 1, .latency_ms = 2},
       "ClearingUnauthorized", R"({"transfer_id": "t-1", "attempt": 1, "latency_ms": 2})",
       R"({"attempt":1,"latency_ms":2,"transfer_id":"t-1"})"},
      {TransferUnderInvestigation{
           .transfer_id = "t-1", .since = at(3'600'000), .attempts = 6, .last_error = "timeout"},
       "TransferUnderInvestigation",
       R"({"transfer_id": "t-1", "since": "2026-11-26T10:00:00.000Z", "attempts": 6,
          "last_error": "timeout"})",
       R"({"attempts":6,"last_error":"timeout","since":"2026-11-26T10:00:00.000Z",)"
       R"("transfer_id":"t-1"})"},
      {ContradictingClearingAnswerReceived{.transfer_id = "t-1",
                                           .attempt = 7,
                                           .terminal_state = "succeeded",
                                           .answer = "rejected",
                                           .clearing_reference = "",
                                           .reason_code = "AC04",
                                           .reason = "account closed",
                                           .received_at = at(1)},
       "ContradictingClearingAnswerReceived",
       R"({"transfer_id": "t-1", "attempt": 7, "terminal_state": "succeeded",
          "answer": "rejected", "clearing_reference": "", "reason_code": "AC04",
          "reason": "account closed", "received_at": "2026-11-26T09:00:00.001Z"})",
       R"({"answer":"rejected","attempt":7,"clearing_reference":"","reason":"account closed",)"
       R"("reason_code":"AC04","received_at":"2026-11-26T09:00:00.001Z",)"
       R"("terminal_state":"succeeded","transfer_id":"t-1"})"},
      {TransferResolvedManually{.transfer_id = "t-1",
                                .outcome = ManualOutcome::succeeded,
                                .reason = "confirmed by phone",
                                .operator_name = "operator-7",
                                .clearing_reference = "CR-1",
                                .settlement_date = "2026-11-26",
                                .reason_code = "",
                                .corrects_state = "under_investigation",
                                .attempts = 6,
                                .resolved_at = at(7'200'000)},
       "TransferResolvedManually",
       R"({"transfer_id": "t-1", "outcome": "succeeded", "reason": "confirmed by phone",
          "operator_name": "operator-7", "clearing_reference": "CR-1",
          "settlement_date": "2026-11-26", "reason_code": "",
          "corrects_state": "under_investigation", "attempts": 6,
          "resolved_at": "2026-11-26T11:00:00.000Z"})",
       R"({"attempts":6,"clearing_reference":"CR-1","corrects_state":"under_investigation",)"
       R"("operator_name":"operator-7","outcome":"succeeded","reason":"confirmed by phone",)"
       R"("reason_code":"","resolved_at":"2026-11-26T11:00:00.000Z",)"
       R"("settlement_date":"2026-11-26","transfer_id":"t-1"})"},
      {SubmissionDeferred{.transfer_id = "t-1",
                          .attempt = 2,
                          .action = ClearingAction::submit,
                          .until = at(7'200'000),
                          .window = "weekly Thu 09:00-11:00",
                          .deferred_at = at(60'000)},
       "SubmissionDeferred",
       R"({"transfer_id": "t-1", "attempt": 2, "action": "submit",
          "until": "2026-11-26T11:00:00.000Z", "window": "weekly Thu 09:00-11:00",
          "deferred_at": "2026-11-26T09:01:00.000Z"})",
       R"({"action":"submit","attempt":2,"deferred_at":"2026-11-26T09:01:00.000Z",)"
       R"("transfer_id":"t-1","until":"2026-11-26T11:00:00.000Z",)"
       R"("window":"weekly Thu 09:00-11:00"})"},
  };
}

// One of each IncomingPayment event.
inline std::vector<Golden<IncomingPaymentEvent>> incoming_payment_goldens() {
  const IncomingPaymentContent payment{dkk(50000), ada(), charles(), "Rent", at(0)};
  const std::string payment_json = R"("payment_id": "p-1", "clearing_reference": "CR-IN-17",
        "cursor": "000000000017", "amount": {"minor_units": 50000, "currency": "DKK"},
        "debtor": {"name": "Ada Lovelace", "account": {"scheme": "BBAN", "id": "5301-0001234567"}},
        "creditor": {"name": "Charles Babbage",
                     "account": {"scheme": "IBAN", "id": "DK5000400440116243"}},
        "remittance_info": "Rent", "received_at": "2026-11-26T09:00:00.000Z")";
  const std::string payment_text =
      R"({"amount":{"currency":"DKK","minor_units":50000},"clearing_reference":"CR-IN-17",)"
      R"("creditor":{"account":{"id":"DK5000400440116243","scheme":"IBAN"},)"
      R"("name":"Charles Babbage"},"cursor":"000000000017","debtor":{"account":)"
      R"({"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"},"payment_id":"p-1",)";
  // Version 2 stores the settlement date that version 1's readers derived from received_at.
  const IncomingPaymentRecorded recorded{"p-1", "CR-IN-17", "000000000017", payment, "2026-11-26"};
  return {
      {recorded, "IncomingPaymentRecorded", "{" + payment_json + "}",
       payment_text + R"("received_at":"2026-11-26T09:00:00.000Z","remittance_info":"Rent"})"},
      {recorded, "IncomingPaymentRecorded",
       "{" + payment_json + R"(, "settlement_date": "2026-11-26"})",
       payment_text + R"("received_at":"2026-11-26T09:00:00.000Z","remittance_info":"Rent",)"
                      R"("settlement_date":"2026-11-26"})",
       SchemaVersion{2}},
      {IncomingPaymentParked{"p-1", "CR-IN-17", "000000000017", payment, "AM03",
                             "currency EUR not processable"},
       "IncomingPaymentParked",
       "{" + payment_json + R"(, "reason_code": "AM03", "reason": "currency EUR not processable"})",
       payment_text + R"("reason":"currency EUR not processable","reason_code":"AM03",)"
                      R"("received_at":"2026-11-26T09:00:00.000Z","remittance_info":"Rent"})"},
      {ConflictingIncomingPaymentReceived{"p-1", "CR-IN-17", "000000000042", {"amount"}},
       "ConflictingIncomingPaymentReceived",
       R"({"payment_id": "p-1", "clearing_reference": "CR-IN-17", "cursor": "000000000042",
          "differing_fields": ["amount"]})",
       R"({"clearing_reference":"CR-IN-17","cursor":"000000000042",)"
       R"("differing_fields":["amount"],"payment_id":"p-1"})"},
      {IncomingPaymentBookedByOperator{"p-1",
                                       "CR-IN-17",
                                       "000000000017",
                                       payment,
                                       "2026-11-26",
                                       {"amount"},
                                       "operator-7",
                                       "converted at 7.46"},
       "IncomingPaymentBookedByOperator",
       "{" + payment_json + R"(, "settlement_date": "2026-11-26", "corrected_fields": ["amount"],
          "operator": "operator-7", "reason": "converted at 7.46"})",
       R"({"amount":{"currency":"DKK","minor_units":50000},"clearing_reference":"CR-IN-17",)"
       R"("corrected_fields":["amount"],"creditor":{"account":{"id":"DK5000400440116243",)"
       R"("scheme":"IBAN"},"name":"Charles Babbage"},"cursor":"000000000017","debtor":)"
       R"({"account":{"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"},)"
       R"("operator":"operator-7","payment_id":"p-1","reason":"converted at 7.46",)"
       R"("received_at":"2026-11-26T09:00:00.000Z","remittance_info":"Rent",)"
       R"("settlement_date":"2026-11-26"})"},
      {IncomingPaymentReturnedByOperator{"p-1", "CR-IN-17", "operator-7", "payer asked"},
       "IncomingPaymentReturnedByOperator",
       R"({"payment_id": "p-1", "clearing_reference": "CR-IN-17", "operator": "operator-7",
          "reason": "payer asked"})",
       R"({"clearing_reference":"CR-IN-17","operator":"operator-7","payment_id":"p-1",)"
       R"("reason":"payer asked"})"},
  };
}

}  // namespace clearing::sagas::golden
