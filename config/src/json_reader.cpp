#include "json_reader.hpp"

#include <algorithm>
#include <limits>

namespace clearing::config::detail {

void Problems::add(const std::string& key, std::string message) {
  failed_keys.insert(key);
  errors.push_back(ConfigError{file, key, std::move(message)});
}

std::string child_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string element_path(std::string_view parent, std::size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

std::string quote_text(std::string_view text) {
  // Long values are cut: the message is for a person who has the file open.
  constexpr std::size_t kShownCharsMax = 80;
  std::string out = "\"";
  out += text.substr(0, kShownCharsMax);
  if (text.size() > kShownCharsMax) out += "...";
  out += '"';
  return out;
}

std::string describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::string:
      return "string " + quote_text(value.get_ref<const std::string&>());
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "number " + value.dump();
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    default:
      return "an unsupported value";
  }
}

// ---------------------------------------------------------------------------------------

Section::Section(const Json* value, std::string path, Problems& problems)
    : path_(std::move(path)), problems_(problems) {
  if (value == nullptr) return;
  if (value->is_object()) {
    object_ = value;
  } else {
    problems_.add(path_, "must be an object, got " + describe(*value));
  }
}

const Json* Section::find(std::string_view key) {
  known_.emplace_back(key);
  if (object_ == nullptr) return nullptr;
  const auto found = object_->find(key);
  return found == object_->end() ? nullptr : &*found;
}

const Json* Section::require(std::string_view key, std::string_view hint) {
  const Json* value = find(key);
  if (value == nullptr) {
    std::string message = "missing required key";
    if (!hint.empty()) message += " (" + std::string(hint) + ")";
    problems_.add(path_of(key), std::move(message));
  }
  return value;
}

void Section::forbid(std::string_view key, const std::string& message) {
  if (find(key) != nullptr) problems_.add(path_of(key), message);
}

Section Section::section(std::string_view key) {
  return Section(find(key), path_of(key), problems_);
}

std::optional<std::int64_t> read_integer(const Json& value, const std::string& path,
                                         Problems& problems) {
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      problems.add(path, "must be a 64-bit integer, got " + value.dump());
      return std::nullopt;
    }
    return static_cast<std::int64_t>(number);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  problems.add(path, "must be an integer, got " + describe(value));
  return std::nullopt;
}

std::optional<std::string> read_string(const Json& value, const std::string& path,
                                       Problems& problems) {
  if (value.is_string()) return value.get<std::string>();
  problems.add(path, "must be a string, got " + describe(value));
  return std::nullopt;
}

void Section::integer(std::string_view key, std::int64_t& out, bool required) {
  const Json* value = required ? require(key) : find(key);
  if (value == nullptr) return;
  if (const auto number = read_integer(*value, path_of(key), problems_)) out = *number;
}

void Section::integer(std::string_view key, int& out, bool required) {
  std::int64_t wide = out;
  const Json* value = required ? require(key) : find(key);
  if (value == nullptr) return;
  const auto number = read_integer(*value, path_of(key), problems_);
  if (!number) return;
  wide = *number;
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    problems_.add(path_of(key), "must be a 32-bit integer, got " + std::to_string(wide));
    return;
  }
  out = static_cast<int>(wide);
}

void Section::boolean(std::string_view key, bool& out) {
  const Json* value = find(key);
  if (value == nullptr) return;
  if (value->is_boolean()) {
    out = value->get<bool>();
  } else {
    problems_.add(path_of(key), "must be true or false, got " + describe(*value));
  }
}

std::optional<std::string> Section::string(std::string_view key, bool required,
                                           std::string_view hint) {
  const Json* value = required ? require(key, hint) : find(key);
  if (value == nullptr) return std::nullopt;
  return read_string(*value, path_of(key), problems_);
}

void Section::finish() {
  if (object_ == nullptr) return;
  for (const auto& [key, value] : object_->items()) {
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    std::string allowed;
    for (const auto& name : known_) allowed += (allowed.empty() ? "" : ", ") + name;
    problems_.add(path_of(key), "unknown key (allowed here: " + allowed + ")");
  }
}

// ---------------------------------------------------------------------------------------
// Parsing with duplicate-key detection.

namespace {

// Follows the parser's events to know the JSON path of each key (for duplicate keys, which
// nlohmann::json would otherwise resolve silently by keeping the last).
class PathTracker {
 public:
  explicit PathTracker(Problems& problems) : problems_(problems) {}

  bool on_event(Json::parse_event_t event, const Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        push(false);
        break;
      case Json::parse_event_t::array_start:
        push(true);
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case Json::parse_event_t::key:
        on_key(parsed.get<std::string>());
        break;
      case Json::parse_event_t::value:
        if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
        break;
    }
    return true;  // keep everything; duplicates are reported, not dropped
  }

 private:
  struct Frame {
    bool is_array = false;
    std::string path;
    std::set<std::string> keys;
    std::string last_key;
    std::size_t index = 0;
  };

  void push(bool is_array) {
    std::string path;
    if (!frames_.empty()) {
      Frame& parent = frames_.back();
      path = parent.is_array ? element_path(parent.path, parent.index++)
                             : child_path(parent.path, parent.last_key);
    }
    frames_.push_back(Frame{is_array, std::move(path), {}, {}, 0});
  }

  void on_key(std::string key) {
    if (frames_.empty()) return;
    Frame& frame = frames_.back();
    if (!frame.keys.insert(key).second) {
      problems_.add(child_path(frame.path, key),
                    "key given twice in one object (only one value can count)");
    }
    frame.last_key = std::move(key);
  }

  Problems& problems_;
  std::vector<Frame> frames_;
};

// Line and column (1-based) of the byte at `offset` (0-based).
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

std::optional<Json> parse_json(std::string_view text, Problems& problems) {
  PathTracker tracker(problems);
  try {
    Json parsed = Json::parse(
        text.begin(), text.end(),
        [&tracker](int /*depth*/, Json::parse_event_t event, Json& value) {
          return tracker.on_event(event, value);
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
    if (!parsed.is_object()) {
      problems.add("", "the file must hold one JSON object, got " + describe(parsed));
      return std::nullopt;
    }
    return parsed;
  } catch (const Json::parse_error& error) {
    // error.byte is 1-based: the position of the character that broke the parse.
    const auto [line, column] = line_and_column(text, error.byte == 0 ? 0 : error.byte - 1);
    std::string reason = error.what();
    if (const auto colon = reason.find(": ", reason.find("parse error"));
        colon != std::string::npos) {
      reason = reason.substr(colon + 2);
    }
    problems.add("", "invalid JSON at line " + std::to_string(line) + ", column " +
                         std::to_string(column) + ": " + reason);
    return std::nullopt;
  } catch (const Json::exception& error) {
    problems.add("", std::string("invalid JSON: ") + error.what());
    return std::nullopt;
  }
}

}  // namespace clearing::config::detail
