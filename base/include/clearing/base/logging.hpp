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

#include <spdlog/spdlog.h>

#include <cstddef>
#include <memory>
#include <string>

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

// The formatter of every line: "2026-01-02T03:04:05.678+0000 info <logger> <message>", the
// message escaped to one line. Exposed for tests and for a sink made elsewhere.
std::unique_ptr<spdlog::formatter> make_log_formatter();

}  // namespace clearing::base
