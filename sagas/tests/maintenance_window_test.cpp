// active_maintenance: which known maintenance window of the clearing holds an instant.

#include "clearing/sagas/maintenance_window.hpp"

#include <doctest/doctest.h>

using namespace clearing::sagas;
using clearing::base::Timestamp;
using namespace std::chrono;

namespace {

// 2026-11-29 is a Sunday.
Timestamp on(year_month_day day, int hour, int minute = 0, int second = 0) {
  return Timestamp{sys_days{day}.time_since_epoch() + hours{hour} + minutes{minute} +
                   seconds{second}};
}
constexpr year_month_day kSunday = year{2026} / 11 / 29;
constexpr year_month_day kMonday = year{2026} / 11 / 30;

MaintenanceWindows sunday_night() {
  return {.weekly = {WeeklyMaintenanceWindow{Sunday, minutes{60}, minutes{180}}}, .dated = {}};
}

}  // namespace

TEST_CASE("a weekly window holds [start, end) of its weekday, in UTC, every week") {
  const auto w = sunday_night();
  CHECK_FALSE(active_maintenance(w, on(kSunday, 0, 59, 59)).has_value());
  const auto at_start = active_maintenance(w, on(kSunday, 1));
  REQUIRE(at_start.has_value());
  CHECK(at_start->start == on(kSunday, 1));
  CHECK(at_start->end == on(kSunday, 3));
  CHECK(at_start->window == "weekly Sun 01:00-03:00");
  CHECK(active_maintenance(w, on(kSunday, 2, 59, 59)).has_value());
  CHECK_FALSE(active_maintenance(w, on(kSunday, 3)).has_value());  // the end is outside
  CHECK_FALSE(active_maintenance(w, on(kMonday, 2)).has_value());  // another weekday
  const auto next_week = active_maintenance(w, on(year{2026} / 12 / 6, 2));
  REQUIRE(next_week.has_value());
  CHECK(next_week->end == on(year{2026} / 12 / 6, 3));
}

TEST_CASE("a weekly window may end at 24:00, the start of the next day") {
  const MaintenanceWindows w{.weekly = {{Sunday, minutes{23 * 60}, minutes{24 * 60}}}, .dated = {}};
  const auto late = active_maintenance(w, on(kSunday, 23, 59, 59));
  REQUIRE(late.has_value());
  CHECK(late->end == on(kMonday, 0));
  CHECK(late->window == "weekly Sun 23:00-24:00");
  CHECK_FALSE(active_maintenance(w, on(kMonday, 0)).has_value());
}

TEST_CASE("a dated window holds [start, end), across midnight too") {
  const MaintenanceWindows w{
      .weekly = {}, .dated = {{on(year{2026} / 12 / 24, 20), on(year{2026} / 12 / 25, 2)}}};
  CHECK_FALSE(active_maintenance(w, on(year{2026} / 12 / 24, 19, 59, 59)).has_value());
  const auto night = active_maintenance(w, on(year{2026} / 12 / 25, 1));
  REQUIRE(night.has_value());
  CHECK(night->end == on(year{2026} / 12 / 25, 2));
  CHECK(night->window == "2026-12-24T20:00:00.000Z/2026-12-25T02:00:00.000Z");
  CHECK_FALSE(active_maintenance(w, on(year{2026} / 12 / 25, 2)).has_value());
}

TEST_CASE("overlapping windows: the one that ends last; none without windows") {
  MaintenanceWindows w = sunday_night();
  w.dated.push_back({on(kSunday, 2), on(kSunday, 5)});
  const auto both = active_maintenance(w, on(kSunday, 2, 30));
  REQUIRE(both.has_value());
  CHECK(both->end == on(kSunday, 5));
  const auto weekly_only = active_maintenance(w, on(kSunday, 1, 30));
  REQUIRE(weekly_only.has_value());
  CHECK(weekly_only->end == on(kSunday, 3));
  CHECK_FALSE(active_maintenance(MaintenanceWindows{}, on(kSunday, 2)).has_value());
}

TEST_CASE("a window whose end is not after its start holds nothing") {
  const MaintenanceWindows w{.weekly = {{Sunday, minutes{180}, minutes{60}}},
                             .dated = {{on(kSunday, 3), on(kSunday, 3)}}};
  CHECK_FALSE(active_maintenance(w, on(kSunday, 2)).has_value());
  CHECK_FALSE(active_maintenance(w, on(kSunday, 3)).has_value());
}
