#pragma once
// Always-on assertions for invariants (TIGER_STYLE): they stay in release builds,
// because a broken invariant in a payment system must stop the process rather than
// move money on wrong assumptions. Use them for programming errors only; bad input
// is a typed error, never an assertion.

namespace clearing::base {
[[noreturn]] void assertion_failed(const char* expression, const char* file, int line,
                                   const char* message) noexcept;
}  // namespace clearing::base

#define CLEARING_ASSERT(condition)                                                 \
  do {                                                                             \
    if (!(condition)) [[unlikely]]                                                 \
      ::clearing::base::assertion_failed(#condition, __FILE__, __LINE__, nullptr); \
  } while (false)

#define CLEARING_ASSERT_MSG(condition, message)                                      \
  do {                                                                               \
    if (!(condition)) [[unlikely]]                                                   \
      ::clearing::base::assertion_failed(#condition, __FILE__, __LINE__, (message)); \
  } while (false)
