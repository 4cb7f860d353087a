#pragma once
// Time as a dependency: domain code never reads the clock; handlers read it through
// this interface and pass the instant inside commands, so tests can fix time.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clearing::base {

using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Timestamp now() const override;
};

// A clock that only moves when told to. Thread safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start) : now_ms_(start.time_since_epoch().count()) {}
  Timestamp now() const override { return Timestamp{std::chrono::milliseconds{now_ms_.load()}}; }
  void advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }
  void set(Timestamp to) { now_ms_ = to.time_since_epoch().count(); }

 private:
  std::atomic<std::int64_t> now_ms_;
};

// RFC 3339 / ISO 8601 in UTC with milliseconds: 2026-11-26T09:00:00.123Z.
std::string format_timestamp(Timestamp at);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff]Z"; false on anything else.
bool parse_timestamp(const std::string& text, Timestamp& out);
// Strict "YYYY-MM-DD" of a real day; nothing on anything else.
std::optional<std::chrono::year_month_day> parse_date(std::string_view text);

}  // namespace clearing::base
