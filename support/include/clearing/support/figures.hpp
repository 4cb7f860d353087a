#pragma once
// Figures of latency samples, shared by the benchmarks (bench/) and the tests that measure:
// nearest-rank percentiles and the one distribution line the benchmarks print.
//
// Thread safety: free functions without shared state. Errors: none; an empty sample set is
// a precondition failure for `percentile` (asserted) and a "no samples" line for the printer.

#include <chrono>
#include <cstddef>
#include <vector>

namespace clearing::support {

// Nearest rank: the smallest sample with at least p% of the samples at or below it, so every
// figure is a value that was measured (with fewer than 100 samples p99 is the max).
// `sorted` ascending and not empty; p in [0, 100].
double percentile(const std::vector<double>& sorted, double p);

struct Percentiles {
  std::size_t count = 0;
  double p50 = 0, p95 = 0, p99 = 0, max = 0;  // 0 when count is 0
};

// p50, p95, p99 and max of ascending samples (all 0 when there are none).
Percentiles percentiles(const std::vector<double>& sorted);

// Milliseconds of a steady_clock interval, as the latency samples are kept.
inline double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The two ways the benchmarks lay out a distribution line.
enum class DistributionLayout {
  // "  <label>: p50 1.23 ms, p99 4.56 ms, max 7.89 ms (min 0.12 ms, n=100)"
  compact,
  // "    <label>: p50      1.2 ms  p99      4.6 ms  max      7.9 ms  (min 0.1, n=100)"
  columns,
};

// One line of p50, p99, max, min and count of the samples, or "<label>: no samples".
void print_distribution(const char* label, std::vector<double> values_ms,
                        DistributionLayout layout = DistributionLayout::compact);

}  // namespace clearing::support
