#include "clearing/base/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <mutex>
#include <string_view>

#include "clearing/base/text.hpp"

namespace clearing::base {

namespace {

constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%e%z %l %n %v";

// Bytes that go into a line as they are: printable ASCII but the backslash, which
// escape_text doubles so that an escaped line reads back unambiguously.
bool is_plain(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x20 && byte < 0x7F && c != '\\';
}

// Replaces spdlog's %v (the formatted message) in our pattern. The message, not each
// argument, is escaped: the fields come from outside in many forms ({} of a string, of a
// string_view, of a json dump), and escaping the whole message is the one place that
// covers them all. Our own messages carry no control characters, so nothing of ours changes.
class EscapedMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    // Nearly every line is plain ASCII: copied as it is, without an allocation.
    if (payload.size() <= kLogMessageBytesMax &&
        std::all_of(payload.begin(), payload.end(), is_plain)) {
      dest.append(payload.data(), payload.data() + payload.size());
      return;
    }
    const std::string escaped = escape_text(payload, kLogMessageBytesMax);
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }

  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessageFlag>();
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_log_formatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  // A custom flag takes precedence over the built-in one of the same letter, so %v itself
  // is the escaped message: a pattern edited later cannot bring the raw one back by accident.
  formatter->add_flag<EscapedMessageFlag>('v').set_pattern(kPattern);
  return formatter;
}

std::shared_ptr<spdlog::logger> module_logger(const std::string& name) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::get_level());
  logger->set_formatter(make_log_formatter());
  return logger;
}

void init_logging() {
  auto logger = spdlog::stderr_color_mt("clearing");
  // Set on the logger's sink, which clones of the default logger share (clearing_client's).
  logger->set_formatter(make_log_formatter());
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
