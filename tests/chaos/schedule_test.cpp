// The chaos schedule is a pure function of the plan: same seed, same actions.
#include "schedule.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <vector>

using namespace clearing::chaos;

namespace {

// A plan whose core requests `transfers` at `rate_per_s`, so for transfers / rate seconds.
Plan plan_requesting(std::uint64_t seed, int transfers, double rate_per_s) {
  Plan plan;
  plan.seed = seed;
  plan.transfers = transfers;
  plan.rate_per_s = rate_per_s;
  return plan;
}

// Every action falls from 5% to 90% of the time the core is requesting.
void check_inside_requesting_window(const Action& a, double requesting_s) {
  CHECK(a.at_s >= 0.05 * requesting_s);
  CHECK(a.at_s <= 0.90 * requesting_s);
}

}  // namespace

TEST_CASE("the same seed gives the same schedule, another seed another") {
  Plan plan;
  plan.seed = 42;
  plan.kills = 20;
  plan.broker_outages = 3;
  const auto a = make_schedule(plan);
  const auto b = make_schedule(plan);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(describe(a[i]) == describe(b[i]));
  plan.seed = 43;
  const auto c = make_schedule(plan);
  REQUIRE(c.size() == a.size());
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) differs = differs || describe(a[i]) != describe(c[i]);
  CHECK(differs);
}

TEST_CASE(
    "the schedule holds every action the plan asks for, inside the requesting window, in time "
    "order") {
  auto plan = plan_requesting(7, 10'000, 100);
  plan.kills = 20;
  plan.broker_outages = 3;
  plan.pg_restarts = 1;
  plan.bad_per_class = 2;
  const auto schedule = make_schedule(plan);
  std::map<ActionKind, int> kinds;
  std::map<int, int> bad;
  double last = 0;
  for (const auto& a : schedule) {
    ++kinds[a.kind];
    CHECK(a.at_s >= last);
    last = a.at_s;
    check_inside_requesting_window(a, 100);
    switch (a.kind) {
      case ActionKind::kill_adapter:
        CHECK((a.target == 0 || a.target == 1));
        CHECK(a.hold_s >= 0.1);
        CHECK(a.hold_s <= 1.5);
        break;
      case ActionKind::broker_outage:
        CHECK(a.target >= 1);
        CHECK(a.target <= 3);
        break;
      case ActionKind::pg_restart:
        CHECK(a.at_s >= 30);
        CHECK(a.at_s <= 60);
        break;
      case ActionKind::inject:
        ++bad[a.target];
        break;
      case ActionKind::hostile_input:
        break;  // the next test
    }
  }
  CHECK(kinds[ActionKind::kill_adapter] == 20);
  CHECK(kinds[ActionKind::broker_outage] == 3);
  CHECK(kinds[ActionKind::pg_restart] == 1);
  CHECK(kinds[ActionKind::inject] == 12);
  CHECK(bad.size() == kBadInputClasses);
  for (const auto& [cls, n] : bad) CHECK(n == 2);
}

TEST_CASE("a plan without faults gives an empty schedule") {
  Plan plan;
  plan.kills = plan.broker_outages = plan.pg_restarts = plan.bad_per_class =
      plan.hostile_per_class = 0;
  CHECK(make_schedule(plan).empty());
}

TEST_CASE(
    "hostile inputs: every class as often as asked, spread over the partitions, inside the "
    "window") {
  auto plan = plan_requesting(11, 2'000, 100);
  plan.hostile_per_class = 2;
  plan.inbound_partitions = 4;
  std::map<int, std::set<int>> partitions_of_class;
  std::map<int, int> per_class, per_partition;
  for (const auto& a : make_schedule(plan)) {
    if (a.kind != ActionKind::hostile_input) continue;
    check_inside_requesting_window(a, 20);
    REQUIRE(a.target >= 0);
    REQUIRE(a.target < kHostileInputClasses);
    REQUIRE(a.partition >= 0);
    REQUIRE(a.partition < 4);
    ++per_class[a.target];
    ++per_partition[a.partition];
    partitions_of_class[a.target].insert(a.partition);
    CHECK(describe(a).find(to_string(static_cast<HostileInput>(a.target))) != std::string::npos);
  }
  CHECK(per_class.size() == kHostileInputClasses);
  for (const auto& [cls, n] : per_class) CHECK(n == 2);
  for (const auto& [cls, partitions] : partitions_of_class) CHECK(partitions.size() == 2);
  CHECK(per_partition.size() == 4);  // several partitions: all of them

  // One each (the short run): seven classes still land on every partition.
  plan.hostile_per_class = 1;
  std::set<int> hit;
  for (const auto& a : make_schedule(plan))
    if (a.kind == ActionKind::hostile_input) hit.insert(a.partition);
  CHECK(hit.size() == 4);
}

TEST_CASE(
    "hostile inputs are drawn last: the rest of a seed's schedule is what it was without them") {
  Plan plan;
  plan.seed = 4242;
  plan.hostile_per_class = 0;
  const auto before = make_schedule(plan);
  plan.hostile_per_class = 3;
  std::vector<Action> rest;
  for (const auto& a : make_schedule(plan))
    if (a.kind != ActionKind::hostile_input) rest.push_back(a);
  REQUIRE(rest.size() == before.size());
  for (std::size_t i = 0; i < rest.size(); ++i) CHECK(describe(rest[i]) == describe(before[i]));
}
