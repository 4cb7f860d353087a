#pragma once
// The Decider pattern (Chassaing): an aggregate is three pure functions.
//   D::initial_state()          -> State
//   D::evolve(State, Event)     -> State          (never fails)
//   D::decide(Command, State)   -> expected<vector<Event>, Rejection>
// Returning no events means "already done": that is how commands stay idempotent.
// Time and every other input arrive inside the command; a decider reads no clock.
//
// A codec turns a decider's events into stored (type, schema version, JSON) and back:
//   C::event_type(Event)             -> std::string_view   (stable, persisted)
//   C::schema_version(Event)         -> SchemaVersion      (its type's current version)
//   C::encode(Event)                 -> nlohmann::json     (an object, at that version)
//   C::decode(type, version, json)   -> expected<Event, DecodeError>
// decode reads every version the codec ever wrote: an older one is upcast to the current
// one first (the sagas codecs: sagas/upcasters.hpp). The store itself stays generic: it
// keeps the version it is given and hands it back.
// This header is pure (std, tl::expected and base's name table): the sagas library
// includes it.

#include <concepts>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/base/name_table.hpp"

namespace clearing::eventstore {

// Why stored data did not decode. Never retryable: the same bytes fail the same way; the
// event store reports it as StoreErrc::corrupt_data.
enum class DecodeErrc {
  not_an_object,    // the data is not a JSON object
  unknown_type,     // no event of the codec has this type name
  missing_field,    // a listed field is absent
  invalid_field,    // a listed field has the wrong JSON type, is out of range or unparsable
  unknown_version,  // a schema version this codec cannot read: newer than its current one
                    // (written by a later release), or with no upcaster from it
};

inline constexpr base::NameTable<DecodeErrc, 5> kDecodeErrcNames{{
    {DecodeErrc::not_an_object, "not_an_object"},
    {DecodeErrc::unknown_type, "unknown_type"},
    {DecodeErrc::missing_field, "missing_field"},
    {DecodeErrc::invalid_field, "invalid_field"},
    {DecodeErrc::unknown_version, "unknown_version"},
}};
static_assert(base::lists_every_enumerator(kDecodeErrcNames, DecodeErrc::unknown_version));

constexpr std::string_view to_string(DecodeErrc code) noexcept {
  return base::name_in(kDecodeErrcNames, code).value_or("unknown");
}

struct DecodeError {
  DecodeErrc code;
  std::string field;    // the field at fault (missing_field, invalid_field), else empty
  std::string message;  // "<type>: missing field <field>": names the field, never a value
  friend bool operator==(const DecodeError&, const DecodeError&) = default;
};

template <class D>
concept Decider = requires(const typename D::State& state, const typename D::Event& event,
                           const typename D::Command& command) {
  typename D::Rejection;
  { D::initial_state() } -> std::same_as<typename D::State>;
  { D::evolve(state, event) } -> std::same_as<typename D::State>;
  {
    D::decide(command, state)
    } -> std::same_as<tl::expected<std::vector<typename D::Event>, typename D::Rejection>>;
};

// Loading an aggregate: the fold of evolve over its events.
template <Decider D, class Range>
typename D::State fold(const Range& events) {
  typename D::State state = D::initial_state();
  for (const auto& event : events) state = D::evolve(state, event);
  return state;
}

}  // namespace clearing::eventstore
