#pragma once
// The dispatcher: claims due clearing calls from transfer_work (FOR UPDATE SKIP LOCKED
// plus a lease, so several dispatchers, in one process or many, never make the same
// attempt at once), calls the clearing client concurrently up to a limit, and records
// each classified answer as a command on the transfer, which schedules what comes next.
//
// Crash safety: nothing is recorded before the answer. A dispatcher that dies mid-call
// leaves a lease that expires; another one makes the same call again with the same
// idempotency key, which the clearing executes at most once.
//
// An answer the saga refuses (the work row disagrees with the transfer: a defect) is
// parked with its reason (parked_messages, source "dispatcher") and its call postponed
// by refused_retry_delay, in the transaction that records the batch's other answers.
//
// Threading: one thread of its own (start/stop); the client does the I/O.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/clearing_client/client.hpp"

namespace clearing::adapter {

struct DispatcherOptions {
  std::string owner;  // this instance's name in leases (host:pid:n)
  int in_flight_max = 64;
  int claim_batch_max = 64;
  // On: calls claimed and not yet answered are at most the client's concurrency limit now
  // (ClearingClient::concurrency_limit, adaptive) plus half a claim batch, and never above
  // in_flight_max: calls are not claimed, their leases running, only to wait in the client's
  // queue. Off: in_flight_max.
  bool window_follows_client_limit = false;
  std::chrono::milliseconds lease{30'000};  // longer than the client's request deadline
  // A lease counts only while its owner lives: each dispatcher holds a shared advisory lock
  // (kDispatcherLivenessLockClass, hashtext(owner)) on a PostgreSQL session of its own, and
  // a claim takes a leased call whose owner holds none (a killed process's session ends at
  // once; a vanished host's within owner_loss_timeout), instead of waiting out `lease`.
  // Every dispatcher sharing the database must have it on. Without its session a dispatcher
  // claims nothing. Off: leases last `lease` whatever happens to their owner.
  bool lease_by_session = false;
  std::chrono::milliseconds owner_loss_timeout{3'000};
  std::chrono::milliseconds idle_poll{20};  // how often to look for due work when idle and unwoken
  std::chrono::milliseconds stop_grace{10'000};  // on stop: wait this long for answers
  // An answer the saga refuses (the work row disagrees with the transfer: a defect) is
  // parked, and the call made again no sooner than this.
  std::chrono::milliseconds refused_retry_delay{300'000};
  sagas::RetryPolicy policy;
  // Known maintenance windows of the clearing (config clearing.maintenance_windows): a claimed
  // call, submit or inquiry, whose time falls inside one is not made; it is deferred to the
  // window's end (SubmissionDeferred, once per window per transfer) and claimed again then.
  sagas::MaintenanceWindows maintenance;
  std::uint64_t jitter_seed = 0;  // 0: from std::random_device
  // Called for every answer received (metrics): action, answer class, latency.
  std::function<void(std::string_view action, std::string_view answer_class,
                     std::int64_t latency_ms)>
      on_answer;
};

// The advisory lock class of the dispatchers' liveness sessions (first key of the two-int form).
inline constexpr std::int32_t kDispatcherLivenessLockClass = 0x64737076;  // "dspv"

struct DispatcherStats {
  std::int64_t calls_started = 0;
  std::int64_t answers_recorded = 0;
  std::int64_t answers_stale = 0;      // recorded, but the saga had moved on (no events)
  std::int64_t answers_refused = 0;    // refused by the saga: parked, the call postponed
  std::int64_t record_failures = 0;    // store errors while recording (call made again later)
  std::int64_t calls_abandoned = 0;    // no answer within the lease (call made again later)
  std::int64_t claim_failures = 0;     // claims that failed (a store error: nothing claimed)
  std::int64_t calls_deferred = 0;     // not made: inside a maintenance window (SubmissionDeferred)
  std::int64_t deferrals_refused = 0;  // a window's deferral the saga refused: parked, postponed
  std::int64_t deferral_failures = 0;  // calls not deferred: a store error (claimed again)
  std::int64_t in_flight_now = 0;
  bool running = false;        // its thread is between start() and stop()
  bool claim_failing = false;  // its last claim failed (logged once per change)
  std::map<std::string, std::int64_t> answers_by_class;  // client answer class names
};

class Dispatcher {
 public:
  Dispatcher(TransferService& transfers, clearing_client::ClearingClient& client,
             const base::Clock& clock, DispatcherOptions options);
  ~Dispatcher();

  void start();
  // Stops claiming, waits up to stop_grace for the answers in flight and records them;
  // the rest are abandoned safely (their leases expire and the calls are made again).
  void stop();

  // Work was committed that is due now (the inbound consumer scheduled new transfers):
  // claim at once instead of after idle_poll. Work of other instances, and work that
  // falls due later, is found by the idle poll.
  void wake();

  // One round on the caller's thread: claim, call, wait for every answer, record.
  // Returns the number of answers recorded. For tests and tools; do not mix with start().
  eventstore::StoreResult<int> run_once();

  DispatcherStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::adapter
