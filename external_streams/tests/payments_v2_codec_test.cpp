// Golden tests of adapter.<cc>.payments.v2's codec (TransferStatusChanged): every status
// encoded to its exact text and decoded back to the same value, every refusal with its exact
// message (the consumer parks with it as the reason), and what each status means to the core
// (outcome_of: the v1 outcome it stands for).

#include "clearing/external_streams/payments_v2_codec.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace clearing::external_streams;
using namespace clearing::external_streams::payments::v2;
using Json = nlohmann::json;

namespace {

struct Golden {
  std::string name;
  TransferStatusChanged event;
  const char* text;  // what encode(event).dump() writes, byte for byte
};

// One message of each status (and PDNG both with and without an investigation, RJCT both
// from the clearing and as a duplicate of unknown amount). Written by hand from the
// contract's shape: keys in order, null where the contract allows it, never absent.
std::vector<Golden> goldens() {
  const payments::Amount dkk{125000, "DKK"};
  return {
      {"PDNG, the clearing's pending answer",
       {.transfer_id = "t-1",
        .status = TransferStatus::pending,
        .amount = dkk,
        .clearing_reference = "CR-1",
        .settlement_date = "2026-11-27"},
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":false,)"
       R"("settlement_date":"2026-11-27","status":"PDNG","transfer_id":"t-1"})"},
      {"PDNG, under investigation",
       {.transfer_id = "t-1",
        .status = TransferStatus::pending,
        .amount = dkk,
        .investigation = Investigation{"2026-11-26T10:00:00.000Z", 6, "timeout"}},
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":{"attempts":6,"last_error":"timeout","since":"2026-11-26T10:00:00.000Z"},)"
       R"("reason":null,"resolved_manually":false,"settlement_date":null,"status":"PDNG",)"
       R"("transfer_id":"t-1"})"},
      {"ACSC, settled by the clearing",
       {.transfer_id = "t-1",
        .status = TransferStatus::settled,
        .amount = dkk,
        .clearing_reference = "CR-1",
        .settlement_date = "2026-11-26"},
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":false,)"
       R"("settlement_date":"2026-11-26","status":"ACSC","transfer_id":"t-1"})"},
      {"ACSC, resolved by hand",
       {.transfer_id = "t-1",
        .status = TransferStatus::settled,
        .amount = dkk,
        .clearing_reference = "CR-1",
        .settlement_date = "2026-11-26",
        .resolved_manually = true},
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":"CR-1",)"
       R"("investigation":null,"reason":null,"resolved_manually":true,)"
       R"("settlement_date":"2026-11-26","status":"ACSC","transfer_id":"t-1"})"},
      {"RJCT by the clearing",
       {.transfer_id = "t-1",
        .status = TransferStatus::rejected,
        .amount = dkk,
        .reason = StatusReason{"AC04", "account closed"}},
       R"({"amount":{"currency":"DKK","minor_units":125000},"clearing_reference":null,)"
       R"("investigation":null,"reason":{"code":"AC04","text":"account closed"},)"
       R"("resolved_manually":false,"settlement_date":null,"status":"RJCT","transfer_id":"t-1"})"},
      {"RJCT as a duplicate, its initiation unknown",
       {.transfer_id = "t-1",
        .status = TransferStatus::rejected,
        .reason = StatusReason{"DUPL", "different request"}},
       R"({"amount":null,"clearing_reference":null,"investigation":null,)"
       R"("reason":{"code":"DUPL","text":"different request"},"resolved_manually":false,)"
       R"("settlement_date":null,"status":"RJCT","transfer_id":"t-1"})"},
  };
}

// A valid PDNG message to spoil one field of.
Json valid() { return Json::parse(goldens()[1].text); }

std::string refusal(const Json& data) {
  const auto decoded = decode_transfer_status_changed(data);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code == MessageErrc::invalid_data);
  return decoded.error().message;
}

}  // namespace

TEST_CASE("TransferStatusChanged: every status encodes to its exact text and decodes back") {
  for (const auto& golden : goldens()) {
    CAPTURE(golden.name);
    CHECK(encode(golden.event).dump() == golden.text);
    const auto decoded = decode_transfer_status_changed(Json::parse(golden.text));
    REQUIRE_MESSAGE(decoded.has_value(), (decoded ? "" : decoded.error().message));
    CHECK(*decoded == golden.event);
  }
}

TEST_CASE("TransferStatusChanged: what each status is to the core (outcome_of)") {
  const auto all = goldens();
  struct Expected {
    const char* type;
    std::optional<std::string> clearing_reference;
    std::optional<std::string> reason_code;
  };
  const std::vector<Expected> expected{
      {"TransferPending", "CR-1", std::nullopt},
      {"TransferUnderInvestigation", std::nullopt, std::nullopt},
      {"TransferSucceeded", "CR-1", std::nullopt},
      {"TransferSucceeded", "CR-1", std::nullopt},
      {"TransferRejected", std::nullopt, "AC04"},
      {"TransferRejected", std::nullopt, "DUPL"},
  };
  REQUIRE(all.size() == expected.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    CAPTURE(all[i].name);
    const auto outcome = outcome_of(all[i].event);
    CHECK(outcome.type == expected[i].type);
    CHECK(outcome.transfer_id == "t-1");
    CHECK(outcome.clearing_reference == expected[i].clearing_reference);
    CHECK(outcome.reason_code == expected[i].reason_code);
    // The v1 type is one the core reads.
    CHECK(payments::is_transfer_outcome(outcome.type));
  }
  // A rejection whose code is empty leaves the meaning to the core.
  auto no_code = all[4].event;
  no_code.reason->code.clear();
  CHECK_FALSE(outcome_of(no_code).reason_code.has_value());
}

TEST_CASE("TransferStatusChanged: each refusal names its field and why") {
  const std::string long_text(payments::kTextFieldBytesMax + 1, 'x');
  struct Case {
    std::string what;
    Json data;
    std::string message;
  };
  const auto with = [](const char* field, Json value) {
    auto data = valid();
    data[field] = std::move(value);
    return data;
  };
  const auto without = [](const char* field) {
    auto data = valid();
    data.erase(field);
    return data;
  };
  const auto rejected = [](Json reason) {
    auto data = valid();
    data["status"] = "RJCT";
    data["investigation"] = nullptr;
    data["reason"] = std::move(reason);
    return data;
  };
  const std::vector<Case> cases{
      {"not an object", Json::array({1}), "TransferStatusChanged data is not an object"},
      {"a string", Json("TransferStatusChanged"), "TransferStatusChanged data is not an object"},
      {"transfer_id missing", without("transfer_id"),
       "TransferStatusChanged.transfer_id is missing"},
      {"status missing", without("status"), "TransferStatusChanged.status is missing"},
      {"amount missing", without("amount"), "TransferStatusChanged.amount is missing"},
      {"clearing_reference missing", without("clearing_reference"),
       "TransferStatusChanged.clearing_reference is missing"},
      {"settlement_date missing", without("settlement_date"),
       "TransferStatusChanged.settlement_date is missing"},
      {"reason missing", without("reason"), "TransferStatusChanged.reason is missing"},
      {"investigation missing", without("investigation"),
       "TransferStatusChanged.investigation is missing"},
      {"resolved_manually missing", without("resolved_manually"),
       "TransferStatusChanged.resolved_manually is missing"},
      {"transfer_id a number", with("transfer_id", 17),
       "TransferStatusChanged.transfer_id is not a string"},
      {"transfer_id null", with("transfer_id", nullptr),
       "TransferStatusChanged.transfer_id is not a string"},
      {"transfer_id with a space", with("transfer_id", "t 1"),
       "TransferStatusChanged.transfer_id is not a transfer id"},
      {"status lower case", with("status", "pdng"),
       "TransferStatusChanged.status is not PDNG, ACSC or RJCT"},
      {"status a v1 type", with("status", "TransferSucceeded"),
       "TransferStatusChanged.status is not PDNG, ACSC or RJCT"},
      {"status a number", with("status", 1), "TransferStatusChanged.status is not a string"},
      {"amount a number", with("amount", 125000),
       "TransferStatusChanged.amount is not an object or null"},
      {"amount's minor units a string",
       with("amount", {{"minor_units", "125000"}, {"currency", "DKK"}}),
       "TransferStatusChanged.amount.minor_units is not an integer"},
      {"amount's currency not ISO 4217", with("amount", {{"minor_units", 1}, {"currency", "dkk"}}),
       "TransferStatusChanged.amount.currency is not an ISO 4217 code"},
      {"clearing_reference a number", with("clearing_reference", 42),
       "TransferStatusChanged.clearing_reference is not a string"},
      {"settlement_date an object", with("settlement_date", Json::object()),
       "TransferStatusChanged.settlement_date is not a string"},
      {"clearing_reference with a NUL", with("clearing_reference", std::string("CR\0-1", 5)),
       "TransferStatusChanged.clearing_reference is not printable text of at most 1024 bytes"},
      {"settlement_date with a new line", with("settlement_date", "2026-11-26\n"),
       "TransferStatusChanged.settlement_date is not printable text of at most 1024 bytes"},
      {"clearing_reference too long", with("clearing_reference", long_text),
       "TransferStatusChanged.clearing_reference is not printable text of at most 1024 bytes"},
      {"investigation a string", with("investigation", "since yesterday"),
       "TransferStatusChanged.investigation is not an object or null"},
      {"investigation without since",
       with("investigation", {{"attempts", 6}, {"last_error", "timeout"}}),
       "TransferStatusChanged.investigation.since is missing"},
      {"investigation's attempts a string",
       with("investigation",
            {{"since", "2026-11-26T10:00:00.000Z"}, {"attempts", "6"}, {"last_error", "x"}}),
       "TransferStatusChanged.investigation.attempts is not an integer"},
      {"investigation's attempts beyond 2^63-1",
       with("investigation", {{"since", "2026-11-26T10:00:00.000Z"},
                              {"attempts", 9223372036854775808ULL},
                              {"last_error", "x"}}),
       "TransferStatusChanged.investigation.attempts is not an integer"},
      {"investigation's last error with a tab",
       with("investigation",
            {{"since", "2026-11-26T10:00:00.000Z"}, {"attempts", 6}, {"last_error", "time\tout"}}),
       "TransferStatusChanged.investigation.last_error is not printable text of at most 1024 "
       "bytes"},
      {"resolved_manually a string", with("resolved_manually", "false"),
       "TransferStatusChanged.resolved_manually is not true or false"},
      {"resolved_manually null", with("resolved_manually", nullptr),
       "TransferStatusChanged.resolved_manually is not true or false"},
      {"RJCT without a reason", rejected(nullptr), "TransferStatusChanged.reason is null for RJCT"},
      {"RJCT with a reason of a string", rejected("AC04"),
       "TransferStatusChanged.reason is not an object or null"},
      {"RJCT with a reason without code", rejected({{"text", "account closed"}}),
       "TransferStatusChanged.reason.code is missing"},
      {"RJCT with a reason's text a number", rejected({{"code", "AC04"}, {"text", 4}}),
       "TransferStatusChanged.reason.text is not a string"},
      {"RJCT with a NUL in the reason's text",
       rejected({{"code", "AC04"}, {"text", std::string("account\0closed", 14)}}),
       "TransferStatusChanged.reason.text is not printable text of at most 1024 bytes"},
      // The first problem in field order is the answer, whichever part of the message it is in.
      {"transfer_id missing and a bad amount",
       [&] {
         auto data = without("transfer_id");
         data["amount"] = {{"minor_units", "1"}, {"currency", "DKK"}};
         return data;
       }(),
       "TransferStatusChanged.transfer_id is missing"},
      {"status unknown and a bad investigation",
       [&] {
         auto data = with("status", "SETL");
         data["investigation"] = {{"attempts", 6}};
         return data;
       }(),
       "TransferStatusChanged.status is not PDNG, ACSC or RJCT"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    CHECK(refusal(c.data) == c.message);
  }
}

TEST_CASE("TransferStatusChanged: null where the contract allows it, any status with a reason") {
  auto data = valid();
  data["amount"] = nullptr;
  data["investigation"] = nullptr;
  const auto decoded = decode_transfer_status_changed(data);
  REQUIRE(decoded.has_value());
  CHECK_FALSE(decoded->amount.has_value());
  CHECK_FALSE(decoded->investigation.has_value());
  CHECK_FALSE(decoded->clearing_reference.has_value());
  CHECK_FALSE(decoded->settlement_date.has_value());
  // A field the contract does not know is ignored (a later minor version may add one).
  data["instructed_at"] = "2026-11-26T09:00:00.000Z";
  CHECK(decode_transfer_status_changed(data).has_value());
}
