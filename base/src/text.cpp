#include "clearing/base/text.hpp"

#include <algorithm>
#include <cstdint>

namespace clearing::base {
namespace {

// Length of the well-formed UTF-8 sequence at `at`, or 0 when it is not one.
std::size_t sequence_length(std::string_view text, std::size_t at) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  std::uint32_t min = 0;
  std::uint32_t code = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, min = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

bool is_c1_control(std::string_view text, std::size_t at, std::size_t length) noexcept {
  return length == 2 && static_cast<unsigned char>(text[at]) == 0xC2 &&
         static_cast<unsigned char>(text[at + 1]) <= 0x9F;
}

bool is_c0_or_del(unsigned char c) noexcept { return c < 0x20 || c == 0x7F; }

void append_hex(std::string& out, unsigned char c) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out += "\\x";
  out += kDigits[c >> 4];
  out += kDigits[c & 0x0F];
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept { return utf8_length(text).has_value(); }

std::optional<std::size_t> utf8_length(std::string_view text) noexcept {
  std::size_t count = 0;
  for (std::size_t at = 0; at < text.size(); ++count) {
    const std::size_t length = sequence_length(text, at);
    if (length == 0) return std::nullopt;
    at += length;
  }
  return count;
}

bool has_control_characters(std::string_view text) noexcept {
  for (std::size_t at = 0; at < text.size(); ++at) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (is_c0_or_del(c)) return true;
    if (c == 0xC2 && at + 1 < text.size() && static_cast<unsigned char>(text[at + 1]) <= 0x9F)
      return true;
  }
  return false;
}

std::string escape_text(std::string_view text, std::size_t bytes_max) {
  constexpr std::string_view kCut = "...";
  std::string out;
  out.reserve(std::min(text.size(), bytes_max));
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    const std::size_t length = sequence_length(text, at);
    std::string piece;
    if (length == 0) {
      append_hex(piece, c);
    } else if (length == 1 && is_c0_or_del(c)) {
      if (c == '\n')
        piece = "\\n";
      else if (c == '\r')
        piece = "\\r";
      else if (c == '\t')
        piece = "\\t";
      else
        append_hex(piece, c);
    } else if (is_c1_control(text, at, length)) {
      append_hex(piece, static_cast<unsigned char>(text[at + 1]));
    } else if (c == '\\') {
      piece = "\\\\";
    } else {
      piece.assign(text.substr(at, length));
    }
    if (out.size() + piece.size() > bytes_max) {
      while (out.size() + kCut.size() > bytes_max && !out.empty()) {
        // Drop whole code points only: continuation bytes go with their lead byte.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80)
          out.pop_back();
        if (!out.empty()) out.pop_back();
      }
      if (bytes_max >= kCut.size()) out += kCut;
      return out;
    }
    out += piece;
    at += length == 0 ? 1 : length;
  }
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto append_u00 = [&](unsigned char c) {
    out += "\\u00";
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0F];
  };
  out.push_back('"');
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    const std::size_t length = sequence_length(text, at);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD for the byte that is not UTF-8
      ++at;
      continue;
    }
    if (length == 1) {
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (is_c0_or_del(c)) {
        append_u00(c);
      } else {
        out.push_back(static_cast<char>(c));
      }
    } else if (is_c1_control(text, at, length)) {
      append_u00(static_cast<unsigned char>(text[at + 1]));
    } else if (length == 3 && text.substr(at, 2) == "\xE2\x80" &&
               (text[at + 2] == '\xA8' || text[at + 2] == '\xA9')) {
      out += text[at + 2] == '\xA8' ? "\\u2028" : "\\u2029";
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  out.push_back('"');
}

bool is_identifier(std::string_view text, std::size_t bytes_max) noexcept {
  if (text.empty() || text.size() > bytes_max) return false;
  for (const char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

}  // namespace clearing::base
