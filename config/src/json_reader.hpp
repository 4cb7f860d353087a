#pragma once
// Reading JSON into the config structs while collecting every problem (private to config/).
//
// A Section wraps one JSON object at a JSON path. Each read declares its key as known; at the
// end, finish() reports every key that nobody asked for. Reads never throw: a missing or
// mistyped value becomes a ConfigError and leaves the output at its default.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "clearing/config/loader.hpp"

namespace clearing::config::detail {

using Json = nlohmann::json;

struct Problems {
  std::string file;
  std::vector<ConfigError> errors;
  // Keys that already have an error from reading, so that validate() does not pile a second,
  // derived error on them (a missing amount limit is not also "must be > 0").
  std::set<std::string> failed_keys;

  void add(const std::string& key, std::string message);
};

std::string child_path(std::string_view parent, std::string_view key);
std::string element_path(std::string_view parent, std::size_t index);
// "string \"abc\"", "number 1.5", "an object", ... for "got ..." in messages.
std::string describe(const Json& value);
std::string quote_text(std::string_view text);

class Section {
 public:
  // `value` may be null (section absent: every key counts as missing) or any JSON value
  // (not an object: one error for the section, then every read is silent).
  Section(const Json* value, std::string path, Problems& problems);

  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const { return child_path(path_, key); }

  // The value of `key` when present (and the section is an object); declares it known.
  const Json* find(std::string_view key);
  // As find, but a missing key is an error; `hint` is appended ("or set ENV").
  const Json* require(std::string_view key, std::string_view hint = {});
  // Declares `key` known and reports it when present (secrets that only the environment
  // may carry).
  void forbid(std::string_view key, const std::string& message);
  // A nested object; absent counts as empty.
  Section section(std::string_view key);

  // Typed reads: the output keeps its value when the key is absent (optional) or wrong.
  void integer(std::string_view key, std::int64_t& out, bool required = false);
  void integer(std::string_view key, int& out, bool required = false);
  void boolean(std::string_view key, bool& out);
  // Returns the string when present and a string.
  std::optional<std::string> string(std::string_view key, bool required = false,
                                    std::string_view hint = {});

  // Reports a value of `key` that was read but is not one the schema allows.
  void invalid(std::string_view key, std::string message) {
    problems_.add(path_of(key), std::move(message));
  }

  // Where a reader of a nested list reports its elements' problems.
  Problems& problems() { return problems_; }
  // Reports every key in the object that no read declared.
  void finish();

 private:
  const Json* object_ = nullptr;  // null when absent or not an object
  std::string path_;
  Problems& problems_;
  std::vector<std::string> known_;
};

// Typed reads of one JSON value at `path` (array elements).
std::optional<std::int64_t> read_integer(const Json& value, const std::string& path,
                                         Problems& problems);
std::optional<std::string> read_string(const Json& value, const std::string& path,
                                       Problems& problems);

// Parses text into JSON: nothing (and an error) on a syntax error, with line and column, or on
// a key given twice in one object.
std::optional<Json> parse_json(std::string_view text, Problems& problems);

}  // namespace clearing::config::detail
