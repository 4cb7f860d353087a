#pragma once
// What the multi-process tests read from their children's first lines: "bootstrap <brokers>",
// "listening <host:port>", "catch-up <host:port>".

#include <doctest/doctest.h>

#include <string>

#include "clearing/support/command_lines.hpp"

namespace clearing::testing {

// The rest of `line` after `prefix`; fails the test (REQUIRE) when the line is another.
inline std::string after(const std::string& line, const std::string& prefix) {
  const auto rest = support::after_prefix(line, prefix);
  REQUIRE_MESSAGE(rest, "expected '" << prefix << "...', got '" << line << "'");
  return *rest;
}

}  // namespace clearing::testing
