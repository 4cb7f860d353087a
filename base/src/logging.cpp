#include "clearing/base/logging.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace clearing::base {

std::shared_ptr<spdlog::logger> module_logger(const std::string& name) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::get_level());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %n %v");
  return logger;
}

void init_logging() {
  auto logger = spdlog::stderr_color_mt("clearing");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %n %v");
  spdlog::set_default_logger(logger);
}

bool set_log_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
  return true;
}

}  // namespace clearing::base
