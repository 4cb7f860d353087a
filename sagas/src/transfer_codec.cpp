#include "clearing/sagas/transfer_codec.hpp"

#include <array>

#include "json_fields.hpp"

namespace clearing::sagas {
namespace {

using json_fields::Is;

// One field list per event, in the order of the header. The JSON names are persisted.

// The request is stored flat, its fields beside the event's own, as it always was.
void fields(Is<TransferInitiated> auto& e, auto& f) {
  f("transfer_id", e.request.transfer_id);
  f("account_id", e.request.account_id);
  f("amount", e.request.amount);
  f("debtor", e.request.debtor);
  f("creditor", e.request.creditor);
  f("remittance_info", e.request.remittance_info);
  f("requested_at", e.request.requested_at);
  f("correlation_id", e.correlation_id);
  f("initiated_at", e.initiated_at);
  f("deadline_at", e.deadline_at);
  f("idempotency_key", e.idempotency_key);
}

void fields(Is<TransferRejected> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("reason_code", e.reason_code);
  f("reason", e.reason);
  f("latency_ms", e.latency_ms);
}

void fields(Is<DuplicateTransferRequestRefused> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("reason_code", e.reason_code);
  f("reason", e.reason);
  f("differing_fields", e.differing_fields);
  f("correlation_id", e.correlation_id);
  f("received_at", e.received_at);
}

void fields(Is<RetryScheduled> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("idempotency_key", e.idempotency_key);
  f("action", e.action);
  f("attempt", e.attempt);
  f("due_at", e.due_at);
  f("reason", e.reason);
}

void fields(Is<TransferSettled> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("clearing_reference", e.clearing_reference);
  f("settlement_date", e.settlement_date);
  f("latency_ms", e.latency_ms);
}

void fields(Is<TransferAcceptedPending> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("clearing_reference", e.clearing_reference);
  f("expected_settlement_date", e.expected_settlement_date);
  f("latency_ms", e.latency_ms);
}

void fields(Is<ClearingOutcomeUnknown> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("cause", e.cause);
  f("latency_ms", e.latency_ms);
}

void fields(Is<ClearingReportedInProgress> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("latency_ms", e.latency_ms);
}

void fields(Is<IdempotencyKeyConflictDetected> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("idempotency_key", e.idempotency_key);
  f("reason", e.reason);
  f("latency_ms", e.latency_ms);
}

void fields(Is<ClearingUnavailable> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("retry_after_ms", e.retry_after_ms);
  f("latency_ms", e.latency_ms);
}

void fields(Is<ClearingReportedNotFound> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("latency_ms", e.latency_ms);
}

void fields(Is<ClearingUnauthorized> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("latency_ms", e.latency_ms);
}

void fields(Is<TransferUnderInvestigation> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("since", e.since);
  f("attempts", e.attempts);
  f("last_error", e.last_error);
}

void fields(Is<ContradictingClearingAnswerReceived> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("terminal_state", e.terminal_state);
  f("answer", e.answer);
  f("clearing_reference", e.clearing_reference);
  f("reason_code", e.reason_code);
  f("reason", e.reason);
  f("received_at", e.received_at);
}

void fields(Is<TransferResolvedManually> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("outcome", e.outcome);
  f("reason", e.reason);
  f("operator_name", e.operator_name);
  f("clearing_reference", e.clearing_reference);
  f("settlement_date", e.settlement_date);
  f("reason_code", e.reason_code);
  f("corrects_state", e.corrects_state);
  f("attempts", e.attempts);
  f("resolved_at", e.resolved_at);
}

void fields(Is<SubmissionDeferred> auto& e, auto& f) {
  f("transfer_id", e.transfer_id);
  f("attempt", e.attempt);
  f("action", e.action);
  f("until", e.until);
  f("window", e.window);
  f("deferred_at", e.deferred_at);
}

}  // namespace

template <>
struct json_fields::FieldLists<TransferEvent> {
  static constexpr auto describe = [](auto& event, auto& visitor) { fields(event, visitor); };
  // Every Transfer event is at schema version 1.
  static constexpr std::array<Upcaster, 0> upcasters{};
};
static_assert(
    json_fields::upcasters_fit<TransferEvent>(json_fields::FieldLists<TransferEvent>::upcasters));

template struct EventCodec<TransferEvent>;

}  // namespace clearing::sagas
