#include "clearing/support/figures.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "clearing/base/assert.hpp"

namespace clearing::support {

double percentile(const std::vector<double>& sorted, double p) {
  CLEARING_ASSERT(!sorted.empty());
  CLEARING_ASSERT(p >= 0 && p <= 100);
  const auto rank =
      static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

Percentiles percentiles(const std::vector<double>& sorted) {
  Percentiles p;
  p.count = sorted.size();
  if (sorted.empty()) return p;
  p.p50 = percentile(sorted, 50);
  p.p95 = percentile(sorted, 95);
  p.p99 = percentile(sorted, 99);
  p.max = sorted.back();
  return p;
}

void print_distribution(const char* label, std::vector<double> values_ms,
                        DistributionLayout layout) {
  const char* indent = layout == DistributionLayout::compact ? "  " : "    ";
  if (values_ms.empty()) {
    fmt::print("{}{}: no samples\n", indent, label);
    return;
  }
  std::sort(values_ms.begin(), values_ms.end());
  const double p50 = percentile(values_ms, 50);
  const double p99 = percentile(values_ms, 99);
  if (layout == DistributionLayout::compact) {
    fmt::print("  {}: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms (min {:.2f} ms, n={})\n", label,
               p50, p99, values_ms.back(), values_ms.front(), values_ms.size());
  } else {
    fmt::print("    {}: p50 {:>8.1f} ms  p99 {:>8.1f} ms  max {:>8.1f} ms  (min {:.1f}, n={})\n",
               label, p50, p99, values_ms.back(), values_ms.front(), values_ms.size());
  }
}

}  // namespace clearing::support
