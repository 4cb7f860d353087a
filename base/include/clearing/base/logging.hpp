#pragma once
// One spdlog logger per module, key=value fields, the correlation id on every line
// about a flow. Never log secrets, account numbers or names (mask_account if needed).
//
// Every logger made here (module loggers, the default logger and its clones) writes through
// make_log_formatter(): the message part of a line is escaped, so a field that came from
// outside (a correlation id, a transfer id, a clearing reference from Kafka or HTTP) can
// never start a line of its own or hide one. Control characters become \n, \r, \t or \xHH,
// invalid UTF-8 bytes \xHH, a backslash \\ (base::escape_text), and a message longer than
// kLogMessageBytesMax is cut.
//
// Two formats (set_log_format): text, the default, for people at a terminal, and json for
// log collectors: one JSON object per line,
//   {"time":"2026-01-02T03:04:05.678Z","level":"warning","module":"clearing_client",
//    "message":"clearing_call","call":"submit","transfer_id":"tx-1","correlation_id":"c-1"}
// "time" RFC 3339 UTC with milliseconds, "level" spdlog's name (as in the text form),
// "module" the logger's name, "message" the words of the message that are not key=value
// fields (the event name first), and each key=value field a member of its own, its value a
// string: unquoted it runs to the next space, quoted (key="two words") to the quote that ends
// the message or comes before the next key= (quotes inside are kept). A field named like one
// of the four members above, or given twice, stays in "message" as it was written. The line
// is always valid JSON whatever the message holds (base::append_json_string: controls
// escaped, invalid UTF-8 replaced by U+FFFD); the message is cut like the text form's.

#include <spdlog/spdlog.h>

#include <cstddef>
#include <memory>
#include <string>

#include "clearing/base/log_format.hpp"

namespace clearing::base {

// The longest message part of one log line, in bytes after escaping (the config summary,
// the longest line we write on purpose, is about 1.6 KB); longer ones end in "...".
inline constexpr std::size_t kLogMessageBytesMax = 16 * 1024;

// The module's logger, created on first use (stderr), sharing the global level.
std::shared_ptr<spdlog::logger> module_logger(const std::string& name);

// Makes spdlog's default logger (and so every logger cloned from it) write to stderr:
// stdout belongs to a program's output (ports, reports), and a full stdout pipe must
// never stall logging. Call first thing in main.
void init_logging();

// Sets the level for all module loggers: "trace".."off". False if unknown.
bool set_log_level(const std::string& level);

// LogFormat, parse_log_format and log_format_name: clearing/base/log_format.hpp.

// Makes every logger (those made so far, and those made later) write `format`. Call early,
// before other threads log (each logger's formatter is replaced).
void set_log_format(LogFormat format);
// The format set last (text until set_log_format is called).
LogFormat log_format() noexcept;

// The formatter of every line in the format set last. Text:
// "2026-01-02T03:04:05.678+0000 info <logger> <message>", the message escaped to one line;
// json: the object above. Exposed for tests and for a sink made elsewhere.
std::unique_ptr<spdlog::formatter> make_log_formatter();
std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format);

}  // namespace clearing::base
