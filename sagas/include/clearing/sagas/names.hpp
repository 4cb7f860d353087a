#pragma once
// The text names of the domain's enumerations and event types: one table per
// enumeration, read both ways (name to value and value to name), so that each name is
// spelled exactly once. The names are persisted (stored events, the work queue, metric
// labels, the operator API): never rename one; a change of meaning is a new name.
//
// Every table lists every enumerator once, in declaration order, ending with the one the
// check below names as last; that is checked at compile time, so a table out of order,
// with a gap or a repeated name fails to build. Each enumeration's declaration points
// here: an enumerator added there gets its name here, and the check its new last. Event
// type tables are derived from the event variants' kType, never written by hand, and
// their names are checked to be distinct.
//
// Pure and constexpr: no allocation, no state, safe from any thread.

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "clearing/base/name_table.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::sagas {

// The table type and its readers are base's (clearing/base/name_table.hpp).
using base::name_in;
using base::NameTable;
using base::value_in;

inline constexpr NameTable<TransferStatus, 9> kTransferStatusNames{{
    {TransferStatus::empty, "empty"},
    {TransferStatus::initiated, "initiated"},
    {TransferStatus::submitting, "submitting"},
    {TransferStatus::outcome_unknown, "outcome_unknown"},
    {TransferStatus::pending_settlement, "pending_settlement"},
    {TransferStatus::under_investigation, "under_investigation"},
    {TransferStatus::parked_for_review, "parked_for_review"},
    {TransferStatus::succeeded, "succeeded"},
    {TransferStatus::rejected, "rejected"},
}};

inline constexpr NameTable<ClearingAnswerClass, 10> kClearingAnswerClassNames{{
    {ClearingAnswerClass::settled, "settled"},
    {ClearingAnswerClass::pending, "pending"},
    {ClearingAnswerClass::rejected, "rejected"},
    {ClearingAnswerClass::unknown, "unknown"},
    {ClearingAnswerClass::in_progress, "in_progress"},
    {ClearingAnswerClass::key_reused, "key_reused"},
    {ClearingAnswerClass::maintenance, "maintenance"},
    {ClearingAnswerClass::malformed_request, "malformed_request"},
    {ClearingAnswerClass::not_found, "not_found"},
    {ClearingAnswerClass::unauthorized, "unauthorized"},
}};

inline constexpr NameTable<ClearingAction, 2> kClearingActionNames{{
    {ClearingAction::submit, "submit"},
    {ClearingAction::inquiry, "inquiry"},
}};

inline constexpr NameTable<ManualOutcome, 2> kManualOutcomeNames{{
    {ManualOutcome::succeeded, "succeeded"},
    {ManualOutcome::rejected, "rejected"},
}};

inline constexpr NameTable<TransferRefusalCode, 6> kTransferRefusalCodeNames{{
    {TransferRefusalCode::unknown_transfer, "unknown_transfer"},
    {TransferRefusalCode::transfer_id_mismatch, "transfer_id_mismatch"},
    {TransferRefusalCode::answer_kind_mismatch, "answer_kind_mismatch"},
    {TransferRefusalCode::already_terminal, "already_terminal"},
    {TransferRefusalCode::not_under_investigation, "not_under_investigation"},
    {TransferRefusalCode::incomplete_resolution, "incomplete_resolution"},
}};

inline constexpr NameTable<IncomingPaymentStatus, 5> kIncomingPaymentStatusNames{{
    {IncomingPaymentStatus::empty, "empty"},
    {IncomingPaymentStatus::recorded, "recorded"},
    {IncomingPaymentStatus::parked, "parked"},
    {IncomingPaymentStatus::booked, "booked"},
    {IncomingPaymentStatus::returned, "returned"},
}};

inline constexpr NameTable<IncomingPaymentRefusalCode, 8> kIncomingPaymentRefusalCodeNames{{
    {IncomingPaymentRefusalCode::missing_clearing_reference, "missing_clearing_reference"},
    {IncomingPaymentRefusalCode::reference_mismatch, "reference_mismatch"},
    {IncomingPaymentRefusalCode::unknown_payment, "unknown_payment"},
    {IncomingPaymentRefusalCode::not_parked, "not_parked"},
    {IncomingPaymentRefusalCode::already_booked, "already_booked"},
    {IncomingPaymentRefusalCode::already_returned, "already_returned"},
    {IncomingPaymentRefusalCode::incomplete_action, "incomplete_action"},
    {IncomingPaymentRefusalCode::not_bookable, "not_bookable"},
}};

// The persisted type names of an event variant, in the order of its alternatives.
template <class Variant>
constexpr auto event_type_names() noexcept {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<std::string_view, sizeof...(I)>{
        std::variant_alternative_t<I, Variant>::kType...};
  }
  (std::make_index_sequence<std::variant_size_v<Variant>>{});
}

inline constexpr auto kTransferEventTypes = event_type_names<TransferEvent>();
inline constexpr auto kIncomingPaymentEventTypes = event_type_names<IncomingPaymentEvent>();

// The index in its variant of the event type named `name`, or nullopt.
template <std::size_t N>
constexpr std::optional<std::size_t> event_type_index(const std::array<std::string_view, N>& types,
                                                      std::string_view name) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    if (types[i] == name) return i;
  return std::nullopt;
}

namespace names_check {

using base::lists_every_enumerator;

template <std::size_t N>
constexpr bool all_distinct(const std::array<std::string_view, N>& names) {
  for (std::size_t i = 0; i < N; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (names[i] == names[j]) return false;
  return true;
}

}  // namespace names_check

static_assert(names_check::lists_every_enumerator(kTransferStatusNames, TransferStatus::rejected));
static_assert(names_check::lists_every_enumerator(kClearingAnswerClassNames,
                                                  ClearingAnswerClass::unauthorized));
static_assert(names_check::lists_every_enumerator(kClearingActionNames, ClearingAction::inquiry));
static_assert(names_check::lists_every_enumerator(kManualOutcomeNames, ManualOutcome::rejected));
static_assert(names_check::lists_every_enumerator(kTransferRefusalCodeNames,
                                                  TransferRefusalCode::incomplete_resolution));
static_assert(names_check::lists_every_enumerator(kIncomingPaymentStatusNames,
                                                  IncomingPaymentStatus::returned));
static_assert(names_check::lists_every_enumerator(kIncomingPaymentRefusalCodeNames,
                                                  IncomingPaymentRefusalCode::not_bookable));
static_assert(names_check::all_distinct(kTransferEventTypes));
static_assert(names_check::all_distinct(kIncomingPaymentEventTypes));

}  // namespace clearing::sagas
