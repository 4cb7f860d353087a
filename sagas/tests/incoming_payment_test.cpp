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
