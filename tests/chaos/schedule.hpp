#pragma once
// The chaos run's schedule: what goes wrong, and when, drawn from one seed before the run
// starts. The same plan gives the same schedule, action for action (pure; unit-tested).

#include <cstdint>
#include <string>
#include <vector>

namespace clearing::chaos {

// Every class of bad input the inbound consumer parks (external_streams::MessageErrc names).
enum class BadInput { not_json, missing_field, bad_seq, wrong_stream, unknown_type, invalid_data };
inline constexpr int kBadInputClasses = 6;
const char* to_string(BadInput kind) noexcept;

// Defaults: the full run. CI runs a short one (tests/CMakeLists.txt).
struct Plan {
  std::uint64_t seed = 1;
  int transfers = 10'000;
  double rate_per_s = 100;    // the core's request rate: the run lasts about transfers / rate
  int kills = 20;             // SIGKILLs of an adapter process
  int broker_outages = 3;     // a broker down, then up again
  int brokers = 3;
  int pg_restarts = 1;        // fast shutdown, start again
  int bad_per_class = 2;      // bad inputs of each class
  int adapters = 2;
};

enum class ActionKind { kill_adapter, broker_outage, pg_restart, inject };
const char* to_string(ActionKind kind) noexcept;

struct Action {
  double at_s = 0;      // seconds after the core starts requesting
  ActionKind kind = ActionKind::kill_adapter;
  int target = 0;       // adapter index, broker id (1-based) or BadInput
  double hold_s = 0;    // kill: until the restart; outage and restart: until back up
};

// Sorted by time; every action falls in the window the core is requesting in (from 5% to
// 90% of transfers / rate), so that each lands while work is in flight.
std::vector<Action> make_schedule(const Plan& plan);
std::string describe(const Action& action);

}  // namespace clearing::chaos
