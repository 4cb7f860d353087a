#pragma once
// The PostgreSQL event store.
//
// Append: optimistic concurrency on an expected version; a conflict is the typed error
// wrong_expected_version, never an exception. Appending events whose ids are all stored
// already is a no-op reported as already_appended (idempotent append), so a command
// retried after an unknown commit cannot write twice.
//
// Reading all events: in (transaction_id, position) order, and only rows whose
// transaction is older than every transaction still running. A transaction that got a
// lower position but commits late therefore cannot be skipped by a reader that has
// already moved past a higher position.
//
// Each event's schema version (EventData::schema_version) is stored in a column beside its
// data and read back in RecordedEvent; the store checks its range, never its meaning.
//
// Every function has two forms: inside the caller's transaction (so a handler's writes
// commit with its checkpoint) and in a transaction of its own. Thread safe.

#include <span>
#include <vector>

#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/types.hpp"

namespace clearing::eventstore {

// One stream's part of a batch append (EventStore::append_batch).
struct StreamAppend {
  StreamId stream;
  ExpectedVersion expected;  // exactly(v) or no_stream(); any() is refused in a batch
  std::vector<EventData> events;
};

inline constexpr std::size_t kStreamsPerBatchMax = 1000;

class EventStore {
 public:
  explicit EventStore(ConnectionPool& pool);

  ConnectionPool& pool() { return pool_; }

  StoreResult<AppendResult> append(const StreamId& stream, ExpectedVersion expected,
                                   std::span<const EventData> events);
  StoreResult<AppendResult> append(Transaction& tx, const StreamId& stream,
                                   ExpectedVersion expected, std::span<const EventData> events);

  // Appends to many streams with two statements, whatever their number: the first locks
  // the streams' version rows in stream id order (so two batches over the same streams
  // wait for each other instead of deadlocking) and finds which event ids are stored
  // already; the second writes the streams whose expectation holds. The result has one
  // entry per append, in order, each what `append` would have answered alone: written;
  // already_appended when all its ids were stored (nothing written); or the typed
  // error wrong_expected_version / partially_appended, with nothing of that stream
  // written while the others are. Streams must be distinct. Only the ids of streams
  // that exist are looked up: an id of a new stream that is stored in another stream
  // fails the whole statement on the events' unique index (a caller bug). Malformed input (any
  // stream) fails the whole batch with invalid_argument / payload_too_large before the
  // database is touched.
  StoreResult<std::vector<StoreResult<AppendResult>>> append_batch(
      Transaction& tx, std::span<const StreamAppend> appends);

  // Locks the streams' version rows in stream id order, the order append_batch takes
  // them in, so nothing else can append to those streams until tx ends: for a caller
  // that reads streams, decides, and must not see them move before its append. Streams
  // that do not exist yet are not locked.
  StoreResult<void> lock_streams(Transaction& tx, std::span<const StreamId> streams);

  // Events of one stream with version >= from, in version order, at most limit.
  StoreResult<std::vector<RecordedEvent>> read_stream(const StreamId& stream,
                                                      StreamVersion from = StreamVersion{1},
                                                      std::size_t limit = kReadBatchMax);
  StoreResult<std::vector<RecordedEvent>> read_stream(Transaction& tx, const StreamId& stream,
                                                      StreamVersion from = StreamVersion{1},
                                                      std::size_t limit = kReadBatchMax);

  // Events of several streams in one statement, ordered by (stream id as bytes, version), at most
  // limit (<= kReadBatchMax). When the result holds `limit` events, the streams after
  // the last one returned were not read and the last one may be cut short: a caller
  // that needs whole streams reads those again (Aggregate::load_many does).
  StoreResult<std::vector<RecordedEvent>> read_streams(Transaction& tx,
                                                       std::span<const StreamId> streams,
                                                       std::size_t limit = kReadBatchMax);

  // The stream's current version (0 when it has no events).
  StoreResult<StreamVersion> stream_version(Transaction& tx, const StreamId& stream);

  // Committed events after the checkpoint, in commit-safe order, at most limit.
  StoreResult<std::vector<RecordedEvent>> read_all_after(Checkpoint after, std::size_t limit);
  StoreResult<std::vector<RecordedEvent>> read_all_after(Transaction& tx, Checkpoint after,
                                                         std::size_t limit);

  // One event by id (for trace and causation look-ups); empty when unknown.
  StoreResult<std::optional<RecordedEvent>> read_event(Transaction& tx, const EventId& id);

 private:
  ConnectionPool& pool_;
};

// Validates an append without touching the database; exposed for tests and callers
// that want to fail early.
StoreResult<void> validate_append(const StreamId& stream, std::span<const EventData> events);

}  // namespace clearing::eventstore
