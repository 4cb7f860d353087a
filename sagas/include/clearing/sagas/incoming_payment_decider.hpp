#pragma once
// The IncomingPayment aggregate: one per clearing reference (the identity of a payment in
// the clearing's incoming feed, which re-sends payments after its own restarts).
//  - a re-sent identical payment is a no-op (dedup);
//  - the same reference with other content is an alarm, the first record stands;
//  - invalid content (wrong currency, invalid creditor account, amount <= 0) is still
//    recorded, as IncomingPaymentParked: the money has arrived, people must look. Nothing
//    that arrives is ever dropped.
//  - a parked payment is settled by an operator, once (issue 22): booked (with the corrections
//    that make it valid: the amount in the adapter's currency, the creditor's account; the
//    booked payment must pass the rules a recorded one passes, as the stream's contract
//    demands) or returned to the payer (the bank's manual process: the clearing API has no
//    return call). Either names the operator and the reason.
// Pure: no I/O, no clock reads, no logging.

#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <variant>
#include <vector>

#include "clearing/base/clock.hpp"
#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/money.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::sagas {

// The namespace of payment ids: payment_id = derived_uuid(kIncomingPaymentNamespace,
// clearing_reference), so a replayed feed derives the same id.
inline constexpr std::string_view kIncomingPaymentNamespace =
    "3f0b9a4e-6c1d-4e8f-9a2b-5d7c0e1f2a3b";

std::string incoming_payment_id(std::string_view clearing_reference);

// What the clearing says arrived. The cursor is where it was on the feed, not content:
// a re-sent payment comes with a later cursor.
struct IncomingPaymentContent {
  Money amount;
  Party debtor;
  Party creditor;
  std::string remittance_info;
  Timestamp received_at{};
  friend bool operator==(const IncomingPaymentContent&, const IncomingPaymentContent&) = default;
};

struct RecordIncomingPayment {
  std::string clearing_reference;
  std::string cursor;
  Money amount;
  Party debtor;
  Party creditor;
  std::string remittance_info;
  Timestamp received_at{};
  CountryRules rules;
};

// An operator books a parked payment. Corrections replace the parked content's field; the
// payment booked must be valid under `rules` (the reasons a payment is parked).
struct BookParkedIncomingPayment {
  std::string operator_name;
  std::string reason;
  std::optional<std::int64_t> amount_minor_units;  // in rules.currency
  std::optional<Account> creditor_account;
  CountryRules rules;
};

// An operator returns a parked payment to the payer (the money goes back by the bank's manual
// process; the clearing API has no return call, docs/clearing-api-proposal.md).
struct ReturnParkedIncomingPayment {
  std::string operator_name;
  std::string reason;
};

using IncomingPaymentCommand =
    std::variant<RecordIncomingPayment, BookParkedIncomingPayment, ReturnParkedIncomingPayment>;

// The settlement date of an incoming payment, YYYY-MM-DD: the UTC date it was received
// (docs/streams.md). Decided once, when the payment is recorded, and stored with it, so that
// a later rule (a clearing cut-off, banking days) does not move the date of a payment that
// was booked under this one.
std::string incoming_settlement_date(Timestamp received_at);

// Schema version 2 added settlement_date; a version 1 event reads with the date version 1's
// readers derived from received_at (docs/event-versions.md).
struct IncomingPaymentRecorded {
  static constexpr std::string_view kType = "IncomingPaymentRecorded";
  std::string payment_id;
  std::string clearing_reference;
  std::string cursor;
  IncomingPaymentContent content;  // stored flat: its fields beside the ids
  std::string settlement_date;     // incoming_settlement_date(content.received_at)
  friend bool operator==(const IncomingPaymentRecorded&, const IncomingPaymentRecorded&) = default;
};

// Recorded like IncomingPaymentRecorded, with the reason it cannot be booked automatically.
struct IncomingPaymentParked {
  static constexpr std::string_view kType = "IncomingPaymentParked";
  std::string payment_id;
  std::string clearing_reference;
  std::string cursor;
  IncomingPaymentContent content;  // stored flat, as in IncomingPaymentRecorded
  std::string reason_code;         // ISO 20022: AM03, AM02, AC01
  std::string reason;
  friend bool operator==(const IncomingPaymentParked&, const IncomingPaymentParked&) = default;
};

// An alarm: the feed sent another payment under a reference already recorded.
struct ConflictingIncomingPaymentReceived {
  static constexpr std::string_view kType = "ConflictingIncomingPaymentReceived";
  std::string payment_id;
  std::string clearing_reference;
  std::string cursor;
  std::vector<std::string> differing_fields;
  friend bool operator==(const ConflictingIncomingPaymentReceived&,
                         const ConflictingIncomingPaymentReceived&) = default;
};

// An operator booked a parked payment: the content booked (the parked one with the
// corrections, stored flat as in IncomingPaymentRecorded), its settlement date (the UTC date
// it was received, as a recorded payment's), the fields corrected, the operator and the
// reason. The outbound streams publish it as they publish a recorded payment.
struct IncomingPaymentBookedByOperator {
  static constexpr std::string_view kType = "IncomingPaymentBookedByOperator";
  std::string payment_id;
  std::string clearing_reference;
  std::string cursor;
  IncomingPaymentContent content;
  std::string settlement_date;
  std::vector<std::string> corrected_fields;  // "amount", "creditor"
  std::string operator_name;
  std::string reason;
  friend bool operator==(const IncomingPaymentBookedByOperator&,
                         const IncomingPaymentBookedByOperator&) = default;
};

// An operator returned a parked payment to the payer: nothing is published to the core.
struct IncomingPaymentReturnedByOperator {
  static constexpr std::string_view kType = "IncomingPaymentReturnedByOperator";
  std::string payment_id;
  std::string clearing_reference;
  std::string operator_name;
  std::string reason;
  friend bool operator==(const IncomingPaymentReturnedByOperator&,
                         const IncomingPaymentReturnedByOperator&) = default;
};

using IncomingPaymentEvent =
    std::variant<IncomingPaymentRecorded, IncomingPaymentParked, ConflictingIncomingPaymentReceived,
                 IncomingPaymentBookedByOperator, IncomingPaymentReturnedByOperator>;

// Names in names.hpp.
enum class IncomingPaymentStatus { empty, recorded, parked, booked, returned };
std::string_view incoming_status_name(IncomingPaymentStatus status) noexcept;

struct IncomingPaymentState {
  IncomingPaymentStatus status = IncomingPaymentStatus::empty;
  std::string payment_id;
  std::string clearing_reference;
  IncomingPaymentContent content;
  std::string park_reason_code;
  std::string park_reason;
  std::string cursor;  // where the feed first gave it
  friend bool operator==(const IncomingPaymentState&, const IncomingPaymentState&) = default;
};

enum class IncomingPaymentRefusalCode {
  missing_clearing_reference,  // no identity: the adapter must keep it elsewhere
  reference_mismatch,          // the command names another payment than the stream holds
  // An operator's action:
  unknown_payment,    // nothing recorded in the stream
  not_parked,         // recorded as valid: nothing to decide
  already_booked,     // booked by an operator before
  already_returned,   // returned by an operator before
  incomplete_action,  // no operator or no reason
  not_bookable,       // the payment, with the corrections given, is still invalid
};

// Names in names.hpp.
std::string_view incoming_refusal_code_name(IncomingPaymentRefusalCode code) noexcept;

struct IncomingPaymentRefusal {
  IncomingPaymentRefusalCode code;
  std::string message;
  friend bool operator==(const IncomingPaymentRefusal&, const IncomingPaymentRefusal&) = default;
};

struct IncomingPaymentDecider {
  using State = IncomingPaymentState;
  using Event = IncomingPaymentEvent;
  using Command = IncomingPaymentCommand;
  using Rejection = IncomingPaymentRefusal;

  static State initial_state();
  static State evolve(const State& state, const Event& event);
  static tl::expected<std::vector<Event>, Rejection> decide(const Command& command,
                                                            const State& state);
};

static_assert(clearing::eventstore::Decider<IncomingPaymentDecider>);

}  // namespace clearing::sagas
