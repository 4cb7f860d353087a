// base logging: a field from outside can never forge a log line, whichever logger writes it.

#include "clearing/base/logging.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace clearing::base;

namespace {

constexpr const char* kForged = "7f1c\nFAKE level=error transfer_id=x";

// One line through make_log_formatter, as an ostream sink writes it.
std::string format_line(const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("logging_test_formatter", sink);
  logger.set_formatter(make_log_formatter());
  logger.info("correlation_id={}", message);
  return out.str();
}

// The message part of a line: what follows "<level> <logger> ".
std::string message_of(const std::string& line, const std::string& logger) {
  const auto at = line.find(" " + logger + " ");
  REQUIRE(at != std::string::npos);
  return line.substr(at + logger.size() + 2);
}

// Sends fd 2 to a file while alive; text() returns what was written.
class CapturedStderr {
 public:
  CapturedStderr() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int fd = ::mkstemp(path_.data());
    REQUIRE(fd >= 0);
    REQUIRE(::dup2(fd, 2) == 2);
    ::close(fd);
  }
  ~CapturedStderr() {
    restore();
    std::remove(path_.c_str());
  }
  std::string text() {
    restore();
    std::ifstream in(path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::string path_ = "/tmp/logging_test_XXXXXX";
  int saved_ = -1;
};

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("a newline in a field stays on its line, escaped visibly") {
  const std::string line = format_line(kForged);
  CAPTURE(line);
  CHECK(count_lines(line) == 1);
  CHECK(line.ends_with("\n"));
  CHECK(line.find(" info logging_test_formatter ") != std::string::npos);
  CHECK(message_of(line, "logging_test_formatter") ==
        "correlation_id=7f1c\\nFAKE level=error transfer_id=x\n");
}

TEST_CASE("every control character, invalid UTF-8 and the backslash are escaped") {
  const std::string hostile =
      std::string("a\rb\tc") + '\0' + "d\x1b[31me\x7f" + "\xc2\x85" + "f\xff" + "g\\n";
  CHECK(message_of(format_line(hostile), "logging_test_formatter") ==
        "correlation_id=a\\rb\\tc\\x00d\\x1b[31me\\x7f\\x85f\\xffg\\\\n\n");
}

TEST_CASE("plain text and valid UTF-8 are written as they are") {
  CHECK(message_of(format_line("tx-1 name=\"Ørsted Æble\" amount_minor=100"),
                   "logging_test_formatter") ==
        "correlation_id=tx-1 name=\"Ørsted Æble\" amount_minor=100\n");
}

TEST_CASE("a message longer than kLogMessageBytesMax is cut") {
  const std::string huge(kLogMessageBytesMax * 4, 'r');
  const std::string message = message_of(format_line(huge), "logging_test_formatter");
  CHECK(message.size() <= kLogMessageBytesMax + 1);
  CHECK(message.ends_with("...\n"));
}

TEST_CASE("module loggers, the default logger and its clones all escape") {
  CapturedStderr captured;
  init_logging();
  module_logger("logging_test_module")->warn("transfer_id={} handled", kForged);
  spdlog::default_logger()->clone("logging_test_clone")->error("correlation_id={}", kForged);
  spdlog::info("reference={}", "CR-1\r\nFAKE level=info");
  spdlog::default_logger()->flush();
  const std::string text = captured.text();
  CAPTURE(text);
  CHECK(count_lines(text) == 3);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    CHECK(line.find("\\nFAKE level=") != std::string::npos);
    CHECK_FALSE(line.starts_with("FAKE"));
  }
  CHECK(text.find("warning logging_test_module transfer_id=7f1c\\nFAKE level=error") !=
        std::string::npos);
  CHECK(text.find("error logging_test_clone correlation_id=7f1c\\nFAKE level=error") !=
        std::string::npos);
  CHECK(text.find("info clearing reference=CR-1\\r\\nFAKE level=info") != std::string::npos);
}
