#pragma once
// The event envelope, its identifiers, the store's limits and its typed errors.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>

#include "clearing/base/clock.hpp"
#include "clearing/base/strong.hpp"

namespace pqxx {
class transaction_base;
}

namespace clearing::eventstore {

struct StreamIdTag {};
struct StreamVersionTag {};
struct GlobalPositionTag {};
struct EventIdTag {};
using StreamId = base::Strong<StreamIdTag, std::string>;
// Version of a stream = number of events in it; 0 means "no events yet".
using StreamVersion = base::Strong<StreamVersionTag, std::int64_t>;
// The events table's identity column: unique, increasing in insert order, but NOT in
// commit order, which is why readers order by (transaction_id, position).
using GlobalPosition = base::Strong<GlobalPositionTag, std::int64_t>;
using EventId = base::Strong<EventIdTag, std::string>;
struct SchemaVersionTag {};
// The version of an event type's stored JSON shape: 1 for its first shape, one more for each
// change. The store keeps it beside the data (its own column, so `events check` and people
// can count versions without parsing JSON); what a version means is the codec's business
// (sagas/upcasters.hpp turns an old shape into the current one on read). Rows written before
// the column existed read as 1.
using SchemaVersion = base::Strong<SchemaVersionTag, std::int32_t>;
inline constexpr SchemaVersion kFirstSchemaVersion{1};

// All database work happens inside a libpqxx transaction; handlers get one so their
// writes commit together with the checkpoint.
using Transaction = pqxx::transaction_base;

// Named limits (TIGER_STYLE): every input to the store is bounded.
inline constexpr std::size_t kStreamIdBytesMax = 200;
inline constexpr std::size_t kEventTypeBytesMax = 100;
inline constexpr std::size_t kEventDataBytesMax = 256 * 1024;
inline constexpr std::size_t kEventsPerAppendMax = 1000;
inline constexpr std::size_t kReadBatchMax = 10000;
inline constexpr std::int32_t kSchemaVersionMax = 1000;

struct Metadata {
  std::string correlation_id;  // same for every event of one business flow
  std::string causation_id;    // id of the event (or external message) that caused this one
  nlohmann::json
      source;  // where it came from, e.g. {"stream":..,"partition":..,"seq":..}; null if none
  nlohmann::json extra;  // optional further fields; null if none

  nlohmann::json to_json() const;
  static Metadata from_json(const nlohmann::json& j);
};

// An event to append.
struct EventData {
  EventId event_id;
  std::string type;
  nlohmann::json data;  // must be a JSON object
  Metadata metadata;
  SchemaVersion schema_version = kFirstSchemaVersion;  // of data's shape; 1..kSchemaVersionMax
};

// An event as stored.
struct RecordedEvent {
  GlobalPosition position;
  std::uint64_t transaction_id = 0;
  StreamId stream_id;
  StreamVersion version;
  EventId event_id;
  std::string type;
  nlohmann::json data;
  Metadata metadata;
  base::Timestamp recorded_at;
  SchemaVersion schema_version = kFirstSchemaVersion;  // as written; 1 for rows older than it
};

// Where a reader of all events stands: the (transaction id, position) of the last
// event it has seen. Ordering by this pair is a total order that never lets an event
// that commits late slip behind a checkpoint (see event_store.cpp).
struct Checkpoint {
  std::uint64_t transaction_id = 0;
  GlobalPosition position{0};
  friend auto operator<=>(const Checkpoint&, const Checkpoint&) = default;
  static Checkpoint after(const RecordedEvent& e) { return {e.transaction_id, e.position}; }
};

class ExpectedVersion {
 public:
  static ExpectedVersion any() { return ExpectedVersion{kAny}; }
  static ExpectedVersion no_stream() { return ExpectedVersion{0}; }
  static ExpectedVersion exactly(StreamVersion v) { return ExpectedVersion{v.value()}; }
  bool is_any() const { return value_ == kAny; }
  std::int64_t value() const { return value_; }

 private:
  static constexpr std::int64_t kAny = -1;
  explicit ExpectedVersion(std::int64_t v) : value_(v) {}
  std::int64_t value_;
};

enum class StoreErrc {
  wrong_expected_version,  // optimistic concurrency: someone else appended first
  invalid_argument,        // malformed input: empty stream id, non-object data, ...
  payload_too_large,       // beyond a named limit
  partially_appended,      // some event ids of a batch exist, others not: a caller bug
  connection_failed,       // cannot reach / lost the server
  transient,               // serialization failure, deadlock, lock timeout: retry
  commit_unknown,          // the connection broke during commit: retry is safe only
                           // because appends are idempotent by event id
  corrupt_data,            // a stored row does not parse: never expected
  handler_failed,          // a subscription handler returned an error or threw
  internal,                // anything else from the server
};

const char* to_string(StoreErrc code) noexcept;

struct StoreError {
  StoreErrc code;
  std::string message;
  bool is_retryable() const noexcept {
    return code == StoreErrc::wrong_expected_version || code == StoreErrc::connection_failed ||
           code == StoreErrc::transient || code == StoreErrc::commit_unknown;
  }
};

template <class T>
using StoreResult = tl::expected<T, StoreError>;

struct AppendResult {
  StreamVersion next_expected_version;  // the stream's version after this append
  GlobalPosition first_position{0};     // 0 when nothing new was written
  bool already_appended = false;        // every event id was stored before: a no-op
};

}  // namespace clearing::eventstore
