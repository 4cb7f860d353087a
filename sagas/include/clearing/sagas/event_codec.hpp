#pragma once
// Stored form of a decider's events: (type, schema version, JSON object) for the event store,
// one codec per event variant (TransferCodec, IncomingPaymentCodec). Type names are the
// events' kType, persisted for ever: renaming one, or changing a field's meaning, is a new
// schema version with an upcaster (upcasters.hpp; golden tests guard this). encode writes
// the current version's shape and schema_version names it; decode reads any version the
// codec ever wrote. Timestamps are RFC 3339 text in UTC; amounts and accounts as in
// docs/streams.md.
// Never throws: decode answers malformed data with a DecodeError (eventstore/decider.hpp):
// its code, the field at fault and a message naming the type and the field, never a value.
//
// The members are defined once for every variant (src/json_fields.hpp) and instantiated in
// the variant's codec source, where the field list of each of its events is written.

#include <nlohmann/json_fwd.hpp>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/upcasters.hpp"

namespace clearing::sagas {

template <class Event>
struct EventCodec {
  static std::string_view event_type(const Event& event);
  // The current schema version of the event's type: what encode writes.
  static SchemaVersion schema_version(const Event& event);
  // The current schema version of `type` (1 for a type the codec does not know).
  static SchemaVersion current_version(std::string_view type);
  // The codec's upcasters, each type's in version order.
  static std::span<const Upcaster> upcasters();
  static nlohmann::json encode(const Event& event);
  // Data stored at `version`: upcast to the current version, then read.
  static tl::expected<Event, eventstore::DecodeError> decode(std::string_view type,
                                                             SchemaVersion version,
                                                             const nlohmann::json& data);
  // Data at the type's current version (as encode writes it).
  static tl::expected<Event, eventstore::DecodeError> decode(std::string_view type,
                                                             const nlohmann::json& data);
};

}  // namespace clearing::sagas
