#pragma once
// bench_e2e phase 1, sustained: core-sim publishes as fast as it can (or held at a rate) on
// a fresh system with one clearing latency; after the warm-up, a window of --seconds (or
// until 95% of --transfers resolved) gives the resolved rate and the cost per transfer; then
// core-sim is restarted on exactly what it processed, and every transfer must resolve
// exactly once (bench/e2e_main.cpp describes the figures).
//
// Thread safety: runs on the caller's thread. Errors: Failure when a process breaks, a phase
// outlasts its limit or a transfer does not resolve exactly once.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "e2e_common.hpp"
#include "e2e_database.hpp"
#include "e2e_options.hpp"
#include "e2e_system.hpp"

namespace clearing::bench::e2e {

// With a clearing latency, the adapter's concurrency caps its calls: calls_in_flight_max
// per latency, 16 per 50 ms = 320/s as shipped. Publishing
// faster than that only builds a backlog, which the drain after the window then took
// three and a half minutes to clear, without moving the resolved rate. Unless --load-rate
// says otherwise, core-sim is held at 1.5 times the cap: the backlog still grows, so the
// pipeline, not the publisher, sets the rate in the window.
constexpr double kPublishOverClearingCap = 1.5;

struct Sustained {
  int latency_ms = 0;
  SpeedProbes speed;
  double publish_rate = 0;        // core-sim --rate (0: as fast as it can)
  bool held_at_cap = false;       // publish_rate = kPublishOverClearingCap x clearing_cap_per_s
  double clearing_cap_per_s = 0;  // calls/s the adapter's concurrency allows at this latency
  double window_s = 0;
  std::int64_t requested = 0, resolved = 0;  // in the window
  std::int64_t backlog_start = 0, backlog_end = 0;
  std::string where_at_end;  // where the open transfers were when the window ended
  std::vector<double> resolved_per_s_by_third;  // does the rate hold over the window?
  double requested_per_s = 0, resolved_per_s = 0;
  double warmup_s = 0;  // core-sim start -> window start
  std::int64_t adapter_commits = 0, core_commits = 0, adapter_rollbacks = 0, core_rollbacks = 0;
  std::int64_t writing_transactions = 0;
  double adapter_active_s = 0, core_active_s = 0;  // PostgreSQL statement time in the window
  // Whole run: from the empty databases to the stopped processes, per transfer.
  std::int64_t total_transfers = 0;
  std::int64_t total_adapter_commits = 0, total_core_commits = 0;
  int adapter_connections = 0, core_connections = 0;
  std::int64_t adapter_hwm_kb = 0, adapter_rss_kb = 0;
  std::map<std::string, double> cpu_s;  // in the window
  double machine_busy_share = 0;        // of all cores, every user of the machine
  double drain_s = 0;
  std::int64_t succeeded = 0, rejected = 0;
  std::optional<double> submit_mean_ms;
  std::map<std::string, double> answers;    // class -> count (submit)
  std::vector<std::string> top_statements;  // per resolved transfer, with --statements
};

// One sustained run at `latency_ms` (its own system and databases); `server` reads the
// server's counters around it.
Sustained run_sustained(const Options& options, int latency_ms, ServerProbe& server);

// A run of another phase on the sustained run's steps (the degrading clearing's): its own
// label, databases, system settings and publishing rate, and what it reads from the running
// system on the way. Each hook is optional.
struct SustainedSpec {
  std::string label, slug;
  int latency_ms = 0;
  SystemExtras extras;
  std::optional<double> publish_rate;  // core-sim --rate; unset: as the sustained phase
  // Every sample (about once a second) from core-sim's start to the window's end, with the
  // seconds since core-sim started.
  std::function<void(System&, double)> on_sample;
  // At the window's start, and at its end before the drain.
  std::function<void(System&)> on_window_start, on_window_end;
};

Sustained run_sustained(const Options& options, const SustainedSpec& spec, ServerProbe& server);

}  // namespace clearing::bench::e2e
