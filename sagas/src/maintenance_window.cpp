#include "clearing/sagas/maintenance_window.hpp"

#include <array>
#include <cstdio>

namespace clearing::sagas {
namespace {

constexpr std::array<const char*, 7> kWeekdayNames{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

std::string time_of_day(std::chrono::minutes since_midnight) {
  char text[8];
  std::snprintf(text, sizeof text, "%02d:%02d", static_cast<int>(since_midnight.count() / 60),
                static_cast<int>(since_midnight.count() % 60));
  return text;
}

std::string weekly_name(const WeeklyMaintenanceWindow& w) {
  return std::string("weekly ") + kWeekdayNames[w.weekday.c_encoding() % 7] + " " +
         time_of_day(w.start) + "-" + time_of_day(w.end);
}

// The weekly window's occurrence on the day of `now`, if `now` lies in it.
std::optional<ActiveMaintenance> weekly_occurrence(const WeeklyMaintenanceWindow& w,
                                                   Timestamp now) {
  const auto day = std::chrono::floor<std::chrono::days>(now);
  if (std::chrono::weekday{day} != w.weekday) return std::nullopt;
  const Timestamp start = day + w.start;
  const Timestamp end = day + w.end;
  if (now < start || now >= end) return std::nullopt;
  return ActiveMaintenance{start, end, weekly_name(w)};
}

}  // namespace

std::optional<ActiveMaintenance> active_maintenance(const MaintenanceWindows& windows,
                                                    Timestamp now) {
  std::optional<ActiveMaintenance> found;
  auto consider = [&found](std::optional<ActiveMaintenance> candidate) {
    if (candidate && (!found || candidate->end > found->end)) found = std::move(candidate);
  };
  for (const auto& w : windows.weekly) consider(weekly_occurrence(w, now));
  for (const auto& w : windows.dated) {
    if (now >= w.start && now < w.end)
      consider(ActiveMaintenance{
          w.start, w.end, base::format_timestamp(w.start) + "/" + base::format_timestamp(w.end)});
  }
  return found;
}

}  // namespace clearing::sagas
