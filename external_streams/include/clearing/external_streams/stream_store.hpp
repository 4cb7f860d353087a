#pragma once
// External streams in PostgreSQL: the outgoing messages with their gapless seqs, the
// relay's published marks, and the consumer's applied seqs. The database, not Kafka, is
// the source of truth: Kafka only carries copies, and anything lost there is served
// again from here (the catch-up API).
//
// All functions run inside the caller's transaction, so a derivation's messages commit
// with its subscription checkpoint and a consumer's progress with the command it applied.

#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "clearing/eventstore/migrations.hpp"
#include "clearing/eventstore/protector.hpp"
#include "clearing/eventstore/types.hpp"
#include "clearing/external_streams/message.hpp"

namespace clearing::external_streams {

inline constexpr std::int32_t kPartitionsMax = 256;
inline constexpr std::int64_t kCatchUpLimitMax = 1000;

// A partition of a stream: (stream name, partition), ordered as the locks are taken.
using PartitionKey = std::pair<std::string, std::int32_t>;

struct StreamSpec {
  std::string name;  // = Kafka topic, e.g. adapter.dk.payments.v1
  std::int32_t partitions = 1;
};

const std::vector<eventstore::Migration>& external_streams_migrations();

// Registers the partitions of outgoing streams (idempotent). Another partition count than
// registered before is refused: it would move entities to other partitions (a new count is
// a new version of the stream). The first in the caller's transaction, the second in one
// of its own.
eventstore::StoreResult<void> ensure_stream_partitions(eventstore::Transaction& tx,
                                                       const StreamSpec& stream);
eventstore::StoreResult<void> ensure_streams(eventstore::ConnectionPool& pool,
                                             std::span<const StreamSpec> streams);

// What a derivation asks to publish.
struct Draft {
  std::string type;
  std::string key;  // entity id: decides the partition, and is the Kafka key
  nlohmann::json data;
  bool once_per_key = false;   // skip if this stream already has a message of this type for the key
  std::string correlation_id;  // empty: the source event's
};

// `protector` (the pool's, eventstore/protector.hpp): the messages' personal fields are
// sealed in the table and opened by the reads below; the caller always sees them open.
//
// Appends one message with the partition's next seq; nullopt when once_per_key skipped
// it. The message's event id is derived from (stream, source event, type), so a
// derivation that runs again cannot publish the same thing twice.
eventstore::StoreResult<std::optional<ExternalMessage>> append_external(
    eventstore::Transaction& tx, const StreamSpec& stream, const Draft& draft,
    const eventstore::RecordedEvent& source, const eventstore::DataProtector* protector = nullptr);

// One message of a batch append.
struct PendingAppend {
  const StreamSpec* stream = nullptr;
  Draft draft;
  const eventstore::RecordedEvent* source = nullptr;
};

// Appends the messages in order, as append_external one by one would (once_per_key too,
// also among the batch's own messages), with few statements: one that moves the heads
// of every partition touched, locking them in (stream, partition) order so that writers
// cannot deadlock, and one insert. Returns the messages appended, in order (skipped ones left out).
// When it appended any, the transaction's commit wakes the relays on its pool (Relay).
eventstore::StoreResult<std::vector<ExternalMessage>> append_external_batch(
    eventstore::Transaction& tx, std::span<const PendingAppend> appends,
    const eventstore::DataProtector* protector = nullptr);

struct CatchUpPage {
  std::vector<ExternalMessage> events;
  std::int64_t head = 0;  // highest seq of the partition
};

// Messages with seq >= from, in seq order, at most limit (<= kCatchUpLimitMax).
eventstore::StoreResult<CatchUpPage> read_catch_up(
    eventstore::Transaction& tx, const std::string& stream, std::int32_t partition,
    std::int64_t from, std::int64_t limit, const eventstore::DataProtector* protector = nullptr);

// The relay's view of one partition.
struct PartitionMark {
  std::string stream;
  std::int32_t partition = 0;
  std::int64_t head = 0;       // highest seq written
  std::int64_t published = 0;  // highest seq acknowledged by Kafka, all below it too
};
// The relay's round, with one statement: every partition that has messages after its
// published mark, with its mark and up to `limit` (<= kCatchUpLimitMax) of them from
// published + 1, in seq order. Partitions with nothing to publish are left out. With
// `partitions`, only those (a relay instance's own, relay.hpp); without, every partition.
struct Unpublished {
  PartitionMark mark;
  std::vector<ExternalMessage> events;
};
eventstore::StoreResult<std::vector<Unpublished>> read_unpublished(
    eventstore::Transaction& tx, std::int64_t limit,
    std::optional<std::span<const PartitionKey>> partitions = std::nullopt,
    const eventstore::DataProtector* protector = nullptr);
// Moves each listed partition's published mark to its `published`, only forward, with
// one statement (head is not read).
eventstore::StoreResult<void> mark_published(eventstore::Transaction& tx,
                                             std::span<const PartitionMark> marks);

// The consumer's progress on one partition of an inbound stream.
struct InboundProgress {
  std::int64_t last_seq = 0;       // highest seq applied; all below it applied too
  std::int64_t kafka_offset = -1;  // offset of the last message consumed (-1: none)
};
// The progress rows of every partition a consumer batch touches, with one statement
// each: locked (missing ones created) in (stream, partition) byte order, as the heads are,
// so two consumers of overlapping partitions wait for each other instead of deadlocking;
// then stored, rows locked by this transaction.
eventstore::StoreResult<std::map<PartitionKey, InboundProgress>> lock_progress(
    eventstore::Transaction& tx, const std::set<PartitionKey>& partitions);
eventstore::StoreResult<void> store_progress(
    eventstore::Transaction& tx, const std::map<PartitionKey, InboundProgress>& progress);
eventstore::StoreResult<std::optional<InboundProgress>> read_progress(eventstore::Transaction& tx,
                                                                      const std::string& stream,
                                                                      std::int32_t partition);

}  // namespace clearing::external_streams
