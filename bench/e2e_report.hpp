#pragma once
// bench_e2e's report on stdout: the run's head, each sustained run, the latency run, the
// commit ceiling beside the commits per transfer, and the summary. Figures only, never a
// verdict.
//
// Thread safety: writes stdout; call from the run's thread. Errors: none.

#include <vector>

#include "e2e_ceiling.hpp"
#include "e2e_degrading.hpp"
#include "e2e_latency.hpp"
#include "e2e_options.hpp"
#include "e2e_sustained.hpp"

namespace clearing::bench::e2e {

// What runs, with which settings, on which server.
void print_header(const Options& options);

void print_sustained(const Sustained& r);

// The latency run at its rate, beside the sustained run it took half of (`base`).
void print_latency(const LatencyRun& latency, const Sustained& base, const Options& options);

// The ceiling, and the bound it sets with `base`'s commits per transfer.
void print_ceiling(const Ceiling& ceiling, const Sustained& base);

void print_summary(const std::vector<Sustained>& sustained,
                   const std::vector<LatencyRun>& latencies, const Ceiling& ceiling);

// One run of the degrading clearing, with the limit's path.
void print_degrading(const DegradingRun& run, const Options& options);

// The degrading clearing's table (mode/cap, transfers/s, p50, p99, 503s), and the constant
// clearing's rate beside the sustained 0 ms run's when there is one in `sustained`.
void print_degrading_summary(const std::vector<DegradingRun>& runs,
                             const std::vector<Sustained>& sustained, const Options& options);

// "100/s, 1000/s" ("50% of the sustained rate" for 0), for the header.
std::string latency_rates_text(const std::vector<double>& rates);

}  // namespace clearing::bench::e2e
