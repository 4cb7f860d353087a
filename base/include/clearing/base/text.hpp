#pragma once
// Checks and repairs of text that comes from outside (Kafka messages, clearing answers,
// HTTP requests) before it is stored or shown: PostgreSQL's text and jsonb refuse NUL and
// invalid UTF-8, and a control character in a log field or a report forges lines. Pure,
// std only, never throws.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace clearing::base {

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

// The number of code points of well-formed UTF-8, or nullopt when it is not well formed:
// what "140 characters" counts (ISO 20022 Max140Text), not bytes.
std::optional<std::size_t> utf8_length(std::string_view text) noexcept;

// True when `text` holds a C0 control character (NUL included), DEL, or a C1 control
// (U+0080..U+009F encoded in UTF-8).
bool has_control_characters(std::string_view text) noexcept;

// Printable text: valid UTF-8 without control characters.
inline bool is_printable_utf8(std::string_view text) noexcept {
  return is_valid_utf8(text) && !has_control_characters(text);
}

// A copy that is always storable and fits one line: control characters become \n, \r, \t
// or \xHH, invalid UTF-8 bytes become \xHH, and a backslash becomes \\ (so the result
// reads back unambiguously). At most `bytes_max` bytes, cut on a code point boundary and
// marked with "..." when cut.
std::string escape_text(std::string_view text, std::size_t bytes_max = 4096);

// Appends `text` to `out` as a JSON string, quotes included (RFC 8259), whatever it holds:
// '"' and '\\' escaped, C0 controls, DEL and C1 controls as \n, \r, \t or \u00XX, U+2028 and
// U+2029 as \u2028 / \u2029, and each byte that is not part of well-formed UTF-8 as U+FFFD.
// The result always parses as JSON; valid printable UTF-8 is copied as it is.
void append_json_string(std::string& out, std::string_view text);

// An identifier from outside (transfer id, stream name...): 1..bytes_max bytes of
// [A-Za-z0-9], '-', '_', '.', ':'. Nothing that needs escaping in a URL path segment, a
// log field, a Kafka key or a stream id.
bool is_identifier(std::string_view text, std::size_t bytes_max) noexcept;

}  // namespace clearing::base
