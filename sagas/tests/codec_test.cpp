// Golden JSON of every persisted event: the stored names and shapes are a contract with
// every event ever written. If one of these fails, do not edit the literal: add a new event
// version with an upcaster instead.

#include <doctest/doctest.h>

#include <array>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>
#include <vector>

#include "golden_events.hpp"

using namespace clearing::sagas;
using namespace clearing::sagas::golden;
using clearing::base::Timestamp;
using Json = nlohmann::json;
using clearing::eventstore::DecodeErrc;
using clearing::eventstore::DecodeError;
using clearing::eventstore::SchemaVersion;

namespace {

std::set<std::string> golden_types;  // proves that every event type has its golden

// A golden at its type's current version is what encode writes; every golden, of any
// version, reads back as the event (an older one through the codec's upcasters).
template <class Codec, class Event>
void check_golden(const Event& event, std::string_view type, SchemaVersion version,
                  const char* golden) {
  CAPTURE(type);
  CAPTURE(version.value());
  const Json stored = Json::parse(golden);
  CHECK(Codec::event_type(event) == type);
  if (version == Codec::schema_version(event)) {
    golden_types.insert(std::string(type));
    CHECK(Codec::encode(event).dump() == stored.dump());
  }
  const auto decoded = Codec::decode(type, version, stored);
  REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
  CHECK(*decoded == event);
}

}  // namespace

TEST_CASE("golden JSON of every Transfer event") {
  golden_types.clear();
  for (const auto& golden : transfer_goldens())
    check_golden<TransferCodec>(golden.event, golden.type, golden.version, golden.json.c_str());
  CHECK(golden_types.size() == std::variant_size_v<TransferEvent>);
}

TEST_CASE("golden JSON of every IncomingPayment event") {
  golden_types.clear();
  for (const auto& golden : incoming_payment_goldens())
    check_golden<IncomingPaymentCodec>(golden.event, golden.type, golden.version,
                                       golden.json.c_str());
  CHECK(golden_types.size() == std::variant_size_v<IncomingPaymentEvent>);
}

// The stored text of one of each event type at each of its versions: the goldens' `text`.
// At the current version, encode writes it byte for byte; at any version, it reads back.
TEST_CASE("stored JSON text of one of each event is byte-identical to its golden") {
  std::set<std::string> seen;
  const auto check_text = [&seen](const auto& golden) {
    using Codec =
        std::conditional_t<std::is_same_v<std::decay_t<decltype(golden.event)>, TransferEvent>,
                           TransferCodec, IncomingPaymentCodec>;
    CAPTURE(golden.type);
    CAPTURE(golden.version.value());
    if (golden.version == Codec::schema_version(golden.event)) {
      seen.insert(std::string(golden.type));
      CHECK(Codec::encode(golden.event).dump() == golden.text);
    }
    const auto decoded = Codec::decode(golden.type, golden.version, Json::parse(golden.text));
    REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
    CHECK(*decoded == golden.event);
  };
  for (const auto& golden : transfer_goldens()) check_text(golden);
  CHECK(seen.size() == std::variant_size_v<TransferEvent>);

  seen.clear();
  for (const auto& golden : incoming_payment_goldens()) check_text(golden);
  CHECK(seen.size() == std::variant_size_v<IncomingPaymentEvent>);
}

// Issue 19 item 6: what is stored today keeps loading after a change of shape.
TEST_CASE("every event type's stored version 1 text loads through the current codec") {
  std::set<std::string> loaded;
  const auto load_v1 = [&loaded](const auto& goldens, auto codec) {
    using Codec = decltype(codec);
    for (const auto& golden : goldens) {
      if (golden.version != SchemaVersion{1}) continue;
      CAPTURE(golden.type);
      const auto decoded = Codec::decode(golden.type, SchemaVersion{1}, Json::parse(golden.text));
      REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
      CHECK(*decoded == golden.event);
      loaded.insert(std::string(golden.type));
    }
  };
  load_v1(transfer_goldens(), TransferCodec{});
  load_v1(incoming_payment_goldens(), IncomingPaymentCodec{});
  CHECK(loaded.size() ==
        std::variant_size_v<TransferEvent> + std::variant_size_v<IncomingPaymentEvent>);
}

TEST_CASE("IncomingPaymentRecorded versions 1 and 2 load to the same payment") {
  CHECK(IncomingPaymentCodec::current_version("IncomingPaymentRecorded") == SchemaVersion{2});
  CHECK(IncomingPaymentCodec::current_version("IncomingPaymentParked") == SchemaVersion{1});
  CHECK(IncomingPaymentCodec::current_version("ConflictingIncomingPaymentReceived") ==
        SchemaVersion{1});
  for (const auto& golden : transfer_goldens())
    CHECK(TransferCodec::schema_version(golden.event) == SchemaVersion{1});

  const auto goldens = incoming_payment_goldens();
  std::vector<IncomingPaymentEvent> recorded;
  for (const auto& golden : goldens) {
    if (golden.type != "IncomingPaymentRecorded") continue;
    auto decoded =
        IncomingPaymentCodec::decode(golden.type, golden.version, Json::parse(golden.text));
    REQUIRE(decoded.has_value());
    recorded.push_back(*decoded);
  }
  REQUIRE(recorded.size() == 2);
  CHECK(recorded[0] == recorded[1]);
  CHECK(std::get<IncomingPaymentRecorded>(recorded[0]).settlement_date == "2026-11-26");

  // The settlement date is the UTC date of received_at, also late in the UTC day.
  Json late = Json::parse(goldens[0].text);
  late["received_at"] = "2026-11-26T23:59:59.999Z";
  auto upcast = IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{1}, late);
  REQUIRE(upcast.has_value());
  CHECK(std::get<IncomingPaymentRecorded>(*upcast).settlement_date == "2026-11-26");
}

TEST_CASE("a version the codec cannot read, or version 1 data it cannot upcast, is a typed error") {
  const Json v1 = Json::parse(incoming_payment_goldens()[0].text);
  for (const std::int32_t version : {3, 0, -1}) {
    CAPTURE(version);
    const auto decoded =
        IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{version}, v1);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code == DecodeErrc::unknown_version);
    CHECK(decoded.error().message == "IncomingPaymentRecorded: unknown schema version " +
                                         std::to_string(version) + ", this build reads 1 to 2");
  }
  // A Transfer event written by a later release.
  const auto later = TransferCodec::decode("TransferSettled", SchemaVersion{2},
                                           Json::parse(transfer_goldens()[4].text));
  REQUIRE_FALSE(later.has_value());
  CHECK(later.error().message ==
        "TransferSettled: unknown schema version 2, this build reads 1 to 1");
  // An unknown type is unknown whatever its version.
  CHECK(TransferCodec::decode("NoSuchEvent", SchemaVersion{7}, Json::object()).error().code ==
        DecodeErrc::unknown_type);

  // Version 1 data without a readable received_at: the upcaster derives nothing, and
  // decoding names the field at fault.
  Json broken = v1;
  broken["received_at"] = "yesterday";
  auto no_date = IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{1}, broken);
  REQUIRE_FALSE(no_date.has_value());
  CHECK(no_date.error().message == "IncomingPaymentRecorded: invalid field received_at");
  broken.erase("received_at");
  no_date = IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{1}, broken);
  REQUIRE_FALSE(no_date.has_value());
  CHECK(no_date.error().message == "IncomingPaymentRecorded: missing field received_at");
  CHECK(IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{1}, Json::array())
            .error()
            .code == DecodeErrc::not_an_object);
  // Version 2 data must carry the date.
  Json v2_without = v1;
  auto missing =
      IncomingPaymentCodec::decode("IncomingPaymentRecorded", SchemaVersion{2}, v2_without);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().field == "settlement_date");
}

namespace {
Json keep(Json data) { return data; }
}  // namespace

TEST_CASE("an upcaster chain must start at version 1 and have no gap") {
  constexpr std::array<Upcaster, 2> complete{
      {{"A", SchemaVersion{1}, &keep}, {"A", SchemaVersion{2}, &keep}}};
  static_assert(chains_are_complete(complete));
  static_assert(current_version(complete, "A") == SchemaVersion{3});
  static_assert(current_version(complete, "B") == SchemaVersion{1});
  constexpr std::array<Upcaster, 1> gap{{{"A", SchemaVersion{2}, &keep}}};
  static_assert(!chains_are_complete(gap));
  constexpr std::array<Upcaster, 2> reordered{
      {{"A", SchemaVersion{2}, &keep}, {"A", SchemaVersion{1}, &keep}}};
  static_assert(!chains_are_complete(reordered));
  constexpr std::array<Upcaster, 1> no_function{{{"A", SchemaVersion{1}, nullptr}}};
  static_assert(!chains_are_complete(no_function));
  CHECK(IncomingPaymentCodec::upcasters().size() == 1);
  CHECK(TransferCodec::upcasters().empty());
}

namespace {

// One malformed stored event: decoding it must fail with this code and message.
struct Malformed {
  std::string_view type;
  Json data;
  DecodeErrc code;
  std::string field;  // the field the error names, "" when none
  std::string message;
};

// `good` with one change made by `edit`.
Json edited(Json good, const std::function<void(Json&)>& edit) {
  edit(good);
  return good;
}

std::vector<Malformed> malformed_transfer_events() {
  const Json settled = TransferCodec::encode(TransferSettled{.transfer_id = "t-1",
                                                             .attempt = 1,
                                                             .clearing_reference = "CR-1",
                                                             .settlement_date = "2026-11-26",
                                                             .latency_ms = 42});
  const Json retry = TransferCodec::encode(RetryScheduled{.transfer_id = "t-1",
                                                          .idempotency_key = "t-1",
                                                          .action = ClearingAction::submit,
                                                          .attempt = 2,
                                                          .due_at = at(0),
                                                          .reason = "r"});
  // Any valid initiation: each case breaks one field of it.
  const Json initiated_data = TransferCodec::encode(initiated());
  const auto invalid = DecodeErrc::invalid_field;
  return {
      {"NoSuchEvent", settled, DecodeErrc::unknown_type, "", "unknown event type NoSuchEvent"},
      {"TransferSettled", Json::array(), DecodeErrc::not_an_object, "",
       "TransferSettled: data is not an object"},
      {"TransferSettled", Json("text"), DecodeErrc::not_an_object, "",
       "TransferSettled: data is not an object"},
      {"TransferSettled", edited(settled, [](Json& d) { d.erase("clearing_reference"); }),
       DecodeErrc::missing_field, "clearing_reference",
       "TransferSettled: missing field clearing_reference"},
      {"TransferSettled", edited(settled, [](Json& d) { d["attempt"] = "one"; }), invalid,
       "attempt", "TransferSettled: invalid field attempt"},
      {"TransferSettled", edited(settled, [](Json& d) { d["attempt"] = 1.5; }), invalid, "attempt",
       "TransferSettled: invalid field attempt"},
      {"TransferSettled", edited(settled, [](Json& d) { d["attempt"] = 5'000'000'000LL; }), invalid,
       "attempt", "TransferSettled: invalid field attempt"},  // beyond int32
      {"TransferSettled",
       edited(settled,
              [](Json& d) { d["latency_ms"] = std::numeric_limits<std::uint64_t>::max(); }),
       invalid, "latency_ms", "TransferSettled: invalid field latency_ms"},
      {"TransferSettled", edited(settled, [](Json& d) { d["transfer_id"] = nullptr; }), invalid,
       "transfer_id", "TransferSettled: invalid field transfer_id"},
      {"RetryScheduled", edited(retry, [](Json& d) { d["due_at"] = "2026-11-26 09:00:00"; }),
       invalid, "due_at", "RetryScheduled: invalid field due_at"},
      {"RetryScheduled", edited(retry, [](Json& d) { d["action"] = "resubmit"; }), invalid,
       "action", "RetryScheduled: invalid field action"},
      {"TransferInitiated",
       edited(initiated_data, [](Json& d) { d["amount"]["currency"] = "dkk"; }), invalid, "amount",
       "TransferInitiated: invalid field amount"},
      {"TransferInitiated",
       edited(initiated_data, [](Json& d) { d["debtor"]["account"]["scheme"] = "SWIFT"; }), invalid,
       "debtor", "TransferInitiated: invalid field debtor"},
      {"TransferInitiated",
       edited(initiated_data,
              [](Json& d) {
                d["creditor"] = Json::array({1, 2});
              }),
       invalid, "creditor", "TransferInitiated: invalid field creditor"},
  };
}

}  // namespace

TEST_CASE("decoding malformed data returns an error naming the problem, and never throws") {
  for (const auto& bad : malformed_transfer_events()) {
    CAPTURE(bad.message);
    tl::expected<TransferEvent, DecodeError> result =
        tl::unexpected(DecodeError{DecodeErrc::unknown_type, "", "not run"});
    CHECK_NOTHROW(result = TransferCodec::decode(bad.type, bad.data));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message == bad.message);
    CHECK(result.error().code == bad.code);
    CHECK(result.error().field == bad.field);
  }

  const auto incoming = IncomingPaymentCodec::decode("IncomingPaymentRecorded", Json::object());
  REQUIRE_FALSE(incoming.has_value());
  CHECK(incoming.error().message == "IncomingPaymentRecorded: missing field payment_id");
  CHECK(incoming.error().code == DecodeErrc::missing_field);
  CHECK(incoming.error().field == "payment_id");
}

TEST_CASE("fields added by a later version are ignored when reading") {
  Json data = TransferCodec::encode(
      ClearingReportedNotFound{.transfer_id = "t-1", .attempt = 5, .latency_ms = 4});
  data["added_later"] = {{"x", 1}};
  const auto decoded = TransferCodec::decode("ClearingReportedNotFound", data);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == TransferEvent{ClearingReportedNotFound{
                        .transfer_id = "t-1", .attempt = 5, .latency_ms = 4}});
}
