// The name tables: every enumerator has a name that reads back as itself, every event type
// name reads back as its own alternative, and the names the rest of the system stores or
// shows are the ones below (they are persisted: never rename one).

#include "clearing/sagas/names.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace clearing::sagas;

namespace {

// Every enumerator, cast from 0 up to the table's size, has a name, and that name parses
// back to it; a value past the table has none.
template <class Enum, std::size_t N>
void check_round_trip(const NameTable<Enum, N>& table) {
  for (std::size_t i = 0; i < N; ++i) {
    const auto value = static_cast<Enum>(i);
    const auto name = name_in(table, value);
    REQUIRE(name.has_value());
    CAPTURE(std::string(*name));
    CHECK_FALSE(name->empty());
    CHECK(value_in(table, *name) == value);
  }
  CHECK_FALSE(name_in(table, static_cast<Enum>(N)).has_value());
  CHECK_FALSE(value_in(table, "").has_value());
  CHECK_FALSE(value_in(table, "no such name").has_value());
}

template <std::size_t N>
void check_event_types(const std::array<std::string_view, N>& types) {
  for (std::size_t i = 0; i < N; ++i) {
    CAPTURE(std::string(types[i]));
    CHECK(event_type_index(types, types[i]) == i);
  }
  CHECK_FALSE(event_type_index(types, "NoSuchEvent").has_value());
}

}  // namespace

TEST_CASE("every enumerator's name reads back as the enumerator") {
  check_round_trip(kTransferStatusNames);
  check_round_trip(kClearingAnswerClassNames);
  check_round_trip(kClearingActionNames);
  check_round_trip(kManualOutcomeNames);
  check_round_trip(kTransferRefusalCodeNames);
  check_round_trip(kIncomingPaymentStatusNames);
}

TEST_CASE("every event type name reads back as its own alternative") {
  check_event_types(kTransferEventTypes);
  check_event_types(kIncomingPaymentEventTypes);
  CHECK(kTransferEventTypes.size() == std::variant_size_v<TransferEvent>);
  CHECK(kTransferEventTypes.front() == "TransferInitiated");
  CHECK(kIncomingPaymentEventTypes.front() == "IncomingPaymentRecorded");
}

TEST_CASE("the name functions say what they always said, also in both directions") {
  CHECK(status_name(TransferStatus::pending_settlement) == "pending_settlement");
  CHECK(status_name(TransferStatus::rejected) == "rejected");
  CHECK(answer_class_name(ClearingAnswerClass::malformed_request) == "malformed_request");
  CHECK(answer_class_name(ClearingAnswerClass::unauthorized) == "unauthorized");
  CHECK(action_name(ClearingAction::submit) == "submit");
  CHECK(action_name(ClearingAction::inquiry) == "inquiry");
  CHECK(parse_action("inquiry") == ClearingAction::inquiry);
  CHECK_FALSE(parse_action("Inquiry").has_value());
  CHECK(manual_outcome_name(ManualOutcome::succeeded) == "succeeded");
  CHECK(parse_manual_outcome("rejected") == ManualOutcome::rejected);
  CHECK_FALSE(parse_manual_outcome("failed").has_value());
  CHECK(refusal_code_name(TransferRefusalCode::incomplete_resolution) == "incomplete_resolution");
  CHECK(incoming_status_name(IncomingPaymentStatus::parked) == "parked");
}

TEST_CASE("a value outside its enumeration keeps the fallback name it always had") {
  CHECK(status_name(static_cast<TransferStatus>(99)) == "unknown");
  CHECK(answer_class_name(static_cast<ClearingAnswerClass>(99)) == "unclassified");
  CHECK(action_name(static_cast<ClearingAction>(99)) == "inquiry");
  CHECK(manual_outcome_name(static_cast<ManualOutcome>(99)) == "rejected");
  CHECK(refusal_code_name(static_cast<TransferRefusalCode>(99)) == "unknown");
  CHECK(incoming_status_name(static_cast<IncomingPaymentStatus>(99)) == "unknown");
}
