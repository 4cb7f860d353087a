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
//   C::decode(type, json)            -> expected<Event, std::string>
// This header is pure (std and tl::expected): the sagas library includes it.

#include <concepts>
#include <tl/expected.hpp>
#include <vector>

namespace clearing::eventstore {

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
