// ConcurrencyLimiter (concurrency_limiter.hpp): fed by hand, and driven by a simulated clearing
// (a queue in front of `capacity` executors, in simulated time) that it must not overload.

#include "clearing/clearing_client/concurrency_limiter.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>
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
// FIFO order. The client keeps min(limit, demand) calls on the wire.
struct SimulatedClearing {
  int capacity = 32;  // 0: unlimited
  double service_ms = 40;
  double thrash = 0;
  int demand = 1'000'000;  // calls the client has to make at once

  struct Call {
    double submitted_ms;
    int in_flight;
  };
  struct Done {
    double at_ms;
    Call call;
    bool operator>(const Done& other) const { return at_ms > other.at_ms; }
  };

  struct Result {
    int completed = 0;          // in the measured part
    double limit_mean = 0;      // over the measured part's answers
    int limit_min = 1'000'000;  // over the measured part
    int limit_max = 0;
    double rtt_mean_ms = 0;
  };

  // Runs for total_ms of simulated time and measures the last measure_ms of it.
  Result run(ConcurrencyLimiter& limiter, double total_ms, double measure_ms, bool fixed = false,
             int fixed_limit = 0) const {
    std::priority_queue<Done, std::vector<Done>, std::greater<>> executing;
    std::deque<Call> waiting;
    int in_flight = 0;
    double now = 0;
    Result result;
    double limit_sum = 0;
    double rtt_sum = 0;
    auto start = [&](Call call) {
      const double queued = static_cast<double>(waiting.size());
      const double slowdown = capacity > 0 ? 1 + thrash * queued / capacity : 1;
      executing.push(Done{now + service_ms * slowdown, call});
    };
    auto submit = [&] {
      ++in_flight;
      Call call{now, in_flight};
      if (capacity == 0 || static_cast<int>(executing.size()) < capacity) {
        start(call);
      } else {
        waiting.push_back(call);
      }
    };
    while (now < total_ms) {
      const int limit = fixed ? fixed_limit : limiter.limit();
      while (in_flight < std::min(limit, demand)) submit();
      const Done done = executing.top();
      executing.pop();
      now = done.at_ms;
      --in_flight;
      const double rtt = now - done.call.submitted_ms;
      if (!fixed) limiter.on_answer(at_ms(now), rtt, done.call.in_flight, false);
      if (!waiting.empty()) {
        const Call next = waiting.front();
        waiting.pop_front();
        start(next);
      }
      if (now >= total_ms - measure_ms) {
        ++result.completed;
        const int current = fixed ? fixed_limit : limiter.limit();
        limit_sum += current;
        rtt_sum += rtt;
        result.limit_min = std::min(result.limit_min, current);
        result.limit_max = std::max(result.limit_max, current);
      }
    }
    if (result.completed > 0) {
      result.limit_mean = limit_sum / result.completed;
      result.rtt_mean_ms = rtt_sum / result.completed;
    }
    return result;
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
  // A window with calls queued ends slow start ...
  now = feed(limiter, now, 20, 20, 400, 128);
  CHECK(limiter.limit() < 128);
  const int after_queueing = limiter.limit();
  // ... and growth goes on by the square root.
  // (The first window after it still holds the last slow answer.)
  now = feed(limiter, now, 20, 20, 200, after_queueing);
  const int held = limiter.limit();
  CHECK(held <= after_queueing);
  feed(limiter, now, 11, 20, 200, held);
  CHECK(limiter.limit() == held + static_cast<int>(std::sqrt(held)));
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

TEST_CASE("latency above the baseline by more than beta calls' worth shrinks the limit") {
  ConcurrencyLimiter limiter(options_between(4, 512, 64));
  double now = feed(limiter, 0, 20, 10, 40, 32);  // baseline 40 ms; 32 of 64 in use: grows
  REQUIRE(limiter.limit() == 128);
  // 128 on the wire, answers take 80 ms: half of them queued (64 > beta). The limit comes down
  // to what the clearing executed (64) plus beta, at most by half.
  now = feed(limiter, now, 20, 10, 80, 128);
  CHECK(limiter.limit() == 70);
  CHECK(limiter.last_window().queued == doctest::Approx(64));
  CHECK(limiter.last_window().baseline_ms == doctest::Approx(40));
  // Far worse: it halves at most per window.
  feed(limiter, now, 20, 10, 4'000, 70);
  CHECK(limiter.limit() == 35);
}

TEST_CASE("with between alpha and beta calls queued the limit holds") {
  ConcurrencyLimiter limiter(options_between(4, 512, 35));
  // A baseline of 40 ms, seen with a limit not in use (10 of 35: no growth).
  double now = feed(limiter, 0, 10, 10, 40, 10);
  REQUIRE(limiter.limit() == 35);
  // 35 on the wire at 45.9 ms: 35 x (1 - 40 / 45.9) = 4.5 calls queued, within [3, 6].
  feed(limiter, now, 10, 10, 45.9, 35);
  CHECK(limiter.last_window().queued == doctest::Approx(4.5).epsilon(0.01));
  CHECK(limiter.limit() == 35);
}

TEST_CASE("round trips under rtt_floor_ms count as no queueing") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  // A clearing answering in 0.5 ms, slowed to 8 ms by this machine's own load: under the
  // 10 ms floor, so nothing is taken as queued and the limit in use keeps growing.
  double now = feed(limiter, 0, 10, 10, 0.5, 16);
  REQUIRE(limiter.limit() == 32);
  feed(limiter, now, 10, 10, 8, 32);
  CHECK(limiter.limit() == 64);
  CHECK(limiter.last_window().queued == 0);
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

TEST_CASE("against a constant 200 ms clearing the limit climbs to max_limit") {
  ConcurrencyLimiter limiter(options_between(4, 512, 16));
  SimulatedClearing clearing;
  clearing.capacity = 0;
  clearing.service_ms = 200;
  const auto result = clearing.run(limiter, 20'000, 10'000);
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
  // The knee is 32: the limit stays near it, never where the clearing thrashes.
  CHECK(adaptive.limit_mean >= 28);
  CHECK(adaptive.limit_mean <= 48);
  CHECK(adaptive.limit_max <= 64);

  // Fixed caps for comparison: 32 is the best; the limiter carries at least 90% of it, more
  // than a cap set too low or too high.
  std::vector<int> completed;
  for (int cap : {16, 32, 64, 128}) {
    ConcurrencyLimiter unused(options_between(4, 512, 16));
    completed.push_back(clearing.run(unused, 120'000, 60'000, true, cap).completed);
  }
  INFO("fixed 16/32/64/128: " << completed[0] << " " << completed[1] << " " << completed[2] << " "
                              << completed[3] << ", adaptive " << adaptive.completed);
  CHECK(completed[1] == *std::max_element(completed.begin(), completed.end()));
  CHECK(adaptive.completed >= 0.9 * completed[1]);
  CHECK(adaptive.completed > completed[0]);
  CHECK(adaptive.completed > completed[2]);
  CHECK(adaptive.completed > completed[3]);
}

TEST_CASE("the baseline forgets: a clearing slower for good is not read as queueing for ever") {
  LimiterOptions o = options_between(4, 512, 16);
  o.baseline_window = milliseconds(10'000);
  ConcurrencyLimiter limiter(o);
  double now = feed(limiter, 0, 200, 10, 20, 16);  // baseline 20 ms
  // From now on every answer takes 100 ms, with few calls in flight (nothing queues): at
  // first that reads as queueing; once the old minimum has aged out, the limit grows again.
  now = feed(limiter, now, 100, 10, 100, 8);
  const int shrunk = limiter.limit();
  now = feed(limiter, now, 2'000, 10, 100, shrunk);
  CHECK(limiter.last_window().baseline_ms == doctest::Approx(100));
  CHECK(limiter.limit() > shrunk);
}

TEST_CASE("change names") {
  CHECK(to_string(LimitChange::none) == "none");
  CHECK(to_string(LimitChange::grew) == "grew");
  CHECK(to_string(LimitChange::shrank_latency) == "shrank_latency");
  CHECK(to_string(LimitChange::shrank_drops) == "shrank_drops");
}

}  // namespace clearing::clearing_client
