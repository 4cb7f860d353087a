#pragma once
// Stored form of the Transfer events: (type, JSON object) pairs for the event store.
// Type names are the events' kType, persisted for ever: renaming one, or changing a
// field's meaning, is a new event version with an upcaster (golden tests guard this).
// Timestamps are RFC 3339 text in UTC; amounts and accounts as in docs/streams.md.
// Never throws: decode answers malformed data with a DecodeError (eventstore/decider.hpp):
// its code, the field at fault and a message naming the type and the field, never a value.

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::sagas {

struct TransferCodec {
  static std::string_view event_type(const TransferEvent& event);
  static nlohmann::json encode(const TransferEvent& event);
  static tl::expected<TransferEvent, eventstore::DecodeError> decode(std::string_view type,
                                                                     const nlohmann::json& data);
};

}  // namespace clearing::sagas
