#pragma once
// Private to core-sim: the publisher thread. It takes the source's transfers in order, in
// batches of at most `publish_batch_max` paced by `rate_per_s`, and for each batch runs ONE
// transaction that skips the transfers an earlier run requested or refused, reserves the
// funds of the others (FundsReserved), records the ones the core refuses itself, appends a
// TransferRequested for each reserved one to the core's stream (source_event_id = its
// FundsReserved) and inserts their core_transfers rows (requested_at = the commit's
// instant, as near as SQL can see it). A batch that fails is retried whole, with backoff.
//
// Thread safety: start() and join() from the owner's thread; processed() and done() from
// any thread. The references must outlive the publisher; the source must not change once
// started.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "clearing/base/logging.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "request_source.hpp"
#include "stop_signal.hpp"

namespace clearing::core_sim {

struct PublisherPacing {
  double rate_per_s = 0;  // transfers per second; 0 = as fast as possible
  int publish_batch_max = 100;
};

class TransferPublisher {
 public:
  TransferPublisher(eventstore::EventStore& store, AccountCache& cache,
                    const external_streams::StreamSpec& core_stream, const RequestSource& source,
                    StopSignal& stop, PublisherPacing pacing);

  void start();  // runs the thread until every transfer is handled or stop is raised
  void join();   // once stop is raised (or the work is done); idempotent

  std::int64_t processed() const { return processed_.load(); }  // requested or refused
  bool done() const { return publishing_done_.load(); }         // every transfer handled

 private:
  void run();
  std::int64_t allowance(std::chrono::steady_clock::time_point begun, std::int64_t sent);
  eventstore::StoreResult<std::int64_t> publish_batch(const std::vector<TransferRequest>& batch);

  eventstore::EventStore& store_;
  AccountCache& cache_;
  const external_streams::StreamSpec& core_stream_;
  const RequestSource& source_;
  StopSignal& stop_;
  const PublisherPacing pacing_;
  std::atomic<std::int64_t> processed_{0};
  std::atomic<bool> publishing_done_{false};
  std::shared_ptr<spdlog::logger> log_;
  std::thread thread_;
};

}  // namespace clearing::core_sim
