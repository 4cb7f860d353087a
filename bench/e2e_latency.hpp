#pragma once
// bench_e2e phase 2, latency at a fixed rate: core-sim publishes --latency-seconds (plus a
// warm-up) of transfers at `rate` on a fresh system; the percentiles of TransferRequested
// commit -> outcome applied over the transfers requested after the warm-up, core-sim's own
// report beside them, and the same split into four hops from the adapter's timestamps.
//
// Thread safety: runs on the caller's thread. Errors: Failure when a process breaks or a
// transfer does not resolve exactly once.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "clearing/support/figures.hpp"
#include "e2e_common.hpp"
#include "e2e_options.hpp"

namespace clearing::bench::e2e {

// Nearest rank, as core-sim's report computes it (support/figures.hpp).
using support::Percentiles;

struct LatencyRun {
  double rate = 0;
  SpeedProbes speed;
  int seconds = 0;
  std::int64_t transfers = 0;
  double requested_per_s = 0;  // core-sim's report
  Percentiles steady;          // requested after the warm-up
  Percentiles all;             // core-sim's report: every transfer
  double excluded_s = 0;       // requests in the first this many seconds excluded
  std::int64_t adapter_hwm_kb = 0;
  std::vector<std::pair<std::string, Percentiles>>
      hops;  // empty when the adapter's tables were not readable
};

LatencyRun run_latency(const Options& options, int latency_ms, double rate);

}  // namespace clearing::bench::e2e
