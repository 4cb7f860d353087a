#include "clearing/base/log_format.hpp"

#include "clearing/base/name_table.hpp"

namespace clearing::base {
namespace {

// The names of the config key log_format, CLEARING_ADAPTER_LOG_FORMAT and the tools'
// --log-format: spelled once, here.
constexpr NameTable<LogFormat, 2> kLogFormatNames{{
    {LogFormat::text, "text"},
    {LogFormat::json, "json"},
}};
static_assert(lists_every_enumerator(kLogFormatNames, LogFormat::json));

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view name) noexcept {
  return value_in(kLogFormatNames, name);
}

std::string_view log_format_name(LogFormat format) noexcept {
  return name_in(kLogFormatNames, format).value_or("?");
}

}  // namespace clearing::base
