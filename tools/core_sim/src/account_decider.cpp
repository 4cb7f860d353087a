#include "clearing/core_sim/account_decider.hpp"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"
#include "wire.hpp"

namespace clearing::core_sim {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

using Decided = tl::expected<std::vector<AccountEvent>, AccountRejection>;

Decided reject(AccountRejectionCode code, std::string message) {
  return tl::unexpected(AccountRejection{code, std::move(message)});
}

Decided none() { return std::vector<AccountEvent>{}; }

// Names for logs, violation records and reports: each name is spelled once, here.
constexpr base::NameTable<ReservationStatus, 3> kReservationStatusNames{{
    {ReservationStatus::open, "open"},
    {ReservationStatus::completed, "completed"},
    {ReservationStatus::released, "released"},
}};
static_assert(base::lists_every_enumerator(kReservationStatusNames, ReservationStatus::released));

constexpr base::NameTable<AccountRejectionCode, 9> kAccountRejectionCodeNames{{
    {AccountRejectionCode::account_not_open, "account_not_open"},
    {AccountRejectionCode::account_already_open, "account_already_open"},
    {AccountRejectionCode::invalid_amount, "invalid_amount"},
    {AccountRejectionCode::currency_mismatch, "currency_mismatch"},
    {AccountRejectionCode::insufficient_funds, "insufficient_funds"},
    {AccountRejectionCode::reservation_conflict, "reservation_conflict"},
    {AccountRejectionCode::unknown_reservation, "unknown_reservation"},
    {AccountRejectionCode::already_completed, "already_completed"},
    {AccountRejectionCode::already_released, "already_released"},
}};
static_assert(base::lists_every_enumerator(kAccountRejectionCodeNames,
                                           AccountRejectionCode::already_released));

constexpr base::NameTable<Violation, kViolationKinds> kViolationNames{{
    {Violation::double_completion, "double_completion"},
    {Violation::completion_after_release, "completion_after_release"},
    {Violation::release_after_completion, "release_after_completion"},
    {Violation::double_release, "double_release"},
    {Violation::unknown_transfer, "unknown_transfer"},
}};
static_assert(base::lists_every_enumerator(kViolationNames, Violation::unknown_transfer));

Decided one(AccountEvent event) { return std::vector<AccountEvent>{std::move(event)}; }

// The reservation a completion or release is about, or the rejection that says why
// it cannot be resolved (unknown, or resolved before).
tl::expected<const Reservation*, AccountRejection> open_reservation(
    const AccountState& state, const std::string& transfer_id) {
  const auto it = state.reservations.find(transfer_id);
  if (it == state.reservations.end())
    return tl::unexpected(AccountRejection{AccountRejectionCode::unknown_reservation,
                                           "no reservation for transfer " + transfer_id});
  switch (it->second.status) {
    case ReservationStatus::open:
      return &it->second;
    case ReservationStatus::completed:
      return tl::unexpected(
          AccountRejection{AccountRejectionCode::already_completed,
                           "reservation of transfer " + transfer_id + " is already completed"});
    case ReservationStatus::released:
      return tl::unexpected(
          AccountRejection{AccountRejectionCode::already_released,
                           "reservation of transfer " + transfer_id + " is already released"});
  }
  return tl::unexpected(
      AccountRejection{AccountRejectionCode::unknown_reservation, "bad reservation status"});
}

Decided decide_open(const OpenAccount& c, const AccountState& s) {
  if (c.opening_balance.minor_units < 0)
    return reject(AccountRejectionCode::invalid_amount, "opening balance is negative");
  if (s.opened) {
    // The same figures again: already done. Anything else is a second, different account.
    const bool same = s.account_id == c.account_id && s.currency == c.opening_balance.currency;
    if (same) return none();
    return reject(AccountRejectionCode::account_already_open,
                  "account is already open with other figures");
  }
  return one(AccountOpened{c.account_id, c.opening_balance});
}

Decided decide_reserve(const ReserveFunds& c, const AccountState& s) {
  if (!s.opened) return reject(AccountRejectionCode::account_not_open, "account is not open");
  if (const auto it = s.reservations.find(c.transfer_id); it != s.reservations.end()) {
    if (it->second.amount_minor == c.amount.minor_units && s.currency == c.amount.currency)
      return none();
    return reject(AccountRejectionCode::reservation_conflict,
                  "transfer " + c.transfer_id + " was reserved with another amount");
  }
  if (c.amount.minor_units <= 0)
    return reject(AccountRejectionCode::invalid_amount, "amount must be positive");
  if (c.amount.currency != s.currency)
    return reject(AccountRejectionCode::currency_mismatch,
                  "amount in " + std::string(c.amount.currency.code()) + " on an account in " +
                      std::string(s.currency.code()));
  if (s.available_minor() < c.amount.minor_units)
    return reject(AccountRejectionCode::insufficient_funds,
                  "available balance is below the amount");
  return one(FundsReserved{c.transfer_id, c.amount});
}

Decided decide_complete(const CompleteReservation& c, const AccountState& s) {
  if (!s.opened) return reject(AccountRejectionCode::account_not_open, "account is not open");
  auto reservation = open_reservation(s, c.transfer_id);
  if (!reservation) return tl::unexpected(reservation.error());
  return one(ReservationCompleted{c.transfer_id});
}

Decided decide_release(const ReleaseReservation& c, const AccountState& s) {
  if (!s.opened) return reject(AccountRejectionCode::account_not_open, "account is not open");
  auto reservation = open_reservation(s, c.transfer_id);
  if (!reservation) return tl::unexpected(reservation.error());
  return one(ReservationReleased{c.transfer_id, c.reason_code});
}

}  // namespace

// The table's names are string literals, so data() is null-terminated.
const char* to_string(ReservationStatus status) noexcept {
  return base::name_in(kReservationStatusNames, status).value_or("unknown").data();
}

const char* to_string(AccountRejectionCode code) noexcept {
  return base::name_in(kAccountRejectionCodeNames, code).value_or("unknown").data();
}

const char* to_string(Violation violation) noexcept {
  return base::name_in(kViolationNames, violation).value_or("unknown").data();
}

std::optional<Violation> parse_violation(std::string_view name) noexcept {
  return base::value_in(kViolationNames, name);
}

std::optional<Violation> violation_of(const AccountCommand& command,
                                      const AccountRejection& rejection) noexcept {
  const bool completion = std::holds_alternative<CompleteReservation>(command);
  const bool release = std::holds_alternative<ReleaseReservation>(command);
  if (!completion && !release) return std::nullopt;
  switch (rejection.code) {
    case AccountRejectionCode::unknown_reservation:
    case AccountRejectionCode::account_not_open:
      return Violation::unknown_transfer;
    case AccountRejectionCode::already_completed:
      return completion ? Violation::double_completion : Violation::release_after_completion;
    case AccountRejectionCode::already_released:
      return completion ? Violation::completion_after_release : Violation::double_release;
    default:
      return std::nullopt;
  }
}

AccountState AccountDecider::evolve(const AccountState& state, const AccountEvent& event) {
  AccountState next = state;
  std::visit(
      Overloaded{
          [&](const AccountOpened& e) {
            next.opened = true;
            next.account_id = e.account_id;
            next.currency = e.opening_balance.currency;
            next.balance_minor = e.opening_balance.minor_units;
          },
          [&](const FundsReserved& e) {
            next.reservations[e.transfer_id] =
                Reservation{e.amount.minor_units, ReservationStatus::open, ""};
            next.reserved_minor += e.amount.minor_units;
          },
          [&](const ReservationCompleted& e) {
            // evolve never fails: an event decide would not have produced changes nothing.
            auto it = next.reservations.find(e.transfer_id);
            if (it == next.reservations.end() || it->second.status != ReservationStatus::open)
              return;
            it->second.status = ReservationStatus::completed;
            next.reserved_minor -= it->second.amount_minor;
            next.balance_minor -= it->second.amount_minor;
          },
          [&](const ReservationReleased& e) {
            auto it = next.reservations.find(e.transfer_id);
            if (it == next.reservations.end() || it->second.status != ReservationStatus::open)
              return;
            it->second.status = ReservationStatus::released;
            it->second.reason_code = e.reason_code;
            next.reserved_minor -= it->second.amount_minor;
          },
      },
      event);
  return next;
}

tl::expected<std::vector<AccountEvent>, AccountRejection> AccountDecider::decide(
    const AccountCommand& command, const AccountState& state) {
  auto decided =
      std::visit(Overloaded{
                     [&](const OpenAccount& c) { return decide_open(c, state); },
                     [&](const ReserveFunds& c) { return decide_reserve(c, state); },
                     [&](const CompleteReservation& c) { return decide_complete(c, state); },
                     [&](const ReleaseReservation& c) { return decide_release(c, state); },
                 },
                 command);
  // Both sides of the invariant: a decision never leaves the available balance negative.
  if (decided) {
    AccountState after = state;
    for (const auto& e : *decided) after = evolve(after, e);
    CLEARING_ASSERT(after.available_minor() >= 0 || !after.opened);
    CLEARING_ASSERT(after.reserved_minor >= 0);
  }
  return decided;
}

std::string account_stream_name(std::string_view account_id) {
  return "account-" + std::string(account_id);
}

// ---- codec ----

namespace {

using Json = nlohmann::json;

using eventstore::DecodeErrc;
using eventstore::DecodeError;

// The stored type names, in the order of AccountEvent's alternatives: persisted, never renamed.
constexpr std::array<std::string_view, 4> kAccountEventTypes{
    "AccountOpened", "FundsReserved", "ReservationCompleted", "ReservationReleased"};
static_assert(kAccountEventTypes.size() == std::variant_size_v<AccountEvent>);

std::optional<std::string> text_field(const Json& data, const char* name) {
  const auto it = data.find(name);
  if (it == data.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    return std::nullopt;
  return it->get<std::string>();
}

// The error for `field` of a `type` event: missing when absent, else invalid. Like sagas'
// codecs, the message names the field, never its value.
tl::unexpected<DecodeError> field_error(std::string_view type, const Json& data,
                                        const char* field) {
  const bool missing = !data.contains(field);
  return tl::unexpected(
      DecodeError{missing ? DecodeErrc::missing_field : DecodeErrc::invalid_field, field,
                  std::string(type) + (missing ? ": missing field " : ": invalid field ") + field});
}

}  // namespace

std::string_view AccountCodec::event_type(const AccountEvent& event) {
  return kAccountEventTypes[event.index()];
}

nlohmann::json AccountCodec::encode(const AccountEvent& event) {
  return std::visit(
      Overloaded{
          [](const AccountOpened& e) -> Json {
            return {{"account_id", e.account_id},
                    {"opening_balance", wire::encode_money(e.opening_balance)}};
          },
          [](const FundsReserved& e) -> Json {
            return {{"transfer_id", e.transfer_id}, {"amount", wire::encode_money(e.amount)}};
          },
          [](const ReservationCompleted& e) -> Json {
            return {{"transfer_id", e.transfer_id}};
          },
          [](const ReservationReleased& e) -> Json {
            return {{"transfer_id", e.transfer_id}, {"reason_code", e.reason_code}};
          },
      },
      event);
}

tl::expected<AccountEvent, DecodeError> AccountCodec::decode(std::string_view type,
                                                             const nlohmann::json& data) {
  if (std::find(kAccountEventTypes.begin(), kAccountEventTypes.end(), type) ==
      kAccountEventTypes.end())
    return tl::unexpected(
        DecodeError{DecodeErrc::unknown_type, "", "unknown event type " + std::string(type)});
  if (!data.is_object())
    return tl::unexpected(
        DecodeError{DecodeErrc::not_an_object, "", std::string(type) + ": data is not an object"});
  if (type == "AccountOpened") {
    auto id = text_field(data, "account_id");
    if (!id) return field_error(type, data, "account_id");
    auto balance = wire::decode_money(data, "opening_balance");
    if (!balance) return field_error(type, data, "opening_balance");
    return AccountOpened{*id, *balance};
  }
  auto transfer_id = text_field(data, "transfer_id");
  if (!transfer_id) return field_error(type, data, "transfer_id");
  if (type == "FundsReserved") {
    auto amount = wire::decode_money(data, "amount");
    if (!amount) return field_error(type, data, "amount");
    return FundsReserved{*transfer_id, *amount};
  }
  if (type == "ReservationCompleted") return ReservationCompleted{*transfer_id};
  const auto reason = data.find("reason_code");
  if (reason == data.end() || !reason->is_string()) return field_error(type, data, "reason_code");
  return ReservationReleased{*transfer_id, reason->get<std::string>()};
}

}  // namespace clearing::core_sim
