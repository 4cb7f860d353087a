#pragma once
// The relay: publishes each outgoing partition's new messages, in seq order, to the
// Kafka topic and partition of the same name, with librdkafka's idempotent producer,
// and moves the partition's published mark from the delivery reports (only across a
// contiguous run of acknowledged seqs). A crash between produce and mark republishes:
// consumers skip seqs they have applied.
//
// Kafka headers: seq, type, event_id, source_event_id, correlation_id, and on a deprecated
// stream's messages `deprecation` (deprecation_header_value).
// Threading: one thread of its own (start/stop), or run_once on the caller's.
//
// One publisher per partition: a relay publishes only the partitions it owns, and it owns
// a partition while its ownership session (a PostgreSQL connection of its own) holds the
// partition's session-level advisory lock. So with several instances on one database each
// message is produced once; when an owner dies its session ends (at once for a killed
// process, within owner_loss_timeout for a vanished host) and with it its locks, which the
// others take at their next ownership refresh: after a failover, at-least-once, as ever.
// Each instance takes every free partition and gives those beyond its share
// (ceil(partitions / instances)) to instances below theirs; see docs/streams.md.
// Lock keys, two-int advisory locks of the relay's database:
//   (kRelayPartitionLockClass, hashtext(stream || '/' || partition))  a partition's owner
//   (kRelayMemberLockClass, 0), shared                                every live instance

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/errors.hpp"
#include "clearing/external_streams/kafka.hpp"

namespace clearing::external_streams {

// The relay's pacing under load (RelayOptions::round_interval_min) unless configured, and
// the most a configuration may ask for. The adapter's config and core-sim keep their own
// copies, as their headers do not include this one; they are checked against these at
// compile time (adapter/src/service.cpp, tools/core_sim/src/core_sim.cpp).
inline constexpr std::chrono::milliseconds kRoundIntervalMinDefault{50};
inline constexpr std::chrono::milliseconds kRoundIntervalMinMax{1'000};

// The advisory lock classes of partition ownership (the first key of the two-int form),
// kept apart from other users of advisory locks on the same database.
inline constexpr std::int32_t kRelayPartitionLockClass = 0x726c6179;  // "rlay"
inline constexpr std::int32_t kRelayMemberLockClass = 0x726c6d62;     // "rlmb"

struct RelayOptions {
  KafkaClientOptions kafka;
  int batch_max = 2000;  // messages per partition per round
  // How often an idle relay looks for new messages. A commit on the relay's own pool that
  // appended messages (append_external_batch) wakes it at once (the pool's outbox hook);
  // the poll finds what other processes append. A relay pacing its rounds under load
  // (round_interval_min) or backing off after a failure is not woken: it keeps its pause.
  std::chrono::milliseconds idle_poll{10};
  // Under load (the last round relayed messages), a round starts no sooner than this after
  // the one before it started, so that each round carries a batch: a round costs a read,
  // a produce request per broker, a flush and a mark, and its messages reach consumers
  // together, who then apply them in fewer transactions. Against Kafka brokers that
  // answer at once (TCP_NODELAY, like Kafka's own and our embedded cluster's), rounds
  // back to back carried a few messages each and cost bench/e2e a fifth of its rate.
  std::chrono::milliseconds round_interval_min = kRoundIntervalMinDefault;
  // ... in proportion to how full the round was (round_pause): a round of this many
  // messages or more waits all of round_interval_min, a round of a few waits a few
  // hundredths of it. At ordinary load (a few messages per round) batching buys nothing and
  // the wait was most of a message's time in the relay.
  std::size_t round_full_messages = 50;
  std::chrono::milliseconds flush_timeout{30'000};
  std::chrono::milliseconds retry_backoff_max{5'000};
  // Partition ownership. A round refreshes it (takes free partitions, gives extras, checks
  // the session) when this long has passed since the last refresh: the most a free
  // partition (its owner stopped or died) waits for this instance, beside its round.
  std::chrono::milliseconds ownership_refresh{100};
  // How long the server keeps a silent ownership session (a host that lost power or its
  // network) and with it its partitions, and how long this side waits on a silent server:
  // TCP keepalives after 1 s idle, one a second, timeout / 1 s - 1 of them, and a TCP user
  // timeout, on both ends. A killed process's session ends at once: its kernel closes the
  // connection. At least 2 s.
  std::chrono::milliseconds owner_loss_timeout{3'000};
  // An instance below its share takes a free partition at once; one at its share only after
  // the partition stayed free this long, so that what is given to an instance below its
  // share waits for it, and yet nothing waits longer on an instance that does not take what
  // it is given (it is then given nothing more). At least 2 x ownership_refresh.
  std::chrono::milliseconds handover_grace{1'000};
  // How often a round reads which streams are deprecated (their sunsets in the stream
  // registry, derived_streams), for the `deprecation` header. At least 1 ms.
  std::chrono::milliseconds deprecation_refresh{5'000};
};

// The Kafka header a deprecated stream's messages carry (docs/streams.md, "Kafka headers"),
// and its value: `sunset=YYYY-MM-DD`, the day the stream is retired (stops deriving), from
// the registry's sunset. A list of `key=value` separated by "; ", of which this is the
// only key so far: a reader ignores keys it does not know.
inline constexpr std::string_view kDeprecationHeader = "deprecation";
std::string deprecation_header_value(std::string_view sunset);

// Why a round failed. run() tries again after a backoff whatever the cause: each clears by
// itself or by a person's act elsewhere (the database back, a broker back, the ownership
// session's own error), never by the relay stopping. Typed so the caller can tell them
// apart; the message never quotes a row's values (a database error by its class only).
enum class RelayErrc {
  ownership,        // the ownership session failed (OwnershipError's message): nothing owned
  database,         // reading unpublished messages or marking them published failed
  delivery_failed,  // Kafka refused or did not acknowledge messages: published again later
  producer_failed,  // the producer could not be made again after a fatal error
};

inline constexpr base::NameTable<RelayErrc, 4> kRelayErrcNames{{
    {RelayErrc::ownership, "ownership"},
    {RelayErrc::database, "database"},
    {RelayErrc::delivery_failed, "delivery_failed"},
    {RelayErrc::producer_failed, "producer_failed"},
}};
static_assert(base::lists_every_enumerator(kRelayErrcNames, RelayErrc::producer_failed));

constexpr std::string_view to_string(RelayErrc code) noexcept {
  return base::name_in(kRelayErrcNames, code).value_or("unknown");
}

// The message is also RelayStats::last_error.
using RelayError = CodedError<RelayErrc>;

struct RelayStats {
  std::int64_t produced = 0;
  std::int64_t acknowledged = 0;
  std::int64_t failed = 0;  // delivery reports with an error (republished later)
  std::int64_t rounds = 0;
  std::int64_t lag = 0;  // messages written but not yet acknowledged, of its partitions
  std::string last_error;
  std::int64_t partitions_owned = 0;      // partitions this instance publishes now
  std::int64_t in_flight_partitions = 0;  // partitions with messages awaiting delivery reports
  std::int64_t relays_seen = 0;  // live instances on the database, itself included (0: no session)
  std::int64_t partitions_taken = 0;  // since start: partitions it took (free ones)
  std::int64_t partitions_given = 0;  // since start: partitions it let go to balance or at stop
};

// The pause before the next round after one that relayed `moved` messages (> 0) and took
// `elapsed`: round_interval_min scaled by min(moved, round_full_messages) /
// round_full_messages, less the time the round took, never negative.
std::chrono::milliseconds round_pause(std::size_t moved, std::chrono::milliseconds elapsed,
                                      const RelayOptions& options) noexcept;

class Relay {
 public:
  static tl::expected<std::unique_ptr<Relay>, SetupError> create(eventstore::ConnectionPool& pool,
                                                                 RelayOptions options);
  ~Relay();

  void start();
  // Graceful: the round in hand finishes (flush), then its partitions are released, so the
  // other instances take them at their next ownership refresh.
  void stop();

  // One round over the partitions this instance owns, after an ownership refresh when one
  // is due: the number of messages acknowledged, or an error.
  tl::expected<int, RelayError> run_once();

  RelayStats stats() const;

  struct Impl;

 private:
  explicit Relay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::external_streams
