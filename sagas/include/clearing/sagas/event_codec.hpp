#pragma once
// Stored form of a decider's events: (type, JSON object) pairs for the event store, one
// codec per event variant (TransferCodec, IncomingPaymentCodec). Type names are the events'
// kType, persisted for ever: renaming one, or changing a field's meaning, is a new event
// version with an upcaster (golden tests guard this). Timestamps are RFC 3339 text in UTC;
// amounts and accounts as in docs/streams.md.
// Never throws: decode answers malformed data with a DecodeError (eventstore/decider.hpp):
// its code, the field at fault and a message naming the type and the field, never a value.
//
// The members are defined once for every variant (src/json_fields.hpp) and instantiated in
// the variant's codec source, where the field list of each of its events is written.

#include <nlohmann/json_fwd.hpp>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/decider.hpp"

namespace clearing::sagas {

template <class Event>
struct EventCodec {
  static std::string_view event_type(const Event& event);
  static nlohmann::json encode(const Event& event);
  static tl::expected<Event, eventstore::DecodeError> decode(std::string_view type,
                                                             const nlohmann::json& data);
};

}  // namespace clearing::sagas
