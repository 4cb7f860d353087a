// The account decider as a specification: given events, when a command, then events or a
// rejection, for every state a reservation can be in and every command.

#include "clearing/core_sim/account_decider.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using namespace clearing;
using namespace clearing::core_sim;

namespace {

sagas::Money dkk(std::int64_t minor) { return {minor, *sagas::Currency::parse("DKK")}; }
sagas::Money eur(std::int64_t minor) { return {minor, *sagas::Currency::parse("EUR")}; }

const std::string kTransfer = "t-1";

AccountState given(const std::vector<AccountEvent>& events) {
  return eventstore::fold<AccountDecider>(events);
}

std::vector<AccountEvent> opened(std::int64_t balance = 10'000) {
  return {AccountOpened{"acct-0001", dkk(balance)}};
}

std::vector<AccountEvent> reserved(std::int64_t amount = 2'500) {
  auto events = opened();
  events.push_back(FundsReserved{kTransfer, dkk(amount)});
  return events;
}

std::vector<AccountEvent> completed() {
  auto events = reserved();
  events.push_back(ReservationCompleted{kTransfer});
  return events;
}

std::vector<AccountEvent> released() {
  auto events = reserved();
  events.push_back(ReservationReleased{kTransfer, "AC01"});
  return events;
}

std::vector<AccountEvent> then_events(const AccountCommand& command,
                                      const std::vector<AccountEvent>& history) {
  auto decided = AccountDecider::decide(command, given(history));
  REQUIRE_MESSAGE(decided.has_value(), (decided ? "" : decided.error().message));
  return *decided;
}

AccountRejectionCode then_rejected(const AccountCommand& command,
                                   const std::vector<AccountEvent>& history) {
  auto decided = AccountDecider::decide(command, given(history));
  REQUIRE_FALSE(decided.has_value());
  return decided.error().code;
}

// The violation of the books a rejected command is, given the history that rejects it.
std::optional<Violation> then_violation(const AccountCommand& command,
                                        const std::vector<AccountEvent>& history) {
  auto decided = AccountDecider::decide(command, given(history));
  REQUIRE_FALSE(decided.has_value());
  return violation_of(command, decided.error());
}

// Given `history`, both outcomes of kTransfer are refused with `code`, and each is the
// violation of the books named for it.
void check_outcomes_refused(const std::vector<AccountEvent>& history, AccountRejectionCode code,
                            Violation completing, Violation releasing,
                            const std::string& release_reason) {
  const AccountCommand complete = CompleteReservation{kTransfer};
  const AccountCommand release = ReleaseReservation{kTransfer, release_reason};
  CHECK(then_rejected(complete, history) == code);
  CHECK(then_rejected(release, history) == code);
  CHECK(then_violation(complete, history) == completing);
  CHECK(then_violation(release, history) == releasing);
}

}  // namespace

TEST_CASE("a new account: only OpenAccount is accepted") {
  CHECK(then_events(OpenAccount{"acct-0001", dkk(10'000)}, {}) ==
        std::vector<AccountEvent>{AccountOpened{"acct-0001", dkk(10'000)}});
  CHECK(then_rejected(OpenAccount{"acct-0001", dkk(-1)}, {}) ==
        AccountRejectionCode::invalid_amount);
  CHECK(then_rejected(ReserveFunds{kTransfer, dkk(1)}, {}) ==
        AccountRejectionCode::account_not_open);
  CHECK(then_rejected(CompleteReservation{kTransfer}, {}) ==
        AccountRejectionCode::account_not_open);
  CHECK(then_rejected(ReleaseReservation{kTransfer, "AC01"}, {}) ==
        AccountRejectionCode::account_not_open);
}

TEST_CASE("an open account without the reservation") {
  SUBCASE("opening again with the same figures is already done; with others a rejection") {
    CHECK(then_events(OpenAccount{"acct-0001", dkk(10'000)}, opened()).empty());
    CHECK(then_rejected(OpenAccount{"acct-0001", eur(10'000)}, opened()) ==
          AccountRejectionCode::account_already_open);
    CHECK(then_rejected(OpenAccount{"acct-0002", dkk(10'000)}, opened()) ==
          AccountRejectionCode::account_already_open);
  }
  SUBCASE("reserve: within the available balance") {
    CHECK(then_events(ReserveFunds{kTransfer, dkk(10'000)}, opened()) ==
          std::vector<AccountEvent>{FundsReserved{kTransfer, dkk(10'000)}});
    CHECK(then_rejected(ReserveFunds{kTransfer, dkk(10'001)}, opened()) ==
          AccountRejectionCode::insufficient_funds);
    CHECK(then_rejected(ReserveFunds{kTransfer, dkk(0)}, opened()) ==
          AccountRejectionCode::invalid_amount);
    CHECK(then_rejected(ReserveFunds{kTransfer, dkk(-5)}, opened()) ==
          AccountRejectionCode::invalid_amount);
    CHECK(then_rejected(ReserveFunds{kTransfer, eur(100)}, opened()) ==
          AccountRejectionCode::currency_mismatch);
  }
  SUBCASE("an outcome for a transfer never reserved is an unknown-transfer violation") {
    check_outcomes_refused(opened(), AccountRejectionCode::unknown_reservation,
                           Violation::unknown_transfer, Violation::unknown_transfer, "AC01");
  }
}

TEST_CASE("an open reservation") {
  const auto state = given(reserved(2'500));
  CHECK(state.balance_minor == 10'000);
  CHECK(state.reserved_minor == 2'500);
  CHECK(state.available_minor() == 7'500);
  SUBCASE("reserving the same again is already done; another amount is a conflict") {
    CHECK(then_events(ReserveFunds{kTransfer, dkk(2'500)}, reserved()).empty());
    CHECK(then_rejected(ReserveFunds{kTransfer, dkk(2'600)}, reserved()) ==
          AccountRejectionCode::reservation_conflict);
  }
  SUBCASE("other reservations count against the available balance") {
    CHECK(then_rejected(ReserveFunds{"t-2", dkk(7'501)}, reserved()) ==
          AccountRejectionCode::insufficient_funds);
    CHECK(then_events(ReserveFunds{"t-2", dkk(7'500)}, reserved()).size() == 1);
  }
  SUBCASE("completion: the money leaves") {
    auto events = then_events(CompleteReservation{kTransfer}, reserved());
    CHECK(events == std::vector<AccountEvent>{ReservationCompleted{kTransfer}});
    auto after = given(completed());
    CHECK(after.balance_minor == 7'500);
    CHECK(after.reserved_minor == 0);
    CHECK(after.reservations.at(kTransfer).status == ReservationStatus::completed);
  }
  SUBCASE("release: the money is available again, the reason kept") {
    auto events = then_events(ReleaseReservation{kTransfer, "AC01"}, reserved());
    CHECK(events == std::vector<AccountEvent>{ReservationReleased{kTransfer, "AC01"}});
    auto after = given(released());
    CHECK(after.balance_minor == 10'000);
    CHECK(after.reserved_minor == 0);
    CHECK(after.reservations.at(kTransfer).reason_code == "AC01");
  }
}

TEST_CASE("a completed reservation is never resolved again") {
  check_outcomes_refused(completed(), AccountRejectionCode::already_completed,
                         Violation::double_completion, Violation::release_after_completion, "AC04");
  CHECK(then_events(ReserveFunds{kTransfer, dkk(2'500)}, completed()).empty());
  CHECK(then_events(OpenAccount{"acct-0001", dkk(10'000)}, completed()).empty());
}

TEST_CASE("a released reservation is never resolved again") {
  check_outcomes_refused(released(), AccountRejectionCode::already_released,
                         Violation::completion_after_release, Violation::double_release, "AC01");
  // The released money is available again.
  CHECK(then_events(ReserveFunds{"t-2", dkk(10'000)}, released()).size() == 1);
}

TEST_CASE("violation_of only speaks about outcomes") {
  const AccountRejection insufficient{AccountRejectionCode::insufficient_funds, ""};
  CHECK_FALSE(violation_of(ReserveFunds{kTransfer, dkk(1)}, insufficient).has_value());
  CHECK_FALSE(violation_of(OpenAccount{"a", dkk(1)},
                           AccountRejection{AccountRejectionCode::account_already_open, ""})
                  .has_value());
  for (auto v : {Violation::double_completion, Violation::completion_after_release,
                 Violation::release_after_completion, Violation::double_release,
                 Violation::unknown_transfer})
    CHECK(parse_violation(to_string(v)) == v);
}

TEST_CASE("evolve ignores resolutions it could not have decided (never fails)") {
  auto state = given(completed());
  auto again = AccountDecider::evolve(state, ReservationReleased{kTransfer, "AC01"});
  CHECK(again == state);
  auto unknown = AccountDecider::evolve(state, ReservationCompleted{"t-unknown"});
  CHECK(unknown == state);
}

TEST_CASE("the codec round-trips every event, and its type names are stable") {
  const std::vector<AccountEvent> events{
      AccountOpened{"acct-0001", dkk(10'000)}, FundsReserved{kTransfer, dkk(2'500)},
      ReservationCompleted{kTransfer}, ReservationReleased{kTransfer, "AM02"}};
  const std::vector<std::string> names{"AccountOpened", "FundsReserved", "ReservationCompleted",
                                       "ReservationReleased"};
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(AccountCodec::event_type(events[i]) == names[i]);
    auto decoded = AccountCodec::decode(names[i], AccountCodec::encode(events[i]));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == events[i]);
  }
  CHECK(AccountCodec::encode(events[1]).dump() ==
        R"({"amount":{"currency":"DKK","minor_units":2500},"transfer_id":"t-1"})");
  // Each undecodable input is refused with the code that says why (and the field at fault).
  struct Refused {
    const char* type;
    nlohmann::json data;
    eventstore::DecodeErrc code;
    const char* field;
  };
  const std::vector<Refused> refused{
      {"FundsReserved", {{"transfer_id", "t"}}, eventstore::DecodeErrc::missing_field, "amount"},
      {"FundsReserved",
       {{"transfer_id", "t"}, {"amount", "lots"}},
       eventstore::DecodeErrc::invalid_field,
       "amount"},
      {"ReservationReleased",
       {{"transfer_id", ""}},
       eventstore::DecodeErrc::invalid_field,
       "transfer_id"},
      {"ReservationReleased",
       {{"transfer_id", "t"}},
       eventstore::DecodeErrc::missing_field,
       "reason_code"},
      {"Nope", {{"transfer_id", "t"}}, eventstore::DecodeErrc::unknown_type, ""},
      {"AccountOpened", nlohmann::json::array(), eventstore::DecodeErrc::not_an_object, ""},
  };
  for (const auto& r : refused) {
    CAPTURE(r.type);
    CAPTURE(r.field);
    const auto decoded = AccountCodec::decode(r.type, r.data);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code == r.code);
    CHECK(decoded.error().field == r.field);
  }
}
