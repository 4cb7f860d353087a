#pragma once
// Private to config: the plain settings (numbers and booleans) of the sections whose every
// such setting the loader reads and redacted_summary writes, each listed once, in the order
// of the schema. The loader visits a list with a reader, the summary with a writer, so a
// setting added to one cannot be missing from the other.

#include <concepts>
#include <type_traits>

#include "clearing/config/config.hpp"

namespace clearing::config::fields {

// `Is<C> auto& c` binds both C& (the loader fills it) and const C& (the summary reads it).
template <class T, class U>
concept Is = std::same_as<std::remove_const_t<T>, U>;

// All required (read_retry says why).
void retry(Is<RetryConfig> auto& c, auto&& f) {
  f("backoff_initial_ms", c.backoff_initial_ms);
  f("backoff_max_ms", c.backoff_max_ms);
  f("backoff_multiplier", c.backoff_multiplier);
  f("unknown_outcomes_before_inquiry", c.unknown_outcomes_before_inquiry);
  f("pending_inquiry_interval_ms", c.pending_inquiry_interval_ms);
  f("investigation_inquiry_interval_ms", c.investigation_inquiry_interval_ms);
  f("deadline_ms", c.deadline_ms);
}

// All optional, with the defaults of DispatcherConfig.
void dispatcher(Is<DispatcherConfig> auto& c, auto&& f) {
  f("in_flight_max", c.in_flight_max);
  f("claim_batch_max", c.claim_batch_max);
  f("lease_ms", c.lease_ms);
  f("idle_poll_ms", c.idle_poll_ms);
  f("stop_grace_ms", c.stop_grace_ms);
  f("lease_by_session", c.lease_by_session);
}

// All required.
void incoming(Is<IncomingConfig> auto& c, auto&& f) {
  f("poll_interval_ms", c.poll_interval_ms);
  f("page_limit", c.page_limit);
}

// The numbers of the kafka section, all optional; its names and texts are read one by one.
void kafka_numbers(Is<KafkaConfig> auto& c, auto&& f) {
  f("produce_timeout_ms", c.produce_timeout_ms);
  f("session_timeout_ms", c.session_timeout_ms);
  f("relay_batch_max", c.relay_batch_max);
  f("consumer_batch_max", c.consumer_batch_max);
  f("fetch_wait_max_ms", c.fetch_wait_max_ms);
  f("relay_round_interval_min_ms", c.relay_round_interval_min_ms);
}

}  // namespace clearing::config::fields
