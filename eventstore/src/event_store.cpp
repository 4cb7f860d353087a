#include "clearing/eventstore/event_store.hpp"

#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "clearing/base/assert.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/prepared.hpp"

namespace clearing::eventstore {
namespace {

// The three append statements share one shape: a CTE that (1) counts how many of the
// new event ids exist, (2) moves the stream's version row only if none exists and the
// expected version holds, and (3) inserts the events numbered from the new version.
// The version row is the concurrency gate: its row lock makes a second writer with the
// same expected version wait, then find the version moved and insert nothing. An empty
// result therefore means "conflict or duplicate", told apart on the slow path.
// The duplicate count probes the event id index once per new event, in a subquery the
// planner cannot turn into a join: written as `event_id in (select ...)`, the cached
// generic plan that a connection makes while the table is small (a fresh database)
// hash-joined a sequential scan of all events, and kept doing so as the table grew, until
// autovacuum's next analyze: in bench/saga most appends cost a scan of the whole table.
constexpr const char* kInputCte = R"sql(
with input as (
  select ord, value from jsonb_array_elements($3::jsonb) with ordinality as t(value, ord)
), dup as (
  select count(*) as n from input
  where (select true from events where event_id = (input.value->>'id')::uuid limit 1)
), )sql";

constexpr const char* kInsertTail = R"sql(
insert into events (stream_id, version, event_id, type, data, metadata, schema_version)
select $1, gate.version - $4 + input.ord, (input.value->>'id')::uuid, input.value->>'type',
       input.value->'data', input.value->'metadata', (input.value->>'schema_version')::int
from gate, input
order by input.ord
returning position, version
)sql";

const std::string kAppendExact = std::string(kInputCte) + R"sql(gate as (
  update event_streams set version = version + $4
  where stream_id = $1 and version = $2 and (select n from dup) = 0
  returning version
))sql" + kInsertTail;

const std::string kAppendNoStream = std::string(kInputCte) + R"sql(gate as (
  insert into event_streams (stream_id, version)
  select $1, $4 where $2 = 0 and (select n from dup) = 0
  on conflict (stream_id) do nothing
  returning version
))sql" + kInsertTail;

const std::string kAppendAny = std::string(kInputCte) + R"sql(gate as (
  insert into event_streams (stream_id, version)
  select $1, $4 where $2 = -1 and (select n from dup) = 0
  on conflict (stream_id) do update set version = event_streams.version + excluded.version
  returning version
))sql" + kInsertTail;

// append_batch, first statement: the version rows of the batch's streams, locked in
// stream id order (the sort sits below the row locks), and those of the batch's event
// ids that are stored already, each probed on the id index like the single append's
// dup count. Only the ids of streams that exist are probed (the materialized CTE keeps
// the planner from probing every id before the filter): a stream that does not exist
// holds none of them (ids stored in another stream make the insert fail on the unique
// index: a caller bug). The stream ids come in through array(...): with the array's
// length unknown to the planner it probes the primary key, where a known length of
// hundreds made it scan the whole table.
// Prepared, and prepared again as the tables grow (prepared.hpp): a generic plan made
// while the tables were small (a new database, before autovacuum's first analyze) and
// kept for good scanned event_streams for every batch, 14-30 ms a call at 30k streams
// in bench/e2e; planning it at every call cost 0.2 ms a call.
constexpr PreparedSql kBatchLock{"eventstore_append_batch_lock", R"sql(
with locked as (
  select stream_id, version from event_streams
  where stream_id = any(array(select unnest($1::text[])))
  order by stream_id for update
), probes as materialized (
  select probe.id from unnest($2::text[], $3::uuid[]) as probe(stream_id, id)
  where probe.stream_id in (select stream_id from locked)
)
select false as is_event, stream_id, version from locked
union all
select true, id::text, 0 from probes where (select true from events where event_id = probes.id limit 1)
)sql"};

// append_batch, second statement: the streams whose expectation held under the locks
// of the first. An existing stream's version moves by its event count (its row is
// locked by this transaction, the version check is a safety net); a new stream's row
// is inserted, and a concurrent creator (not yet visible to the first statement) makes
// it insert nothing and so write no events. Returns every written event.
// Prepared: every plan of it, generic ones made on empty tables included, walks the
// input (a function scan) and probes event_streams by key (batch_append_pgtest checks
// the generic plan after the tables grew). Planning it took 0.25-0.5 ms a call.
constexpr const char* kBatchWriteName = "eventstore_append_batch_write";
constexpr const char* kBatchWrite = R"sql(
with input as (
  select s.ord, s.value->>'stream' as stream_id, s.value->>'mode' as mode,
         (s.value->>'expected')::bigint as expected, (s.value->>'n')::bigint as n, s.value->'events' as events
  from jsonb_array_elements($1::jsonb) with ordinality as s(value, ord)
), moved as (
  update event_streams es set version = es.version + input.n from input
  where input.mode = 'exact' and es.stream_id = input.stream_id and es.version = input.expected
  returning es.stream_id, es.version
), created as (
  insert into event_streams (stream_id, version)
  select stream_id, n from input where mode = 'new' order by stream_id
  on conflict (stream_id) do nothing
  returning stream_id, version
), gate as (
  select stream_id, version from moved union all select stream_id, version from created
)
insert into events (stream_id, version, event_id, type, data, metadata, schema_version)
select input.stream_id, gate.version - input.n + e.ord, (e.value->>'id')::uuid, e.value->>'type',
       e.value->'data', e.value->'metadata', (e.value->>'schema_version')::int
from input join gate on gate.stream_id = input.stream_id
cross join lateral jsonb_array_elements(input.events) with ordinality as e(value, ord)
order by input.ord, e.ord
returning stream_id, position, version
)sql";

constexpr const char* kColumns =
    "position, transaction_id::text, stream_id, version, event_id::text, type, data::text, "
    "metadata::text, (extract(epoch from recorded_at) * 1000)::bigint, schema_version";

const std::string kReadStream = std::string("select ") + kColumns +
                                " from events where stream_id = $1 and version >= $2"
                                " order by events.version limit $3";

// Ordered by the stream ids' bytes (collation "C"), whatever the database's collation:
// callers compare ids as std::string does. Each stream is probed on its own through
// (stream_id, version): written as `stream_id = any($1)`, a batch of 40 ids got a plan
// estimated at 19k rows from stale statistics, a parallel scan of all events, 300 ms.
const std::string kReadStreams =
    std::string("select ") + kColumns +
    " from (select distinct unnest($1::text[])) as want(id)"
    " cross join lateral (select * from events where events.stream_id = want.id"
    "   order by events.version limit $2) as events"
    " order by events.stream_id collate \"C\", events.version limit $2";

// ORDER BY names the table's columns explicitly: a bare `transaction_id` would bind to
// the text-cast output column of the same name and sort "1001" before "999".
// pg_snapshot_xmin(pg_current_snapshot()) is the oldest transaction still running when
// this statement's snapshot was taken: every transaction below it has finished, so no
// row with a smaller transaction_id can still appear.
const std::string kReadAll = std::string("select ") + kColumns +
                             " from events where (transaction_id, position) > ($1::text::xid8, $2)"
                             " and transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                             " order by events.transaction_id, events.position limit $3";

const std::string kReadEvent =
    std::string("select ") + kColumns + " from events where event_id = $1::uuid";

bool has_control_characters(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

StoreError invalid(std::string message) {
  return {StoreErrc::invalid_argument, std::move(message)};
}

// More of something than one call takes: "<count> <what>, limit <limit>".
StoreError too_many(std::size_t count, std::string_view what, std::size_t limit) {
  return {StoreErrc::payload_too_large,
          std::to_string(count) + " " + std::string(what) + ", limit " + std::to_string(limit)};
}

// A text[] literal: every element quoted, so commas, braces and spaces in ids are data.
std::string text_array_literal(std::span<const StreamId> values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? "\"" : ",\"";
    for (const char c : values[i].value()) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += "}";
  return out;
}

RecordedEvent parse_row(const pqxx::row& row) {
  RecordedEvent e;
  e.position = GlobalPosition{row[0].as<std::int64_t>()};
  e.transaction_id = row[1].as<std::uint64_t>();
  e.stream_id = StreamId{row[2].as<std::string>()};
  e.version = StreamVersion{row[3].as<std::int64_t>()};
  e.event_id = EventId{row[4].as<std::string>()};
  e.type = row[5].as<std::string>();
  e.data = nlohmann::json::parse(row[6].c_str());
  e.metadata = Metadata::from_json(nlohmann::json::parse(row[7].c_str()));
  e.recorded_at = base::Timestamp{std::chrono::milliseconds{row[8].as<std::int64_t>()}};
  e.schema_version = SchemaVersion{row[9].as<std::int32_t>()};
  CLEARING_ASSERT(e.schema_version >= kFirstSchemaVersion);  // the column's check
  return e;
}

// Rows to events, their personal fields opened when the pool has a protector.
StoreResult<std::vector<RecordedEvent>> parse_rows(const pqxx::result& rows, Transaction& tx,
                                                   const DataProtector* protector) {
  std::vector<RecordedEvent> events;
  events.reserve(rows.size());
  try {
    for (const auto& row : rows) events.push_back(parse_row(row));
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(StoreError{StoreErrc::corrupt_data, e.what()});
  }
  if (protector != nullptr)
    for (auto& e : events)
      if (auto opened = protector->open(tx, e.data); !opened) return tl::unexpected(opened.error());
  return events;
}

// The events with their personal fields sealed, in `sealed`, when the pool has a protector;
// else the events as given.
StoreResult<std::span<const EventData>> sealed_events(Transaction& tx,
                                                      const DataProtector* protector,
                                                      std::span<const EventData> events,
                                                      std::vector<EventData>& sealed) {
  if (protector == nullptr) return events;
  sealed.assign(events.begin(), events.end());
  for (auto& e : sealed) {
    if (!e.data.is_object()) continue;  // refused by encode_input
    if (auto done = protector->seal(tx, e.data); !done) return tl::unexpected(done.error());
  }
  return std::span<const EventData>(sealed);
}

const char* append_statement(ExpectedVersion expected);

}  // namespace

nlohmann::json Metadata::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["correlation_id"] = correlation_id;
  j["causation_id"] = causation_id;
  if (!source.is_null()) j["source"] = source;
  if (!extra.is_null()) j["extra"] = extra;
  return j;
}

Metadata Metadata::from_json(const nlohmann::json& j) {
  Metadata m;
  if (!j.is_object()) return m;
  m.correlation_id = j.value("correlation_id", "");
  m.causation_id = j.value("causation_id", "");
  if (auto it = j.find("source"); it != j.end()) m.source = *it;
  if (auto it = j.find("extra"); it != j.end()) m.extra = *it;
  return m;
}

namespace {
const char* append_statement(ExpectedVersion expected) {
  if (expected.is_any()) return "eventstore_append_any";
  if (expected.value() == 0) return "eventstore_append_no_stream";
  return "eventstore_append_exact";
}

// Validates every event and writes the append's JSON input in one pass: each event's
// data is serialized once, for its size check and for the statement.
StoreResult<std::string> encode_input(const StreamId& stream, std::span<const EventData> events);
}  // namespace

StoreResult<void> validate_append(const StreamId& stream, std::span<const EventData> events) {
  auto encoded = encode_input(stream, events);
  if (!encoded) return tl::unexpected(encoded.error());
  return {};
}

namespace {
StoreResult<std::string> encode_input(const StreamId& stream, std::span<const EventData> events) {
  const auto& id = stream.value();
  if (id.empty()) return tl::unexpected(invalid("stream id is empty"));
  if (id.size() > kStreamIdBytesMax)
    return tl::unexpected(
        StoreError{StoreErrc::payload_too_large,
                   "stream id longer than " + std::to_string(kStreamIdBytesMax) + " bytes"});
  if (has_control_characters(id))
    return tl::unexpected(invalid("stream id has control characters"));
  if (events.empty()) return tl::unexpected(invalid("append of no events"));
  if (events.size() > kEventsPerAppendMax)
    return tl::unexpected(too_many(events.size(), "events in one append", kEventsPerAppendMax));
  std::unordered_set<std::string> ids;
  std::string input = "[";
  for (const auto& e : events) {
    if (!base::is_uuid(e.event_id.value()))
      return tl::unexpected(invalid("event id '" + e.event_id.value() + "' is not a UUID"));
    if (!ids.insert(e.event_id.value()).second)
      return tl::unexpected(invalid("event id " + e.event_id.value() + " twice in one append"));
    if (e.type.empty() || e.type.size() > kEventTypeBytesMax || has_control_characters(e.type))
      return tl::unexpected(invalid("event type must be 1.." + std::to_string(kEventTypeBytesMax) +
                                    " printable bytes"));
    if (!e.data.is_object())
      return tl::unexpected(invalid("event data of " + e.type + " is not a JSON object"));
    if (e.schema_version < kFirstSchemaVersion || e.schema_version.value() > kSchemaVersionMax)
      return tl::unexpected(invalid("schema version of " + e.type + " must be 1.." +
                                    std::to_string(kSchemaVersionMax)));
    auto data = e.data.dump();
    if (data.size() > kEventDataBytesMax)
      return tl::unexpected(StoreError{StoreErrc::payload_too_large,
                                       "data of " + e.type + " is " + std::to_string(data.size()) +
                                           " bytes, limit " + std::to_string(kEventDataBytesMax)});
    input += input.size() == 1 ? "{\"id\":\"" : ",{\"id\":\"";
    input += e.event_id.value();
    input += "\",\"type\":";
    input += nlohmann::json(e.type).dump();
    input += ",\"data\":";
    input += data;
    input += ",\"metadata\":";
    input += e.metadata.to_json().dump();
    input += ",\"schema_version\":" + std::to_string(e.schema_version.value());
    input += "}";
  }
  input += "]";
  return input;
}
}  // namespace

// Prepared once per connection: planning the append CTE cost as much as running it.
constexpr const char* kAppendExactName = "eventstore_append_exact";
constexpr const char* kAppendNoStreamName = "eventstore_append_no_stream";
constexpr const char* kAppendAnyName = "eventstore_append_any";
constexpr const char* kReadStreamName = "eventstore_read_stream";
constexpr const char* kReadStreamsName = "eventstore_read_streams";
constexpr const char* kReadAllName = "eventstore_read_all";
constexpr const char* kStreamVersionName = "eventstore_stream_version";

EventStore::EventStore(ConnectionPool& pool) : pool_(pool) {
  pool_.prepare(kAppendExactName, kAppendExact);
  pool_.prepare(kAppendNoStreamName, kAppendNoStream);
  pool_.prepare(kAppendAnyName, kAppendAny);
  pool_.prepare(kReadStreamName, kReadStream);
  pool_.prepare(kReadStreamsName, kReadStreams);
  pool_.prepare(kReadAllName, kReadAll);
  pool_.prepare(kStreamVersionName, "select version from event_streams where stream_id = $1");
  pool_.prepare(kBatchWriteName, kBatchWrite);
}

StoreResult<AppendResult> EventStore::append(const StreamId& stream, ExpectedVersion expected,
                                             std::span<const EventData> events) {
  return pool_.transact([&](Transaction& tx) { return append(tx, stream, expected, events); });
}

StoreResult<AppendResult> EventStore::append(Transaction& tx, const StreamId& stream,
                                             ExpectedVersion expected,
                                             std::span<const EventData> given) {
  std::vector<EventData> sealed;
  auto events = sealed_events(tx, pool_.protector(), given, sealed);
  if (!events) return tl::unexpected(events.error());
  auto input = encode_input(stream, *events);
  if (!input) return tl::unexpected(input.error());
  const auto count = static_cast<std::int64_t>(events->size());
  {
    const auto rows = tx.exec_prepared(append_statement(expected), stream.value(), expected.value(),
                                       *input, count);
    if (!rows.empty()) {
      note_events_appended();
      CLEARING_ASSERT(rows.size() == events->size());
      AppendResult result;
      std::int64_t position_min = rows[0][0].as<std::int64_t>(), version_max = 0;
      for (const auto& row : rows) {
        position_min = std::min(position_min, row[0].as<std::int64_t>());
        version_max = std::max(version_max, row[1].as<std::int64_t>());
      }
      result.first_position = GlobalPosition{position_min};
      result.next_expected_version = StreamVersion{version_max};
      CLEARING_ASSERT(expected.is_any() || version_max == expected.value() + count);
      return result;
    }
    // Slow path: nothing was written. Either every event is stored already (an
    // idempotent retry), some are (a caller bug), or the expected version did not hold.
    pqxx::result existing;
    {
      std::string ids = "{";
      for (std::size_t i = 0; i < events->size(); ++i)
        ids += (i ? "," : "") + (*events)[i].event_id.value();
      ids += "}";
      existing =
          tx.exec_params("select count(*) from events where event_id = any($1::uuid[])", ids);
    }
    const auto stored = existing[0][0].as<std::int64_t>();
    auto version = stream_version(tx, stream);
    if (!version) return tl::unexpected(version.error());
    if (stored == count) return AppendResult{*version, GlobalPosition{0}, true};
    if (stored > 0)
      return tl::unexpected(StoreError{StoreErrc::partially_appended,
                                       std::to_string(stored) + " of " + std::to_string(count) +
                                           " event ids are already stored in " + stream.value()});
    return tl::unexpected(StoreError{
        StoreErrc::wrong_expected_version,
        "stream " + stream.value() + " is at version " + std::to_string(version->value()) +
            ", expected " +
            (expected.is_any() ? std::string("any") : std::to_string(expected.value()))});
  }
}

StoreResult<std::vector<StoreResult<AppendResult>>> EventStore::append_batch(
    Transaction& tx, std::span<const StreamAppend> appends) {
  using Results = std::vector<StoreResult<AppendResult>>;
  if (appends.empty()) return Results{};
  if (appends.size() > kStreamsPerBatchMax)
    return tl::unexpected(
        too_many(appends.size(), "streams in one batch append", kStreamsPerBatchMax));
  // Validated and encoded first, the whole batch: malformed input touches nothing.
  std::vector<std::string> inputs;
  inputs.reserve(appends.size());
  std::vector<EventData> sealed;
  std::unordered_set<std::string> streams, ids;
  std::vector<StreamId> id_streams;  // each event id's stream, for the probe
  std::string id_array = "{";
  for (const auto& a : appends) {
    if (a.expected.is_any())
      return tl::unexpected(
          invalid("expected version any in a batch append (" + a.stream.value() + ")"));
    if (!streams.insert(a.stream.value()).second)
      return tl::unexpected(invalid("stream " + a.stream.value() + " twice in one batch append"));
    auto events = sealed_events(tx, pool_.protector(), a.events, sealed);
    if (!events) return tl::unexpected(events.error());
    auto input = encode_input(a.stream, *events);
    if (!input) return tl::unexpected(input.error());
    inputs.push_back(std::move(*input));
    for (const auto& e : a.events) {
      if (!ids.insert(e.event_id.value()).second)
        return tl::unexpected(
            invalid("event id " + e.event_id.value() + " twice in one batch append"));
      id_array += id_array.size() == 1 ? "" : ",";
      id_array += e.event_id.value();
      id_streams.push_back(a.stream);
    }
  }
  id_array += "}";
  std::vector<StreamId> stream_ids;
  stream_ids.reserve(appends.size());
  for (const auto& a : appends) stream_ids.push_back(a.stream);

  // 1. Lock, and learn the versions and the stored ids.
  std::unordered_map<std::string, std::int64_t> versions;
  std::unordered_set<std::string> stored;
  for (const auto& row : exec_prepared_here(tx, kBatchLock, text_array_literal(stream_ids),
                                            text_array_literal(id_streams), id_array)) {
    if (row[0].as<bool>())
      stored.insert(row[1].as<std::string>());
    else
      versions.emplace(row[1].as<std::string>(), row[2].as<std::int64_t>());
  }

  // 2. Decide each stream as `append` would, and write the ones that hold.
  Results results(appends.size(), tl::unexpected(StoreError{StoreErrc::internal, "not decided"}));
  std::string write = "[";
  std::unordered_map<std::string, std::size_t> writing;  // stream -> index
  for (std::size_t i = 0; i < appends.size(); ++i) {
    const auto& a = appends[i];
    const auto count = static_cast<std::int64_t>(a.events.size());
    const auto found = versions.find(a.stream.value());
    const std::int64_t version = found == versions.end() ? 0 : found->second;
    std::int64_t already = 0;
    for (const auto& e : a.events) already += stored.count(e.event_id.value()) ? 1 : 0;
    if (already == count) {
      results[i] = AppendResult{StreamVersion{version}, GlobalPosition{0}, true};
    } else if (already > 0) {
      results[i] =
          tl::unexpected(StoreError{StoreErrc::partially_appended,
                                    std::to_string(already) + " of " + std::to_string(count) +
                                        " event ids are already stored in " + a.stream.value()});
    } else if (version != a.expected.value()) {
      results[i] = tl::unexpected(StoreError{StoreErrc::wrong_expected_version,
                                             "stream " + a.stream.value() + " is at version " +
                                                 std::to_string(version) + ", expected " +
                                                 std::to_string(a.expected.value())});
    } else {
      write += write.size() == 1 ? "{\"stream\":" : ",{\"stream\":";
      write += nlohmann::json(a.stream.value()).dump();
      write += version == 0 ? ",\"mode\":\"new\"" : ",\"mode\":\"exact\"";
      write += ",\"expected\":" + std::to_string(version) + ",\"n\":" + std::to_string(count) +
               ",\"events\":";
      write += inputs[i];
      write += "}";
      writing.emplace(a.stream.value(), i);
    }
  }
  write += "]";
  if (writing.empty()) return results;

  std::unordered_map<std::string, std::pair<std::int64_t, std::int64_t>>
      written;  // stream -> (min position, max version)
  for (const auto& row : tx.exec_prepared(kBatchWriteName, write)) {
    const auto position = row[1].as<std::int64_t>(), version = row[2].as<std::int64_t>();
    auto [it, first] = written.try_emplace(row[0].as<std::string>(), position, version);
    if (!first)
      it->second = {std::min(it->second.first, position), std::max(it->second.second, version)};
  }
  for (const auto& [stream, i] : writing) {
    const auto& a = appends[i];
    const auto done = written.find(stream);
    if (done == written.end()) {
      // Only a new stream can miss: someone created it after the first statement looked.
      CLEARING_ASSERT(a.expected.value() == 0);
      results[i] = tl::unexpected(StoreError{StoreErrc::wrong_expected_version,
                                             "stream " + stream + " was created concurrently"});
      continue;
    }
    CLEARING_ASSERT(done->second.second ==
                    a.expected.value() + static_cast<std::int64_t>(a.events.size()));
    results[i] =
        AppendResult{StreamVersion{done->second.second}, GlobalPosition{done->second.first}, false};
  }
  if (!written.empty()) note_events_appended();
  return results;
}

StoreResult<void> EventStore::lock_streams(Transaction& tx, std::span<const StreamId> streams) {
  if (streams.empty()) return {};
  if (streams.size() > kStreamsPerBatchMax)
    return tl::unexpected(too_many(streams.size(), "streams to lock", kStreamsPerBatchMax));
  tx.exec_params(
      "select stream_id from event_streams where stream_id = any(array(select unnest($1::text[])))"
      " order by stream_id for update",
      text_array_literal(streams));
  return {};
}

StoreResult<StreamVersion> EventStore::stream_version(Transaction& tx, const StreamId& stream) {
  const auto rows = tx.exec_prepared(kStreamVersionName, stream.value());
  return StreamVersion{rows.empty() ? 0 : rows[0][0].as<std::int64_t>()};
}

StoreResult<std::vector<RecordedEvent>> EventStore::read_stream(const StreamId& stream,
                                                                StreamVersion from,
                                                                std::size_t limit) {
  return pool_.transact([&](Transaction& tx) { return read_stream(tx, stream, from, limit); });
}

StoreResult<std::vector<RecordedEvent>> EventStore::read_stream(Transaction& tx,
                                                                const StreamId& stream,
                                                                StreamVersion from,
                                                                std::size_t limit) {
  if (stream.value().empty()) return tl::unexpected(invalid("stream id is empty"));
  limit = std::min(limit, kReadBatchMax);
  return parse_rows(tx.exec_prepared(kReadStreamName, stream.value(), from.value(),
                                     static_cast<std::int64_t>(limit)),
                    tx, pool_.protector());
}

StoreResult<std::vector<RecordedEvent>> EventStore::read_streams(Transaction& tx,
                                                                 std::span<const StreamId> streams,
                                                                 std::size_t limit) {
  if (streams.empty()) return std::vector<RecordedEvent>{};
  for (const auto& stream : streams)
    if (stream.value().empty()) return tl::unexpected(invalid("stream id is empty"));
  limit = std::min(limit, kReadBatchMax);
  auto events = parse_rows(tx.exec_prepared(kReadStreamsName, text_array_literal(streams),
                                            static_cast<std::int64_t>(limit)),
                           tx, pool_.protector());
  if (!events) return events;
  CLEARING_ASSERT(events->size() <= limit);
  for (std::size_t i = 1; i < events->size(); ++i) {
    const auto& previous = (*events)[i - 1];
    const auto& e = (*events)[i];
    CLEARING_ASSERT_MSG(
        previous.stream_id.value() < e.stream_id.value() ||
            (previous.stream_id == e.stream_id && previous.version.value() < e.version.value()),
        "read_streams out of order");
  }
  return events;
}

StoreResult<std::vector<RecordedEvent>> EventStore::read_all_after(Checkpoint after,
                                                                   std::size_t limit) {
  // One statement: no transaction block around it (ConnectionPool::autocommit).
  return pool_.autocommit([&](Transaction& tx) { return read_all_after(tx, after, limit); });
}

StoreResult<std::vector<RecordedEvent>> EventStore::read_all_after(Transaction& tx,
                                                                   Checkpoint after,
                                                                   std::size_t limit) {
  limit = std::min(limit, kReadBatchMax);
  auto events =
      parse_rows(tx.exec_prepared(kReadAllName, std::to_string(after.transaction_id),
                                  after.position.value(), static_cast<std::int64_t>(limit)),
                 tx, pool_.protector());
  if (!events) return events;
  // Checked on the way out: the order every reader relies on.
  Checkpoint previous = after;
  for (const auto& e : *events) {
    CLEARING_ASSERT_MSG(Checkpoint::after(e) > previous, "read_all_after out of order");
    previous = Checkpoint::after(e);
  }
  return events;
}

StoreResult<std::optional<RecordedEvent>> EventStore::read_event(Transaction& tx,
                                                                 const EventId& id) {
  if (!base::is_uuid(id.value())) return tl::unexpected(invalid("event id is not a UUID"));
  auto rows = parse_rows(tx.exec_params(kReadEvent, id.value()), tx, pool_.protector());
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return std::optional<RecordedEvent>{};
  return std::optional<RecordedEvent>{std::move(rows->front())};
}

}  // namespace clearing::eventstore
