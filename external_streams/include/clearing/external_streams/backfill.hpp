#pragma once
// The backfill of one derived stream added to a store with history (stream_registry.hpp):
// a subscription of its own that derives the stream from its start up to the live
// derivation's checkpoint, then hands the stream over to the live derivation and ends.
//
// It yields to live work: before each batch it asks `live_busy` (the service answers
// whether the live derivation has a backlog) and, while it does, waits `yield_pause`
// instead of reading. Its batches are small (`batch_size`) and it appends only to its
// own stream's partitions, so it never waits on a lock a live batch holds except the live
// checkpoint's row, which it takes only for the few milliseconds of its own batch.
//
// Thread safety: start/stop/stats from any thread; the work runs on the backfill's thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/derivation.hpp"

namespace clearing::external_streams {

struct BackfillOptions {
  std::size_t batch_size = 256;
  std::chrono::milliseconds idle_poll{500};        // nothing to read: when to look again
  std::chrono::milliseconds yield_pause{20};       // the live derivation is busy: wait this long
  std::chrono::milliseconds progress_log{10'000};  // how often progress is logged
  std::function<bool()> live_busy;                 // none: never yields
  std::shared_ptr<DerivationLookups> lookups;
};

struct BackfillStats {
  bool running = false;
  bool handed_over = false;  // the stream is live: the backfill has ended
  std::uint64_t events_handled = 0;
  std::uint64_t yields = 0;   // batches put off for live work
  std::int64_t position = 0;  // the global position it has derived up to
  std::string last_error;     // while failing
};

class Backfill {
 public:
  Backfill(eventstore::EventStore& store, DerivedStream stream, BackfillOptions options);
  ~Backfill();
  Backfill(const Backfill&) = delete;
  Backfill& operator=(const Backfill&) = delete;

  void start();
  // Graceful: the batch in hand commits or rolls back; returns when the thread ended.
  void stop();
  BackfillStats stats() const;
  const std::string& stream() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::external_streams
