#include "clearing/sagas/incoming_payment_decider.hpp"

#include <optional>
#include <type_traits>
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

// Why `content` cannot be booked automatically under `rules`, or nullopt.
std::optional<ParkReason> park_reason(const IncomingPaymentContent& content,
                                      const CountryRules& rules) {
  if (content.amount.currency != rules.currency)
    return ParkReason{kReasonCurrency, "currency " + std::string(content.amount.currency.code()) +
                                           " not processable"};
  if (content.amount.minor_units <= 0)
    return ParkReason{kReasonAmountLimit, "amount must be positive"};
  if (auto valid = validate_account(rules, content.creditor.account); !valid)
    return ParkReason{kReasonInvalidAccount,
                      "creditor account: " + std::string(account_error_message(valid.error()))};
  return std::nullopt;
}

std::optional<ParkReason> park_reason(const RecordIncomingPayment& command) {
  return park_reason(content_of(command), command.rules);
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

tl::unexpected<IncomingPaymentRefusal> refuse(IncomingPaymentRefusalCode code,
                                              std::string message) {
  return tl::unexpected(IncomingPaymentRefusal{code, std::move(message)});
}

// An operator's action is on a parked payment, once, and names who and why.
std::optional<IncomingPaymentRefusal> refuse_action(const std::string& operator_name,
                                                    const std::string& reason,
                                                    const IncomingPaymentState& state) {
  using Code = IncomingPaymentRefusalCode;
  if (operator_name.empty() || reason.empty())
    return IncomingPaymentRefusal{Code::incomplete_action,
                                  "an operator's action names the operator and the reason"};
  switch (state.status) {
    case IncomingPaymentStatus::empty:
      return IncomingPaymentRefusal{Code::unknown_payment, "no payment recorded"};
    case IncomingPaymentStatus::recorded:
      return IncomingPaymentRefusal{Code::not_parked,
                                    "the payment was recorded as valid: it is not parked"};
    case IncomingPaymentStatus::booked:
      return IncomingPaymentRefusal{Code::already_booked, "the payment was booked already"};
    case IncomingPaymentStatus::returned:
      return IncomingPaymentRefusal{Code::already_returned, "the payment was returned already"};
    case IncomingPaymentStatus::parked:
      return std::nullopt;
  }
  return IncomingPaymentRefusal{Code::unknown_payment, "no payment recorded"};
}

tl::expected<Events, IncomingPaymentRefusal> decide_book(const BookParkedIncomingPayment& c,
                                                         const IncomingPaymentState& state) {
  if (auto refused = refuse_action(c.operator_name, c.reason, state))
    return tl::unexpected(std::move(*refused));
  IncomingPaymentContent booked = state.content;
  std::vector<std::string> corrected;
  if (c.amount_minor_units) {
    booked.amount = Money{*c.amount_minor_units, c.rules.currency};
    if (booked.amount != state.content.amount) corrected.emplace_back("amount");
  }
  if (c.creditor_account) {
    booked.creditor.account = *c.creditor_account;
    if (booked.creditor != state.content.creditor) corrected.emplace_back("creditor");
  }
  if (auto invalid = park_reason(booked, c.rules))
    return refuse(IncomingPaymentRefusalCode::not_bookable, "cannot be booked as it is (" +
                                                                std::string(invalid->reason_code) +
                                                                "): " + invalid->reason);
  return Events{IncomingPaymentBookedByOperator{state.payment_id, state.clearing_reference,
                                                state.cursor, std::move(booked),
                                                incoming_settlement_date(state.content.received_at),
                                                std::move(corrected), c.operator_name, c.reason}};
}

tl::expected<Events, IncomingPaymentRefusal> decide_return(const ReturnParkedIncomingPayment& c,
                                                           const IncomingPaymentState& state) {
  if (auto refused = refuse_action(c.operator_name, c.reason, state))
    return tl::unexpected(std::move(*refused));
  return Events{IncomingPaymentReturnedByOperator{state.payment_id, state.clearing_reference,
                                                  c.operator_name, c.reason}};
}

template <class Recorded>
void record(IncomingPaymentState& state, const Recorded& event, IncomingPaymentStatus status) {
  state.status = status;
  state.payment_id = event.payment_id;
  state.clearing_reference = event.clearing_reference;
  state.content = event.content;
  state.cursor = event.cursor;
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

// The content stays the one received: a re-sent payment is compared with what the feed gave.
void apply(IncomingPaymentState& state, const IncomingPaymentBookedByOperator&) {
  state.status = IncomingPaymentStatus::booked;
}

void apply(IncomingPaymentState& state, const IncomingPaymentReturnedByOperator&) {
  state.status = IncomingPaymentStatus::returned;
}

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
  return std::visit(
      [&state](const auto& c)
          -> tl::expected<std::vector<IncomingPaymentEvent>, IncomingPaymentRefusal> {
        using C = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<C, RecordIncomingPayment>)
          return decide_record(c, state);
        else if constexpr (std::is_same_v<C, BookParkedIncomingPayment>)
          return decide_book(c, state);
        else
          return decide_return(c, state);
      },
      command);
}

}  // namespace clearing::sagas
