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

// Hostile input from the core's side (issue 16, item 4): what once stopped every partition
// of the country. Each must end parked with a reason, or, where the core requested the
// transfer (nul_in_field, oversize_field), that transfer rejected FF01; the flow of every
// partition goes on.
//   invalid_utf8         not JSON, with bytes that are not UTF-8 (straight onto Kafka)
//   nul_in_field         `\u0000` in the remittance of a transfer the core requested: Kafka
//                        gets this copy first at the core's seq, the core's stream keeps one
//                        it can store (a remittance over 140 characters: FF01 as well), so
//                        FF01 is right whichever copy the adapter reads
//   long_transfer_id     a transfer_id of 300 bytes (appended to the core's stream)
//   control_transfer_id  a transfer_id with control characters (appended to the core's stream)
//   oversize_field       a name, account id or remittance of 300 KB in a transfer the core
//                        requested (appended to the core's stream)
//   seq_jump             a valid-looking message with seq = the core's head + 10^12 (Kafka)
//   envelope_core_seq    an envelope fault (data not an object) at the core's next seq, in
//                        its stream: the catch-up API serves the same bad message
enum class HostileInput {
  invalid_utf8,
  nul_in_field,
  long_transfer_id,
  control_transfer_id,
  oversize_field,
  seq_jump,
  envelope_core_seq
};
inline constexpr int kHostileInputClasses = 7;
const char* to_string(HostileInput kind) noexcept;

// Defaults: the full run. CI runs a short one (tests/CMakeLists.txt).
struct Plan {
  std::uint64_t seed = 1;
  int transfers = 10'000;
  double rate_per_s = 100;  // the core's request rate: the run lasts about transfers / rate
  int kills = 20;           // SIGKILLs of an adapter process
  int broker_outages = 3;   // a broker down, then up again
  int brokers = 3;
  int pg_restarts = 1;    // fast shutdown, start again
  int bad_per_class = 2;  // bad inputs of each class
  int adapters = 2;
  int hostile_per_class = 2;       // hostile inputs of each HostileInput class
  int inbound_partitions = 4;      // of the core's stream: hostile inputs are spread over them
  double hostile_clearing = 0.01;  // probability of each hostile clearing answer class
};

enum class ActionKind { kill_adapter, broker_outage, pg_restart, inject, hostile_input };
const char* to_string(ActionKind kind) noexcept;

struct Action {
  double at_s = 0;  // seconds after the core starts requesting
  ActionKind kind = ActionKind::kill_adapter;
  int target = 0;     // adapter index, broker id (1-based), BadInput or HostileInput
  double hold_s = 0;  // kill: until the restart; outage and restart: until back up
  int partition = 0;  // hostile_input: the inbound partition it goes to
};

// Sorted by time; every action falls in the window the core is requesting in (from 5% to
// 90% of transfers / rate), so that each lands while work is in flight. The hostile inputs
// are drawn after everything else, so a plan without them gives the schedule it gave before
// they existed; the i-th input of class c goes to partition (c + i) mod partitions: each
// class on as many partitions as it has inputs, every partition hit once there are enough.
std::vector<Action> make_schedule(const Plan& plan);
std::string describe(const Action& action);

}  // namespace clearing::chaos
