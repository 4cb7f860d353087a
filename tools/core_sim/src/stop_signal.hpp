#pragma once
// Private to core-sim: the one "stopping" flag of a CoreSim, which the publisher's pacing,
// its backoff and wait_until_done sleep on, so that stop() wakes them at once.
//
// Thread safety: every function may run on any thread (one mutex).

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace clearing::core_sim {

class StopSignal {
 public:
  // Raises the flag and wakes the sleepers; false when it was raised before.
  bool raise() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return false;
      stopping_ = true;
    }
    cv_.notify_all();
    return true;
  }

  // Sleeps up to `duration` unless stopping; false when stopping.
  bool pause(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    return !cv_.wait_for(lock, duration, [&] { return stopping_; });
  }

  bool is_stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;  // under mutex_
};

}  // namespace clearing::core_sim
