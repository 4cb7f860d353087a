#pragma once
// ConcurrencyLimiter: how many calls the clearing is given at once, learnt from its answers
// (issue 20). A mainframe slows down before it fails: past the concurrency it can execute,
// calls queue in front of it, their latency grows, and pushed further it answers 503 or
// nothing. A fixed cap is either too low for a slow clearing (200 ms answers need hundreds of
// calls under way to carry a bank's rate) or too high for a clearing that is struggling.
//
// The limit is decided once per window of answers (at least window_min or one round trip
// long, and window_samples_min answers), from the window's mean round trip against a
// baseline, the clearing's latency with nothing queued in front of it:
//   - a drop in the window (timeout, 503, 429, refused connection): x drop_backoff;
//   - mean <= baseline x grow_below (latency holds) and at least half the limit in use:
//     grow, doubling until the first sign of queueing ("slow start"), then by the limit's
//     square root;
//   - mean > baseline x shrink_above (calls queue at the clearing) in shrink_windows windows
//     in a row: down to limit x settle x baseline / mean, the limit that would bring the
//     latency back into the band between the two (settle: its middle), by shrink_step_min
//     at most (one slow window, a stall of this machine or the network, cuts nothing);
//   - in between: hold.
// The baseline is a window's mean, not a single fastest answer, so that the time every call
// spends on our side (scheduling, connecting) is part of it; a window faster than the baseline
// lowers it at once; never below rtt_floor_ms. Queueing raises every call's latency alike, so
// a baseline taken at the limit in use would creep up with it: every probe_interval the limit
// is halved for one window ("probe", as TCP BBR's ProbeRTT), the calls started in it measure
// the baseline afresh, and the limit is restored. No probe while latency holds.
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
  double rtt_floor_ms = 10;      // the baseline is never below this
  double grow_below = 1.1;       // mean / baseline at or below which latency holds
  double shrink_above = 1.3;     // mean / baseline above which calls queue
  int shrink_windows = 2;        // windows in a row above shrink_above before a cut
  double shrink_step_min = 0.8;  // a cut keeps at least this share of the limit
  double drop_backoff = 0.75;
  std::chrono::milliseconds window_min{100};  // a window is this long, or one rtt if longer
  int window_samples_min = 10;                // and has at least this many answers
  std::chrono::milliseconds probe_interval{15'000};
};

enum class LimitChange {
  none,
  grew,
  shrank_latency,
  shrank_drops,
  probing,  // halved for one window to measure the baseline
  probed,   // restored after the probe
};

std::string_view to_string(LimitChange change) noexcept;

class ConcurrencyLimiter {
 public:
  using Time = std::chrono::steady_clock::time_point;

  // Options are put into shape (min_limit >= 1, max_limit >= min_limit, initial within,
  // shrink_above >= grow_below >= 1).
  explicit ConcurrencyLimiter(LimiterOptions options, Time now = {});

  int limit() const noexcept { return probing_ ? probe_limit() : limit_; }

  // One answered call: its round trip, the calls on the wire when it started (itself
  // included), and whether it was a drop. Returns what the window it closed (if any) did.
  LimitChange on_answer(Time now, double rtt_ms, int in_flight, bool dropped);

  // What the last closed window saw, for logs and metrics.
  struct Window {
    double rtt_ms = 0;       // mean round trip
    double baseline_ms = 0;  // the baseline it was compared with
    int in_flight_max = 0;   // most calls on the wire
    int answers = 0;
    int drops = 0;
  };
  const Window& last_window() const noexcept { return last_; }
  double baseline_ms() const noexcept { return baseline_ms_; }

 private:
  LimitChange close_window(Time now);
  LimitChange close_probe(Time now, double mean_ms);
  int probe_limit() const noexcept { return limit_ / 2 > min_ ? limit_ / 2 : min_; }
  void reset_window(Time now);

  LimiterOptions options_;
  int min_;
  int limit_;
  bool slow_start_ = true;
  int slow_windows_ = 0;  // windows in a row above shrink_above
  // The baseline: 0 until the first window.
  double baseline_ms_ = 0;
  Time baseline_at_;
  bool probing_ = false;
  Time probe_started_;
  // The open window.
  Time window_start_;
  int answers_ = 0;
  int drops_ = 0;
  double rtt_sum_ms_ = 0;
  int in_flight_max_ = 0;
  double window_rtt_ms_ = 0;  // the last window's mean: the next window's length
  Window last_;
};

}  // namespace clearing::clearing_client
