#pragma once
// The clearing's known maintenance windows as values, one type for every module: config/ reads
// them from clearing.maintenance_windows (and validates them), sagas/ finds the one a time lies
// in (sagas/maintenance_window.hpp: active_maintenance, and each window's name), the dispatcher
// holds them. Here, beside the time types, because config/ and sagas/ both name them and base/
// is what both build on; what a window means for a transfer stays with sagas/.
//
// Two kinds, both in UTC: a weekly window (a weekday, a start and an end time of that day,
// end after start, end at most 24:00), and a dated window (two instants). A window holds the
// instants in [start, end).
//
// Thread safety: plain values.

#include <chrono>
#include <vector>

#include "clearing/base/clock.hpp"

namespace clearing::base {

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

}  // namespace clearing::base
