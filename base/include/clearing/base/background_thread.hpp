#pragma once
// One background thread of a component (the relay, the consumer, a subscription, the
// dispatcher, the incoming poller): started with the loop it runs, stopped from outside.
// The loop asks stopping() between rounds and waits with sleep_for(), which a stop cuts
// short, or with wait_woken(), which wake() cuts short too (new work, from another thread);
// stop() returns once the loop has returned. Not restartable while running.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "clearing/base/assert.hpp"

namespace clearing::base {

class BackgroundThread {
 public:
  BackgroundThread() = default;
  ~BackgroundThread() { stop(); }
  BackgroundThread(const BackgroundThread&) = delete;
  BackgroundThread& operator=(const BackgroundThread&) = delete;

  void start(std::function<void()> loop) {
    CLEARING_ASSERT(!thread_.joinable());
    {
      std::lock_guard lock(mutex_);
      stopping_ = false;
    }
    thread_ = std::thread(std::move(loop));
  }

  // Asks the loop to end, wakes it from sleep_for, and waits for it. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  bool stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  // Waits up to `duration`, less if stop() is called (not for wake()). False when stopping.
  bool sleep_for(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    if (duration.count() > 0) wake_.wait_for(lock, duration, [&] { return stopping_; });
    return !stopping_;
  }

  // Ends the wait_woken() under way, or the next one: a wake is kept until clear_woken().
  // Callable from any thread, while running or not.
  void wake() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    wake_.notify_all();
  }

  // Forgets the wakes so far: call it before looking for work, so that work arriving after
  // the look wakes the next wait_woken().
  void clear_woken() {
    std::lock_guard lock(mutex_);
    woken_ = false;
  }

  // Waits up to `duration`, less if woken since the last clear_woken() or stopped. False
  // when stopping.
  bool wait_woken(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, duration, [&] { return stopping_ || woken_; });
    return !stopping_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace clearing::base
