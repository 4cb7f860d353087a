// The derivations of payments.v2 and positions.v1 as pure functions (no database): each
// internal event type they handle, written as the sagas' codec writes it
// (sagas/tests/codec_test.cpp), turned into its exact message; the types they leave alone
// derive nothing. The transfer's TransferInitiated (its amount) and first pending answer
// come from the DerivationContext, as the derivation handler answers them.

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "clearing/external_streams/derivation.hpp"

using namespace clearing;
using namespace clearing::external_streams;
using Json = nlohmann::json;

namespace {

constexpr const char* kTransfer = "t-1";

eventstore::RecordedEvent event(const std::string& stream, const std::string& type, Json data,
                                const std::string& id, std::int64_t version = 2) {
  eventstore::RecordedEvent e;
  e.stream_id = eventstore::StreamId{stream};
  e.version = eventstore::StreamVersion{version};
  e.event_id = eventstore::EventId{id};
  e.type = type;
  e.data = std::move(data);
  e.metadata.correlation_id = "corr-1";
  // 2026-11-28T12:00:00Z: a day of its own, to tell a recorded-at date from a settlement's.
  e.recorded_at = base::Timestamp{std::chrono::milliseconds{1'795'867'200'000}};
  return e;
}

eventstore::RecordedEvent transfer_event(const std::string& type, Json data,
                                         const std::string& id = "e-2") {
  return event("transfer-t-1", type, std::move(data), id);
}

const eventstore::RecordedEvent kInitiated =
    event("transfer-t-1", "TransferInitiated", Json::parse(R"({
        "transfer_id": "t-1", "account_id": "core-account-17",
        "amount": {"minor_units": 125000, "currency": "DKK"},
        "debtor": {"name": "Ada Lovelace", "account": {"scheme": "BBAN", "id": "5301-0001234567"}},
        "creditor": {"name": "Charles Babbage",
                     "account": {"scheme": "IBAN", "id": "DK5000400440116243"}},
        "remittance_info": "Invoice 42", "requested_at": "2026-11-26T09:00:00.000Z",
        "correlation_id": "corr-1", "initiated_at": "2026-11-26T09:00:00.123Z",
        "deadline_at": "2026-11-26T10:00:00.123Z", "idempotency_key": "t-1"})"),
          "e-1", 1);

const Json kPendingData = Json::parse(
    R"({"transfer_id": "t-1", "attempt": 1, "clearing_reference": "CR-1",
        "expected_settlement_date": "2026-11-27", "latency_ms": 42})");
const eventstore::RecordedEvent kFirstPending =
    transfer_event("TransferAcceptedPending", kPendingData, "e-pending-1");

// What the derivation handler answers: the transfer's first events, read from its stream.
DerivationContext context_of_transfer() {
  return {[](const std::string& stream,
             const std::string& type) -> std::optional<eventstore::RecordedEvent> {
    if (stream != "transfer-t-1") return std::nullopt;
    if (type == "TransferInitiated") return kInitiated;
    if (type == "TransferAcceptedPending") return kFirstPending;
    return std::nullopt;
  }};
}

const eventstore::RecordedEvent kIncoming =
    event("incoming-payment-CR-IN-17", "IncomingPaymentRecorded",
          Json::parse(R"({"payment_id": "p-1", "clearing_reference": "CR-IN-17",
        "cursor": "000000000017", "amount": {"minor_units": 50000, "currency": "DKK"},
        "debtor": {"name": "Ada Lovelace", "account": {"scheme": "BBAN", "id": "5301-0001234567"}},
        "creditor": {"name": "Charles Babbage",
                     "account": {"scheme": "IBAN", "id": "DK5000400440116243"}},
        "remittance_info": "Rent", "received_at": "2026-11-26T09:00:00.000Z"})"),
          "e-in", 1);

constexpr const char* kIncomingText =
    R"({"amount":{"currency":"DKK","minor_units":50000},"clearing_reference":"CR-IN-17",)"
    R"("creditor":{"account":{"id":"DK5000400440116243","scheme":"IBAN"},)"
    R"("name":"Charles Babbage"},"debtor":{"account":{"id":"5301-0001234567","scheme":"BBAN"},)"
    R"("name":"Ada Lovelace"},"payment_id":"p-1","received_at":"2026-11-26T09:00:00.000Z",)"
    R"("remittance_info":"Rent"})";

const Json kSettledData = Json::parse(
    R"({"transfer_id": "t-1", "attempt": 1, "clearing_reference": "CR-1",
        "settlement_date": "2026-11-26", "latency_ms": 42})");
const Json kRejectedData = Json::parse(
    R"({"transfer_id": "t-1", "attempt": 2, "reason_code": "AC04", "reason": "account closed",
        "latency_ms": 42})");
const Json kDuplicateData = Json::parse(
    R"({"transfer_id": "t-1", "reason_code": "DUPL", "reason": "different request",
        "differing_fields": ["amount", "creditor"], "correlation_id": "corr-2",
        "received_at": "2026-11-26T09:00:00.005Z"})");
const Json kInvestigationData = Json::parse(
    R"({"transfer_id": "t-1", "since": "2026-11-26T10:00:00.000Z", "attempts": 6,
        "last_error": "timeout"})");

Json resolved(const char* outcome, const char* settlement_date, const char* reason_code) {
  return {{"transfer_id", "t-1"},
          {"outcome", outcome},
          {"reason", "confirmed by phone"},
          {"operator_name", "operator-7"},
          {"clearing_reference", outcome == std::string("succeeded") ? "CR-1" : ""},
          {"settlement_date", settlement_date},
          {"reason_code", reason_code},
          {"corrects_state", "under_investigation"},
          {"attempts", 6},
          {"resolved_at", "2026-11-26T11:00:00.000Z"}};
}

// The one message a derivation gives for an event: its type, key, correlation and exact text.
struct Expected {
  std::string what;
  eventstore::RecordedEvent event;
  const char* type;
  const char* key;
  const char* text;
  const char* correlation_id = "";
};

void check_one(const std::vector<Draft>& drafts, const Expected& expected) {
  REQUIRE(drafts.size() == 1);
  const auto& d = drafts[0];
  CHECK(d.type == expected.type);
  CHECK(d.key == expected.key);
  CHECK(d.data.dump() == expected.text);
  CHECK(d.correlation_id == expected.correlation_id);
  CHECK_FALSE(d.once_per_key);
}

// Types neither derivation publishes anything for.
const std::vector<eventstore::RecordedEvent> kSilent{
    kInitiated,
    transfer_event("RetryScheduled", Json::parse(R"({"transfer_id": "t-1", "idempotency_key": "t-1",
                       "action": "inquiry", "attempt": 4, "due_at": "2026-11-26T09:01:00.000Z",
                       "reason": "outcome unknown"})")),
    transfer_event("ClearingOutcomeUnknown",
                   Json::parse(R"({"transfer_id": "t-1", "attempt": 3, "cause": "timeout",
                       "latency_ms": 5000})")),
    transfer_event(
        "ContradictingClearingAnswerReceived",
        Json::parse(R"({"transfer_id": "t-1", "attempt": 7, "terminal_state": "succeeded",
          "answer": "rejected", "clearing_reference": "", "reason_code": "AC04",
          "reason": "account closed", "received_at": "2026-11-26T09:00:00.001Z"})")),
    event(
        "incoming-payment-CR-IN-17", "IncomingPaymentParked",
        [] {
          auto data = kIncoming.data;
          data["reason_code"] = "AM03";
          data["reason"] = "currency EUR not processable";
          return data;
        }(),
        "e-parked", 1),
    event("incoming-payment-CR-IN-17", "IncomingPaymentReturnedByOperator",
          Json::parse(R"({"payment_id": "p-1", "clearing_reference": "CR-IN-17",
            "operator": "operator-7", "reason": "payer asked"})"),
          "e-returned", 2),
};

}  // namespace

TEST_CASE("payments.v2: each transfer event gives its TransferStatusChanged, pinned") {
  const std::vector<Expected> cases{
      {"the first pending answer", kFirstPending, "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":false,)"
       R"("settlement_date":"2026-11-27","status":"PDNG","transfer_id":"t-1"})"},
      {"under investigation", transfer_event("TransferUnderInvestigation", kInvestigationData),
       "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":{"attempts":6,"last_error":"timeout","since":"2026-11-26T10:00:00.000Z"},)"
       R"("reason":null,"resolved_manually":false,"settlement_date":null,"status":"PDNG",)"
       R"("transfer_id":"t-1"})"},
      {"settled", transfer_event("TransferSettled", kSettledData), "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":false,)"
       R"("settlement_date":"2026-11-26","status":"ACSC","transfer_id":"t-1"})"},
      {"rejected by the clearing", transfer_event("TransferRejected", kRejectedData),
       "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":null,"reason":{"code":"AC04","text":"account closed"},)"
       R"("resolved_manually":false,"settlement_date":null,"status":"RJCT","transfer_id":"t-1"})"},
      {"a duplicate request refused: the second request's correlation",
       transfer_event("DuplicateTransferRequestRefused", kDuplicateData), "TransferStatusChanged",
       "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":null,"reason":{"code":"DUPL","text":"different request"},)"
       R"("resolved_manually":false,"settlement_date":null,"status":"RJCT","transfer_id":"t-1"})",
       "corr-2"},
      {"resolved by hand as settled",
       transfer_event("TransferResolvedManually", resolved("succeeded", "2026-11-26", "")),
       "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":true,)"
       R"("settlement_date":"2026-11-26","status":"ACSC","transfer_id":"t-1"})"},
      {"resolved by hand as rejected",
       transfer_event("TransferResolvedManually", resolved("rejected", "", "AC04")),
       "TransferStatusChanged", "t-1",
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":null,"reason":{"code":"AC04","text":"confirmed by phone"},)"
       R"("resolved_manually":true,"settlement_date":null,"status":"RJCT","transfer_id":"t-1"})"},
      {"an incoming payment: as in v1", kIncoming, "IncomingPaymentReceived", "p-1", kIncomingText},
  };
  const auto context = context_of_transfer();
  for (const auto& c : cases) {
    CAPTURE(c.what);
    check_one(derive_payments_v2(c.event, context), c);
  }
  // The incoming payment is v1's message, the same text.
  const auto v1 = derive_payments_v1(kIncoming, context);
  REQUIRE(v1.size() == 1);
  CHECK(v1[0].data.dump() == kIncomingText);
}

TEST_CASE("payments.v2: only a transfer's first pending answer is published") {
  const auto context = context_of_transfer();
  CHECK(derive_payments_v2(kFirstPending, context).size() == 1);
  const auto again = transfer_event("TransferAcceptedPending", kPendingData, "e-pending-2");
  CHECK(derive_payments_v2(again, context).empty());
  // Without the first (a look-up that found nothing) nothing is published either.
  const DerivationContext nothing{
      [](const std::string&, const std::string&) -> std::optional<eventstore::RecordedEvent> {
        return std::nullopt;
      }};
  CHECK(derive_payments_v2(kFirstPending, nothing).empty());
}

TEST_CASE("payments.v2: a transfer whose initiation is unknown is published with amount null") {
  const DerivationContext nothing{
      [](const std::string&, const std::string&) -> std::optional<eventstore::RecordedEvent> {
        return std::nullopt;
      }};
  const auto drafts = derive_payments_v2(transfer_event("TransferSettled", kSettledData), nothing);
  REQUIRE(drafts.size() == 1);
  CHECK(drafts[0].data.dump() ==
        R"({"amount":null,"clearing_reference":"CR-1","investigation":null,"reason":null,)"
        R"("resolved_manually":false,"settlement_date":"2026-11-26","status":"ACSC",)"
        R"("transfer_id":"t-1"})");
}

TEST_CASE("payments.v2 and positions.v1 derive nothing from the types they leave alone") {
  const auto context = context_of_transfer();
  for (const auto& e : kSilent) {
    CAPTURE(e.type);
    CHECK(derive_payments_v2(e, context).empty());
    CHECK(derive_positions_v1(e, context).empty());
  }
  for (const char* type : {"TransferAcceptedPending", "TransferRejected",
                           "TransferUnderInvestigation", "DuplicateTransferRequestRefused"}) {
    CAPTURE(type);
    CHECK(derive_positions_v1(transfer_event(type, kRejectedData), context).empty());
  }
  CHECK(derive_positions_v1(
            transfer_event("TransferResolvedManually", resolved("rejected", "", "AC04")), context)
            .empty());
}

TEST_CASE("positions.v1: each settlement gives its day's delta, folded into NetPositionChanged") {
  const std::vector<Expected> cases{
      {"an outgoing transfer settled", transfer_event("TransferSettled", kSettledData),
       "NetPositionChanged", "2026-11-26",
       R"({"amount":{"currency":"DKK","minor_units":125000},"direction":"outgoing",)"
       R"("settlement_date":"2026-11-26"})"},
      {"resolved by hand as settled, with its date",
       transfer_event("TransferResolvedManually", resolved("succeeded", "2026-11-25", "")),
       "NetPositionChanged", "2026-11-25",
       R"({"amount":{"currency":"DKK","minor_units":125000},"direction":"outgoing",)"
       R"("settlement_date":"2026-11-25"})"},
      {"resolved by hand as settled, without a date: the day it was recorded",
       transfer_event("TransferResolvedManually", resolved("succeeded", "", "")),
       "NetPositionChanged", "2026-11-28",
       R"({"amount":{"currency":"DKK","minor_units":125000},"direction":"outgoing",)"
       R"("settlement_date":"2026-11-28"})"},
      {"an incoming payment recorded: the day it was received", kIncoming, "NetPositionChanged",
       "2026-11-26",
       R"({"amount":{"currency":"DKK","minor_units":50000},"direction":"incoming",)"
       R"("settlement_date":"2026-11-26"})"},
  };
  const auto context = context_of_transfer();
  for (const auto& c : cases) {
    CAPTURE(c.what);
    check_one(derive_positions_v1(c.event, context), c);
  }

  // The registry's positions.v1 folds; the messages a day's deltas become.
  const auto positions = find_derivation("positions.v1");
  REQUIRE(positions.has_value());
  REQUIRE((positions->fold != nullptr));
  CHECK((positions->derive == &derive_positions_v1));
  Json state = Json::object();
  std::vector<std::string> published;
  for (const auto& e : {transfer_event("TransferSettled", kSettledData), kIncoming}) {
    const auto drafts = positions->derive(e, context);
    REQUIRE(drafts.size() == 1);
    const auto folded = positions->fold(drafts[0], state);
    REQUIRE_MESSAGE(folded.has_value(), (folded ? "" : folded.error()));
    CHECK(folded->type == "NetPositionChanged");
    CHECK(folded->key == "2026-11-26");
    published.push_back(folded->data.dump());
  }
  CHECK(published ==
        std::vector<std::string>{R"({"amounts_unknown":0,"count":1,)"
                                 R"("incoming_total":{"currency":"DKK","minor_units":0},)"
                                 R"("net":{"currency":"DKK","minor_units":-125000},)"
                                 R"("outgoing_total":{"currency":"DKK","minor_units":125000},)"
                                 R"("settlement_date":"2026-11-26"})",
                                 R"({"amounts_unknown":0,"count":2,)"
                                 R"("incoming_total":{"currency":"DKK","minor_units":50000},)"
                                 R"("net":{"currency":"DKK","minor_units":-75000},)"
                                 R"("outgoing_total":{"currency":"DKK","minor_units":125000},)"
                                 R"("settlement_date":"2026-11-26"})"});
  // A delta of another currency fails the fold (the batch): never a wrong total.
  auto eur = kIncoming;
  eur.data["amount"]["currency"] = "EUR";
  const auto refused = positions->fold(positions->derive(eur, context)[0], state);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == "PositionDelta.amount.currency differs from the day's DKK");
}

TEST_CASE("the registry names the four built-in derivations; only positions.v1 folds") {
  const std::map<std::string, DerivationFn> expected{{"payments.v1", &derive_payments_v1},
                                                     {"settlements.v1", &derive_settlements_v1},
                                                     {"payments.v2", &derive_payments_v2},
                                                     {"positions.v1", &derive_positions_v1}};
  REQUIRE(derivations().size() == expected.size());
  for (const auto& d : derivations()) {
    CAPTURE(d.name);
    REQUIRE(expected.count(d.name) == 1);
    CHECK((d.derive == expected.at(d.name)));
    CHECK((d.fold != nullptr) == (d.name == "positions.v1"));
  }
  CHECK_FALSE(find_derivation("payments.v3").has_value());
}

TEST_CASE(
    "a parked payment an operator booked is published as a recorded one is, on every "
    "stream; one returned is not published") {
  auto booked_data = kIncoming.data;
  booked_data["settlement_date"] = "2026-11-26";
  booked_data["corrected_fields"] = Json::array({"amount"});
  booked_data["operator"] = "operator-7";
  booked_data["reason"] = "converted at 7.46";
  const auto booked = event("incoming-payment-CR-IN-17", "IncomingPaymentBookedByOperator",
                            booked_data, "e-booked", 2);
  const auto context = context_of_transfer();
  for (const auto& [name, derive] :
       std::vector<std::pair<const char*, DerivationFn>>{{"payments.v1", &derive_payments_v1},
                                                         {"settlements.v1", &derive_settlements_v1},
                                                         {"payments.v2", &derive_payments_v2},
                                                         {"positions.v1", &derive_positions_v1}}) {
    CAPTURE(name);
    const auto from_recorded = derive(kIncoming, context);
    const auto from_booked = derive(booked, context);
    REQUIRE(from_booked.size() == 1);
    REQUIRE(from_recorded.size() == 1);
    CHECK(from_booked[0].type == from_recorded[0].type);
    CHECK(from_booked[0].key == from_recorded[0].key);
    CHECK(from_booked[0].data == from_recorded[0].data);  // no operator, no reason on the wire
    const auto returned = kSilent.back();
    CHECK(returned.type == "IncomingPaymentReturnedByOperator");
    CHECK(derive(returned, context).empty());
  }
}
