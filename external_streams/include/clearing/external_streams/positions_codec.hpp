#pragma once
// The codec of adapter.<cc>.positions.v1 (docs/streams.md): a stream that publishes what no
// internal event says, the bank's net position at the clearing per settlement date,
// NetPositionChanged, after each settled outgoing transfer and each recorded incoming
// payment. Its messages fold running totals kept in the deriving transaction
// (derived_stream_state): the derivation turns each settlement into a change of one day's
// position (a PositionDelta), and fold_position adds it to that day's totals.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/external_streams/payments_codec.hpp"

namespace clearing::external_streams::positions {

// One settlement's share in its day's position: what the derivation hands to the fold.
struct PositionDelta {
  std::string settlement_date;  // YYYY-MM-DD: the entity (Kafka key) of the stream
  bool outgoing = true;
  std::optional<payments::Amount> amount;  // null: the transfer's initiation is unknown
};

struct NetPositionChanged {
  static constexpr std::string_view kType = "NetPositionChanged";
  std::string settlement_date;
  std::string currency;  // empty while no amount of the day is known: the totals are then null
  std::int64_t outgoing_total = 0;   // minor units settled out that day
  std::int64_t incoming_total = 0;   // minor units settled in that day
  std::int64_t net = 0;              // incoming_total - outgoing_total (negative: the bank owes)
  std::int64_t count = 0;            // settlements in the totals
  std::int64_t amounts_unknown = 0;  // settlements counted without an amount (not in the totals)
  friend bool operator==(const NetPositionChanged&, const NetPositionChanged&) = default;
};

nlohmann::json encode(const PositionDelta& delta);
nlohmann::json encode(const NetPositionChanged& event);
tl::expected<NetPositionChanged, MessageError> decode_net_position_changed(
    const nlohmann::json& data);

// Adds one delta (encoded) to the day's totals (`state`, {} for a day not seen yet, updated in
// place) and returns the message that publishes the new totals.
tl::expected<NetPositionChanged, MessageError> fold_position(const nlohmann::json& delta,
                                                             nlohmann::json& state);

}  // namespace clearing::external_streams::positions
