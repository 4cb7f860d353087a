#include "clearing/base/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

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

// The members every JSON line has; a field of the message with one of these names stays in
// "message", so that text from outside cannot replace them.
constexpr std::string_view kJsonMembers[] = {"time", "level", "module", "message"};

// The length of the key of a key=value word starting at `at` ([A-Za-z_][A-Za-z0-9_.-]*
// followed by '='), 0 when the word is not one.
std::size_t key_length(std::string_view text, std::size_t at) noexcept {
  const auto starts = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  const auto continues = [&](char c) {
    return starts(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
  };
  if (at >= text.size() || !starts(text[at])) return 0;
  std::size_t end = at + 1;
  while (end < text.size() && continues(text[end])) ++end;
  return end < text.size() && text[end] == '=' ? end - at : 0;
}

// The quote that closes the value opened by the quote at `open`: the first one that ends the
// text or is followed by spaces and then the end or a key=. Our messages write
// error="{}" with the text as it is, so a quote inside the value is kept. npos: unclosed.
std::size_t closing_quote(std::string_view text, std::size_t open) noexcept {
  for (auto at = text.find('"', open + 1); at != std::string_view::npos;
       at = text.find('"', at + 1)) {
    auto next = at + 1;
    if (next == text.size()) return at;
    if (text[next] != ' ') continue;
    while (next < text.size() && text[next] == ' ') ++next;
    if (next == text.size() || key_length(text, next) > 0) return at;
  }
  return std::string_view::npos;
}

struct MessageParts {
  std::string message;  // the words that are not fields, one space apart
  std::vector<std::pair<std::string_view, std::string_view>> fields;
};

// Splits a message the way we write them: "event word... key=value key=\"two words\"".
MessageParts split_message(std::string_view text) {
  MessageParts parts;
  for (std::size_t at = 0; at < text.size();) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    const std::size_t key = key_length(text, at);
    std::size_t end = 0;
    std::string_view value;
    if (key > 0 && at + key + 1 < text.size() && text[at + key + 1] == '"') {
      const std::size_t open = at + key + 1;
      const std::size_t close = closing_quote(text, open);
      value = text.substr(open + 1, close == std::string_view::npos ? close : close - open - 1);
      end = close == std::string_view::npos ? text.size() : close + 1;
    } else {
      end = std::min(text.find(' ', at), text.size());
      if (key > 0) value = text.substr(at + key + 1, end - at - key - 1);
    }
    const std::string_view name = text.substr(at, key);
    const auto taken = [&] {
      return std::find(std::begin(kJsonMembers), std::end(kJsonMembers), name) !=
                 std::end(kJsonMembers) ||
             std::any_of(parts.fields.begin(), parts.fields.end(),
                         [&](const auto& field) { return field.first == name; });
    };
    if (key > 0 && !taken()) {
      parts.fields.emplace_back(name, value);
    } else {
      if (!parts.message.empty()) parts.message += ' ';
      parts.message.append(text.substr(at, end - at));
    }
    at = end;
  }
  return parts;
}

// "2026-01-02T03:04:05.678Z" (RFC 3339, UTC, milliseconds).
void append_utc_time(std::string& out, spdlog::log_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const std::time_t whole = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&whole, &utc);
  char text[40];
  const int length = std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                   utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                   utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  out.append(text, static_cast<std::size_t>(std::max(length, 0)));
}

// One JSON object per line (logging.hpp). A line is built whole, then appended.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string cut;
    if (payload.size() > kLogMessageBytesMax) {
      std::size_t end = kLogMessageBytesMax - 3;
      // Whole code points only: continuation bytes go with their lead byte.
      while (end > 0 && (static_cast<unsigned char>(payload[end]) & 0xC0) == 0x80) --end;
      cut.assign(payload.substr(0, end)).append("...");
      payload = cut;
    }
    const MessageParts parts = split_message(payload);
    std::string line;
    line.reserve(payload.size() + 128);
    line += "{\"time\":\"";
    append_utc_time(line, msg.time);
    line += "\",\"level\":";
    const auto level = spdlog::level::to_string_view(msg.level);
    append_json_string(line, std::string_view(level.data(), level.size()));
    line += ",\"module\":";
    append_json_string(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += ",\"message\":";
    append_json_string(line, parts.message);
    for (const auto& [name, value] : parts.fields) {
      line += ',';
      append_json_string(line, name);
      line += ':';
      append_json_string(line, value);
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::atomic<LogFormat> current_format{LogFormat::text};

}  // namespace

void set_log_format(LogFormat format) {
  current_format.store(format);
  // The registry's formatter (for loggers registered later) and every registered logger's,
  // which is set on its sinks: the default logger's clones share its sink.
  spdlog::set_formatter(make_log_formatter(format));
}

LogFormat log_format() noexcept { return current_format.load(); }

std::unique_ptr<spdlog::formatter> make_log_formatter() {
  return make_log_formatter(current_format.load());
}

std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format) {
  if (format == LogFormat::json) return std::make_unique<JsonFormatter>();
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
