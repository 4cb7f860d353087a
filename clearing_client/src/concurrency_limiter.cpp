// The adaptive concurrency limit (concurrency_limiter.hpp): pure, no Asio.

#include "clearing/clearing_client/concurrency_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace clearing::clearing_client {
namespace {

constexpr double kNoSample = std::numeric_limits<double>::infinity();

LimiterOptions shaped(LimiterOptions o) {
  o.min_limit = std::max(1, o.min_limit);
  o.max_limit = std::max(o.min_limit, o.max_limit);
  o.initial_limit = std::clamp(o.initial_limit, o.min_limit, o.max_limit);
  o.window_samples_min = std::max(1, o.window_samples_min);
  o.drop_backoff = std::clamp(o.drop_backoff, 0.1, 0.99);
  o.beta = std::max(o.alpha, o.beta);
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
  }
  return "none";
}

ConcurrencyLimiter::ConcurrencyLimiter(LimiterOptions options, Time now)
    : options_(shaped(options)),
      limit_(options_.initial_limit),
      window_start_(now),
      bucket_start_(now),
      bucket_min_ms_(kNoSample),
      previous_bucket_min_ms_(kNoSample) {}

double ConcurrencyLimiter::baseline() const {
  return std::min(bucket_min_ms_, previous_bucket_min_ms_);
}

LimitChange ConcurrencyLimiter::on_answer(Time now, double rtt_ms, int in_flight, bool dropped) {
  if (dropped) {
    // A drop's round trip says nothing of the clearing's latency (a 503 comes back at once,
    // a timeout after the deadline): it neither moves the baseline nor the window's mean.
    ++drops_;
  } else {
    rtt_ms = std::max(0.0, rtt_ms);
    if (now - bucket_start_ >= options_.baseline_window / 2) {
      previous_bucket_min_ms_ = bucket_min_ms_;
      bucket_min_ms_ = kNoSample;
      bucket_start_ = now;
    }
    bucket_min_ms_ = std::min(bucket_min_ms_, rtt_ms);
    ++answers_;
    rtt_sum_ms_ += rtt_ms;
  }
  in_flight_max_ = std::max(in_flight_max_, in_flight);
  using Ms = std::chrono::duration<double, std::milli>;
  const Ms length = std::max(Ms(options_.window_min), Ms(window_rtt_ms_));
  if (now - window_start_ < length || answers_ + drops_ < options_.window_samples_min) {
    return LimitChange::none;
  }
  return close_window(now);
}

LimitChange ConcurrencyLimiter::close_window(Time now) {
  Window window;
  window.answers = answers_;
  window.drops = drops_;
  window.in_flight_max = in_flight_max_;
  int next = limit_;
  auto change = LimitChange::none;
  if (drops_ > 0) {
    slow_start_ = false;
    next =
        std::max(options_.min_limit, static_cast<int>(std::floor(limit_ * options_.drop_backoff)));
    change = LimitChange::shrank_drops;
  }
  if (answers_ > 0) {
    window.rtt_ms = rtt_sum_ms_ / answers_;
    window.baseline_ms = std::max(options_.rtt_floor_ms, baseline());
    if (window.rtt_ms > window.baseline_ms) {
      window.queued = in_flight_max_ * (1.0 - window.baseline_ms / window.rtt_ms);
    }
    window_rtt_ms_ = window.rtt_ms;
  }
  if (drops_ == 0 && answers_ > 0) {
    if (window.queued > options_.beta) {
      slow_start_ = false;
      const double executing = in_flight_max_ * window.baseline_ms / window.rtt_ms;
      const int target = static_cast<int>(std::lround(executing + options_.beta));
      next = std::max({options_.min_limit, limit_ / 2, std::min(limit_, target)});
      change = LimitChange::shrank_latency;
    } else if (window.queued < options_.alpha && 2 * in_flight_max_ >= limit_) {
      // Only a limit in use grows: a quiet hour must not leave a limit the clearing never saw.
      const int step = slow_start_
                           ? limit_
                           : std::max(1, static_cast<int>(std::sqrt(static_cast<double>(limit_))));
      next = std::min(options_.max_limit, limit_ + step);
      change = LimitChange::grew;
    }
  }
  if (next == limit_) change = LimitChange::none;
  limit_ = next;
  last_ = window;
  window_start_ = now;
  answers_ = 0;
  drops_ = 0;
  rtt_sum_ms_ = 0;
  in_flight_max_ = 0;
  return change;
}

}  // namespace clearing::clearing_client
