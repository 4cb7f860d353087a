#pragma once
// ConcurrencyLimiter: how many calls the clearing is given at once, learnt from its answers
// (issue 20). A mainframe slows down before it fails: past the concurrency it can execute,
// calls queue in front of it, their latency grows, and pushed further it answers 503 or
// nothing. A fixed cap is either too low for a slow clearing (200 ms answers need hundreds of
// calls under way to carry a bank's rate) or too high for a clearing that is struggling.
//
// The limit follows TCP Vegas, measured in calls instead of packets, over windows of answers:
//   - baseline: the lowest round-trip time seen lately (a windowed minimum), i.e. the
//     clearing's latency with nothing queued in front of it; never below rtt_floor_ms, so that
//     a clearing answering in a millisecond or two is not throttled for this machine's own
//     scheduling noise;
//   - queued: the calls of the window that waited rather than executed, estimated as
//     in_flight * (1 - baseline / rtt);
//   - queued < alpha and the window used at least half the limit: grow (doubling until the
//     first sign of queueing, "slow start", then by the limit's square root);
//   - queued > beta: shrink to what the clearing executed, in_flight * baseline / rtt, plus
//     beta; at most by half a window;
//   - a drop (timeout, 503, 429, refused connection) in the window: shrink by drop_backoff.
// The limit stays within [min_limit, max_limit].
//
// Pure logic, time given by the caller: no clock, no threads, no I/O. Not thread safe: the
// client calls it from its one I/O thread.

#include <chrono>
#include <cstdint>
#include <string_view>

namespace clearing::clearing_client {

struct LimiterOptions {
  int min_limit = 4;
  int max_limit = 512;
  int initial_limit = 16;
  double rtt_floor_ms = 10;  // round trips below this count as no queueing at all
  double alpha = 3;          // queued calls below which the limit grows
  double beta = 6;           // queued calls above which it shrinks
  double drop_backoff = 0.75;
  std::chrono::milliseconds window_min{100};          // a window is this long, or one rtt if longer
  int window_samples_min = 10;                        // and has at least this many answers
  std::chrono::milliseconds baseline_window{30'000};  // the baseline forgets older minima
};

enum class LimitChange { none, grew, shrank_latency, shrank_drops };

std::string_view to_string(LimitChange change) noexcept;

class ConcurrencyLimiter {
 public:
  using Time = std::chrono::steady_clock::time_point;

  // Options are clamped into shape (min_limit >= 1, max_limit >= min_limit, initial within).
  explicit ConcurrencyLimiter(LimiterOptions options, Time now = {});

  int limit() const noexcept { return limit_; }

  // One answered call: its round trip, the calls on the wire when it started (itself
  // included), and whether it was a drop. Returns what the window that it closed (if any) did
  // to the limit.
  LimitChange on_answer(Time now, double rtt_ms, int in_flight, bool dropped);

  // What the last closed window saw, for logs and metrics.
  struct Window {
    double rtt_ms = 0;       // mean round trip
    double baseline_ms = 0;  // the baseline it was compared with (after the floor)
    double queued = 0;       // estimated calls queued at the clearing
    int in_flight_max = 0;   // most calls on the wire
    int answers = 0;
    int drops = 0;
  };
  const Window& last_window() const noexcept { return last_; }

 private:
  LimitChange close_window(Time now);
  double baseline() const;

  LimiterOptions options_;
  int limit_;
  bool slow_start_ = true;
  // The open window.
  Time window_start_;
  int answers_ = 0;
  int drops_ = 0;
  double rtt_sum_ms_ = 0;
  int in_flight_max_ = 0;
  double window_rtt_ms_ = 0;  // the last window's mean: the next window's length
  // Windowed minimum: the minimum of the current bucket and of the one before it.
  Time bucket_start_;
  double bucket_min_ms_;
  double previous_bucket_min_ms_;
  Window last_;
};

}  // namespace clearing::clearing_client
