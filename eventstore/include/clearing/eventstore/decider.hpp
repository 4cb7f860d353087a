#pragma once
// The Decider pattern (Chassaing): an aggregate is three pure functions.
//   D::initial_state()          -> State
//   D::evolve(State, Event)     -> State          (never fails)
//   D::decide(Command, State)   -> expected<vector<Event>, Rejection>
// Returning no events means "already done": that is how commands stay idempotent.
// Time and every other input arrive inside the command; a decider reads no clock.
//
// A codec turns a decider's events into stored (type, JSON) pairs and back:
//   C::event_type(Event)             -> std::string_view   (stable, persisted)
//   C::encode(Event)                 -> nlohmann::json     (an object)
//   C::decode(type, json)            -> expected<Event, DecodeError>
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
  not_an_object,  // the data is not a JSON object
  unknown_type,   // no event of the codec has this type name
  missing_field,  // a listed field is absent
  invalid_field,  // a listed field has the wrong JSON type, is out of range or unparsable
};

inline constexpr base::NameTable<DecodeErrc, 4> kDecodeErrcNames{{
    {DecodeErrc::not_an_object, "not_an_object"},
    {DecodeErrc::unknown_type, "unknown_type"},
    {DecodeErrc::missing_field, "missing_field"},
    {DecodeErrc::invalid_field, "invalid_field"},
}};
static_assert(base::lists_every_enumerator(kDecodeErrcNames, DecodeErrc::invalid_field));

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
