#pragma once
// The outbound streams' registry: what each derived stream is (its derivation and its
// partition count, both fixed for ever), where it stands (backfilling, live, retired) and
// whether it is deprecated. docs/streams.md, "Versioning a stream".
//
// One subscription, the live derivation (kLiveDerivation), derives every live stream in one
// transaction per batch. A stream added to a store whose live derivation has already moved
// starts as `backfilling`: a subscription of its own (backfill_subscription_name) derives it
// from the beginning of the history (or from a configured time) up to the live
// derivation's checkpoint, then hands the stream over to the live derivation in the
// transaction that reaches that checkpoint, with the live checkpoint's row locked, so no
// event is derived twice or skipped for it (derivation.hpp, make_backfill_handler).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/base/clock.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/types.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::external_streams {

// The live derivation's checkpoint name: the one every outbound stream shared before the
// registry existed, kept so that an upgraded store goes on where it stood.
inline constexpr std::string_view kLiveDerivation = "derive-external-streams";

// The checkpoint name of a stream's backfill: "derive-backfill/<stream>".
std::string backfill_subscription_name(std::string_view stream);

// Where a stream stands, as stored.
enum class StreamPhase { backfilling, live, retired };
inline constexpr base::NameTable<StreamPhase, 3> kStreamPhaseNames{{
    {StreamPhase::backfilling, "backfilling"},
    {StreamPhase::live, "live"},
    {StreamPhase::retired, "retired"},
}};
static_assert(base::lists_every_enumerator(kStreamPhaseNames, StreamPhase::retired));

// Where a stream stands, as a person reads it: a live stream with a sunset is deprecated.
enum class StreamState { backfilling, live, deprecated, retired };
inline constexpr base::NameTable<StreamState, 4> kStreamStateNames{{
    {StreamState::backfilling, "backfilling"},
    {StreamState::live, "live"},
    {StreamState::deprecated, "deprecated"},
    {StreamState::retired, "retired"},
}};
static_assert(base::lists_every_enumerator(kStreamStateNames, StreamState::retired));
std::string_view to_string(StreamState state) noexcept;

// What the configuration says of one outbound stream.
struct StreamSetting {
  StreamSpec spec;
  std::string derivation;  // "payments.v1", "payments.v2", "settlements.v1", "positions.v1"
  // A new stream on a store with history: its backfill starts at the first internal event
  // recorded at or after this time; none: at the beginning of the history.
  std::optional<base::Timestamp> backfill_from;
  std::optional<std::string> sunset;  // YYYY-MM-DD: deprecated, retired on that day
  bool retired = false;               // stops deriving; its history stays readable
};

struct StreamRecord {
  std::string name;
  std::string derivation;
  std::int32_t partitions = 0;
  StreamPhase phase = StreamPhase::live;
  std::optional<std::string> sunset;             // YYYY-MM-DD
  std::optional<base::Timestamp> deprecated_at;  // when a sunset was first configured
  base::Timestamp registered_at{};
  std::optional<base::Timestamp> live_since;  // when its backfill handed it over
};
StreamState state_of(const StreamRecord& record) noexcept;

enum class RegistryErrc {
  database,            // the store failed: retryable
  partitions_changed,  // a registered stream configured with another partition count
  derivation_changed,  // a registered stream configured with another derivation
  unretired,           // a retired stream configured as not retired
  born_retired,        // a new stream configured as retired
};
inline constexpr base::NameTable<RegistryErrc, 5> kRegistryErrcNames{{
    {RegistryErrc::database, "database"},
    {RegistryErrc::partitions_changed, "partitions_changed"},
    {RegistryErrc::derivation_changed, "derivation_changed"},
    {RegistryErrc::unretired, "unretired"},
    {RegistryErrc::born_retired, "born_retired"},
}};
static_assert(base::lists_every_enumerator(kRegistryErrcNames, RegistryErrc::born_retired));

// Only `database` can go away by waiting; the others need a person to change the config.
struct RegistryError {
  RegistryErrc code;
  std::string message;  // names the stream and what to do
  bool retryable() const noexcept { return code == RegistryErrc::database; }
};

// Registers the configured streams and applies their deprecation and retirement, in one
// transaction that holds the live checkpoint's row (so a backfill cannot hand over
// meanwhile). A stream the registry does not know yet:
//  - on a store whose live derivation has not moved: live from the start;
//  - otherwise: backfilling, its backfill checkpoint set before the first event to derive;
//  - a stream that has messages from before the registry existed: live (the live
//    derivation has derived it all along).
// Returns every registered stream, configured or not, by name.
tl::expected<std::vector<StreamRecord>, RegistryError> register_streams(
    eventstore::ConnectionPool& pool, std::span<const StreamSetting> settings);

// The registered streams, by name.
eventstore::StoreResult<std::vector<StreamRecord>> read_streams(eventstore::Transaction& tx);
// One registered stream; nothing when `name` is not registered (not a derived stream).
eventstore::StoreResult<std::optional<StreamRecord>> read_stream(eventstore::Transaction& tx,
                                                                 const std::string& name);

// In a deriving transaction: the names of the streams the live derivation derives now.
eventstore::StoreResult<std::vector<std::string>> live_stream_names(eventstore::Transaction& tx);

// In a backfill's transaction: the live derivation's checkpoint, its row locked until the
// transaction ends.
eventstore::StoreResult<eventstore::Checkpoint> lock_live_checkpoint(eventstore::Transaction& tx);

// Hands a backfilling stream over to the live derivation (phase live). The caller holds
// the live checkpoint's row and has derived every event up to it.
eventstore::StoreResult<void> hand_over(eventstore::Transaction& tx, const std::string& stream);

// When a backfill has nothing left to read: hands the stream over if the backfill's
// checkpoint has reached the live derivation's. True when the stream is live now.
eventstore::StoreResult<bool> hand_over_if_caught_up(eventstore::ConnectionPool& pool,
                                                     const std::string& stream);

// What `clearing-adapter streams`, /metrics and the log show of one stream.
struct StreamProgress {
  StreamRecord record;
  std::int64_t head = 0;       // messages written, all partitions
  std::int64_t published = 0;  // of those, acknowledged by Kafka
  // The global position the stream's derivation has reached (its backfill's while it
  // backfills, the live derivation's after), and the live derivation's.
  std::int64_t position = 0;
  std::int64_t live_position = 0;
};
eventstore::StoreResult<std::vector<StreamProgress>> read_stream_progress(
    eventstore::Transaction& tx);

}  // namespace clearing::external_streams
