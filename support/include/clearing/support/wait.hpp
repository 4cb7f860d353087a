#pragma once
// Waiting for a condition that another thread or process brings about, with a limit.
// Thread safety: runs `done` on the calling thread only.

#include <chrono>
#include <thread>

namespace clearing::support {

// Polls `done` every `poll` until it returns true or `within` has passed; the last word is
// one more call of `done` after the limit, so a condition met just in time still counts.
template <class Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds within,
                std::chrono::milliseconds poll = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(poll);
  }
  return done();
}

}  // namespace clearing::support
