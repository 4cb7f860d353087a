#include <doctest/doctest.h>

#include "clearing/base/uuid.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"
#include "invalid_command_case.hpp"

using namespace clearing::sagas;
using clearing::base::Timestamp;
using Events = std::vector<IncomingPaymentEvent>;

namespace {

Timestamp t0() {
  using namespace std::chrono;
  return Timestamp{sys_days{year{2026} / 11 / 26}.time_since_epoch() + hours{9}};
}

RecordIncomingPayment payment() {
  RecordIncomingPayment c;
  c.clearing_reference = "CR-IN-17";
  c.cursor = "000000000017";
  c.amount = Money{50'000, *Currency::parse("DKK")};
  c.debtor = Party{"Grace Hopper", Account{AccountScheme::bban, "0040-0440116243"}};
  c.creditor = Party{"Ada Lovelace", Account{AccountScheme::iban, "DK5000400440116243"}};
  c.remittance_info = "Rent";
  c.received_at = t0();
  c.rules = CountryRules{Country::dk, *Currency::parse("DKK"), 10'000'000};
  return c;
}

IncomingPaymentRecorded recorded(const RecordIncomingPayment& c) {
  return IncomingPaymentRecorded{
      incoming_payment_id(c.clearing_reference), c.clearing_reference, c.cursor,
      IncomingPaymentContent{c.amount, c.debtor, c.creditor, c.remittance_info, c.received_at},
      "2026-11-26"};  // the UTC date of t0
}

Events when(const RecordIncomingPayment& c, const IncomingPaymentState& state) {
  auto decision = IncomingPaymentDecider::decide(c, state);
  REQUIRE(decision.has_value());
  return *decision;
}

Events when2(const IncomingPaymentCommand& c, const IncomingPaymentState& state) {
  auto decision = IncomingPaymentDecider::decide(c, state);
  REQUIRE(decision.has_value());
  return *decision;
}

IncomingPaymentState given(const Events& events) {
  return clearing::eventstore::fold<IncomingPaymentDecider>(events);
}

}  // namespace

TEST_CASE("the payment id is derived from the clearing reference, stable across replays") {
  CHECK(incoming_payment_id("CR-IN-17") == incoming_payment_id("CR-IN-17"));
  CHECK(incoming_payment_id("CR-IN-17") != incoming_payment_id("CR-IN-18"));
  CHECK(clearing::base::is_uuid(incoming_payment_id("CR-IN-17")));
}

TEST_CASE("given nothing, when a valid payment arrives, then it is recorded") {
  const auto events = when(payment(), IncomingPaymentDecider::initial_state());
  CHECK(events == Events{recorded(payment())});
  const auto state = given(events);
  CHECK(incoming_status_name(state.status) == "recorded");
  CHECK(state.payment_id == incoming_payment_id("CR-IN-17"));
}

TEST_CASE("a recorded payment carries its settlement date: the UTC date it was received") {
  auto late = payment();
  late.received_at = t0() + std::chrono::milliseconds(14 * 3'600'000 + 59 * 60'000 + 59'999);
  const auto events = when(late, IncomingPaymentDecider::initial_state());
  REQUIRE(events.size() == 1);
  CHECK(std::get<IncomingPaymentRecorded>(events[0]).settlement_date == "2026-11-26");
  late.received_at = late.received_at + std::chrono::milliseconds(1);  // midnight UTC
  CHECK(std::get<IncomingPaymentRecorded>(when(late, IncomingPaymentDecider::initial_state())[0])
            .settlement_date == "2026-11-27");
}

TEST_CASE(
    "given a recorded payment, when the feed re-sends it on a later page, then nothing "
    "happens") {
  auto again = payment();
  again.cursor = "000000000042";
  CHECK(when(again, given({recorded(payment())})).empty());
}

TEST_CASE(
    "given a recorded payment, when the same reference comes with other content, then "
    "an alarm and the first record stands") {
  const auto state = given({recorded(payment())});
  auto other = payment();
  other.cursor = "000000000043";
  other.amount.minor_units = 1;
  other.remittance_info = "Something else";
  const auto events = when(other, state);
  CHECK(events == Events{ConflictingIncomingPaymentReceived{incoming_payment_id("CR-IN-17"),
                                                            "CR-IN-17",
                                                            "000000000043",
                                                            {"amount", "remittance_info"}}});
  CHECK(IncomingPaymentDecider::evolve(state, events[0]) == state);
}

TEST_CASE(
    "given nothing, when an invalid payment arrives, then it is parked with the reason, "
    "never dropped") {
  const std::vector<sagas_tests::InvalidCommandCase<RecordIncomingPayment>> cases = {
      {"currency", [](RecordIncomingPayment& c) { c.amount.currency = *Currency::parse("EUR"); },
       "AM03", "currency EUR not processable"},
      {"zero amount", [](RecordIncomingPayment& c) { c.amount.minor_units = 0; }, "AM02",
       "amount must be positive"},
      {"creditor account",
       [](RecordIncomingPayment& c) { c.creditor.account.id = "DK5000400440116244"; }, "AC01",
       "creditor account: account number check digits do not match"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto command = c.applied_to(payment());
    const auto events = when(command, IncomingPaymentDecider::initial_state());
    CHECK(events == Events{IncomingPaymentParked{
                        incoming_payment_id("CR-IN-17"), "CR-IN-17", command.cursor,
                        IncomingPaymentContent{command.amount, command.debtor, command.creditor,
                                               command.remittance_info, command.received_at},
                        c.code, c.reason}});
    const auto state = given(events);
    CHECK(incoming_status_name(state.status) == "parked");
    CHECK(when(command, state).empty());  // a parked payment re-sent is also a no-op
  }
}

TEST_CASE("a payment without reference, or for another reference, is refused") {
  auto c = payment();
  c.clearing_reference.clear();
  auto decision = IncomingPaymentDecider::decide(c, IncomingPaymentDecider::initial_state());
  REQUIRE_FALSE(decision.has_value());
  CHECK(decision.error().code == IncomingPaymentRefusalCode::missing_clearing_reference);
  c = payment();
  c.clearing_reference = "CR-OTHER";
  decision = IncomingPaymentDecider::decide(c, given({recorded(payment())}));
  REQUIRE_FALSE(decision.has_value());
  CHECK(decision.error().code == IncomingPaymentRefusalCode::reference_mismatch);
}

// Operators' actions on parked payments (issue 22).
namespace {

RecordIncomingPayment in_euro() {
  auto c = payment();
  c.amount = Money{6'700, *Currency::parse("EUR")};
  return c;
}

IncomingPaymentParked parked(const RecordIncomingPayment& c, std::string code, std::string reason) {
  return IncomingPaymentParked{
      incoming_payment_id(c.clearing_reference),
      c.clearing_reference,
      c.cursor,
      IncomingPaymentContent{c.amount, c.debtor, c.creditor, c.remittance_info, c.received_at},
      std::move(code),
      std::move(reason)};
}

BookParkedIncomingPayment book(std::optional<std::int64_t> amount = 50'000,
                               std::optional<Account> creditor = std::nullopt) {
  return BookParkedIncomingPayment{"operator-7", "converted at 7.46", amount, std::move(creditor),
                                   payment().rules};
}

ReturnParkedIncomingPayment give_back() {
  return ReturnParkedIncomingPayment{"operator-7", "payer asked"};
}

IncomingPaymentBookedByOperator booked_euro() {
  auto content = parked(in_euro(), "AM03", "currency EUR not processable").content;
  content.amount = Money{50'000, *Currency::parse("DKK")};
  return IncomingPaymentBookedByOperator{incoming_payment_id("CR-IN-17"),
                                         "CR-IN-17",
                                         "000000000017",
                                         content,
                                         "2026-11-26",
                                         {"amount"},
                                         "operator-7",
                                         "converted at 7.46"};
}

IncomingPaymentReturnedByOperator returned() {
  return IncomingPaymentReturnedByOperator{incoming_payment_id("CR-IN-17"), "CR-IN-17",
                                           "operator-7", "payer asked"};
}

IncomingPaymentRefusalCode refusal_of(const IncomingPaymentCommand& command,
                                      const IncomingPaymentState& state) {
  auto decision = IncomingPaymentDecider::decide(command, state);
  REQUIRE_FALSE(decision.has_value());
  return decision.error().code;
}

}  // namespace

TEST_CASE(
    "given a payment parked for its currency, when an operator books it in DKK, then it is "
    "booked with the amount corrected, the operator and the reason") {
  const Events history{parked(in_euro(), "AM03", "currency EUR not processable")};
  const auto events = when2(book(), given(history));
  CHECK(events == Events{booked_euro()});
  CHECK(incoming_status_name(given({history[0], events[0]}).status) == "booked");
}

TEST_CASE("a booking that leaves the payment invalid is refused, naming why") {
  // Without the amount in DKK, a payment in EUR cannot go on the core's stream.
  const Events history{parked(in_euro(), "AM03", "currency EUR not processable")};
  auto decision = IncomingPaymentDecider::decide(book(std::nullopt), given(history));
  REQUIRE_FALSE(decision.has_value());
  CHECK(decision.error().code == IncomingPaymentRefusalCode::not_bookable);
  CHECK(decision.error().message ==
        "cannot be booked as it is (AM03): currency EUR not processable");
}

TEST_CASE(
    "a payment parked for its creditor account is booked to the account the operator "
    "gives, and refused with an invalid one") {
  auto wrong = payment();
  wrong.creditor.account.id = "DK5000400440116244";
  const auto state =
      given({parked(wrong, "AC01", "creditor account: account number check digits do not match")});
  CHECK(refusal_of(book(std::nullopt, Account{AccountScheme::iban, "DK5000400440116245"}), state) ==
        IncomingPaymentRefusalCode::not_bookable);
  const auto events =
      when2(book(std::nullopt, Account{AccountScheme::iban, "DK5000400440116243"}), state);
  REQUIRE(events.size() == 1);
  const auto& booked = std::get<IncomingPaymentBookedByOperator>(events[0]);
  CHECK(booked.content.creditor == payment().creditor);
  CHECK(booked.content.debtor == payment().debtor);
  CHECK(booked.corrected_fields == std::vector<std::string>{"creditor"});
}

TEST_CASE("given a parked payment, when an operator returns it, then it is returned") {
  const Events history{parked(in_euro(), "AM03", "currency EUR not processable")};
  const auto events = when2(give_back(), given(history));
  CHECK(events == Events{returned()});
  CHECK(incoming_status_name(given({history[0], events[0]}).status) == "returned");
}

TEST_CASE("every state x every operator action: only a parked payment is acted on, once") {
  using Code = IncomingPaymentRefusalCode;
  const auto parked_euro = parked(in_euro(), "AM03", "currency EUR not processable");
  struct Row {
    const char* state;
    Events history;
    std::optional<Code> book, give_back;  // nullopt: decided
  };
  const std::vector<Row> rows = {
      {"empty", {}, Code::unknown_payment, Code::unknown_payment},
      {"recorded", {recorded(payment())}, Code::not_parked, Code::not_parked},
      {"parked", {parked_euro}, std::nullopt, std::nullopt},
      {"booked", {parked_euro, booked_euro()}, Code::already_booked, Code::already_booked},
      {"returned", {parked_euro, returned()}, Code::already_returned, Code::already_returned},
  };
  for (const auto& row : rows) {
    CAPTURE(row.state);
    const auto state = given(row.history);
    CHECK(incoming_status_name(state.status) == row.state);
    for (const bool booking : {true, false}) {
      CAPTURE(booking);
      const IncomingPaymentCommand command =
          booking ? IncomingPaymentCommand{book()} : IncomingPaymentCommand{give_back()};
      const auto expected = booking ? row.book : row.give_back;
      auto decision = IncomingPaymentDecider::decide(command, state);
      if (expected) {
        REQUIRE_FALSE(decision.has_value());
        CHECK(decision.error().code == *expected);
      } else {
        REQUIRE(decision.has_value());
        CHECK(decision->size() == 1);
      }
      // Without operator or reason: refused before anything else, in every state.
      auto anonymous = book();
      anonymous.operator_name.clear();
      auto no_reason = give_back();
      no_reason.reason.clear();
      CHECK(refusal_of(
                booking ? IncomingPaymentCommand{anonymous} : IncomingPaymentCommand{no_reason},
                state) == Code::incomplete_action);
    }
    // The feed re-sending the payment after an operator's action changes nothing.
    if (!row.history.empty()) {
      auto again =
          std::holds_alternative<IncomingPaymentRecorded>(row.history[0]) ? payment() : in_euro();
      again.cursor = "000000000099";
      CHECK(when(again, state).empty());
      CHECK(given(row.history).status == state.status);
    }
  }
}

TEST_CASE("refusal codes have names") {
  CHECK(incoming_refusal_code_name(IncomingPaymentRefusalCode::already_booked) == "already_booked");
  CHECK(incoming_refusal_code_name(IncomingPaymentRefusalCode::not_bookable) == "not_bookable");
}
