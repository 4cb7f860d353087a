#pragma once
// bench_e2e's report on stdout: the run's head, each sustained run, the latency run, the
// commit ceiling beside the commits per transfer, and the summary. Figures only, never a
// verdict.
//
// Thread safety: writes stdout; call from the run's thread. Errors: none.

#include <vector>

#include "e2e_ceiling.hpp"
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

// "100/s, 1000/s" ("50% of the sustained rate" for 0), for the header.
std::string latency_rates_text(const std::vector<double>& rates);

}  // namespace clearing::bench::e2e
