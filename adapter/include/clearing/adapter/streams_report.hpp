#pragma once
// Where each outbound stream stands, for people and tools: `clearing-adapter streams
// --config F [--json]` prints it, the service's log lines use its key=value form. The
// figures are external_streams::read_stream_progress's (stream_registry.hpp); /metrics
// exports the same (service_metrics.cpp, clearing_stream_*).
//
// Per stream: its name, derivation and partition count, its state (backfilling, live,
// deprecated, retired), the messages written (head, all partitions) and acknowledged by
// Kafka (published), the global position its derivation has reached and, while it
// backfills, the live derivation's position and how far towards it the backfill is; its
// sunset when it has one and when its backfill handed it over (live_since).

#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/stream_registry.hpp"

namespace clearing::adapter {

// Messages written and not yet acknowledged by Kafka (head less published, never negative).
std::int64_t unpublished(const external_streams::StreamProgress& progress) noexcept;

// While the stream backfills: how far its position is towards the live derivation's, in
// percent, 0 to 100 with one decimal (a position at or past the live one is 100). Global
// positions count every append, so this is the share of the history read, not of the
// messages to come. nullopt for a stream that does not backfill.
std::optional<double> backfill_percent(const external_streams::StreamProgress& progress) noexcept;

// One stream as JSON: stream, derivation, partitions, state, head, published, unpublished,
// position (null for a retired stream: it derives no more), live_position, backfill_percent
// (null unless backfilling), sunset (YYYY-MM-DD or null), live_since and registered_at
// (RFC 3339 or null).
nlohmann::json stream_progress_json(const external_streams::StreamProgress& progress);

// Every stream: {"streams": [stream_progress_json, ...]} in the registry's order (by name).
nlohmann::json streams_json(std::span<const external_streams::StreamProgress> streams);

// The same for a person: a header and one aligned row per stream, then a line per stream
// that backfills or has a sunset; a sentence when no stream is registered.
std::string render_streams(std::span<const external_streams::StreamProgress> streams);

// One stream as key=value fields for a log line ("stream=... state=... head=... ...").
std::string stream_progress_fields(const external_streams::StreamProgress& progress);

// read_stream_progress in one transaction (read committed: a stream moving meanwhile may
// show a head a little ahead of its position). The error is the store's, prefixed.
tl::expected<std::vector<external_streams::StreamProgress>, std::string> read_streams_report(
    eventstore::ConnectionPool& pool);

}  // namespace clearing::adapter
