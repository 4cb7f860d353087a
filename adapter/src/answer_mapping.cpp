#include "clearing/adapter/answer_mapping.hpp"

namespace clearing::adapter {

using clearing_client::AnswerClass;
using sagas::ClearingAnswerClass;

ClearingAnswerClass to_saga_class(AnswerClass answer_class) noexcept {
  switch (answer_class) {
    case AnswerClass::settled:
      return ClearingAnswerClass::settled;
    case AnswerClass::pending:
      return ClearingAnswerClass::pending;
    case AnswerClass::rejected:
      return ClearingAnswerClass::rejected;
    case AnswerClass::unknown:
      return ClearingAnswerClass::unknown;
    case AnswerClass::in_progress:
      return ClearingAnswerClass::in_progress;
    case AnswerClass::key_reused:
      return ClearingAnswerClass::key_reused;
    case AnswerClass::maintenance:
      return ClearingAnswerClass::maintenance;
    case AnswerClass::malformed_request:
      return ClearingAnswerClass::malformed_request;
    case AnswerClass::not_found:
      return ClearingAnswerClass::not_found;
    case AnswerClass::unauthorized:
      return ClearingAnswerClass::unauthorized;
  }
  // An answer class added to the client but not here is an unknown outcome: the safe
  // reading (retry with the same key), never a rejection.
  return ClearingAnswerClass::unknown;
}

std::string unknown_cause_text(const clearing_client::ClearingAnswer& answer) {
  std::string text(clearing_client::to_string(answer.cause));
  if (answer.http_status != 0) text += " (HTTP " + std::to_string(answer.http_status) + ")";
  return text;
}

sagas::RecordClearingAnswer to_command(const clearing_client::ClearingAnswer& answer,
                                       const std::string& transfer_id, std::int32_t attempt,
                                       sagas::ClearingAction kind, base::Timestamp now,
                                       std::int32_t jitter_permille,
                                       const sagas::RetryPolicy& policy) {
  sagas::RecordClearingAnswer command;
  command.transfer_id = transfer_id;
  command.attempt = attempt;
  command.kind = kind;
  command.cls = to_saga_class(answer.answer_class);
  command.clearing_reference = answer.clearing_reference;
  command.settlement_date = answer.settlement_date;
  command.reason_code = answer.reason_code;
  command.reason = answer.answer_class == AnswerClass::rejected ? answer.reason : answer.detail;
  if (command.cls == ClearingAnswerClass::unknown) command.cause = unknown_cause_text(answer);
  command.retry_after_ms = answer.retry_after_ms;
  command.latency_ms = answer.latency_ms;
  command.now = now;
  command.jitter_permille = jitter_permille;
  command.policy = policy;
  return command;
}

clearing_client::SubmitRequest to_submit_request(const sagas::TransferRequest& request) {
  clearing_client::SubmitRequest submit;
  submit.reference = request.transfer_id;
  submit.amount_minor = request.amount.minor_units;
  submit.currency = request.amount.currency.code();
  submit.debtor_account = request.debtor.account.id;
  submit.debtor_name = request.debtor.name;
  submit.creditor_account = request.creditor.account.id;
  submit.creditor_name = request.creditor.name;
  submit.remittance_info = request.remittance_info;
  return submit;
}

}  // namespace clearing::adapter
