#pragma once
// `clearing-adapter events check`: can this build read every event the store holds?
//
// Reads every stored event in commit order, a page at a time (memory is bounded by the page,
// the failures listed and the types counted, whatever the number of events), and decodes
// each with the reader of its stream's kind: transfer-* with the Transfer codec,
// incoming-payment-* with the IncomingPayment codec (each upcasting older schema versions,
// sagas/upcasters.hpp), and the incoming feed's own two streams with the fields the poller
// reads. An event of an unknown type, of a schema version newer than this build's, of a
// stream kind no reader knows, or whose data does not decode, is a failure. Run the new
// release's binary against the database before rolling it out (docs/event-versions.md).
//
// The report never holds event data (it holds personal data): a failure is the event's id,
// stream kind, type, schema version and the decoder's error, which names a field, never a
// value. Events of transactions still running when a page is read are not seen (the store's
// commit-order horizon): the check covers what was committed when it ran.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clearing/eventstore/event_store.hpp"

namespace clearing::adapter {

inline constexpr std::size_t kEventsCheckFailuresListedMax = 10'000;
// Distinct (type, schema version) pairs counted one by one; more are counted together under
// kOtherTypes (a store with that many types is itself a finding).
inline constexpr std::size_t kEventsCheckTypesCountedMax = 1000;
inline constexpr const char* kOtherTypes = "(other types)";

struct EventsCheckOptions {
  std::size_t page_size = 1000;           // events per read, 1..eventstore::kReadBatchMax
  std::int64_t progress_every = 10'000;   // events between two progress calls (> 0)
  std::size_t failures_listed_max = 100;  // failures kept in full (<= the Max); all are counted
  // Called every progress_every events and once at the end: (events read, failures).
  std::function<void(std::int64_t, std::int64_t)> progress;
};

struct EventCheckFailure {
  std::string event_id;
  std::string stream_kind;  // "transfer", "incoming-payment", ..., "unknown"
  std::string type;
  eventstore::SchemaVersion schema_version;
  std::string error;  // the decoder's: names the type and the field, never a value
};

struct EventsCheckReport {
  std::int64_t events_read = 0;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> per_type;  // (type, version)
  std::int64_t failures = 0;
  std::vector<EventCheckFailure> failures_listed;  // the first failures_listed_max
  // 0 when every event reads, 1 when any does not (2, a database or config error, is the
  // caller's: check_events answers a StoreError then).
  int exit_code() const { return failures == 0 ? 0 : 1; }
};

// The stream kind of `stream` ("transfer", "incoming-payment", "incoming-feed",
// "incoming-feed-parked"), or nullopt when the adapter stores no such stream.
std::optional<std::string> stream_kind_of(const eventstore::StreamId& stream);

// Why this build cannot read `event`: the decoder's error, or nullopt when it reads.
std::optional<std::string> read_failure(const eventstore::RecordedEvent& event);

// Reads and checks every committed event. A database failure is the StoreError.
eventstore::StoreResult<EventsCheckReport> check_events(eventstore::EventStore& store,
                                                        const EventsCheckOptions& options);

// The report for people: counts per type and version, then each failure listed.
std::string render_events_check(const EventsCheckReport& report);

}  // namespace clearing::adapter
