// Golden tests of adapter.<cc>.positions.v1's codec: the PositionDelta a derivation hands to
// the fold and the NetPositionChanged it publishes, encoded to their exact texts and decoded
// back; the decoder's refusals with their messages; and fold_position over a day's sequence
// of settlements (outgoing, incoming, amount unknown, another currency).

#include "clearing/external_streams/positions_codec.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace clearing::external_streams;
using namespace clearing::external_streams::positions;
using Json = nlohmann::json;

namespace {

constexpr const char* kDay = "2026-11-26";

const NetPositionChanged kPosition{.settlement_date = kDay,
                                   .currency = "DKK",
                                   .outgoing_total = 2500,
                                   .incoming_total = 50000,
                                   .net = 47500,
                                   .count = 3,
                                   .amounts_unknown = 1};
constexpr const char* kPositionText =
    R"({"amounts_unknown":1,"count":3,"incoming_total":{"currency":"DKK","minor_units":50000},)"
    R"("net":{"currency":"DKK","minor_units":47500},)"
    R"("outgoing_total":{"currency":"DKK","minor_units":2500},"settlement_date":"2026-11-26"})";

Json delta(bool outgoing, std::optional<payments::Amount> amount, std::string day = kDay) {
  return encode(PositionDelta{std::move(day), outgoing, std::move(amount)});
}

std::string refusal(const Json& data) {
  const auto decoded = decode_net_position_changed(data);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code == MessageErrc::invalid_data);
  return decoded.error().message;
}

}  // namespace

TEST_CASE("PositionDelta encodes to its exact text, with or without an amount") {
  CHECK(delta(true, payments::Amount{1250, "DKK"}).dump() ==
        R"({"amount":{"currency":"DKK","minor_units":1250},"direction":"outgoing",)"
        R"("settlement_date":"2026-11-26"})");
  CHECK(delta(false, std::nullopt, "2026-11-27").dump() ==
        R"({"amount":null,"direction":"incoming","settlement_date":"2026-11-27"})");
}

TEST_CASE("NetPositionChanged encodes to its exact text and decodes back") {
  CHECK(encode(kPosition).dump() == kPositionText);
  const auto decoded = decode_net_position_changed(Json::parse(kPositionText));
  REQUIRE_MESSAGE(decoded.has_value(), (decoded ? "" : decoded.error().message));
  CHECK(*decoded == kPosition);
  // A day the bank owes: a negative net.
  NetPositionChanged owes = kPosition;
  owes.incoming_total = 0;
  owes.net = -2500;
  const auto again = decode_net_position_changed(encode(owes));
  REQUIRE(again.has_value());
  CHECK(*again == owes);
}

TEST_CASE("NetPositionChanged: each refusal with its message") {
  struct Case {
    std::string what;
    Json data;
    std::string message;
  };
  const auto with = [](const char* field, Json value) {
    auto data = Json::parse(kPositionText);
    data[field] = std::move(value);
    return data;
  };
  const auto without = [](const char* field) {
    auto data = Json::parse(kPositionText);
    data.erase(field);
    return data;
  };
  const std::vector<Case> cases{
      {"not an object", Json::array(), "NetPositionChanged data is not an object"},
      {"settlement_date missing", without("settlement_date"),
       "NetPositionChanged.settlement_date is missing"},
      {"settlement_date a number", with("settlement_date", 20261126),
       "NetPositionChanged.settlement_date is missing"},
      {"outgoing_total missing", without("outgoing_total"),
       "NetPositionChanged.outgoing_total is missing"},
      {"incoming_total missing", without("incoming_total"),
       "NetPositionChanged.incoming_total is missing"},
      {"net missing", without("net"), "NetPositionChanged.net is missing"},
      {"net a number", with("net", 47500), "NetPositionChanged.net is missing or not an object"},
      {"incoming_total's minor units a string",
       with("incoming_total", {{"minor_units", "50000"}, {"currency", "DKK"}}),
       "NetPositionChanged.incoming_total.minor_units is not an integer"},
      {"outgoing_total's currency not ISO 4217",
       with("outgoing_total", {{"minor_units", 2500}, {"currency", "kr."}}),
       "NetPositionChanged.outgoing_total.currency is not an ISO 4217 code"},
      {"the totals in two currencies", with("net", {{"minor_units", 47500}, {"currency", "EUR"}}),
       "NetPositionChanged.net.currency differs"},
      {"count missing", without("count"), "NetPositionChanged.count is not an integer"},
      {"count a string", with("count", "3"), "NetPositionChanged.count is not an integer"},
      {"amounts_unknown missing", without("amounts_unknown"),
       "NetPositionChanged.amounts_unknown is not an integer"},
      {"amounts_unknown a fraction", with("amounts_unknown", 1.5),
       "NetPositionChanged.amounts_unknown is not an integer"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    CHECK(refusal(c.data) == c.message);
  }
}

TEST_CASE("fold_position: a day's settlements folded one by one into its running totals") {
  Json state = Json::object();  // a day not seen yet
  struct Step {
    std::string what;
    Json delta;
    std::int64_t outgoing, incoming, net, count, unknown;
  };
  const std::vector<Step> steps{
      {"an outgoing transfer", delta(true, payments::Amount{1250, "DKK"}), 1250, 0, -1250, 1, 0},
      {"another outgoing", delta(true, payments::Amount{1250, "DKK"}), 2500, 0, -2500, 2, 0},
      {"an incoming payment", delta(false, payments::Amount{50000, "DKK"}), 2500, 50000, 47500, 3,
       0},
      {"an outgoing transfer whose amount is unknown", delta(true, std::nullopt), 2500, 50000,
       47500, 4, 1},
      {"an incoming payment whose amount is unknown", delta(false, std::nullopt), 2500, 50000,
       47500, 5, 2},
      {"an outgoing transfer of 0", delta(true, payments::Amount{0, "DKK"}), 2500, 50000, 47500, 6,
       2},
  };
  for (const auto& step : steps) {
    CAPTURE(step.what);
    const auto folded = fold_position(step.delta, state);
    REQUIRE_MESSAGE(folded.has_value(), (folded ? "" : folded.error().message));
    CHECK(*folded == NetPositionChanged{.settlement_date = kDay,
                                        .currency = "DKK",
                                        .outgoing_total = step.outgoing,
                                        .incoming_total = step.incoming,
                                        .net = step.net,
                                        .count = step.count,
                                        .amounts_unknown = step.unknown});
    // What is published decodes as a consumer reads it.
    const auto read = decode_net_position_changed(encode(*folded));
    REQUIRE(read.has_value());
    CHECK(*read == *folded);
  }
  // The state kept between batches, as derived_stream_state holds it.
  const std::string kept =
      R"({"amounts_unknown":2,"count":6,"currency":"DKK","incoming_total":50000,)"
      R"("outgoing_total":2500})";
  CHECK(state.dump() == kept);

  // Another currency on the same day is refused, and the state is left as it was.
  const auto eur = fold_position(delta(false, payments::Amount{100, "EUR"}), state);
  REQUIRE_FALSE(eur.has_value());
  CHECK(eur.error().message == "PositionDelta.amount.currency differs from the day's DKK");
  CHECK(state.dump() == kept);

  // So are a delta without its day or direction and a malformed amount.
  auto no_direction = delta(true, payments::Amount{1, "DKK"});
  no_direction.erase("direction");
  auto no_day = delta(true, payments::Amount{1, "DKK"});
  no_day["settlement_date"] = nullptr;
  for (const auto& bad : {no_direction, no_day}) {
    const auto refused = fold_position(bad, state);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message == "PositionDelta has no settlement_date or direction");
  }
  auto bad_amount = delta(true, payments::Amount{1, "DKK"});
  bad_amount["amount"]["minor_units"] = "1";
  const auto refused = fold_position(bad_amount, state);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message == "PositionDelta.amount.minor_units is not an integer");
  CHECK(state.dump() == kept);
}

TEST_CASE(
    "fold_position: the folds of a state read back from its JSON text go on where they were") {
  // The deriving transaction writes the state as jsonb and reads it back in the next batch.
  Json state = Json::object();
  REQUIRE(fold_position(delta(true, payments::Amount{1000, "SEK"}, "2026-11-27"), state));
  Json reread = Json::parse(state.dump());
  const auto next = fold_position(delta(false, payments::Amount{400, "SEK"}, "2026-11-27"), reread);
  REQUIRE(next.has_value());
  CHECK(*next == NetPositionChanged{.settlement_date = "2026-11-27",
                                    .currency = "SEK",
                                    .outgoing_total = 1000,
                                    .incoming_total = 400,
                                    .net = -600,
                                    .count = 2,
                                    .amounts_unknown = 0});
}

TEST_CASE(
    "fold_position: a day whose first settlement's amount is unknown takes the next one's "
    "currency") {
  Json state = Json::object();
  const auto first = fold_position(delta(true, std::nullopt), state);
  REQUIRE(first.has_value());
  CHECK(first->count == 1);
  CHECK(first->amounts_unknown == 1);
  CHECK(first->outgoing_total == 0);
  CHECK(first->net == 0);
  // No currency known yet: the totals are published as null, and read back as such.
  const auto published = encode(*first);
  CHECK(published.dump() == R"({"amounts_unknown":1,"count":1,"incoming_total":null,"net":null,)"
                            R"("outgoing_total":null,"settlement_date":"2026-11-26"})");
  const auto read_back = decode_net_position_changed(published);
  REQUIRE(read_back.has_value());
  CHECK(*read_back == *first);
  auto mixed = published;
  mixed["net"] = {{"minor_units", 0}, {"currency", "DKK"}};
  CHECK(decode_net_position_changed(mixed).error().message ==
        "NetPositionChanged totals are null only all together");
  const auto second = fold_position(delta(false, payments::Amount{700, "DKK"}), state);
  REQUIRE(second.has_value());
  CHECK(second->currency == "DKK");
  CHECK(second->count == 2);
  CHECK(second->incoming_total == 700);
  CHECK(second->net == 700);
}
