#pragma once
// The core's account: a balance and the reservations made for outgoing transfers, as a
// Decider (STYLE.md): events, state and evolve, decisions. Pure: no I/O, no clock.
//
// A reservation is made once per transfer (FundsReserved) and resolved exactly once:
// completed (the money left the account: balance reduced) or released (the money is
// available again). Resolving a reservation that is unknown or already resolved is a
// typed rejection, never a second event: the core counts it as a violation of the
// "exactly one outcome" contract (streams.md) and its money never moves twice.

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <variant>
#include <vector>

#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::core_sim {

// ---- events (persisted: type names and fields are stable for ever) ----

struct AccountOpened {
  std::string account_id;
  sagas::Money opening_balance;  // its currency is the account's
  friend bool operator==(const AccountOpened&, const AccountOpened&) = default;
};
struct FundsReserved {
  std::string transfer_id;
  sagas::Money amount;
  friend bool operator==(const FundsReserved&, const FundsReserved&) = default;
};
struct ReservationCompleted {
  std::string transfer_id;
  friend bool operator==(const ReservationCompleted&, const ReservationCompleted&) = default;
};
struct ReservationReleased {
  std::string transfer_id;
  std::string reason_code;  // the ISO 20022 code of the adapter's TransferRejected
  friend bool operator==(const ReservationReleased&, const ReservationReleased&) = default;
};
using AccountEvent =
    std::variant<AccountOpened, FundsReserved, ReservationCompleted, ReservationReleased>;

// ---- state ----

enum class ReservationStatus { open, completed, released };
const char* to_string(ReservationStatus status) noexcept;

struct Reservation {
  std::int64_t amount_minor = 0;
  ReservationStatus status = ReservationStatus::open;
  std::string reason_code;  // when released
  friend bool operator==(const Reservation&, const Reservation&) = default;
};

struct AccountState {
  bool opened = false;
  std::string account_id;
  sagas::Currency currency;
  std::int64_t balance_minor = 0;   // booked: opening balance minus completed reservations
  std::int64_t reserved_minor = 0;  // sum of the open reservations
  // Every reservation ever made, resolved ones included: a late second outcome must be
  // recognised as such rather than as an unknown transfer.
  std::map<std::string, Reservation> reservations;

  std::int64_t available_minor() const { return balance_minor - reserved_minor; }
  friend bool operator==(const AccountState&, const AccountState&) = default;
};

// ---- commands ----

struct OpenAccount {
  std::string account_id;
  sagas::Money opening_balance;
};
struct ReserveFunds {
  std::string transfer_id;
  sagas::Money amount;
};
struct CompleteReservation {
  std::string transfer_id;
};
struct ReleaseReservation {
  std::string transfer_id;
  std::string reason_code;
};
using AccountCommand =
    std::variant<OpenAccount, ReserveFunds, CompleteReservation, ReleaseReservation>;

enum class AccountRejectionCode {
  account_not_open,      // any command but OpenAccount before the account exists
  account_already_open,  // OpenAccount again with other figures
  invalid_amount,        // amount <= 0, or a negative opening balance
  currency_mismatch,     // reservation in another currency than the account's
  insufficient_funds,    // available balance below the amount
  reservation_conflict,  // ReserveFunds again for a transfer id with another amount/currency
  unknown_reservation,   // completion or release of a transfer never reserved here
  already_completed,     // completion or release of a completed reservation
  already_released,      // completion or release of a released reservation
};
const char* to_string(AccountRejectionCode code) noexcept;

struct AccountRejection {
  AccountRejectionCode code;
  std::string message;  // never carries account numbers or names
};

struct AccountDecider {
  using State = AccountState;
  using Event = AccountEvent;
  using Command = AccountCommand;
  using Rejection = AccountRejection;

  static State initial_state() { return {}; }
  static State evolve(const State& state, const Event& event);
  // Idempotent where a repeat is harmless: OpenAccount and ReserveFunds repeated with the
  // same figures decide no events. Outcomes are never idempotent: see the header comment.
  static tl::expected<std::vector<Event>, Rejection> decide(const Command& command,
                                                            const State& state);
};
static_assert(eventstore::Decider<AccountDecider>);

// How a rejected outcome command breaks "every reservation is resolved exactly once".
enum class Violation {
  double_completion,         // TransferSucceeded for a completed reservation
  completion_after_release,  // TransferSucceeded for a released reservation
  release_after_completion,  // TransferRejected for a completed reservation
  double_release,            // TransferRejected for a released reservation
  unknown_transfer,          // an outcome for a transfer the core never requested
};
inline constexpr int kViolationKinds = 5;
const char* to_string(Violation violation) noexcept;
std::optional<Violation> parse_violation(std::string_view name) noexcept;

// The violation a rejection of CompleteReservation / ReleaseReservation stands for;
// nullopt for other commands and for rejections that are not about resolution.
std::optional<Violation> violation_of(const AccountCommand& command,
                                      const AccountRejection& rejection) noexcept;

// The account's event stream: "account-<account id>".
std::string account_stream_name(std::string_view account_id);

// Like sagas' codecs: a decoding error is typed (eventstore::DecodeError) and names the
// field at fault, never its value.
struct AccountCodec {
  static std::string_view event_type(const AccountEvent& event);
  static nlohmann::json encode(const AccountEvent& event);
  static tl::expected<AccountEvent, eventstore::DecodeError> decode(std::string_view type,
                                                                    const nlohmann::json& data);
};

}  // namespace clearing::core_sim
