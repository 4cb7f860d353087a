#pragma once
// One spdlog logger per module, key=value fields, the correlation id on every line
// about a flow. Never log secrets, account numbers or names (mask_account if needed).

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace clearing::base {

// The module's logger, created on first use (stderr), sharing the global level.
std::shared_ptr<spdlog::logger> module_logger(const std::string& name);

// Makes spdlog's default logger (and so every logger cloned from it) write to stderr:
// stdout belongs to a program's output (ports, reports), and a full stdout pipe must
// never stall logging. Call first thing in main.
void init_logging();

// Sets the level for all module loggers: "trace".."off". False if unknown.
bool set_log_level(const std::string& level);

}  // namespace clearing::base
