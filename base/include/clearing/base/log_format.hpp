#pragma once
// The format of the log lines (logging.hpp: set_log_format makes every logger write it), in
// a header of its own without spdlog, so the config can hold one (config::AdapterConfig's
// log_format) without its users compiling spdlog. Pure: a name table, no state.

#include <optional>
#include <string_view>

namespace clearing::base {

// text: for people at a terminal (the default); json: one JSON object per line, for log
// collectors (logging.hpp shows the object).
enum class LogFormat { text, json };

// "text" or "json", exactly (case-sensitive); nothing for another name.
std::optional<LogFormat> parse_log_format(std::string_view name) noexcept;
// "text" or "json" ("?" for a value outside the enumeration).
std::string_view log_format_name(LogFormat format) noexcept;

}  // namespace clearing::base
