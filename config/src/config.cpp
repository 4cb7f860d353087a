// Pure helpers of the config types: enum names, the business-day calendar, stream names,
// host:port, and database URL redaction. Country codes are base's (clearing/base/country.hpp).

#include "clearing/config/config.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

#include "clearing/base/assert.hpp"

namespace clearing::config {

std::string_view derivation_name(Derivation derivation) noexcept {
  switch (derivation) {
    case Derivation::payments_v1:
      return "payments.v1";
    case Derivation::settlements_v1:
      return "settlements.v1";
    case Derivation::payments_v2:
      return "payments.v2";
  }
  return "?";
}

std::string_view log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::trace:
      return "trace";
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "?";
}

std::string format_date(std::chrono::year_month_day date) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

std::string format_time_of_day(std::chrono::minutes since_midnight) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02ld:%02ld",
                static_cast<long>(since_midnight.count() / 60),
                static_cast<long>(since_midnight.count() % 60));
  return buffer;
}

std::string_view weekday_name(std::chrono::weekday day) noexcept {
  static constexpr std::array<std::string_view, 7> kNames{"Sun", "Mon", "Tue", "Wed",
                                                          "Thu", "Fri", "Sat"};
  return day.ok() ? kNames[day.c_encoding()] : "???";
}

// ---------------------------------------------------------------------------------------
// Business days.

namespace {

bool contains_sorted(const std::vector<std::chrono::year_month_day>& days,
                     std::chrono::year_month_day date) {
  return std::binary_search(days.begin(), days.end(), date);
}

}  // namespace

bool BusinessDays::is_business_day(std::chrono::year_month_day date) const {
  CLEARING_ASSERT(date.ok());
  const std::chrono::weekday day_of_week{std::chrono::sys_days{date}};
  if (std::find(weekend.begin(), weekend.end(), day_of_week) != weekend.end()) return false;
  return !contains_sorted(holidays, date) && !contains_sorted(bank_closing_days, date);
}

std::chrono::year_month_day BusinessDays::next_business_day(
    std::chrono::year_month_day date) const {
  CLEARING_ASSERT(date.ok());
  std::chrono::sys_days day{date};
  for (int step = 0; step < kBusinessDaySearchDaysMax; ++step) {
    day += std::chrono::days{1};
    if (is_business_day(std::chrono::year_month_day{day})) return std::chrono::year_month_day{day};
  }
  // A validated calendar leaves at least one working weekday and has at most kHolidaysMax
  // closing days of each kind, so the loop always ends above.
  base::assertion_failed("next business day found", __FILE__, __LINE__,
                         "no business day within kBusinessDaySearchDaysMax days");
}

std::chrono::year_month_day BusinessDays::business_day_on_or_after(
    std::chrono::year_month_day date) const {
  return is_business_day(date) ? date : next_business_day(date);
}

std::chrono::year_month_day CountryConfig::settlement_date(
    std::chrono::sys_time<std::chrono::milliseconds> at) const {
  const auto day = std::chrono::floor<std::chrono::days>(at);
  const std::chrono::year_month_day date{day};
  const bool before_cutoff = at - day < std::chrono::milliseconds{cutoff_utc};
  if (before_cutoff && is_business_day(date)) return date;
  return next_business_day(date);
}

// ---------------------------------------------------------------------------------------
// Names and addresses.

namespace {

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Consumes `prefix` from the front of `text`.
bool consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

}  // namespace

bool is_valid_stream_name(std::string_view name) {
  // ^(core|adapter)\.(dk|se|no)\.[a-z]+\.v[0-9]+$ by hand: std::regex is slow to build and
  // this runs once per name.
  if (!consume(name, "core.") && !consume(name, "adapter.")) return false;
  if (!consume(name, "dk.") && !consume(name, "se.") && !consume(name, "no.")) return false;
  std::size_t letters = 0;
  while (letters < name.size() && is_lower(name[letters])) ++letters;
  if (letters == 0) return false;
  name.remove_prefix(letters);
  if (!consume(name, ".v") || name.empty()) return false;
  return std::all_of(name.begin(), name.end(), is_digit);
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {  // [IPv6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  if (host.empty()) return std::nullopt;
  const auto host_char_ok = [](char c) {
    return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
           c == '_' || c == ':';
  };
  if (!std::all_of(host.begin(), host.end(), host_char_ok)) return std::nullopt;
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
    return std::nullopt;
  }
  int number = 0;
  std::from_chars(port.data(), port.data() + port.size(), number);
  if (number < 1 || number > 65535) return std::nullopt;
  return HostPort{std::string(host), number};
}

std::string redact_database_url(std::string_view url) {
  std::string out(url);
  // postgresql://user:password@host/db: the password sits between the first ':' after the
  // scheme and the last '@' of the authority.
  const auto scheme_end = out.find("://");
  if (scheme_end != std::string::npos) {
    const auto authority_begin = scheme_end + 3;
    const auto authority_end = std::min(out.find_first_of("/?", authority_begin), out.size());
    const auto at = out.rfind('@', authority_end - 1);
    if (at != std::string::npos && at >= authority_begin) {
      const auto colon = out.find(':', authority_begin);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // ...?password=secret&sslmode=require, and the key=value conninfo form "password=secret".
  for (std::size_t from = 0;;) {
    const auto found = out.find("password=", from);
    if (found == std::string::npos) break;
    const bool at_key_start =
        found == 0 || out[found - 1] == '?' || out[found - 1] == '&' || out[found - 1] == ' ';
    const auto value_begin = found + 9;
    if (!at_key_start) {
      from = value_begin;
      continue;
    }
    const auto value_end = std::min(out.find_first_of("& ", value_begin), out.size());
    out.replace(value_begin, value_end - value_begin, "***");
    from = value_begin + 3;
  }
  return out;
}

}  // namespace clearing::config
