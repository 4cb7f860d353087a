#pragma once
// Known maintenance windows of the clearing (issue 23, item 3): the times it announced it will
// not execute anything. A clearing call due inside one is deferred to the window's end
// (TransferDecider, DeferClearingCall) instead of collecting 503s.
//
// The windows themselves are base/'s values (base/maintenance_window.hpp: weekly and dated, in
// UTC, each holding [start, end)), which config/ reads too; here: which one a time lies in, and
// its name. At a window's end a call is made again.
//
// Pure: the time is an argument, never read. Thread safe (no shared state).

#include <optional>
#include <string>

#include "clearing/base/clock.hpp"
#include "clearing/base/maintenance_window.hpp"

namespace clearing::sagas {

using base::DatedMaintenanceWindow;
using base::MaintenanceWindows;
using base::Timestamp;
using base::WeeklyMaintenanceWindow;

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
