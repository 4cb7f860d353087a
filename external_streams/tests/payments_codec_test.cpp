// Golden tests of the payment streams' codec: literal JSON from shared/contracts/streams.md,
// encoded to the exact text, decoded to the exact values, and one refusal per kind of bad
// field with its exact message (the adapter parks with it as the reason).

#include "clearing/external_streams/payments_codec.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>

using namespace clearing;
using namespace clearing::external_streams;
using namespace clearing::external_streams::payments;
using Json = nlohmann::json;

namespace {

// The contract's example of TransferRequested, copied as it stands.
constexpr const char* kContractTransferRequested =
    R"({ "transfer_id": "uuid", "account_id": "core's account id",
  "amount": { "minor_units": 125000, "currency": "DKK" },
  "debtor":   { "name": "Ada Lovelace",    "account": { "scheme": "BBAN", "id": "5301-0001234567" } },
  "creditor": { "name": "Charles Babbage", "account": { "scheme": "IBAN", "id": "DK5000400440116243" } },
  "remittance_info": "Invoice 42", "requested_at": "2026-11-26T09:00:00Z" })";

// What the encoder writes for it: keys in order, timestamps with milliseconds.
constexpr const char* kEncodedTransferRequested =
    R"({"account_id":"core's account id","amount":{"currency":"DKK","minor_units":125000},)"
    R"("creditor":{"account":{"id":"DK5000400440116243","scheme":"IBAN"},"name":"Charles Babbage"},)"
    R"("debtor":{"account":{"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"},)"
    R"("remittance_info":"Invoice 42","requested_at":"2026-11-26T09:00:00.000Z","transfer_id":"uuid"})";

base::Timestamp at(int hours, int milliseconds) {
  using namespace std::chrono;
  return base::Timestamp{duration_cast<base::Timestamp::duration>(
      sys_days{2026y / 11 / 26}.time_since_epoch() + hours * 1h + milliseconds * 1ms)};
}

TransferRequested contract_request() {
  return TransferRequested{.transfer_id = "uuid",
                           .account_id = "core's account id",
                           .amount = {125000, "DKK"},
                           .debtor = {"Ada Lovelace", {"BBAN", "5301-0001234567"}},
                           .creditor = {"Charles Babbage", {"IBAN", "DK5000400440116243"}},
                           .remittance_info = "Invoice 42",
                           .requested_at = at(9, 0)};
}

std::string refusal(const Json& data) {
  const auto decoded = decode_transfer_requested(data);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code == MessageErrc::invalid_data);
  return decoded.error().message;
}

}  // namespace

TEST_CASE(
    "TransferRequested: the contract's example decodes to its values and encodes to the exact "
    "text") {
  const auto decoded = decode_transfer_requested(Json::parse(kContractTransferRequested));
  REQUIRE(decoded.has_value());
  CHECK(*decoded == contract_request());
  CHECK(encode(contract_request()).dump() == kEncodedTransferRequested);
  const auto again = decode_transfer_requested(Json::parse(kEncodedTransferRequested));
  REQUIRE(again.has_value());
  CHECK(*again == contract_request());
}

TEST_CASE("TransferRequested: optional remittance info, milliseconds, lower-case schemes") {
  auto data = Json::parse(kContractTransferRequested);
  data.erase("remittance_info");
  data["requested_at"] = "2026-11-26T09:00:00.123Z";
  data["debtor"]["account"]["scheme"] = "bban";
  const auto decoded = decode_transfer_requested(data);
  REQUIRE(decoded.has_value());
  CHECK(decoded->remittance_info.empty());
  CHECK(decoded->requested_at == at(9, 123));
  CHECK(decoded->debtor.account.scheme == "BBAN");  // written back as the contract spells it
}

TEST_CASE(
    "TransferRequested: one refusal per kind of bad field, naming the field, never the value") {
  const auto good = Json::parse(kContractTransferRequested);
  const auto with = [&](auto change) {
    Json data = good;
    change(data);
    return data;
  };
  CHECK(refusal(Json::array()) == "TransferRequested.transfer_id is missing");
  CHECK(refusal(with([](Json& d) { d.erase("transfer_id"); })) ==
        "TransferRequested.transfer_id is missing");
  CHECK(refusal(with([](Json& d) { d["transfer_id"] = 42; })) ==
        "TransferRequested.transfer_id is not a string");
  CHECK(refusal(with([](Json& d) { d["transfer_id"] = "a b"; })) ==
        "TransferRequested.transfer_id must be 1..200 characters of [A-Za-z0-9._:-]");
  CHECK(refusal(with([](Json& d) { d["transfer_id"] = std::string(201, 't'); })) ==
        "TransferRequested.transfer_id must be 1..200 characters of [A-Za-z0-9._:-]");
  CHECK(refusal(with([](Json& d) { d.erase("account_id"); })) ==
        "TransferRequested.account_id is missing");
  CHECK(refusal(with([](Json& d) { d["amount"] = "125000 DKK"; })) ==
        "TransferRequested.amount is missing or not an object");
  CHECK(refusal(with([](Json& d) { d["amount"]["minor_units"] = 12.5; })) ==
        "TransferRequested.amount.minor_units is not an integer");
  CHECK(refusal(with([](Json& d) { d["amount"]["minor_units"] = std::uint64_t{1} << 63; })) ==
        "TransferRequested.amount.minor_units is beyond 2^63-1");
  CHECK(refusal(with([](Json& d) { d["amount"].erase("currency"); })) ==
        "TransferRequested.amount.currency is missing");
  CHECK(refusal(with([](Json& d) { d["amount"]["currency"] = "dkk"; })) ==
        "TransferRequested.amount.currency is not an ISO 4217 code");
  CHECK(refusal(with([](Json& d) { d["debtor"] = nullptr; })) ==
        "TransferRequested.debtor is missing or not an object");
  CHECK(refusal(with([](Json& d) { d["debtor"]["name"] = std::string("Ada\0Lovelace", 12); })) ==
        "TransferRequested.debtor.name has control characters");
  CHECK(refusal(with([](Json& d) { d["debtor"]["name"] = std::string(1025, 'a'); })) ==
        "TransferRequested.debtor.name is 1025 bytes, more than 1024");
  CHECK(refusal(with([](Json& d) { d["creditor"].erase("account"); })) ==
        "TransferRequested.creditor.account is missing");
  CHECK(refusal(with([](Json& d) { d["creditor"]["account"]["scheme"] = "SWIFT"; })) ==
        "TransferRequested.creditor.account.scheme must be IBAN or BBAN");
  CHECK(refusal(with([](Json& d) {
          d["creditor"]["account"]["id"] = std::string("DK\xff\xfe", 4);
        })) == "TransferRequested.creditor.account.id has control characters");
  CHECK(refusal(with([](Json& d) { d["remittance_info"] = nullptr; })) ==
        "TransferRequested.remittance_info is not a string");
  CHECK(refusal(with([](Json& d) { d["requested_at"] = "26/11/2026"; })) ==
        "TransferRequested.requested_at is not an RFC 3339 UTC time");
}

TEST_CASE("adapter.<cc>.payments.v1: each event encodes to the exact text") {
  CHECK(
      encode(TransferPending{.transfer_id = "t-1",
                             .clearing_reference = "CR-1",
                             .expected_settlement_date = "2026-11-27"})
          .dump() ==
      R"({"clearing_reference":"CR-1","expected_settlement_date":"2026-11-27","transfer_id":"t-1"})");
  CHECK(
      encode(TransferUnderInvestigation{.transfer_id = "t-1",
                                        .since = "2026-11-26T09:10:00.000Z",
                                        .attempts = 7,
                                        .last_error = "timeout"})
          .dump() ==
      R"({"attempts":7,"last_error":"timeout","since":"2026-11-26T09:10:00.000Z","transfer_id":"t-1"})");
  CHECK(encode(TransferSucceeded{.transfer_id = "t-1",
                                 .clearing_reference = "CR-1",
                                 .settlement_date = "2026-11-26"})
            .dump() ==
        R"({"clearing_reference":"CR-1","settlement_date":"2026-11-26","transfer_id":"t-1"})");
  CHECK(
      encode(TransferSucceeded{.transfer_id = "t-1",
                               .clearing_reference = "CR-1",
                               .settlement_date = "2026-11-26",
                               .resolved_manually = true})
          .dump() ==
      R"({"clearing_reference":"CR-1","resolved_manually":true,"settlement_date":"2026-11-26","transfer_id":"t-1"})");
  CHECK(encode(TransferRejected{
                   .transfer_id = "t-1", .reason_code = "AC04", .reason = "closed account"})
            .dump() == R"({"reason":"closed account","reason_code":"AC04","transfer_id":"t-1"})");
  CHECK(encode(TransferRejected{.transfer_id = "t-1",
                                .reason_code = "MS03",
                                .reason = "",
                                .resolved_manually = true})
            .dump() ==
        R"({"reason":"","reason_code":"MS03","resolved_manually":true,"transfer_id":"t-1"})");
  CHECK(
      encode(IncomingPaymentReceived{
                 .payment_id = "p-1",
                 .clearing_reference = "CR-IN-17",
                 .amount = Amount{50000, "DKK"},
                 .debtor = Party{"Ada Lovelace", {"BBAN", "5301-0001234567"}},
                 .creditor = Party{"Charles Babbage", {"IBAN", "DK5000400440116243"}},
                 .remittance_info = "Rent",
                 .received_at = "2026-11-26T09:00:00.000Z"})
          .dump() ==
      R"({"amount":{"currency":"DKK","minor_units":50000},"clearing_reference":"CR-IN-17",)"
      R"("creditor":{"account":{"id":"DK5000400440116243","scheme":"IBAN"},"name":"Charles Babbage"},)"
      R"("debtor":{"account":{"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"},)"
      R"("payment_id":"p-1","received_at":"2026-11-26T09:00:00.000Z","remittance_info":"Rent"})");
  CHECK(
      encode(IncomingPaymentReceived{.payment_id = "p-1"}).dump() ==
      R"({"amount":null,"clearing_reference":"","creditor":null,"debtor":null,"payment_id":"p-1",)"
      R"("received_at":"","remittance_info":""})");
}

TEST_CASE("adapter.<cc>.settlements.v1: each event encodes to the exact text") {
  CHECK(encode(OutgoingTransferSettled{.transfer_id = "t-1",
                                       .clearing_reference = "CR-1",
                                       .amount = Amount{125000, "DKK"},
                                       .settlement_date = "2026-11-26"})
            .dump() ==
        R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
        R"("settlement_date":"2026-11-26","transfer_id":"t-1"})");
  CHECK(encode(OutgoingTransferSettled{.transfer_id = "t-1"}).dump() ==
        R"({"amount":null,"clearing_reference":"","settlement_date":"","transfer_id":"t-1"})");
  CHECK(encode(IncomingPaymentSettled{.payment_id = "p-1",
                                      .clearing_reference = "CR-IN-17",
                                      .amount = Amount{50000, "DKK"},
                                      .settlement_date = "2026-11-26"})
            .dump() ==
        R"({"amount":{"currency":"DKK","minor_units":50000},"clearing_reference":"CR-IN-17",)"
        R"("payment_id":"p-1","settlement_date":"2026-11-26"})");
}

TEST_CASE(
    "the core reads the outcomes: transfer id required, the rest where it is a non-empty string") {
  CHECK(is_transfer_outcome("TransferSucceeded"));
  CHECK(is_transfer_outcome("TransferRejected"));
  CHECK(is_transfer_outcome("TransferPending"));
  CHECK(is_transfer_outcome("TransferUnderInvestigation"));
  CHECK_FALSE(is_transfer_outcome("IncomingPaymentReceived"));

  const auto succeeded = decode_transfer_outcome(
      "TransferSucceeded",
      Json::parse(
          R"({"transfer_id":"t-1","clearing_reference":"CR-1","settlement_date":"2026-11-26"})"));
  REQUIRE(succeeded.has_value());
  CHECK(succeeded->transfer_id == "t-1");
  CHECK(succeeded->clearing_reference == "CR-1");
  CHECK_FALSE(succeeded->reason_code.has_value());

  const auto rejected = decode_transfer_outcome(
      "TransferRejected",
      Json::parse(R"({"transfer_id":"t-1","reason_code":"AC04","reason":"closed"})"));
  REQUIRE(rejected.has_value());
  CHECK(rejected->reason_code == "AC04");
  CHECK_FALSE(rejected->clearing_reference.has_value());
  const auto reasonless = decode_transfer_outcome(
      "TransferRejected", Json::parse(R"({"transfer_id":"t-1","reason_code":""})"));
  REQUIRE(reasonless.has_value());
  CHECK_FALSE(reasonless->reason_code.has_value());  // the core decides what that means

  for (const char* bad : {R"({})", R"({"transfer_id":""})", R"({"transfer_id":7})", R"([1])"}) {
    const auto refused = decode_transfer_outcome("TransferPending", Json::parse(bad));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == MessageErrc::invalid_data);
    CHECK(refused.error().message == "transfer_id is missing");
  }
}

TEST_CASE("the core reads an incoming payment: payment id required, the amount where well typed") {
  const auto seen = decode_incoming_payment_received(
      Json::parse(R"({"payment_id":"p-1","amount":{"minor_units":50000,"currency":"DKK"}})"));
  REQUIRE(seen.has_value());
  CHECK(seen->payment_id == "p-1");
  CHECK(seen->minor_units == 50000);
  CHECK(seen->currency == "DKK");
  const auto partial = decode_incoming_payment_received(
      Json::parse(R"({"payment_id":"p-1","amount":{"minor_units":"x"}})"));
  REQUIRE(partial.has_value());
  CHECK_FALSE(partial->minor_units.has_value());
  CHECK_FALSE(partial->currency.has_value());
  const auto refused = decode_incoming_payment_received(Json::parse(R"({"amount":null})"));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message == "payment_id is missing");
}

TEST_CASE("amount and party alone: the shapes every event shares") {
  CHECK(encode_amount({125000, "DKK"}).dump() == R"({"currency":"DKK","minor_units":125000})");
  CHECK(encode_party({"Ada Lovelace", {"BBAN", "5301-0001234567"}}).dump() ==
        R"({"account":{"id":"5301-0001234567","scheme":"BBAN"},"name":"Ada Lovelace"})");
  const auto amount =
      decode_amount(Json::parse(R"({"minor_units":-5,"currency":"SEK"})"), "", "opening_balance");
  REQUIRE(amount.has_value());
  CHECK(*amount == Amount{-5, "SEK"});  // the sign is a rule of the decider, not of the shape
  const auto refused = decode_amount(Json::parse(R"({"minor_units":5})"), "", "opening_balance");
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message == "opening_balance.currency is missing");
}
