#pragma once
// bench_e2e phase 4, the degrading clearing (issue 20; off unless --degrading): clearing-mock
// with its capacity model (--degrading-capacity executors of --degrading-service-ms, slower
// by --degrading-thrash-permille as its queue grows, 503 OVERLOADED past
// --degrading-queue-max waiting), core-sim publishing faster than the executors carry. One
// run with the adapter's adaptive concurrency limit (clearing.concurrency_mode adaptive,
// clearing.in_flight_max 512, dispatcher.in_flight_max 1024), one per fixed cap of
// --degrading-caps (concurrency_mode fixed, clearing.in_flight_max = cap), and one adaptive
// run against a constant clearing latency without a capacity limit (--degrading-constant-ms),
// to set beside the sustained 0 ms rate. Each is a sustained run (e2e_sustained: warm-up,
// window of --degrading-seconds, drain, exactly-once check) on its own system.
// Figures: resolved/s in the window, the end-to-end latency (TransferRequested commit ->
// outcome applied) of the transfers whose outcome was applied in the window, the mock's 503s
// in the window and its peaks, the adapter's mean submit call in the window, and the path of
// the adapter's clearing_concurrency_limit gauge, read once a second.
//
// Thread safety: runs on the caller's thread. Errors: Failure as a sustained run's.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clearing/support/figures.hpp"
#include "e2e_common.hpp"
#include "e2e_database.hpp"
#include "e2e_options.hpp"

namespace clearing::bench::e2e {

// One run of the phase, before it runs.
struct DegradingSetup {
  std::string label;  // "adaptive", "fixed 32", "adaptive, constant 200 ms"
  bool adaptive = false;
  int cap = 0;          // clearing.in_flight_max: the fixed cap, or the adaptive limit's bound
  int constant_ms = 0;  // the constant clearing's latency; 0 in the capacity model's runs
};

// The runs, in order: adaptive, each fixed cap, the constant clearing (when asked).
std::vector<DegradingSetup> degrading_setups(const Options& options);

// The capacity model's calls/s at the knee: capacity x 1000 / service_ms.
double degrading_knee_per_s(const Options& options);

struct DegradingRun {
  DegradingSetup setup;
  SpeedProbes speed;
  double publish_rate = 0;  // core-sim --rate (0: as fast as it can)
  double window_s = 0, resolved_per_s = 0, requested_per_s = 0;
  std::vector<double> resolved_per_s_by_third;
  std::int64_t backlog_start = 0, backlog_end = 0;
  support::Percentiles latency;  // ms; transfers whose outcome was applied in the window
  // The mock's: 503 OVERLOADED in the window, peaks from the start to the window's end
  // (nullopt when its stats were not readable).
  std::optional<std::int64_t> overloaded_503, executing_peak, queued_peak;
  std::optional<double> submit_mean_ms;               // the adapter's, in the window
  std::vector<std::pair<double, double>> limit_path;  // (s since core-sim started, limit)
  double window_from_s = 0;                           // core-sim started -> window
  std::int64_t transfers = 0;                         // all of the run, resolved exactly once
};

DegradingRun run_degrading(const Options& options, const DegradingSetup& setup,
                           ServerProbe& server);

}  // namespace clearing::bench::e2e
