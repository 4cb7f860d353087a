// The name functions declared beside each enumeration, read from the tables of names.hpp.
// A value outside its enumeration (an integer cast by mistake) has a fallback name rather
// than an assertion, the same fallback the hand-written switches had: these names go to
// logs and metrics, where a visible wrong name serves better than a stopped process.

#include "clearing/sagas/names.hpp"

namespace clearing::sagas {

std::string_view status_name(TransferStatus status) noexcept {
  return name_in(kTransferStatusNames, status).value_or("unknown");
}

std::string_view answer_class_name(ClearingAnswerClass cls) noexcept {
  return name_in(kClearingAnswerClassNames, cls).value_or("unclassified");
}

std::string_view action_name(ClearingAction action) noexcept {
  return name_in(kClearingActionNames, action).value_or("inquiry");
}

std::optional<ClearingAction> parse_action(std::string_view name) noexcept {
  return value_in(kClearingActionNames, name);
}

std::string_view manual_outcome_name(ManualOutcome outcome) noexcept {
  return name_in(kManualOutcomeNames, outcome).value_or("rejected");
}

std::optional<ManualOutcome> parse_manual_outcome(std::string_view name) noexcept {
  return value_in(kManualOutcomeNames, name);
}

std::string_view refusal_code_name(TransferRefusalCode code) noexcept {
  return name_in(kTransferRefusalCodeNames, code).value_or("unknown");
}

std::string_view incoming_refusal_code_name(IncomingPaymentRefusalCode code) noexcept {
  return name_in(kIncomingPaymentRefusalCodeNames, code).value_or("unknown");
}

std::string_view incoming_status_name(IncomingPaymentStatus status) noexcept {
  return name_in(kIncomingPaymentStatusNames, status).value_or("unknown");
}

}  // namespace clearing::sagas
