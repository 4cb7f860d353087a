// The adaptive concurrency limit (concurrency_limiter.hpp): pure, no Asio.

#include "clearing/clearing_client/concurrency_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace clearing::clearing_client {
namespace {

using Ms = std::chrono::duration<double, std::milli>;

LimiterOptions shaped(LimiterOptions o) {
  o.min_limit = std::max(1, o.min_limit);
  o.max_limit = std::max(o.min_limit, o.max_limit);
  o.initial_limit = std::clamp(o.initial_limit, o.min_limit, o.max_limit);
  o.window_samples_min = std::max(1, o.window_samples_min);
  o.drop_backoff = std::clamp(o.drop_backoff, 0.1, 0.99);
  o.shrink_windows = std::max(1, o.shrink_windows);
  o.shrink_step_min = std::clamp(o.shrink_step_min, 0.1, 0.99);
  o.grow_below = std::max(1.0, o.grow_below);
  o.shrink_above = std::max(o.grow_below, o.shrink_above);
  o.rtt_floor_ms = std::max(0.0, o.rtt_floor_ms);
  return o;
}

}  // namespace

std::string_view to_string(LimitChange change) noexcept {
  switch (change) {
    case LimitChange::none:
      return "none";
    case LimitChange::grew:
      return "grew";
    case LimitChange::shrank_latency:
      return "shrank_latency";
    case LimitChange::shrank_drops:
      return "shrank_drops";
    case LimitChange::probing:
      return "probing";
    case LimitChange::probed:
      return "probed";
  }
  return "none";
}

ConcurrencyLimiter::ConcurrencyLimiter(LimiterOptions options, Time now)
    : options_(shaped(options)),
      min_(options_.min_limit),
      limit_(options_.initial_limit),
      baseline_at_(now),
      window_start_(now) {}

void ConcurrencyLimiter::reset_window(Time now) {
  window_start_ = now;
  answers_ = 0;
  drops_ = 0;
  rtt_sum_ms_ = 0;
  in_flight_max_ = 0;
}

LimitChange ConcurrencyLimiter::on_answer(Time now, double rtt_ms, int in_flight, bool dropped) {
  rtt_ms = std::max(0.0, rtt_ms);
  // While probing, only the calls started at the halved limit measure the baseline.
  if (probing_ && now - std::chrono::duration_cast<Time::duration>(Ms(rtt_ms)) < probe_started_) {
    return LimitChange::none;
  }
  if (dropped) {
    // A drop's round trip says nothing of the clearing's latency (a 503 comes back at once,
    // a timeout after the deadline): it does not count in the window's mean.
    ++drops_;
  } else {
    ++answers_;
    rtt_sum_ms_ += rtt_ms;
  }
  in_flight_max_ = std::max(in_flight_max_, in_flight);
  const Ms length = std::max(Ms(options_.window_min), Ms(window_rtt_ms_));
  if (now - window_start_ < length || answers_ + drops_ < options_.window_samples_min) {
    return LimitChange::none;
  }
  return close_window(now);
}

LimitChange ConcurrencyLimiter::close_probe(Time now, double mean_ms) {
  probing_ = false;
  if (drops_ == 0 && answers_ > 0) {
    baseline_ms_ = std::max(options_.rtt_floor_ms, mean_ms);
    baseline_at_ = now;
  }
  // A drop during the probe: the limit it returns to is cut, and the baseline stays.
  if (drops_ > 0) {
    limit_ = std::max(min_, static_cast<int>(std::floor(limit_ * options_.drop_backoff)));
    reset_window(now);
    return LimitChange::shrank_drops;
  }
  reset_window(now);
  return LimitChange::probed;
}

LimitChange ConcurrencyLimiter::close_window(Time now) {
  Window window;
  window.answers = answers_;
  window.drops = drops_;
  window.in_flight_max = in_flight_max_;
  if (answers_ > 0) {
    window.rtt_ms = rtt_sum_ms_ / answers_;
    window_rtt_ms_ = window.rtt_ms;
  }
  if (probing_) {
    const auto change = close_probe(now, window.rtt_ms);
    window.baseline_ms = baseline_ms_;
    last_ = window;
    return change;
  }
  // The first window sets the baseline; a faster one lowers it at once.
  if (answers_ > 0 && (baseline_ms_ == 0 || window.rtt_ms < baseline_ms_)) {
    baseline_ms_ = std::max(options_.rtt_floor_ms, window.rtt_ms);
    baseline_at_ = now;
  }
  window.baseline_ms = baseline_ms_;
  int next = limit_;
  auto change = LimitChange::none;
  const double ratio = answers_ > 0 ? window.rtt_ms / baseline_ms_ : 1.0;
  slow_windows_ = answers_ > 0 && ratio > options_.shrink_above ? slow_windows_ + 1 : 0;
  if (drops_ > 0) {
    slow_start_ = false;
    next = std::max(min_, static_cast<int>(std::floor(limit_ * options_.drop_backoff)));
    change = LimitChange::shrank_drops;
  } else if (slow_windows_ >= options_.shrink_windows) {
    slow_start_ = false;
    slow_windows_ = 0;
    const double settle = (options_.grow_below + options_.shrink_above) / 2;
    const int target = static_cast<int>(std::lround(limit_ * settle / ratio));
    const int floor = static_cast<int>(std::floor(limit_ * options_.shrink_step_min));
    next = std::max({min_, floor, std::min(limit_, target)});
    change = LimitChange::shrank_latency;
  } else if (slow_windows_ > 0) {
    // Above the band once: wait for the next window before cutting.
  } else if (answers_ > 0 && ratio <= options_.grow_below && 2 * in_flight_max_ >= limit_) {
    // Only a limit in use grows: a quiet hour must not leave a limit the clearing never saw.
    const int step = slow_start_
                         ? limit_
                         : std::max(1, static_cast<int>(std::sqrt(static_cast<double>(limit_))));
    next = std::min(options_.max_limit, limit_ + step);
    change = LimitChange::grew;
  }
  if (next == limit_ && change != LimitChange::none) change = LimitChange::none;
  limit_ = next;
  last_ = window;
  reset_window(now);
  // Time for a fresh baseline, unless latency holds (then the baseline cannot mislead).
  if ((change == LimitChange::none || change == LimitChange::shrank_latency) &&
      ratio > options_.grow_below && now - baseline_at_ >= options_.probe_interval) {
    if (probe_limit() < limit_) {
      probing_ = true;
      probe_started_ = now;
      return change == LimitChange::none ? LimitChange::probing : change;
    }
    // At the least limit there is nothing to halve: this window was the probe.
    baseline_ms_ = std::max(options_.rtt_floor_ms, window.rtt_ms);
    baseline_at_ = now;
  }
  return change;
}

}  // namespace clearing::clearing_client
