#pragma once
// What /readyz answers and what the log says about readiness: each component's state as a
// word from a fixed vocabulary, never an error's text. A PostgreSQL error's DETAIL and
// CONTEXT carry the values of the row it failed on (account numbers, names), and /readyz
// answers without authentication; so the types here cannot carry a message at all. The
// states are logged once per change, not at every probe. Header only: included by
// service.cpp and its test.

#include <spdlog/spdlog.h>

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/types.hpp"

namespace clearing::adapter {

enum class ReadinessComponent {
  service,
  database,
  relay,
  inbound_consumer,
  derivation,
  dispatcher,
  incoming_poller
};

enum class ComponentState {
  ok,
  starting,     // not created or not started yet
  unavailable,  // cannot be reached (the database)
  failing,      // reached, but its last attempt failed (the relay, the dispatcher's claim,
                // the incoming poller's page: the database)
  stalled,      // holds work it cannot move (the inbound consumer, the derivation)
  degraded,     // some of its work is held, the rest flows (the inbound consumer with some
                // partitions held; the incoming poller while the clearing's feed fails, as in
                // its maintenance windows): an alert on /metrics, still ready to serve
  not_joined,   // the inbound consumer has had no assignment from its group yet
  stopped,      // its thread has ended (the service is stopping)
};

// The words of /readyz and the log: one table per enumeration (base/name_table.hpp).
inline constexpr base::NameTable<ReadinessComponent, 7> kReadinessComponentNames{{
    {ReadinessComponent::service, "service"},
    {ReadinessComponent::database, "database"},
    {ReadinessComponent::relay, "relay"},
    {ReadinessComponent::inbound_consumer, "inbound_consumer"},
    {ReadinessComponent::derivation, "derivation"},
    {ReadinessComponent::dispatcher, "dispatcher"},
    {ReadinessComponent::incoming_poller, "incoming_poller"},
}};
static_assert(base::lists_every_enumerator(kReadinessComponentNames,
                                           ReadinessComponent::incoming_poller));

inline constexpr base::NameTable<ComponentState, 8> kComponentStateNames{{
    {ComponentState::ok, "ok"},
    {ComponentState::starting, "starting"},
    {ComponentState::unavailable, "unavailable"},
    {ComponentState::failing, "failing"},
    {ComponentState::stalled, "stalled"},
    {ComponentState::degraded, "degraded"},
    {ComponentState::not_joined, "not_joined"},
    {ComponentState::stopped, "stopped"},
}};
static_assert(base::lists_every_enumerator(kComponentStateNames, ComponentState::stopped));

inline std::string_view to_string(ReadinessComponent component) {
  return base::name_in(kReadinessComponentNames, component).value_or("unknown");
}

inline std::string_view to_string(ComponentState state) {
  return base::name_in(kComponentStateNames, state).value_or("unknown");
}

// What the service knows of a worker thread (the dispatcher, the incoming poller).
struct WorkerReadiness {
  bool created = false;          // the service has made it
  bool service_started = false;  // the service's start has finished: its workers were started
  bool running = false;          // its thread is between start() and the end of stop()
  bool failing = false;          // its last attempt failed in the database
  bool degraded = false;         // an outside dependency fails, the rest of its work goes on
};

// starting until made and started; stopped once its thread has ended; then failing,
// degraded or ok, in that order.
inline ComponentState worker_state(const WorkerReadiness& worker) {
  if (!worker.created) return ComponentState::starting;
  if (!worker.running)
    return worker.service_started ? ComponentState::stopped : ComponentState::starting;
  if (worker.failing) return ComponentState::failing;
  if (worker.degraded) return ComponentState::degraded;
  return ComponentState::ok;
}

struct ComponentReadiness {
  ReadinessComponent component = ReadinessComponent::service;
  ComponentState state = ComponentState::ok;
  // The class of the failure, for the log only (its name, e.g. connection_failed).
  std::optional<eventstore::StoreErrc> cause;
};

struct ReadinessAnswer {
  bool ready = false;
  // {"ready":false,"components":{"database":"unavailable",...}}: names and states only.
  std::string body;
  // "database=unavailable(connection_failed) relay=ok ...": the log's words.
  std::string summary;
};

// Thread safe: /readyz runs on any worker, concurrently with itself.
class ReadinessLog {
 public:
  explicit ReadinessLog(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

  // The answer for these states; logs them when they differ from the last ones observed:
  // becoming not ready is a warning once it has been ready, becoming ready is info.
  ReadinessAnswer observe(const std::vector<ComponentReadiness>& components) {
    ReadinessAnswer answer;
    answer.ready = true;
    std::string states;
    for (const auto& one : components) {
      const auto name = to_string(one.component);
      const auto state = to_string(one.state);
      answer.ready = answer.ready &&
                     (one.state == ComponentState::ok || one.state == ComponentState::degraded);
      states +=
          (states.empty() ? "\"" : ",\"") + std::string(name) + "\":\"" + std::string(state) + "\"";
      answer.summary +=
          (answer.summary.empty() ? "" : " ") + std::string(name) + "=" + std::string(state);
      if (one.cause) answer.summary += "(" + std::string(eventstore::to_string(*one.cause)) + ")";
    }
    answer.body = std::string("{\"ready\":") + (answer.ready ? "true" : "false") +
                  ",\"components\":{" + states + "}}";
    std::lock_guard lock(mutex_);
    if (last_summary_ == answer.summary) return answer;
    last_summary_ = answer.summary;
    if (answer.ready) {
      was_ready_ = true;
      log_->info("ready {}", answer.summary);
    } else if (was_ready_) {
      log_->warn("not ready {}", answer.summary);
    } else {
      log_->info("not ready yet {}", answer.summary);
    }
    return answer;
  }

 private:
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;
  std::optional<std::string> last_summary_;  // under mutex_
  bool was_ready_ = false;                   // under mutex_
};

}  // namespace clearing::adapter
