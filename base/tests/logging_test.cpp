// base logging: a field from outside can never forge a log line, whichever logger writes it.

#include "clearing/base/logging.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
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

// One line through the JSON formatter: `message` as the whole payload.
std::string json_line(const std::string& message, const std::string& logger_name = "ledger") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger(logger_name, sink);
  logger.set_formatter(make_log_formatter(LogFormat::json));
  logger.warn("{}", message);
  return out.str();
}

// The JSON line parsed (fails the test when it is not exactly one line of JSON).
nlohmann::json parsed(const std::string& line) {
  CAPTURE(line);
  REQUIRE(line.ends_with("\n"));
  REQUIRE(line.find('\n') == line.size() - 1);
  auto json = nlohmann::json::parse(line, nullptr, false);
  REQUIRE_FALSE(json.is_discarded());
  REQUIRE(json.is_object());
  return json;
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

TEST_CASE("json: time, level, module, the event as message and each field as a member") {
  const auto json = parsed(json_line(
      "clearing_call call=submit transfer_id=tx-1 correlation_id=c-9 trace_id=4bf92f3577b34da6 "
      "span_id=00f067aa0ba902b7 attempt=2",
      "clearing_client"));
  CHECK(json["level"] == "warning");
  CHECK(json["module"] == "clearing_client");
  CHECK(json["message"] == "clearing_call");
  CHECK(json["call"] == "submit");
  CHECK(json["transfer_id"] == "tx-1");
  CHECK(json["correlation_id"] == "c-9");
  CHECK(json["trace_id"] == "4bf92f3577b34da6");
  CHECK(json["span_id"] == "00f067aa0ba902b7");
  CHECK(json["attempt"] == "2");  // values are strings
  CHECK(json.size() == 10);
  // RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z.
  const std::string time = json["time"];
  CAPTURE(time);
  REQUIRE(time.size() == 24);
  CHECK(time[4] == '-');
  CHECK(time[10] == 'T');
  CHECK(time[19] == '.');
  CHECK(time.ends_with("Z"));
  CHECK(std::all_of(time.begin() + 20, time.begin() + 23,
                    [](char c) { return c >= '0' && c <= '9'; }));
}

TEST_CASE("json: the members come in order: time, level, module, message, then the fields") {
  const std::string line = json_line("published stream=s1 count=3");
  CHECK(line.starts_with("{\"time\":\""));
  CHECK(line.find("\",\"level\":\"warning\",\"module\":\"ledger\",\"message\":\"published\","
                  "\"stream\":\"s1\",\"count\":\"3\"}\n") != std::string::npos);
}

TEST_CASE("json: quoted values as the text form writes them; words that are not fields stay") {
  const auto json = parsed(json_line(
      "start failed attempt=1 error=\"connection to \"db\" refused: no route\" retry_in_ms=250"));
  CHECK(json["message"] == "start failed");
  CHECK(json["attempt"] == "1");
  CHECK(json["error"] == "connection to \"db\" refused: no route");
  CHECK(json["retry_in_ms"] == "250");
  CHECK(parsed(json_line("parked reason=\"the amount is too large\""))["reason"] ==
        "the amount is too large");
  // Unclosed: the rest of the message.
  CHECK(parsed(json_line("failed error=\"cut here"))["error"] == "cut here");
  // A field's value may hold '=' and be empty.
  const auto odd = parsed(json_line("fetched url=http://h/p?a=b empty= see http://x?y=z"));
  CHECK(odd["url"] == "http://h/p?a=b");
  CHECK(odd["empty"] == "");
  CHECK(odd["message"] == "fetched see http://x?y=z");
  // A message without fields is the message.
  const auto plain = parsed(json_line("embedded kafka is up"));
  CHECK(plain["message"] == "embedded kafka is up");
  CHECK(plain.size() == 4);
}

TEST_CASE("json: a field cannot replace time, level, module or message, nor come twice") {
  const auto json = parsed(json_line(std::string("handled correlation_id=") + kForged +
                                     " module=x message=y time=0 transfer_id=z"));
  CHECK(json["level"] == "warning");
  CHECK(json["module"] == "ledger");
  CHECK(json["correlation_id"] == "7f1c\nFAKE");
  CHECK(json["transfer_id"] == "x");  // the first one
  CHECK(json["message"] == "handled level=error module=x message=y time=0 transfer_id=z");
  CHECK(json["time"].get<std::string>().size() == 24);
}

TEST_CASE("json: hostile text is escaped, invalid UTF-8 replaced; every line parses") {
  const std::string hostile = std::string("a\rb\tc") + '\0' + "d\x1b[31me\x7f" + "\xc2\x85" +
                              "f\xff" + "g\\n\"}{\"level\":\"x" + "\xe2\x80\xa8" + "\xed\xa0\x80" +
                              "\xc3" + "\xf0\x9f\x98\x80";
  const std::string line = json_line("bad_input field=" + hostile + " text=\"" + hostile + "\"");
  CAPTURE(line);
  // Nothing but printable ASCII and valid UTF-8 on the line, and one line.
  for (const char c : line.substr(0, line.size() - 1))
    CHECK_FALSE((static_cast<unsigned char>(c) < 0x20 || c == 0x7F));
  const auto json = parsed(line);
  const std::string expected = std::string("a\rb\tc") + '\0' + "d\x1b[31me\x7f" + "\xc2\x85" +
                               "f\xef\xbf\xbd" + "g\\n\"}{\"level\":\"x" + "\xe2\x80\xa8" +
                               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" + "\xef\xbf\xbd" +
                               "\xf0\x9f\x98\x80";
  CHECK(json["level"] == "warning");
  CHECK(json["text"] == expected);
  CHECK(line.find("\\u0000") != std::string::npos);
  CHECK(line.find("\\u001b") != std::string::npos);
  CHECK(line.find("\\u0085") != std::string::npos);
  CHECK(line.find("\\u2028") != std::string::npos);
  // The unquoted field ends at the first space; the rest of its words stay in the message.
  CHECK(json["field"].get<std::string>().starts_with("a\rb\tc"));
  // A module name from anywhere is escaped too.
  CHECK(parsed(json_line("x", "mod\"ule\n"))["module"] == "mod\"ule\n");
}

TEST_CASE("json: a message longer than kLogMessageBytesMax is cut, still one JSON line") {
  const std::string huge = "big value=\"" + std::string(kLogMessageBytesMax * 2, 'r') + "\xc3\xa6";
  const auto json = parsed(json_line(huge));
  const std::string value = json["value"];
  CHECK(value.size() < kLogMessageBytesMax);
  CHECK(value.ends_with("r..."));
  // Cut on a code point: 2-byte characters all through.
  std::string danish = "big value=";
  while (danish.size() < kLogMessageBytesMax * 2) danish += "\xc3\xa6";
  const std::string cut = parsed(json_line(danish))["value"];
  CHECK(cut.find("\xef\xbf\xbd") == std::string::npos);
  CHECK(cut.ends_with("\xc3\xa6..."));
}

TEST_CASE("set_log_format: every logger, made before or after, writes the format set") {
  CapturedStderr captured;
  if (!spdlog::get("clearing")) init_logging();  // once a process; another case may have
  auto before = module_logger("logging_test_json_before");
  set_log_format(LogFormat::json);
  CHECK(log_format() == LogFormat::json);
  before->warn("parked transfer_id=t-1 reason=\"two words\"");
  module_logger("logging_test_json_after")->error("clearing_call correlation_id=c-1");
  spdlog::default_logger()->clone("logging_test_json_clone")->info("derived stream=s");
  spdlog::info("started port={}", 8080);
  set_log_format(LogFormat::text);
  CHECK(log_format() == LogFormat::text);
  module_logger("logging_test_json_after")->warn("back to text x=1");
  spdlog::default_logger()->flush();
  const std::string text = captured.text();
  CAPTURE(text);
  std::istringstream lines(text);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  REQUIRE(all.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto json = parsed(all[i] + "\n");
    for (const char* member : {"time", "level", "module", "message"}) CHECK(json.contains(member));
  }
  CHECK(parsed(all[0] + "\n")["reason"] == "two words");
  CHECK(parsed(all[1] + "\n")["module"] == "logging_test_json_after");
  CHECK(parsed(all[2] + "\n")["module"] == "logging_test_json_clone");
  CHECK(parsed(all[3] + "\n")["port"] == "8080");
  CHECK(all[4].find(" warning logging_test_json_after back to text x=1") != std::string::npos);
}

TEST_CASE("parse_log_format and log_format_name") {
  CHECK(parse_log_format("text") == LogFormat::text);
  CHECK(parse_log_format("json") == LogFormat::json);
  CHECK_FALSE(parse_log_format("JSON").has_value());
  CHECK_FALSE(parse_log_format("").has_value());
  CHECK(log_format_name(LogFormat::json) == "json");
  CHECK(log_format_name(LogFormat::text) == "text");
}
