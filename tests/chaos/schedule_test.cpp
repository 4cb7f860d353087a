// The chaos schedule is a pure function of the plan: same seed, same actions.
#include <doctest/doctest.h>

#include <map>

#include "schedule.hpp"

using namespace clearing::chaos;

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

TEST_CASE("the schedule holds every action the plan asks for, inside the requesting window, in time order") {
  Plan plan;
  plan.seed = 7;
  plan.transfers = 10'000;
  plan.rate_per_s = 100;
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
    CHECK(a.at_s >= 0.05 * 100);
    CHECK(a.at_s <= 0.90 * 100);
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
      case ActionKind::inject: ++bad[a.target]; break;
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
  plan.kills = plan.broker_outages = plan.pg_restarts = plan.bad_per_class = 0;
  CHECK(make_schedule(plan).empty());
}
