#include "clearing/sagas/incoming_payment_decider.hpp"

#include <optional>
#include <utility>

#include "clearing/base/uuid.hpp"

namespace clearing::sagas {
namespace {

using Events = std::vector<IncomingPaymentEvent>;

struct ParkReason {
  std::string_view reason_code;
  std::string reason;
};

IncomingPaymentContent content_of(const RecordIncomingPayment& command) {
  return IncomingPaymentContent{command.amount, command.debtor, command.creditor,
                                command.remittance_info, command.received_at};
}

std::optional<ParkReason> park_reason(const RecordIncomingPayment& command) {
  if (command.amount.currency != command.rules.currency)
    return ParkReason{kReasonCurrency, "currency " + std::string(command.amount.currency.code()) +
                                           " not processable"};
  if (command.amount.minor_units <= 0)
    return ParkReason{kReasonAmountLimit, "amount must be positive"};
  if (auto valid = validate_account(command.rules.country, command.creditor.account); !valid)
    return ParkReason{kReasonInvalidAccount,
                      "creditor account: " + std::string(account_error_message(valid.error()))};
  return std::nullopt;
}

Events record_first(const RecordIncomingPayment& c) {
  const auto id = incoming_payment_id(c.clearing_reference);
  if (auto park = park_reason(c)) {
    return Events{IncomingPaymentParked{id, c.clearing_reference, c.cursor, content_of(c),
                                        std::string(park->reason_code), std::move(park->reason)}};
  }
  return Events{IncomingPaymentRecorded{id, c.clearing_reference, c.cursor, content_of(c),
                                        incoming_settlement_date(c.received_at)}};
}

std::vector<std::string> differing_fields(const IncomingPaymentContent& a,
                                          const IncomingPaymentContent& b) {
  std::vector<std::string> names;
  if (a.amount != b.amount) names.emplace_back("amount");
  if (a.debtor != b.debtor) names.emplace_back("debtor");
  if (a.creditor != b.creditor) names.emplace_back("creditor");
  if (a.remittance_info != b.remittance_info) names.emplace_back("remittance_info");
  if (a.received_at != b.received_at) names.emplace_back("received_at");
  return names;
}

tl::expected<Events, IncomingPaymentRefusal> decide_record(const RecordIncomingPayment& c,
                                                           const IncomingPaymentState& state) {
  if (c.clearing_reference.empty())
    return tl::unexpected(IncomingPaymentRefusal{
        IncomingPaymentRefusalCode::missing_clearing_reference, "payment without reference"});
  if (state.status == IncomingPaymentStatus::empty) return record_first(c);
  if (c.clearing_reference != state.clearing_reference)
    return tl::unexpected(IncomingPaymentRefusal{IncomingPaymentRefusalCode::reference_mismatch,
                                                 "command for another payment"});
  auto differences = differing_fields(state.content, content_of(c));
  if (differences.empty()) return Events{};  // the feed re-sent it
  return Events{ConflictingIncomingPaymentReceived{state.payment_id, c.clearing_reference, c.cursor,
                                                   std::move(differences)}};
}

template <class Recorded>
void record(IncomingPaymentState& state, const Recorded& event, IncomingPaymentStatus status) {
  state.status = status;
  state.payment_id = event.payment_id;
  state.clearing_reference = event.clearing_reference;
  state.content = event.content;
}

void apply(IncomingPaymentState& state, const IncomingPaymentRecorded& event) {
  record(state, event, IncomingPaymentStatus::recorded);
}

void apply(IncomingPaymentState& state, const IncomingPaymentParked& event) {
  record(state, event, IncomingPaymentStatus::parked);
  state.park_reason_code = event.reason_code;
  state.park_reason = event.reason;
}

void apply(IncomingPaymentState&, const ConflictingIncomingPaymentReceived&) {}

}  // namespace

std::string incoming_settlement_date(Timestamp received_at) {
  // format_timestamp writes UTC, "YYYY-MM-DDTHH:MM:SS.fffZ": the date is its first ten.
  return base::format_timestamp(received_at).substr(0, 10);
}

std::string incoming_payment_id(std::string_view clearing_reference) {
  return base::derived_uuid(kIncomingPaymentNamespace, clearing_reference);
}

IncomingPaymentState IncomingPaymentDecider::initial_state() { return IncomingPaymentState{}; }

IncomingPaymentState IncomingPaymentDecider::evolve(const IncomingPaymentState& state,
                                                    const IncomingPaymentEvent& event) {
  IncomingPaymentState next = state;
  std::visit([&next](const auto& e) { apply(next, e); }, event);
  return next;
}

tl::expected<std::vector<IncomingPaymentEvent>, IncomingPaymentRefusal>
IncomingPaymentDecider::decide(const IncomingPaymentCommand& command,
                               const IncomingPaymentState& state) {
  return std::visit([&state](const RecordIncomingPayment& c) { return decide_record(c, state); },
                    command);
}

}  // namespace clearing::sagas
