#pragma once
// bench_e2e (bench/e2e_main.cpp describes the run): what all its parts use. The clock, the
// failure that ends a run, progress lines on stderr, the limits more than one phase obeys and
// the speed probes that bracket each run.
//
// Thread safety: progress() writes stderr from any thread; the rest is constants and pure
// functions.

#include <fmt/core.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace clearing::bench::e2e {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Named limits (TIGER_STYLE): every input, wait and loop of the benchmark is bounded; each
// part keeps those only it uses.
constexpr auto kWarmupAfterFirstOutcome = std::chrono::seconds(2);
constexpr int kStopTimeoutMs = 60'000;
constexpr std::size_t kStderrTailChars = 4'000;
// The benchmark's own sessions carry this application_name (left out of connection counts).
constexpr const char* kAppName = "bench-e2e";
constexpr const char* kApiToken = "bench-api-token-0123456789abcdef0";

// What ends a run with exit code 1: a process broke or a transfer did not resolve.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void progress(const std::string& line) {
  fmt::print(stderr, "[bench-e2e] {}\n", line);
  std::fflush(stderr);
}

inline double seconds_since(Clock::time_point t) { return Seconds(Clock::now() - t).count(); }

// The end of a process's stderr, for a failure's message.
inline std::string tail(const std::string& text) {
  return text.size() > kStderrTailChars ? "..." + text.substr(text.size() - kStderrTailChars)
                                        : text;
}

// speed_probe_ms() on the machine as idle as the benchmark leaves it: before a run starts
// its processes and after it stopped them. The host's share can change within a run; the two
// bracket it.
struct SpeedProbes {
  double before_ms = 0, after_ms = 0;
};

}  // namespace clearing::bench::e2e
