#include "clearing/base/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace clearing::base {
void assertion_failed(const char* expression, const char* file, int line,
                      const char* message) noexcept {
  std::fprintf(stderr, "assertion failed: %s at %s:%d%s%s\n", expression, file, line,
               message ? ": " : "", message ? message : "");
  std::fflush(stderr);
  std::abort();
}
}  // namespace clearing::base
