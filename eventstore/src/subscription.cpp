#include "clearing/eventstore/subscription.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/prepared.hpp"

namespace clearing::eventstore {
namespace {

constexpr const char* kChannel = kEventsChannel;
// After a notification the new rows may still sit behind an older running transaction
// (invisible below the snapshot horizon): look again a few times, quickly, before
// falling back to waiting.
constexpr int kRecheckAfterNotifyMax = 6;
constexpr std::chrono::milliseconds kWaitSlice{50};

// Every batch locks and moves its checkpoint row: prepared once per connection.
constexpr PreparedSql kLockCheckpoint{"subscription_lock_checkpoint",
                                      "select transaction_id::text, position from "
                                      "subscription_checkpoints where name = $1 for update"};
constexpr PreparedSql kStoreCheckpoint{"subscription_store_checkpoint",
                                       "update subscription_checkpoints set transaction_id = "
                                       "$2::text::xid8, position = $3, updated_at = now()"
                                       " where name = $1"};

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, std::atomic<bool>& flag)
      : pqxx::notification_receiver(c, kChannel), flag_(flag) {}
  void operator()(const std::string&, int) override { flag_ = true; }

 private:
  std::atomic<bool>& flag_;
};

// A metric label (service_metrics.cpp) and a log field: each name is spelled once, here.
constexpr base::NameTable<SubscriptionState, 5> kSubscriptionStateNames{{
    {SubscriptionState::idle, "idle"},
    {SubscriptionState::catching_up, "catching_up"},
    {SubscriptionState::live, "live"},
    {SubscriptionState::stalled, "stalled"},
    {SubscriptionState::stopped, "stopped"},
}};
static_assert(base::lists_every_enumerator(kSubscriptionStateNames, SubscriptionState::stopped));

Checkpoint checkpoint_from(const pqxx::row& row) {
  return Checkpoint{row[0].as<std::uint64_t>(), GlobalPosition{row[1].as<std::int64_t>()}};
}

}  // namespace

// The table's names are string literals, so data() is null-terminated.
const char* to_string(SubscriptionState state) noexcept {
  return base::name_in(kSubscriptionStateNames, state).value_or("unknown").data();
}

struct Subscription::Impl {
  EventStore& store;
  SubscriptionOptions options;
  BatchHandler handler;

  base::BackgroundThread worker;

  mutable std::mutex status_mutex;
  SubscriptionStatus status;

  bool row_ensured = false;
  std::optional<Checkpoint> cached;   // the checkpoint as this instance last saw it
  std::size_t careful_remaining = 0;  // events to take one per transaction after a failure

  // A stall is logged when it starts, when its reason changes and when it ends, not at
  // every retry (the metric clearing_subscription_state is the alert). Thread: run().
  std::shared_ptr<spdlog::logger> log = base::module_logger("subscription");
  std::string failed_at;        // the event or batch the last handler failure was on, for the log
  bool handler_failed = false;  // the last poll's failure was its handler's (any class)
  std::string stall_logged;     // the reason last logged while stalled ("" when not stalled)
  std::chrono::steady_clock::time_point stalled_since{};

  std::unique_ptr<pqxx::connection> listen_connection;
  std::unique_ptr<Receiver> receiver;
  std::atomic<bool> notified{false};

  Impl(EventStore& s, SubscriptionOptions o, BatchHandler h)
      : store(s), options(std::move(o)), handler(std::move(h)) {}

  StoreResult<void> ensure_checkpoint() {
    if (row_ensured && cached) return {};
    auto loaded = store.pool().transact([&](Transaction& tx) -> StoreResult<Checkpoint> {
      tx.exec_params(
          "insert into subscription_checkpoints (name, transaction_id, position)"
          " values ($1, '0', 0) on conflict (name) do nothing",
          options.name);
      const auto rows = tx.exec_params(
          "select transaction_id::text, position from subscription_checkpoints where name = $1",
          options.name);
      return checkpoint_from(rows[0]);
    });
    if (!loaded) return tl::unexpected(loaded.error());
    row_ensured = true;
    cached = *loaded;
    return {};
  }

  // One batch. The events are read outside the handling transaction (they are
  // committed and immutable); the handling transaction locks the checkpoint row and
  // proceeds only if nobody moved it meanwhile, so two instances never both handle.
  StoreResult<std::size_t> poll_once() {
    if (auto ok = ensure_checkpoint(); !ok) return tl::unexpected(ok.error());
    const std::size_t limit = careful_remaining > 0 ? 1 : options.batch_size;
    auto events = store.read_all_after(*cached, limit);
    if (!events) return tl::unexpected(events.error());
    if (events->empty()) return 0;

    handler_failed = false;
    auto handled = store.pool().transact([&](Transaction& tx) -> StoreResult<std::size_t> {
      const auto rows = exec_prepared_here(tx, kLockCheckpoint, options.name);
      CLEARING_ASSERT(rows.size() == 1);
      const Checkpoint stored = checkpoint_from(rows[0]);
      if (stored != *cached) {
        cached = stored;  // another instance moved on: read again from there
        return 0;
      }
      HandlerResult result;
      try {
        result = handler(tx, std::span<const RecordedEvent>(*events));
      } catch (const pqxx::failure&) {
        throw;  // database trouble: transact() translates it
      } catch (const std::exception& e) {
        result = tl::unexpected(HandlerError(std::string(e.what())));
      } catch (...) {
        result = tl::unexpected(HandlerError(std::string("unknown exception")));
      }
      if (!result) {
        // One event: named here. A batch: the handler may name the event (the per-event
        // adapter does); the careful retry that follows names it in any case.
        const auto& e = events->front();
        handler_failed = true;
        failed_at = events->size() == 1 ? "event_id=" + e.event_id.value() + " type=" + e.type +
                                              " stream=" + e.stream_id.value()
                                        : "batch_events=" + std::to_string(events->size());
        return tl::unexpected(StoreError{
            result.error().code,
            events->size() == 1 ? "handler failed on event " + e.event_id.value() + " (" + e.type +
                                      " in " + e.stream_id.value() + "): " + result.error().message
                                : "handler failed on a batch of " + std::to_string(events->size()) +
                                      " events: " + result.error().message});
      }
      const Checkpoint next = Checkpoint::after(events->back());
      CLEARING_ASSERT(next > stored);
      exec_prepared_here(tx, kStoreCheckpoint, options.name, std::to_string(next.transaction_id),
                         next.position.value());
      return events->size();
    });
    if (!handled) {
      // Take the events of this batch one at a time, so those before the failing one
      // commit and the subscription stalls exactly at the event that fails.
      if (handler_failed) careful_remaining = events->size();
      cached.reset();  // reload: the failed transaction may have changed nothing, or all
      row_ensured = false;
      return handled;
    }
    if (*handled > 0) {
      cached = Checkpoint::after(events->back());
      if (careful_remaining > 0) careful_remaining -= std::min(careful_remaining, *handled);
      std::lock_guard lock(status_mutex);
      status.checkpoint = *cached;
      status.events_handled += *handled;
      status.last_progress_at =
          std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    }
    return handled;
  }

  // Logs a failed poll once per reason: the error's class and, for a handler's failure,
  // the event it failed on; never the error's text (a PostgreSQL DETAIL quotes a row's values).
  void note_failure(const StoreError& error, std::uint64_t failures) {
    const std::string reason =
        std::string("cause=") + to_string(error.code) + (handler_failed ? " " + failed_at : "");
    if (reason == stall_logged) return;
    if (stall_logged.empty()) stalled_since = std::chrono::steady_clock::now();
    stall_logged = reason;
    log->warn("subscription stalled name={} {} failures={}", options.name, reason, failures);
  }

  void note_progress(std::uint64_t failures) {
    if (stall_logged.empty()) return;
    const auto stalled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - stalled_since);
    log->info("subscription moving again name={} failures={} stalled_ms={}", options.name, failures,
              stalled_ms.count());
    stall_logged.clear();
  }

  void set_state(SubscriptionState state, std::uint64_t failures, std::string error) {
    std::lock_guard lock(status_mutex);
    status.state = state;
    status.failures = failures;
    status.last_error = std::move(error);
  }

  // Sleeps up to `duration`, waking early on stop().
  void sleep_for(std::chrono::milliseconds duration) { worker.sleep_for(duration); }

  void connect_listener() {
    try {
      listen_connection = std::make_unique<pqxx::connection>(store.pool().options().url);
      receiver = std::make_unique<Receiver>(*listen_connection, notified);
    } catch (const std::exception&) {
      receiver.reset();
      listen_connection.reset();  // polling carries on; retried at the next wait
    }
  }

  // Waits for a notification, the poll interval, or stop(), whichever comes first.
  void wait_for_events() {
    if (!listen_connection) connect_listener();
    const auto deadline = std::chrono::steady_clock::now() + options.poll_interval;
    while (!worker.stopping() && !notified && std::chrono::steady_clock::now() < deadline) {
      if (!listen_connection) {
        sleep_for(kWaitSlice);
        continue;
      }
      try {
        listen_connection->await_notification(0, kWaitSlice.count() * 1000);
      } catch (const std::exception&) {
        receiver.reset();
        listen_connection.reset();
      }
    }
  }

  void run() {
    std::uint64_t failures = 0;
    int rechecks_left = 0;
    connect_listener();
    while (!worker.stopping()) {
      notified = false;
      auto handled = poll_once();
      if (!handled) {
        ++failures;
        note_failure(handled.error(), failures);
        set_state(SubscriptionState::stalled, failures, handled.error().message);
        const auto shift = std::min<std::uint64_t>(failures - 1, 16);
        const auto backoff = std::min<std::chrono::milliseconds>(
            options.retry_backoff_max, options.retry_backoff_initial * (std::int64_t{1} << shift));
        sleep_for(backoff);
        continue;
      }
      // Moving again: a batch handled, or nothing left to handle.
      if (failures > 0) note_progress(failures);
      if (failures > 0 || *handled > 0) failures = 0;
      if (*handled > 0) {
        set_state(*handled >= options.batch_size ? SubscriptionState::catching_up
                                                 : SubscriptionState::live,
                  0, "");
        rechecks_left = kRecheckAfterNotifyMax;
        continue;
      }
      set_state(SubscriptionState::live, 0, "");
      if (rechecks_left > 0) {
        sleep_for(std::chrono::milliseconds(1 << (kRecheckAfterNotifyMax - rechecks_left)));
        --rechecks_left;
        continue;
      }
      wait_for_events();
      if (notified) rechecks_left = kRecheckAfterNotifyMax;
    }
    set_state(SubscriptionState::stopped, 0, "");
  }
};

Subscription::Subscription(EventStore& store, SubscriptionOptions options, EventHandler handler)
    : Subscription(store, std::move(options),
                   BatchHandler([handler = std::move(handler)](
                                    Transaction& tx,
                                    std::span<const RecordedEvent> events) -> HandlerResult {
                     for (const auto& event : events) {
                       auto handled = handler(tx, event);
                       if (!handled) {
                         if (events.size() == 1) return handled;
                         return tl::unexpected(HandlerError(
                             handled.error().code,
                             "event " + event.event_id.value() + " (" + event.type + " in " +
                                 event.stream_id.value() + "): " + handled.error().message));
                       }
                     }
                     return {};
                   })) {}

Subscription::Subscription(EventStore& store, SubscriptionOptions options, BatchHandler handler)
    : impl_(std::make_unique<Impl>(store, std::move(options), std::move(handler))) {
  CLEARING_ASSERT(!impl_->options.name.empty());
  CLEARING_ASSERT(impl_->options.batch_size > 0 && impl_->options.batch_size <= kReadBatchMax);
}

Subscription::~Subscription() { stop(); }

void Subscription::start() {
  impl_->worker.start([this] { impl_->run(); });
}

void Subscription::stop() { impl_->worker.stop(); }

SubscriptionStatus Subscription::status() const {
  std::lock_guard lock(impl_->status_mutex);
  return impl_->status;
}

StoreResult<std::size_t> Subscription::poll_once() { return impl_->poll_once(); }

StoreResult<Checkpoint> Subscription::stored_checkpoint(ConnectionPool& pool,
                                                        const std::string& name) {
  return pool.transact([&](Transaction& tx) -> StoreResult<Checkpoint> {
    const auto rows = tx.exec_params(
        "select transaction_id::text, position from subscription_checkpoints where name = $1",
        name);
    if (rows.empty()) return Checkpoint{};
    return checkpoint_from(rows[0]);
  });
}

}  // namespace clearing::eventstore
