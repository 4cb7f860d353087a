#include "clearing/external_streams/backfill.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "clearing/base/logging.hpp"
#include "clearing/eventstore/subscription.hpp"
#include "clearing/external_streams/stream_registry.hpp"

namespace clearing::external_streams {

struct Backfill::Impl {
  Impl(eventstore::EventStore& s, DerivedStream derived, BackfillOptions o)
      : store(s),
        name(derived.spec.name),
        options(std::move(o)),
        handed_over(std::make_shared<std::atomic<bool>>(false)),
        subscription(store,
                     eventstore::SubscriptionOptions{.name = backfill_subscription_name(name),
                                                     .batch_size = options.batch_size},
                     make_backfill_handler(store, std::move(derived), {.lookups = options.lookups},
                                           handed_over)) {}

  eventstore::EventStore& store;
  std::string name;
  BackfillOptions options;
  std::shared_ptr<std::atomic<bool>> handed_over;
  eventstore::Subscription subscription;
  std::shared_ptr<spdlog::logger> log = base::module_logger("backfill");

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  BackfillStats stats;
  std::thread thread;

  // Waits `pause` or until stop(); false when stopping.
  bool pause(std::chrono::milliseconds pause) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, pause, [this] { return stopping; });
    return !stopping;
  }

  // After a batch that handed over, or with nothing left to read: is the stream live now?
  bool live_now() {
    auto live = hand_over_if_caught_up(store.pool(), name);
    if (!live) {
      // Not handed over: the next batch or idle check tries again (a failed hand-over
      // transaction changed nothing).
      log->warn("backfill hand-over check failed stream={} error=\"{}\"", name,
                live.error().message);
      std::lock_guard lock(mutex);
      stats.last_error = live.error().message;
      return false;
    }
    return *live;
  }

  void run() {
    log->info("backfill started stream={}", name);
    auto logged_at = std::chrono::steady_clock::now();
    auto backoff = std::chrono::milliseconds(100);
    while (true) {
      if (options.live_busy && options.live_busy()) {
        {
          std::lock_guard lock(mutex);
          ++stats.yields;
        }
        if (!pause(options.yield_pause)) break;
        continue;
      }
      auto handled = subscription.poll_once();
      if (!handled) {
        {
          std::lock_guard lock(mutex);
          stats.last_error = handled.error().message;
        }
        log->warn("backfill failed stream={} error=\"{}\" retry_in_ms={}", name,
                  handled.error().message, backoff.count());
        if (!pause(backoff)) break;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      backoff = std::chrono::milliseconds(100);
      const auto status = subscription.status();
      {
        std::lock_guard lock(mutex);
        stats.last_error.clear();
        stats.events_handled += *handled;
        stats.position = status.checkpoint.position.value();
      }
      if ((*handled == 0 || handed_over->load()) && live_now()) {
        std::lock_guard lock(mutex);
        stats.handed_over = true;
        log->info("backfill done stream={} events={}: the live derivation derives it from now",
                  name, stats.events_handled);
        break;
      }
      if (std::chrono::steady_clock::now() - logged_at >= options.progress_log) {
        logged_at = std::chrono::steady_clock::now();
        const auto s = stats_copy();
        log->info("backfill progress stream={} position={} events={} yields={}", name, s.position,
                  s.events_handled, s.yields);
      }
      if (*handled == 0 && !pause(options.idle_poll)) break;
    }
    std::lock_guard lock(mutex);
    stats.running = false;
  }

  BackfillStats stats_copy() const {
    std::lock_guard lock(mutex);
    return stats;
  }
};

Backfill::Backfill(eventstore::EventStore& store, DerivedStream stream, BackfillOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(stream), std::move(options))) {}

Backfill::~Backfill() { stop(); }

void Backfill::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->thread.joinable()) return;
  impl_->stopping = false;
  impl_->stats.running = true;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void Backfill::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

BackfillStats Backfill::stats() const { return impl_->stats_copy(); }
const std::string& Backfill::stream() const { return impl_->name; }

}  // namespace clearing::external_streams
