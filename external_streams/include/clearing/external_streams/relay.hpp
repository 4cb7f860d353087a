#pragma once
// The relay: publishes each outgoing partition's new messages, in seq order, to the
// Kafka topic and partition of the same name, with librdkafka's idempotent producer,
// and moves the partition's published mark from the delivery reports (only across a
// contiguous run of acknowledged seqs). A crash between produce and mark republishes:
// consumers skip seqs they have applied.
//
// Kafka headers: seq, type, event_id, source_event_id, correlation_id.
// Threading: one thread of its own (start/stop), or run_once on the caller's.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/kafka.hpp"

namespace clearing::external_streams {

// The relay's pacing under load (RelayOptions::round_interval_min) unless configured, and
// the most a configuration may ask for. The adapter's config and core-sim keep their own
// copies, as their headers do not include this one; they are checked against these at
// compile time (adapter/src/service.cpp, tools/core_sim/src/core_sim.cpp).
inline constexpr std::chrono::milliseconds kRoundIntervalMinDefault{50};
inline constexpr std::chrono::milliseconds kRoundIntervalMinMax{1'000};

struct RelayOptions {
  KafkaClientOptions kafka;
  int batch_max = 2000;                        // messages per partition per round
  std::chrono::milliseconds idle_poll{10};     // how often to look for new messages
  // Under load (the last round relayed messages), a round starts no sooner than this after
  // the one before it started, so that each round carries a batch: a round costs a read,
  // a produce request per broker, a flush and a mark, and its messages reach consumers
  // together, who then apply them in fewer transactions. Against Kafka brokers that
  // answer at once (TCP_NODELAY, like Kafka's own and our embedded cluster's), rounds
  // back to back carried a few messages each and cost bench/e2e a fifth of its rate.
  std::chrono::milliseconds round_interval_min = kRoundIntervalMinDefault;
  std::chrono::milliseconds flush_timeout{30'000};
  std::chrono::milliseconds retry_backoff_max{5'000};
};

struct RelayStats {
  std::int64_t produced = 0;
  std::int64_t acknowledged = 0;
  std::int64_t failed = 0;       // delivery reports with an error (republished later)
  std::int64_t rounds = 0;
  std::int64_t lag = 0;          // messages written but not yet acknowledged, all partitions
  std::string last_error;
};

class Relay {
 public:
  static tl::expected<std::unique_ptr<Relay>, std::string> create(eventstore::ConnectionPool& pool,
                                                                   RelayOptions options);
  ~Relay();

  void start();
  void stop();  // graceful: the round in hand finishes (flush), then the producer closes

  // One round over every partition: the number of messages acknowledged, or an error.
  tl::expected<int, std::string> run_once();

  RelayStats stats() const;

  struct Impl;

 private:
  explicit Relay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::external_streams
