#pragma once
// A subscription hands every committed event, once and in commit-safe order, to a
// handler, and stores its checkpoint in the same transaction as the handler's own
// writes: the handler's database effects happen exactly once.
//
// Catch-up from the stored checkpoint, then live: woken by LISTEN/NOTIFY, with polling
// as the fallback when a notification is missed (or the listening connection is down).
// A handler that fails (returns an error or throws) is retried with capped exponential
// backoff; the subscription never skips the event, reports itself stalled with the
// error while it cannot move on, and goes on by itself once the cause is gone.
//
// Two instances with the same name (two processes) are safe: the checkpoint row is
// locked for the duration of each batch, so batches never overlap.
//
// Thread safety: start/stop/status from any thread; the handler runs on the
// subscription's own thread, one event (or one batch) at a time.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "clearing/eventstore/event_store.hpp"

namespace clearing::eventstore {

struct SubscriptionOptions {
  std::string name;  // the checkpoint's key; stable for ever
  std::size_t batch_size = 256;
  std::chrono::milliseconds poll_interval{1000};  // fallback when no notification comes
  std::chrono::milliseconds retry_backoff_initial{50};
  std::chrono::milliseconds retry_backoff_max{5000};
};

// Why a handler did not handle its events. Whatever the cause, the batch rolls back and is
// tried again, one event per transaction, so the subscription stalls exactly at the event
// that fails and goes on once the cause is gone. `code` is the cause's class as the status
// and the log show it: StoreErrc::handler_failed for an event the handler refuses (in its
// own words), or the class of a database error the handler returns from its own SQL, so a
// database that is away is not reported as a refusal.
struct HandlerError {
  StoreErrc code = StoreErrc::handler_failed;
  std::string message;

  // A refusal in the handler's words: `return tl::unexpected(std::string(...))`.
  HandlerError(std::string refusal) : message(std::move(refusal)) {}  // NOLINT: implicit
  // A database failure beneath the handler, keeping its class.
  HandlerError(StoreError database)  // NOLINT: implicit
      : code(database.code), message(std::move(database.message)) {}
  HandlerError(StoreErrc c, std::string m) : code(c), message(std::move(m)) {}
};
using HandlerResult = tl::expected<void, HandlerError>;

// Returns an error (or throws) to roll the batch back and retry later.
using EventHandler = std::function<HandlerResult(Transaction&, const RecordedEvent&)>;
// The same for a whole batch at once, in commit order, so the handler can write it with
// a few set-wise statements. After a failure the subscription hands the events over one
// per call, so the event that fails is the one the error names.
using BatchHandler = std::function<HandlerResult(Transaction&, std::span<const RecordedEvent>)>;

enum class SubscriptionState { idle, catching_up, live, stalled, stopped };
const char* to_string(SubscriptionState state) noexcept;

struct SubscriptionStatus {
  SubscriptionState state = SubscriptionState::idle;
  Checkpoint checkpoint;
  std::uint64_t events_handled = 0;
  std::uint64_t failures = 0;          // consecutive, reset by progress
  std::string last_error;              // while stalled
  base::Timestamp last_progress_at{};  // when the checkpoint last moved
};

class Subscription {
 public:
  Subscription(EventStore& store, SubscriptionOptions options, EventHandler handler);
  Subscription(EventStore& store, SubscriptionOptions options, BatchHandler handler);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Runs on a thread of its own until stop().
  void start();
  // Graceful: the batch in hand finishes (or rolls back); returns when the thread ended.
  void stop();

  SubscriptionStatus status() const;

  // One batch, synchronously, on the caller's thread: the number of events handled,
  // or the error that stopped the batch (nothing of the batch is then committed).
  // For tests and tools; do not mix with start().
  StoreResult<std::size_t> poll_once();

  // The stored checkpoint of a subscription name (zero if it never ran).
  static StoreResult<Checkpoint> stored_checkpoint(ConnectionPool& pool, const std::string& name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::eventstore
