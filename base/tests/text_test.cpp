#include "clearing/base/text.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace clearing::base;
using namespace std::string_literals;

TEST_CASE("is_valid_utf8 accepts well-formed UTF-8 and refuses every malformed form") {
  for (const char* text :
       {"", "plain ascii", "S\xC3\xB8ren \xE2\x82\xAC \xF0\x9F\x98\x80"}) {  // ø, €, an emoji
    CAPTURE(text);
    CHECK(is_valid_utf8(text));
  }
  for (const char* text : {
           "\xFF",
           "\xC3",              // truncated
           "\xC0\xAF",          // overlong '/'
           "\xED\xA0\x80",      // a UTF-16 surrogate
           "\xF4\x90\x80\x80",  // above U+10FFFF
           "\x80",              // a lone continuation byte
       }) {
    CAPTURE(text);
    CHECK_FALSE(is_valid_utf8(text));
  }
}

TEST_CASE("utf8_length counts code points, not bytes") {
  CHECK(utf8_length("abc") == 3u);
  CHECK(utf8_length(std::string(71 * 2, 'x')) == 142u);
  std::string seventy_one_o_slash;
  for (int i = 0; i < 71; ++i) seventy_one_o_slash += "\xC3\x98";  // Ø
  CHECK(seventy_one_o_slash.size() == 142);
  CHECK(utf8_length(seventy_one_o_slash) == 71u);
  CHECK_FALSE(utf8_length("\xFE").has_value());
}

TEST_CASE("has_control_characters finds C0, DEL and C1 controls, NUL included") {
  CHECK_FALSE(has_control_characters("Ada Lovelace \xC3\xB8"));
  for (const std::string& text : {"a\0b"s, "line\nforged"s, "del\x7F"s, "c1 \xC2\x85 next line"s}) {
    CAPTURE(text);
    CHECK(has_control_characters(text));
  }
  CHECK_FALSE(is_printable_utf8("bad \xFF"));
  CHECK(is_printable_utf8("fine"));
}

TEST_CASE("escape_text makes any bytes one storable line and cuts on a code point boundary") {
  CHECK(escape_text("a\nb\r\tc") == "a\\nb\\r\\tc");
  CHECK(escape_text("nul\0here"s) == "nul\\x00here");
  CHECK(escape_text("bad \xFF byte") == "bad \\xff byte");
  CHECK(escape_text("back\\slash") == "back\\\\slash");
  CHECK(escape_text("c1\xC2\x85") == "c1\\x85");
  const std::string cut =
      escape_text("\xC3\x98\xC3\x98\xC3\x98\xC3\x98", 7);  // 8 bytes of Ø into 7
  CHECK(cut == "\xC3\x98\xC3\x98...");
  CHECK(is_printable_utf8(cut));
  CHECK(escape_text(std::string(10'000, 'x'), 100).size() == 100);
}

TEST_CASE("is_identifier takes ids safe in paths, keys and logs, and nothing else") {
  CHECK(is_identifier("0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a11", 200));
  CHECK(is_identifier("t-1_x.y:z", 200));
  CHECK_FALSE(is_identifier("", 200));
  CHECK_FALSE(is_identifier(std::string(201, 'a'), 200));
  CHECK_FALSE(is_identifier("with space", 200));
  CHECK_FALSE(is_identifier("new\nline", 200));
  CHECK_FALSE(is_identifier("slash/inside", 200));
  CHECK_FALSE(is_identifier("\xC3\x98", 200));
}
