// ConcurrencyLimiter (concurrency_limiter.hpp): fed by hand, and driven by a simulated clearing
// (a queue in front of `capacity` executors, in simulated time) that it must not overload.

#include "clearing/clearing_client/concurrency_limiter.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>
#include <random>
#include <vector>

namespace clearing::clearing_client {
namespace {

using Time = ConcurrencyLimiter::Time;
using std::chrono::milliseconds;

Time at_ms(double ms) {
  return Time{} +
         std::chrono::duration_cast<Time::duration>(std::chrono::duration<double, std::milli>(ms));
}

// Feeds `count` answers of `rtt_ms` with `in_flight` on the wire, `gap_ms` apart, from
// `start_ms`; returns the time after the last one.
double feed(ConcurrencyLimiter& limiter, double start_ms, int count, double gap_ms, double rtt_ms,
            int in_flight, bool dropped = false) {
  double now = start_ms;
  for (int i = 0; i < count; ++i) {
    now += gap_ms;
    limiter.on_answer(at_ms(now), rtt_ms, in_flight, dropped);
  }
  return now;
}

// A clearing as a queue model: `capacity` calls execute at once, each for service_ms
// (longer by thrash x queued / capacity when calls wait as it starts); the others wait in
// FIFO order. Each answer then takes up to overhead_ms more on our side (uniform, seeded):
// time the call holds a slot but no executor. The client keeps min(limit, demand) calls on
// the wire.
struct SimulatedClearing {
  int capacity = 32;  // 0: unlimited
  double service_ms = 40;
  double thrash = 0;
  double overhead_ms = 0;
  int demand = 1'000'000;  // calls the client has to make at once

  struct Call {
    double submitted_ms;
    int in_flight;
  };
  enum class Kind { executed, answered };
  struct Event {
    double at_ms;
    Kind kind;
    Call call;
    bool operator>(const Event& other) const { return at_ms > other.at_ms; }
  };

  struct Result {
    int completed = 0;          // in the measured part
    double limit_mean = 0;      // over the measured part's answers
    int limit_min = 1'000'000;  // over the measured part
    int limit_max = 0;
    double rtt_mean_ms = 0;
  };

  // Runs for total_ms of simulated time and measures the last measure_ms of it; with
  // fixed_limit > 0 the limiter is not consulted.
  Result run(ConcurrencyLimiter& limiter, double total_ms, double measure_ms,
             int fixed_limit = 0) const {
    std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
    std::deque<Call> waiting;
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> overhead(0, overhead_ms);
    int in_flight = 0;
    int executing = 0;
    double now = 0;
    Result result;
    double limit_sum = 0;
    double rtt_sum = 0;
    auto start = [&](Call call) {
      ++executing;
      const double queued = static_cast<double>(waiting.size());
      const double slowdown = capacity > 0 ? 1 + thrash * queued / capacity : 1;
      events.push(Event{now + service_ms * slowdown, Kind::executed, call});
    };
    auto limit = [&] { return fixed_limit > 0 ? fixed_limit : limiter.limit(); };
    while (now < total_ms) {
      while (in_flight < std::min(limit(), demand)) {
        ++in_flight;
        const Call call{now, in_flight};
        if (capacity == 0 || executing < capacity) {
          start(call);
        } else {
          waiting.push_back(call);
        }
      }
      const Event event = events.top();
      events.pop();
      now = event.at_ms;
      if (event.kind == Kind::executed) {
        --executing;
        events.push(Event{now + overhead(rng), Kind::answered, event.call});
        if (!waiting.empty()) {
          const Call next = waiting.front();
          waiting.pop_front();
          start(next);
        }
        continue;
      }
      --in_flight;
      const double rtt = now - event.call.submitted_ms;
      if (fixed_limit == 0) limiter.on_answer(at_ms(now), rtt, event.call.in_flight, false);
      if (now >= total_ms - measure_ms) {
        ++result.completed;
        limit_sum += limit();
        rtt_sum += rtt;
        result.limit_min = std::min(result.limit_min, limit());
        result.limit_max = std::max(result.limit_max, limit());
      }
    }
    if (result.completed > 0) {
      result.limit_mean = limit_sum / result.completed;
      result.rtt_mean_ms = rtt_sum / result.completed;
    }
    return result;
  }

  // The calls completed in the measured part with each fixed cap.
  std::vector<int> with_caps(std::initializer_list<int> caps) const {
    std::vector<int> completed;
    for (int cap : caps) {
      ConcurrencyLimiter unused(LimiterOptions{});
      completed.push_back(run(unused, 120'000, 60'000, cap).completed);
    }
    return completed;
  }
};

LimiterOptions options_between(int min_limit, int max_limit, int initial) {
  LimiterOptions o;
  o.min_limit = min_limit;
  o.max_limit = max_limit;
  o.initial_limit = initial;
  return o;
}

}  // namespace

TEST_CASE("options are put into shape: the initial limit lies within [min, max]") {
  CHECK(ConcurrencyLimiter(options_between(4, 512, 1'000)).limit() == 512);
  CHECK(ConcurrencyLimiter(options_between(4, 512, 1)).limit() == 4);
  CHECK(ConcurrencyLimiter(options_between(0, 0, 0)).limit() == 1);
  CHECK(ConcurrencyLimiter(options_between(8, 2, 5)).limit() == 8);
}

TEST_CASE("a window closes only after window_min and window_samples_min answers") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  // Nine answers over a second: too few for a window.
  feed(limiter, 0, 9, 100, 50, 16);
  CHECK(limiter.limit() == 16);
  // Ten answers within 10 ms: too short for a window (100 ms at least).
  ConcurrencyLimiter quick(options_between(4, 512, 16));
  feed(quick, 0, 10, 1, 50, 16);
  CHECK(quick.limit() == 16);
  // The tenth answer after 100 ms closes it: latency holds, the limit in use grows.
  feed(quick, 10, 1, 100, 50, 16);
  CHECK(quick.limit() == 32);
  CHECK(quick.last_window().answers == 11);
}

TEST_CASE("while latency holds and the limit is in use it doubles, then grows by its root") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  double now = 0;
  std::vector<int> path;
  for (int window = 0; window < 3; ++window) {
    now = feed(limiter, now, 20, 10, 200, limiter.limit());
    path.push_back(limiter.limit());
  }
  CHECK(path == std::vector<int>{32, 64, 128});
  CHECK(limiter.baseline_ms() == 200);
  // A window with calls queued (266.7 ms on average: a third above the baseline) ends slow
  // start ...
  now = feed(limiter, now, 20, 20, 400, 128);
  const int after_queueing = limiter.limit();
  CHECK(after_queueing < 128);
  // ... and growth goes on by the square root.
  feed(limiter, now, 20, 20, 200, after_queueing);
  CHECK(limiter.limit() == after_queueing + static_cast<int>(std::sqrt(after_queueing)));
}

TEST_CASE("a limit not in use does not grow") {
  ConcurrencyLimiter limiter(options_between(4, 512, 64));
  // Thirty calls on the wire at most, under a limit of 64: less than half.
  feed(limiter, 0, 100, 10, 20, 30);
  CHECK(limiter.limit() == 64);
  // Thirty-two is half: it grows.
  feed(limiter, 1'000, 20, 10, 20, 32);
  CHECK(limiter.limit() == 128);
}

TEST_CASE("latency above shrink_above x the baseline, two windows in a row, cuts the limit") {
  ConcurrencyLimiter limiter(options_between(4, 512, 64));
  double now = feed(limiter, 0, 20, 10, 40, 32);  // baseline 40 ms; 32 of 64 in use: grows
  REQUIRE(limiter.limit() == 128);
  // Answers take twice the baseline: one such window cuts nothing (a stall of this machine
  // or of the network lasts that long) ...
  now = feed(limiter, now, 10, 10, 80, 128);
  CHECK(limiter.limit() == 128);
  CHECK(limiter.last_window().rtt_ms == doctest::Approx(80));
  CHECK(limiter.last_window().baseline_ms == doctest::Approx(40));
  // ... the second does: toward the limit that would bring them to 1.2 x the baseline
  // (128 x 1.2 / 2 = 77), by a fifth at most: 102.
  now = feed(limiter, now, 10, 10, 80, 128);
  CHECK(limiter.limit() == 102);
  // Within the band it holds, and the count starts again.
  now = feed(limiter, now, 10, 10, 50, 102);
  CHECK(limiter.limit() == 102);
  now = feed(limiter, now, 10, 10, 60, 102);
  CHECK(limiter.limit() == 102);
  // 1.5 x the baseline twice: 102 x 1.2 / 1.5 = 82, within a fifth.
  feed(limiter, now, 10, 10, 60, 102);
  CHECK(limiter.limit() == 82);
}

TEST_CASE("between grow_below and shrink_above the limit holds") {
  ConcurrencyLimiter limiter(options_between(4, 512, 35));
  // A baseline of 40 ms, seen with a limit not in use (10 of 35: no growth).
  double now = feed(limiter, 0, 10, 10, 40, 10);
  REQUIRE(limiter.limit() == 35);
  // 35 on the wire at 48 ms: 1.2 x the baseline.
  feed(limiter, now, 10, 10, 48, 35);
  CHECK(limiter.last_window().rtt_ms == doctest::Approx(48));
  CHECK(limiter.limit() == 35);
}

TEST_CASE("the baseline is never below rtt_floor_ms") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  // A clearing answering in 0.5 ms, slowed to 8 ms by this machine's own load: both under
  // the 10 ms floor, so the latency holds and the limit in use keeps growing.
  double now = feed(limiter, 0, 10, 10, 0.5, 16);
  REQUIRE(limiter.limit() == 32);
  feed(limiter, now, 10, 10, 8, 32);
  CHECK(limiter.limit() == 64);
  CHECK(limiter.last_window().baseline_ms == 10);
}

TEST_CASE("drops shrink the limit by drop_backoff, never below min_limit") {
  ConcurrencyLimiter limiter(options_between(4, 512, 100));
  double now = feed(limiter, 0, 9, 10, 40, 100);
  now = feed(limiter, now, 1, 10, 5'000, 100, true);  // one timeout in the window
  CHECK(limiter.limit() == 75);
  CHECK(limiter.last_window().drops == 1);
  for (int window = 0; window < 30; ++window) now = feed(limiter, now, 20, 10, 1, 75, true);
  CHECK(limiter.limit() == 4);
  // A drop's round trip (a 503 in 1 ms) did not become the baseline: answers at 40 ms with
  // the limit in use grow it again instead of reading as queueing.
  feed(limiter, now, 20, 10, 40, 4);
  CHECK(limiter.limit() > 4);
  CHECK(limiter.last_window().baseline_ms == doctest::Approx(40));
}

TEST_CASE("a probe halves the limit for one window and measures the baseline afresh") {
  LimiterOptions o = options_between(4, 512, 64);
  ConcurrencyLimiter limiter(o);
  double now = feed(limiter, 0, 10, 10, 40, 20);  // baseline 40 ms, limit not in use
  REQUIRE(limiter.limit() == 64);
  // 15 s at 1.2 x the baseline, the limit in use: it holds, then probes.
  auto change = LimitChange::none;
  while (change != LimitChange::probing && now < 20'000) {
    now += 10;
    change = limiter.on_answer(at_ms(now), 48, 64, false);
  }
  REQUIRE(change == LimitChange::probing);
  CHECK(now >= 15'000);
  CHECK(limiter.limit() == 32);
  // An answer to a call started before the probe does not count ...
  CHECK(limiter.on_answer(at_ms(now + 1), 1'000, 64, false) == LimitChange::none);
  // ... the calls started at the halved limit do, and their mean is the new baseline.
  for (int i = 0; i < 9; ++i) {
    CHECK(limiter.on_answer(at_ms(now + 50 + 10 * i), 44, 32, false) == LimitChange::none);
  }
  CHECK(limiter.on_answer(at_ms(now + 150), 44, 32, false) == LimitChange::probed);
  CHECK(limiter.limit() == 64);
  CHECK(limiter.baseline_ms() == doctest::Approx(44));
}

TEST_CASE("against a constant 200 ms clearing the limit climbs to max_limit") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  SimulatedClearing clearing;
  clearing.capacity = 0;
  clearing.service_ms = 200;
  const auto result = clearing.run(limiter, 20'000, 10'000);
  CHECK(result.limit_max == 512);
  CHECK(result.limit_min == 512);
  // 512 calls of 200 ms: 2,560 a second.
  CHECK(result.completed == doctest::Approx(25'600).epsilon(0.01));
}

TEST_CASE("against a clearing of 32 executors the limit settles at its knee") {
  SimulatedClearing clearing;
  clearing.capacity = 32;
  clearing.service_ms = 40;
  clearing.thrash = 0.5;
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  const auto adaptive = clearing.run(limiter, 120'000, 60'000);
  INFO("limit mean " << adaptive.limit_mean << " [" << adaptive.limit_min << ", "
                     << adaptive.limit_max << "], rtt " << adaptive.rtt_mean_ms);
  // The knee is 32: the limit stays near it (a probe halves it for a window now and then),
  // never where the clearing thrashes.
  CHECK(adaptive.limit_mean >= 28);
  CHECK(adaptive.limit_mean <= 44);
  CHECK(adaptive.limit_max <= 64);
  // Fixed caps for comparison: 32 is the best; the limiter carries at least 90% of it, more
  // than a cap set too low or too high.
  const auto fixed = clearing.with_caps({16, 32, 64, 128});
  INFO("fixed 16/32/64/128: " << fixed[0] << " " << fixed[1] << " " << fixed[2] << " " << fixed[3]
                              << ", adaptive " << adaptive.completed);
  CHECK(fixed[1] == *std::max_element(fixed.begin(), fixed.end()));
  CHECK(adaptive.completed >= 0.9 * fixed[1]);
  CHECK(adaptive.completed > fixed[0]);
  CHECK(adaptive.completed > fixed[2]);
  CHECK(adaptive.completed > fixed[3]);
}

TEST_CASE("our own share of the latency (0-20 ms a call) is not taken for the clearing's queue") {
  // Time on our side (scheduling, connecting, a busy machine) lengthens every call but
  // occupies no executor: a baseline of one fastest answer would read it as queueing and
  // keep the limit under the knee.
  SimulatedClearing clearing;
  clearing.capacity = 32;
  clearing.service_ms = 40;
  clearing.thrash = 0.5;
  clearing.overhead_ms = 20;
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  const auto adaptive = clearing.run(limiter, 120'000, 60'000);
  const auto fixed = clearing.with_caps({16, 32, 40, 64});
  INFO("limit mean " << adaptive.limit_mean << " [" << adaptive.limit_min << ", "
                     << adaptive.limit_max << "], rtt " << adaptive.rtt_mean_ms
                     << "; fixed 16/32/40/64: " << fixed[0] << " " << fixed[1] << " " << fixed[2]
                     << " " << fixed[3] << ", adaptive " << adaptive.completed);
  const int best = *std::max_element(fixed.begin(), fixed.end());
  CHECK(adaptive.limit_mean >= 32);
  CHECK(adaptive.completed >= 0.9 * best);
  CHECK(adaptive.completed > fixed[0]);
  CHECK(adaptive.completed > fixed[3]);
}

TEST_CASE("the baseline forgets: a clearing slower for good is not read as queueing for ever") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  double now = feed(limiter, 0, 200, 10, 20, 16);  // baseline 20 ms
  // From now on every answer takes 100 ms: at first that reads as queueing, down to the
  // least limit; there, nothing can be halved, and once the baseline is probe_interval old
  // the window itself measures it afresh: the limit grows again.
  now = feed(limiter, now, 300, 10, 100, 8);
  const int shrunk = limiter.limit();
  CHECK(shrunk == 4);
  feed(limiter, now, 2'000, 10, 100, 8);
  CHECK(limiter.baseline_ms() == doctest::Approx(100));
  CHECK(limiter.limit() > shrunk);
}

TEST_CASE("change names") {
  CHECK(to_string(LimitChange::none) == "none");
  CHECK(to_string(LimitChange::grew) == "grew");
  CHECK(to_string(LimitChange::shrank_latency) == "shrank_latency");
  CHECK(to_string(LimitChange::shrank_drops) == "shrank_drops");
  CHECK(to_string(LimitChange::probing) == "probing");
  CHECK(to_string(LimitChange::probed) == "probed");
}

}  // namespace clearing::clearing_client
