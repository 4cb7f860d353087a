#pragma once
// Known maintenance windows of the clearing (issue 23, item 3): the times it announced it will
// not execute anything. A clearing call due inside one is deferred to the window's end
// (TransferDecider, DeferClearingCall) instead of collecting 503s.
//
// Two kinds, both in UTC: a weekly window (a weekday, a start and an end time of that day,
// end after start, end at most 24:00), and a dated window (two instants). A window holds the
// instants in [start, end): at its end a call is made again.
//
// Pure: the time is an argument, never read. Thread safe (no shared state).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "clearing/base/clock.hpp"

namespace clearing::sagas {

using base::Timestamp;

struct WeeklyMaintenanceWindow {
  std::chrono::weekday weekday{std::chrono::Sunday};
  std::chrono::minutes start{0};  // after 00:00 UTC of the weekday
  std::chrono::minutes end{0};    // after 00:00 UTC; start < end <= 24:00
  friend bool operator==(const WeeklyMaintenanceWindow&, const WeeklyMaintenanceWindow&) = default;
};

struct DatedMaintenanceWindow {
  Timestamp start{};
  Timestamp end{};  // after start
  friend bool operator==(const DatedMaintenanceWindow&, const DatedMaintenanceWindow&) = default;
};

struct MaintenanceWindows {
  std::vector<WeeklyMaintenanceWindow> weekly;
  std::vector<DatedMaintenanceWindow> dated;
  bool empty() const noexcept { return weekly.empty() && dated.empty(); }
  friend bool operator==(const MaintenanceWindows&, const MaintenanceWindows&) = default;
};

// The window `now` lies in, as instants, and its name for people and events:
// "weekly Sun 01:00-03:00" or "2026-12-24T20:00:00.000Z/2026-12-25T02:00:00.000Z".
struct ActiveMaintenance {
  Timestamp start{};
  Timestamp end{};
  std::string window;
  friend bool operator==(const ActiveMaintenance&, const ActiveMaintenance&) = default;
};

// The window holding `now`; when several overlap, the one that ends last (the first of them
// in the order given on a tie). nullopt outside every window. Windows whose end is not after
// their start hold nothing (config validation refuses them).
std::optional<ActiveMaintenance> active_maintenance(const MaintenanceWindows& windows,
                                                    Timestamp now);

}  // namespace clearing::sagas
