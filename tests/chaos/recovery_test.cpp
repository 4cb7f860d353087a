// "Measure it": the chaos run's figures of recovery and of windows without resolution
// (recovery.hpp). Pure; no figure here passes or fails a run.
#include "recovery.hpp"

#include <doctest/doctest.h>

using namespace clearing::chaos;

TEST_CASE("percentiles: nearest rank, every figure a measured value") {
  SUBCASE("no values: a count of 0 and zeros") {
    const auto s = summarize({});
    CHECK(s.count == 0);
    CHECK(s.p50 == 0);
    CHECK(s.p99 == 0);
    CHECK(s.max == 0);
  }
  SUBCASE("one value is every percentile") {
    const auto s = summarize({42});
    CHECK(s.count == 1);
    CHECK(s.p50 == 42);
    CHECK(s.p99 == 42);
    CHECK(s.max == 42);
  }
  SUBCASE("two values: p50 is the first, p99 the second; order does not matter") {
    const auto s = summarize({900, 100});
    CHECK(s.p50 == 100);
    CHECK(s.p99 == 900);
  }
  SUBCASE("fewer than 100 values: p99 is the max") {
    const auto s = summarize({5, 1, 4, 2, 3});
    CHECK(s.p50 == 3);
    CHECK(s.p99 == 5);
    CHECK(s.max == 5);
  }
  SUBCASE("100 values: p99 is the 99th, not the max") {
    std::vector<double> values;
    for (int i = 1; i <= 100; ++i) values.push_back(i);
    const auto s = summarize(values);
    CHECK(s.p50 == 50);
    CHECK(s.p99 == 99);
    CHECK(s.max == 100);
  }
  SUBCASE("ties") {
    const auto s = summarize({7, 7, 7, 7});
    CHECK(s.p50 == 7);
    CHECK(s.p99 == 7);
  }
}

TEST_CASE("the inbound partitions an instance reads, from its /metrics") {
  // Partition 0 with its labels in another order, partition 2 of another stream, partition 2
  // of this stream not assigned (0), and two other families that must not count.
  const std::string text = R"(# TYPE clearing_inbound_partition_assigned gauge
clearing_inbound_partition_assigned{stream="core.dk.payments.v1",partition="3"} 1
clearing_inbound_partition_assigned{stream="core.dk.payments.v1",partition="1"} 1
clearing_inbound_partition_assigned{partition="0",stream="core.dk.payments.v1"} 1
clearing_inbound_partition_assigned{stream="core.se.payments.v1",partition="2"} 1
clearing_inbound_partition_assigned{stream="core.dk.payments.v1",partition="2"} 0
clearing_inbound_partition_assigned_other{stream="core.dk.payments.v1",partition="2"} 1
clearing_inbound_lag_messages{stream="core.dk.payments.v1",partition="2"} 1)";
  CHECK(assigned_partitions(text, "core.dk.payments.v1") == std::vector<int>{0, 1, 3});
  CHECK(assigned_partitions(text, "core.se.payments.v1") == std::vector<int>{2});
  CHECK(assigned_partitions("", "core.dk.payments.v1").empty());
  CHECK(assigned_partitions("clearing_inbound_partition_assigned{stream=\"core.dk.payments.v1\"} 1",
                            "core.dk.payments.v1")
            .empty());  // no partition label
}

TEST_CASE("the first application after a kill") {
  const std::vector<std::int64_t> times{10, 20, 20, 30};
  CHECK(first_after({}, 5) == std::nullopt);
  CHECK(first_after(times, 5) == 10);
  CHECK(first_after(times, 10) == 20);  // strictly after: the kill's own instant is not after it
  CHECK(first_after(times, 25) == 30);
  CHECK(first_after(times, 30) == std::nullopt);
}

TEST_CASE("inbound recovery: the slowest of the killed adapter's partitions") {
  const std::map<int, std::vector<std::int64_t>> applied{
      {0, {1'000, 1'500'000, 9'000'000}}, {1, {2'000'000}}, {2, {500}}, {3, {}}};
  SUBCASE("every partition applied again: the slowest one, and who came after the restart") {
    const auto r = inbound_recovery(1'000'000, 1'800'000, {0, 1}, applied);
    REQUIRE(r.partitions.size() == 2);
    CHECK(r.partitions[0].recovery_ms == doctest::Approx(500));
    CHECK_FALSE(r.partitions[0].after_restart);
    CHECK(r.partitions[1].recovery_ms == doctest::Approx(1000));
    CHECK(r.partitions[1].after_restart);
    REQUIRE(r.recovery_ms);
    CHECK(*r.recovery_ms == doctest::Approx(1000));
  }
  SUBCASE("a partition that applied nothing after the kill leaves the kill unmeasured") {
    const auto r = inbound_recovery(1'000'000, std::nullopt, {0, 2, 3, 7}, applied);
    CHECK_FALSE(r.recovery_ms);
    REQUIRE(r.partitions.size() == 4);
    CHECK(r.partitions[0].recovery_ms);
    CHECK_FALSE(r.partitions[1].recovery_ms);  // only before the kill
    CHECK_FALSE(r.partitions[2].recovery_ms);  // never
    CHECK_FALSE(r.partitions[3].recovery_ms);  // unknown partition
  }
  SUBCASE("no partitions: nothing to measure") {
    const auto r = inbound_recovery(1'000'000, std::nullopt, {}, applied);
    CHECK(r.partitions.empty());
    CHECK_FALSE(r.recovery_ms);
  }
}

TEST_CASE(
    "a call the killed adapter had claimed: made again, still pending, or needing no recovery") {
  const std::string dead = "host:41";
  const LeasedCall at_kill{"t1", 1, 3};
  const std::int64_t killed_ms = 100'000, lease_ms = 4'000;
  const auto observe = [](bool present, std::int32_t attempt, std::int64_t claims,
                          std::string owner, std::int64_t until,
                          std::optional<std::int64_t> event = std::nullopt) {
    return CallObservation{present, attempt, claims, std::move(owner), until, 100'500, event};
  };
  SUBCASE("still leased to the dead one: pending") {
    CHECK(judge_call(at_kill, observe(true, 1, 3, dead, 104'000), dead, killed_ms, lease_ms).fate ==
          CallFate::pending);
  }
  SUBCASE("claimed once by another: exact, from its lease") {
    const auto v =
        judge_call(at_kill, observe(true, 1, 4, "host:42", 104'120), dead, killed_ms, lease_ms);
    CHECK(v.fate == CallFate::made_again);
    CHECK(v.exact);
    CHECK(v.made_again_ms == 100'120);
  }
  SUBCASE("claimed by another before the kill (the dead one's lease had run out): no recovery") {
    const auto v =
        judge_call(at_kill, observe(true, 1, 4, "host:42", 103'990), dead, killed_ms, lease_ms);
    CHECK(v.fate == CallFate::released_before_kill);
  }
  SUBCASE("claimed again and answered before the sample: bounded by the answer's event") {
    const auto v =
        judge_call(at_kill, observe(true, 2, 4, "", 0, 100'300), dead, killed_ms, lease_ms);
    CHECK(v.fate == CallFate::made_again);
    CHECK_FALSE(v.exact);
    CHECK(v.made_again_ms == 100'300);
  }
  SUBCASE("claimed twice since: the latest claim bounds the first") {
    const auto v = judge_call(at_kill, observe(true, 2, 5, "host:42", 104'200, 100'400), dead,
                              killed_ms, lease_ms);
    CHECK(v.fate == CallFate::made_again);
    CHECK_FALSE(v.exact);
    CHECK(v.made_again_ms == 100'200);
  }
  SUBCASE("without an event, the sample bounds it") {
    const auto v = judge_call(at_kill, observe(true, 1, 4, "", 0), dead, killed_ms, lease_ms);
    CHECK(v.made_again_ms == 100'500);
  }
  SUBCASE("gone, with an event after the kill: made again, bounded by the event") {
    const auto v =
        judge_call(at_kill, observe(false, 0, 0, "", 0, 100'250), dead, killed_ms, lease_ms);
    CHECK(v.fate == CallFate::made_again);
    CHECK(v.made_again_ms == 100'250);
  }
  SUBCASE("gone, nothing recorded after the kill: the dead one's answer came first") {
    CHECK(judge_call(at_kill, observe(false, 0, 0, "", 0), dead, killed_ms, lease_ms).fate ==
          CallFate::released_before_kill);
  }
  SUBCASE("not claimed again, lease gone or attempt moved on: released before the kill") {
    CHECK(judge_call(at_kill, observe(true, 1, 3, "", 0), dead, killed_ms, lease_ms).fate ==
          CallFate::released_before_kill);
    CHECK(judge_call(at_kill, observe(true, 2, 3, "", 0), dead, killed_ms, lease_ms).fate ==
          CallFate::released_before_kill);
  }
}

TEST_CASE("a kill's calls: the first and the last made again") {
  SUBCASE("none claimed") {
    const auto r = calls_recovery(1000, {});
    CHECK(r.claimed == 0);
    CHECK_FALSE(r.first_ms);
    CHECK_FALSE(r.last_ms);
  }
  SUBCASE("all made again, one released before the kill") {
    const auto r = calls_recovery(1000, {{CallFate::made_again, 1300, true},
                                         {CallFate::released_before_kill, 0, false},
                                         {CallFate::made_again, 1040, false}});
    CHECK(r.claimed == 3);
    CHECK(r.made_again == 2);
    CHECK(r.exact == 1);
    CHECK(r.released_before_kill == 1);
    CHECK(r.first_ms == doctest::Approx(40));
    CHECK(r.last_ms == doctest::Approx(300));
  }
  SUBCASE("one still pending: a first, no last") {
    const auto r =
        calls_recovery(1000, {{CallFate::made_again, 1100, true}, {CallFate::pending, 0, false}});
    CHECK(r.pending == 1);
    CHECK(r.first_ms == doctest::Approx(100));
    CHECK_FALSE(r.last_ms);
  }
  SUBCASE("all released before the kill: nothing to measure") {
    const auto r = calls_recovery(1000, {{CallFate::released_before_kill, 0, false}});
    CHECK_FALSE(r.first_ms);
  }
}

TEST_CASE("the longest window with work open and nothing resolved") {
  SUBCASE("no samples, one sample") {
    CHECK_FALSE(longest_unresolved({}).found);
    const auto one = longest_unresolved({{1.0, 5, 3}});
    CHECK(one.found);
    CHECK(one.length_s() == doctest::Approx(0));
    CHECK(one.open_at_end);
    CHECK_FALSE(longest_unresolved({{1.0, 5, 0}}).found);
  }
  SUBCASE("from the first sample of the plateau to the first that saw a resolution") {
    const std::vector<ResolutionSample> s{{0, 0, 5}, {1, 2, 5}, {2, 2, 6}, {3, 2, 9},
                                          {4, 2, 9}, {5, 4, 8}, {6, 9, 1}};
    const auto w = longest_unresolved(s);
    CHECK(w.found);
    CHECK(w.from_s == doctest::Approx(1));
    CHECK(w.to_s == doctest::Approx(5));
    CHECK(w.resolved == 2);
    CHECK(w.open_from == 5);
    CHECK(w.open_to == 8);
    CHECK_FALSE(w.open_at_end);
  }
  SUBCASE("nothing open is no window: open = 0 ends it and does not start one") {
    const std::vector<ResolutionSample> s{{0, 10, 0}, {1, 10, 0}, {2, 10, 0}, {3, 10, 2},
                                          {4, 10, 2}, {5, 10, 0}, {6, 10, 0}, {7, 10, 0},
                                          {8, 10, 0}, {9, 10, 1}, {10, 11, 0}};
    const auto w = longest_unresolved(s);
    CHECK(w.from_s == doctest::Approx(3));
    CHECK(w.to_s == doctest::Approx(5));
    CHECK_FALSE(longest_unresolved({{0, 1, 0}, {5, 1, 0}}).found);
  }
  SUBCASE("ties: the earliest") {
    const std::vector<ResolutionSample> s{{0, 1, 1}, {2, 2, 1}, {4, 3, 1}};
    const auto w = longest_unresolved(s);
    CHECK(w.from_s == doctest::Approx(0));
    CHECK(w.to_s == doctest::Approx(2));
  }
  SUBCASE("never resolved again: open up to the last sample") {
    const std::vector<ResolutionSample> s{{0, 1, 1}, {1, 2, 4}, {2, 2, 4}, {9, 2, 4}};
    const auto w = longest_unresolved(s);
    CHECK(w.from_s == doctest::Approx(1));
    CHECK(w.to_s == doctest::Approx(9));
    CHECK(w.open_at_end);
    CHECK(w.resolved == 0);
  }
  SUBCASE("samples missing for a while (the database away) span the gap") {
    const std::vector<ResolutionSample> s{{0, 5, 3}, {0.25, 5, 3}, {8.0, 5, 3}, {8.25, 9, 0}};
    CHECK(longest_unresolved(s).length_s() == doctest::Approx(8.25));
  }
}

TEST_CASE("the mean resolution rate and the longest window with almost nothing resolved") {
  SUBCASE("the mean rate over the sampled span") {
    CHECK(mean_resolution_rate({}) == 0);
    CHECK(mean_resolution_rate({{0, 5, 1}}) == 0);
    CHECK(mean_resolution_rate({{2, 5, 1}, {2, 9, 1}}) == 0);  // no span
    CHECK(mean_resolution_rate({{0, 0, 1}, {4, 100, 0}}) == doctest::Approx(25));
  }
  SUBCASE("no samples, one sample, no rate") {
    CHECK_FALSE(longest_below_rate({}, 1).found);
    CHECK_FALSE(longest_below_rate({{0, 0, 1}}, 1).found);
    CHECK_FALSE(longest_below_rate({{0, 0, 1}, {1, 0, 1}}, 0).found);
  }
  SUBCASE("a trickle is 'almost nothing'; a steady flow is not") {
    // 10 a second, then 1 a second from 4 to 10, then 10 a second again.
    std::vector<ResolutionSample> s;
    std::int64_t resolved = 0;
    for (int t = 0; t <= 14; ++t) {
      s.push_back({static_cast<double>(t), resolved, 50});
      resolved += t >= 4 && t < 10 ? 1 : 10;
    }
    const auto w = longest_below_rate(s, 2.0);  // fewer than 2 a second
    REQUIRE(w.found);
    CHECK(w.from_s == doctest::Approx(4));
    CHECK(w.to_s == doctest::Approx(10));
    CHECK(w.resolved == 6);
    CHECK_FALSE(longest_below_rate(s, 0.5).found);  // the trickle is not below half a second
  }
  SUBCASE("a short burst inside a long stop does not end the window if the whole stays below") {
    // Nothing from 0 to 20 but 3 at 10: 3 in 20 s < 0.5/s × 20 s.
    const std::vector<ResolutionSample> s{
        {0, 0, 9}, {10, 0, 9}, {10.25, 3, 9}, {20, 3, 9}, {20.25, 50, 0}};
    const auto w = longest_below_rate(s, 0.5);
    REQUIRE(w.found);
    CHECK(w.from_s == doctest::Approx(0));
    CHECK(w.to_s == doctest::Approx(20));
  }
  SUBCASE("exactly at the rate is not fewer") {
    const std::vector<ResolutionSample> s{{0, 0, 1}, {4, 2, 1}};
    CHECK_FALSE(longest_below_rate(s, 0.5).found);
    CHECK(longest_below_rate(s, 0.75).found);
  }
  SUBCASE("open = 0 splits: no interval runs through a moment with nothing open") {
    const std::vector<ResolutionSample> s{{0, 0, 2}, {1, 0, 2}, {2, 0, 0},
                                          {3, 0, 0}, {4, 0, 2}, {5, 0, 2}};
    const auto w = longest_below_rate(s, 1);
    REQUIRE(w.found);
    CHECK(w.length_s() == doctest::Approx(2));  // 0-2: the sample with open = 0 may end it
    CHECK(w.from_s == doctest::Approx(0));
    CHECK_FALSE(w.open_at_end);
  }
  SUBCASE("ties: the earliest") {
    const std::vector<ResolutionSample> s{{0, 0, 1}, {1, 0, 1}, {2, 10, 1}, {3, 10, 1}, {4, 20, 1}};
    const auto w = longest_below_rate(s, 1);
    REQUIRE(w.found);
    CHECK(w.from_s == doctest::Approx(0));
    CHECK(w.to_s == doctest::Approx(1));
  }
  SUBCASE("up to the last sample with work open") {
    const std::vector<ResolutionSample> s{{0, 0, 1}, {1, 10, 1}, {2, 10, 1}, {3, 10, 1}};
    const auto w = longest_below_rate(s, 1);
    REQUIRE(w.found);
    CHECK(w.from_s == doctest::Approx(1));
    CHECK(w.to_s == doctest::Approx(3));
    CHECK(w.open_at_end);
  }
}

TEST_CASE("the schedule's actions within a window") {
  const std::vector<Window> actions{
      {1, 2, "kill adapter 0"}, {3, 8, "broker 1 down"}, {10, 10.5, "PostgreSQL restart"}};
  CHECK(overlapping(actions, 2, 3).size() == 2);  // touching counts
  CHECK(overlapping(actions, 8.5, 9.5).empty());
  const auto inside = overlapping(actions, 4, 11);
  REQUIRE(inside.size() == 2);
  CHECK(inside[0].why == "broker 1 down");
  CHECK(inside[1].why == "PostgreSQL restart");
  CHECK(overlapping({}, 0, 100).empty());
}
