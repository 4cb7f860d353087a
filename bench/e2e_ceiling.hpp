#pragma once
// bench_e2e phase 3, the commit ceiling: N threads, each with its own connection, commit one
// single-row insert per transaction into a scratch table for --ceiling-seconds; N = the
// connections the adapter and core-sim held during the first sustained run.
//
// Thread safety: starts and joins its own threads. Errors: Failure when a client's commit
// fails; pqxx exceptions from the setup pass through.

#include <cstdint>

#include "e2e_options.hpp"

namespace clearing::bench::e2e {

struct Ceiling {
  int clients = 0;
  double seconds = 0;
  std::int64_t commits = 0;
  double per_s = 0;
};

Ceiling run_ceiling(const Options& options, int clients);

}  // namespace clearing::bench::e2e
