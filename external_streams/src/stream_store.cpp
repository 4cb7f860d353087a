#include "clearing/external_streams/stream_store.hpp"

#include <map>
#include <pqxx/pqxx>
#include <set>
#include <tuple>

#include "clearing/base/assert.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/trace_metadata.hpp"

namespace clearing::external_streams {
namespace {

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;

constexpr const char* kSchema = R"sql(
-- Outgoing external streams. seq is gapless per (stream, partition): it is taken from
-- external_stream_heads under a row lock in the deriving transaction.
create table external_stream_heads (
  stream    text not null,
  partition int not null,
  head      bigint not null default 0,
  published bigint not null default 0,
  primary key (stream, partition),
  check (published <= head)
);

create table external_events (
  stream          text not null,
  partition       int not null,
  seq             bigint not null check (seq > 0),
  event_id        uuid not null unique,
  type            text not null,
  entity_key      text not null,
  data            jsonb not null,
  source_event_id uuid not null,
  correlation_id  text not null,
  occurred_at     timestamptz not null,
  recorded_at     timestamptz not null default now(),
  primary key (stream, partition, seq)
);
create index external_events_key on external_events (stream, entity_key, type);
create index external_events_source on external_events (source_event_id);

-- Inbound streams: what this side has applied, per partition, and the Kafka offset of
-- the last message consumed, stored in the same transaction as the application.
create table inbound_stream_progress (
  stream       text not null,
  partition    int not null,
  last_seq     bigint not null default 0,
  kafka_offset bigint not null default -1,
  updated_at   timestamptz not null default now(),
  primary key (stream, partition)
);
)sql";

// The published mark moves to a table of its own. In one row with the head, the relay's
// mark waited on the row lock every appending transaction holds on its partition's head
// until it commits. `external_stream_heads` stays, as a view, for those who read it.
constexpr const char* kPublishedApart = R"sql(
alter table external_stream_heads rename to external_stream_seqs;
create table external_stream_published (
  stream    text not null,
  partition int not null,
  published bigint not null default 0,
  primary key (stream, partition)
);
insert into external_stream_published (stream, partition, published)
  select stream, partition, published from external_stream_seqs;
alter table external_stream_seqs drop column published;
create view external_stream_heads as
  select s.stream, s.partition, s.head, coalesce(p.published, 0) as published
  from external_stream_seqs s
  left join external_stream_published p on p.stream = s.stream and p.partition = s.partition;
)sql";

// A transfer's trace looks its messages up by entity key alone (transfer_api.cpp), which
// the index on (stream, entity_key, type) could not serve: every trace read the whole
// table. With the key first, the index serves the trace and the once-per-key look-up
// (all three columns) alike. No query reads external_events by source event id; that
// index only cost every message one more index entry.
constexpr const char* kKeyFirst = R"sql(
drop index external_events_source;
drop index external_events_key;
create index external_events_key on external_events (entity_key, stream, type);
)sql";

// Each outbound stream's own progress (stream_registry.hpp): its phase, its deprecation,
// and, for streams that keep running totals (positions.v1), the totals per entity key,
// moved in the deriving transaction.
constexpr const char* kDerivedStreams = R"sql(
create table derived_streams (
  stream        text primary key,
  derivation    text not null,
  partitions    int not null check (partitions > 0),
  phase         text not null check (phase in ('backfilling', 'live', 'retired')),
  sunset        date,
  deprecated_at timestamptz,
  registered_at timestamptz not null default now(),
  live_since    timestamptz,
  retired_at    timestamptz
);
create table derived_stream_state (
  stream text not null,
  key    text not null,
  state  jsonb not null,
  primary key (stream, key)
);
)sql";

constexpr const char* kEventIdNamespace = "9a4f1c2e-0b7d-4e3a-8c5f-6d2e1b0a9c87";

// Every statement here is prepared on its connection (eventstore/prepared.hpp): key
// look-ups and writes of the few rows per partition, the insert of a batch, and the
// relay's read of external_events, which is prepared again as that table grows.

// Moves the heads of all the batch's partitions with one statement. The row lock on a
// head serializes its partition's writers; the locks are taken in (stream, partition)
// byte order, so two batches over the same partitions wait for each other instead of
// deadlocking. `locked` counts every locked row before the join yields one (it is the
// nested loop's outer side), so all locks are held before the first head moves. A
// partition that is not registered comes back without a row.
constexpr eventstore::PreparedSql kTakeSeqs{
    "streams_take_seqs",
    "with wanted as ("
    "  select * from jsonb_to_recordset($1::jsonb) as w(stream text, partition int, n bigint)"
    "), locked as ("
    "  select count(*) as n from ("
    "    select 1 from external_stream_seqs s where (s.stream, s.partition) in (select stream, "
    "partition from wanted)"
    "    order by s.stream collate \"C\", s.partition for update of s) l"
    ")"
    " update external_stream_seqs s set head = s.head + w.n from wanted w, locked"
    " where locked.n >= 0 and s.stream = w.stream and s.partition = w.partition"
    " returning s.stream, s.partition, s.head"};
constexpr eventstore::PreparedSql kInsertMessages{
    "streams_insert_messages",
    "insert into external_events (stream, partition, seq, event_id, type, entity_key, data,"
    " source_event_id, correlation_id, occurred_at)"
    " select stream, partition, seq, event_id, type, entity_key, data, source_event_id, "
    "correlation_id, occurred_at"
    " from jsonb_to_recordset($1::jsonb) as x(stream text, partition int, seq bigint, event_id "
    "uuid, type text,"
    " entity_key text, data jsonb, source_event_id uuid, correlation_id text, occurred_at "
    "timestamptz)"
    " order by stream, partition, seq"};
constexpr eventstore::PreparedSql kReadHead{
    "streams_read_head",
    "select head from external_stream_seqs where stream = $1 and partition = $2"};
// Every partition's marks moved with one statement, only forward: a slower relay instance
// must not move a mark back. Locked in (stream, partition) byte order before the first
// moves, like the heads (kTakeSeqs), so two relays marking the same partitions wait for
// each other instead of deadlocking.
constexpr eventstore::PreparedSql kMarkPublished{
    "streams_mark_published",
    "with wanted as ("
    "  select * from jsonb_to_recordset($1::jsonb) as w(stream text, partition int, seq bigint)"
    "), locked as ("
    "  select count(*) as n from ("
    "    select 1 from external_stream_published p"
    "    where (p.stream, p.partition) in (select stream, partition from wanted)"
    "    order by p.stream collate \"C\", p.partition for update of p) l"
    ")"
    " update external_stream_published p set published = greatest(p.published, w.seq) from wanted "
    "w, locked"
    " where locked.n >= 0 and p.stream = w.stream and p.partition = w.partition"};
// The relay's round in one statement: each partition's unpublished messages after its
// mark, at most $1 of them, of the partitions listed in $2 (a JSON array of {stream,
// partition}: the relay instance's own) or of all when $2 is JSON null. Prepared, and
// prepared again as the tables grow
// (prepared.hpp): the lateral probe of external_events by (stream, partition, seq) must
// stay an index probe as the table grows. Planning it at every call cost 0.3 ms.
constexpr eventstore::PreparedSql kReadUnpublished{
    "streams_read_unpublished",
    "select e.stream, e.partition, e.seq, e.event_id::text, e.type, e.entity_key, e.data::text,"
    " e.source_event_id::text, e.correlation_id,"
    " to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), m.head, "
    "m.published,"
    // The source event's trace context (trace_metadata.hpp): one probe of the events'
    // unique event id index per message, for the traceparent header.
    " (select s.metadata->'extra'->'trace' from events s where s.event_id = "
    "e.source_event_id)::text"
    " from external_stream_heads m"
    " cross join lateral (select * from external_events x"
    "   where x.stream = m.stream and x.partition = m.partition and x.seq > m.published"
    "   order by x.seq limit least(m.head - m.published, $1)) e"
    " where m.head > m.published and (jsonb_typeof($2::jsonb) = 'null' or (m.stream, m.partition) "
    "in"
    "   (select w.stream, w.partition from jsonb_to_recordset($2::jsonb) as w(stream text, "
    "partition int)))"
    " order by m.stream, m.partition, e.seq"};
constexpr eventstore::PreparedSql kCreateProgress{
    "streams_create_progress",
    "insert into inbound_stream_progress (stream, partition) values ($1, $2) on conflict do "
    "nothing"};
// A consumer batch's partitions: locked in (stream, partition) byte order (the sort sits
// below the row locks), and stored.
constexpr eventstore::PreparedSql kLockProgress{
    "streams_lock_progress",
    "select p.stream, p.partition, p.last_seq, p.kafka_offset from inbound_stream_progress p"
    " where (p.stream, p.partition) in"
    "   (select w.stream, w.partition from jsonb_to_recordset($1::jsonb) as w(stream text, "
    "partition int))"
    " order by p.stream collate \"C\", p.partition for update of p"};
constexpr eventstore::PreparedSql kStoreProgress{
    "streams_store_progress",
    "update inbound_stream_progress p set last_seq = w.last_seq,"
    " kafka_offset = greatest(p.kafka_offset, w.kafka_offset), updated_at = now()"
    " from jsonb_to_recordset($1::jsonb) as w(stream text, partition int, last_seq bigint, "
    "kafka_offset bigint)"
    " where p.stream = w.stream and p.partition = w.partition"};
constexpr eventstore::PreparedSql kReadProgress{
    "streams_read_progress",
    "select last_seq, kafka_offset from inbound_stream_progress where stream = $1 and partition = "
    "$2"};

// A stored message, its personal fields opened when there is a protector.
StoreResult<ExternalMessage> message_from(const pqxx::row& row, Transaction& tx,
                                          const eventstore::DataProtector* protector) {
  ExternalMessage m;
  m.stream = row[0].as<std::string>();
  m.partition = row[1].as<std::int32_t>();
  m.seq = row[2].as<std::int64_t>();
  m.event_id = row[3].as<std::string>();
  m.type = row[4].as<std::string>();
  m.key = row[5].as<std::string>();
  m.data = nlohmann::json::parse(row[6].c_str());
  m.source_event_id = row[7].as<std::string>();
  m.correlation_id = row[8].as<std::string>();
  m.occurred_at = row[9].as<std::string>();
  if (protector != nullptr)
    if (auto opened = protector->open(tx, m.data); !opened) return tl::unexpected(opened.error());
  return m;
}

}  // namespace

const std::vector<eventstore::Migration>& external_streams_migrations() {
  static const std::vector<eventstore::Migration> migrations{
      {"external_streams/0001_streams", kSchema},
      {"external_streams/0002_published_apart", kPublishedApart},
      {"external_streams/0003_key_first", kKeyFirst},
      {"external_streams/0004_derived_streams", kDerivedStreams}};
  return migrations;
}

StoreResult<void> ensure_stream_partitions(Transaction& tx, const StreamSpec& s) {
  if (s.name.empty() || s.partitions < 1 || s.partitions > kPartitionsMax)
    return tl::unexpected(StoreError{
        StoreErrc::invalid_argument,
        "stream '" + s.name + "' needs 1.." + std::to_string(kPartitionsMax) + " partitions"});
  const auto existing = tx.exec_params(
      "select coalesce(max(partition) + 1, 0) from external_stream_seqs where stream = $1", s.name);
  const auto registered = existing[0][0].as<std::int32_t>();
  if (registered != 0 && registered != s.partitions)
    return tl::unexpected(
        StoreError{StoreErrc::invalid_argument,
                   "stream " + s.name + " has " + std::to_string(registered) + " partitions; " +
                       std::to_string(s.partitions) +
                       " would move entities to other partitions: a new partition count is a new "
                       "version of the stream"});
  for (const char* table : {"external_stream_seqs", "external_stream_published"})
    tx.exec_params(std::string("insert into ") + table +
                       " (stream, partition) select $1, p from generate_series(0, $2 - 1) p"
                       " on conflict do nothing",
                   s.name, s.partitions);
  return {};
}

StoreResult<void> ensure_streams(eventstore::ConnectionPool& pool,
                                 std::span<const StreamSpec> streams) {
  return pool.transact([&](Transaction& tx) -> StoreResult<void> {
    for (const auto& s : streams)
      if (auto ensured = ensure_stream_partitions(tx, s); !ensured) return ensured;
    return {};
  });
}

StoreResult<std::optional<ExternalMessage>> append_external(
    Transaction& tx, const StreamSpec& stream, const Draft& draft,
    const eventstore::RecordedEvent& source, const eventstore::DataProtector* protector) {
  const PendingAppend one{&stream, draft, &source};
  auto appended = append_external_batch(tx, std::span<const PendingAppend>(&one, 1), protector);
  if (!appended) return tl::unexpected(appended.error());
  if (appended->empty()) return std::optional<ExternalMessage>{};
  return std::optional<ExternalMessage>{std::move(appended->front())};
}

StoreResult<std::vector<ExternalMessage>> append_external_batch(
    Transaction& tx, std::span<const PendingAppend> appends,
    const eventstore::DataProtector* protector) {
  using Json = nlohmann::json;
  std::vector<ExternalMessage> out;
  if (appends.empty()) return out;

  // once_per_key: which of the batch's (stream, key, type) the streams already have.
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  Json probe = Json::array();
  for (const auto& a : appends) {
    CLEARING_ASSERT(a.stream != nullptr && a.source != nullptr);
    CLEARING_ASSERT(!a.draft.key.empty() && !a.draft.type.empty());
    if (a.draft.once_per_key)
      probe.push_back(
          {{"stream", a.stream->name}, {"entity_key", a.draft.key}, {"type", a.draft.type}});
  }
  if (!probe.empty())
    for (const auto& row : tx.exec_params(
             "select distinct e.stream, e.entity_key, e.type from external_events e"
             " join jsonb_to_recordset($1::jsonb) as x(stream text, entity_key text, type text)"
             " on e.stream = x.stream and e.entity_key = x.entity_key and e.type = x.type",
             probe.dump()))
      seen.emplace(row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>());

  std::map<PartitionKey, std::int64_t> counts;  // ordered: the lock order
  for (const auto& a : appends) {
    const auto& draft = a.draft;
    const auto& source = *a.source;
    if (draft.once_per_key && !seen.emplace(a.stream->name, draft.key, draft.type).second) continue;
    ExternalMessage m;
    m.stream = a.stream->name;
    m.partition = partition_for(draft.key, a.stream->partitions);
    m.event_id = base::derived_uuid(kEventIdNamespace,
                                    m.stream + "|" + source.event_id.value() + "|" + draft.type);
    m.type = draft.type;
    m.key = draft.key;
    m.data = draft.data;
    m.source_event_id = source.event_id.value();
    m.correlation_id =
        draft.correlation_id.empty() ? source.metadata.correlation_id : draft.correlation_id;
    m.occurred_at = base::format_timestamp(source.recorded_at);
    if (m.correlation_id.empty()) m.correlation_id = source.event_id.value();
    ++counts[{m.stream, m.partition}];
    out.push_back(std::move(m));
  }
  if (out.empty()) return out;

  // The row lock on a partition's head serializes its writers: seqs stay gapless and in
  // commit order. Each partition's new seqs are head - count + 1 .. head.
  Json wanted = Json::array();
  for (const auto& [partition, count] : counts)
    wanted.push_back({{"stream", partition.first}, {"partition", partition.second}, {"n", count}});
  std::map<PartitionKey, std::int64_t> next;
  for (const auto& row : eventstore::exec_prepared_here(tx, kTakeSeqs, wanted.dump())) {
    const PartitionKey partition{row[0].as<std::string>(), row[1].as<std::int32_t>()};
    next[partition] = row[2].as<std::int64_t>() - counts.at(partition) + 1;
  }
  for (const auto& [partition, count] : counts)
    if (next.count(partition) == 0)
      return tl::unexpected(
          StoreError{StoreErrc::invalid_argument, "stream " + partition.first + " partition " +
                                                      std::to_string(partition.second) +
                                                      " is not registered (ensure_streams)"});
  Json rows = Json::array();
  for (auto& m : out) {
    m.seq = next[{m.stream, m.partition}]++;
    auto data = m.data;  // the caller gets it open, the table sealed
    if (protector != nullptr)
      if (auto sealed = protector->seal(tx, data); !sealed) return tl::unexpected(sealed.error());
    rows.push_back({{"stream", m.stream},
                    {"partition", m.partition},
                    {"seq", m.seq},
                    {"event_id", m.event_id},
                    {"type", m.type},
                    {"entity_key", m.key},
                    {"data", std::move(data)},
                    {"source_event_id", m.source_event_id},
                    {"correlation_id", m.correlation_id},
                    {"occurred_at", m.occurred_at}});
  }
  eventstore::exec_prepared_here(tx, kInsertMessages, rows.dump());
  eventstore::note_outbox_written();  // a relay of this process is woken after the commit
  return out;
}

StoreResult<CatchUpPage> read_catch_up(Transaction& tx, const std::string& stream,
                                       std::int32_t partition, std::int64_t from,
                                       std::int64_t limit,
                                       const eventstore::DataProtector* protector) {
  CLEARING_ASSERT(limit > 0 && limit <= kCatchUpLimitMax);
  CatchUpPage page;
  const auto head = eventstore::exec_prepared_here(tx, kReadHead, stream, partition);
  if (head.empty())
    return tl::unexpected(
        StoreError{StoreErrc::invalid_argument,
                   "no stream " + stream + " partition " + std::to_string(partition)});
  page.head = head[0][0].as<std::int64_t>();
  const auto rows = tx.exec_params(
      "select stream, partition, seq, event_id::text, type, entity_key, data::text, "
      "source_event_id::text,"
      " correlation_id, to_char(occurred_at at time zone 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
      " from external_events where stream = $1 and partition = $2 and seq >= $3 order by seq limit "
      "$4",
      stream, partition, from, limit);
  std::int64_t expected = std::max<std::int64_t>(from, 1);
  for (const auto& row : rows) {
    auto message = message_from(row, tx, protector);
    if (!message) return tl::unexpected(message.error());
    page.events.push_back(std::move(*message));
    // Gapless, checked on the way out.
    CLEARING_ASSERT_MSG(page.events.back().seq == expected, "external stream has a gap");
    ++expected;
  }
  return page;
}

StoreResult<std::vector<Unpublished>> read_unpublished(
    Transaction& tx, std::int64_t limit, std::optional<std::span<const PartitionKey>> partitions,
    const eventstore::DataProtector* protector) {
  CLEARING_ASSERT(limit > 0 && limit <= kCatchUpLimitMax);
  std::vector<Unpublished> out;
  nlohmann::json wanted;  // null: every partition
  if (partitions) {
    if (partitions->empty()) return out;
    wanted = nlohmann::json::array();
    for (const auto& [stream, partition] : *partitions)
      wanted.push_back({{"stream", stream}, {"partition", partition}});
  }
  for (const auto& row :
       eventstore::exec_prepared_here(tx, kReadUnpublished, limit, wanted.dump())) {
    auto opened = message_from(row, tx, protector);
    if (!opened) return tl::unexpected(opened.error());
    auto message = std::move(*opened);
    if (!row[12].is_null())
      if (auto trace = trace_from_json(nlohmann::json::parse(row[12].c_str(), nullptr, false))) {
        message.traceparent = trace->traceparent();
        message.tracestate = trace->tracestate;
      }
    if (out.empty() || out.back().mark.stream != message.stream ||
        out.back().mark.partition != message.partition)
      out.push_back(Unpublished{{message.stream, message.partition, row[10].as<std::int64_t>(),
                                 row[11].as<std::int64_t>()},
                                {}});
    auto& partition = out.back();
    // Gapless from the mark, checked on the way out.
    CLEARING_ASSERT_MSG(message.seq == partition.mark.published + 1 +
                                           static_cast<std::int64_t>(partition.events.size()),
                        "external stream has a gap");
    partition.events.push_back(std::move(message));
  }
  return out;
}

StoreResult<void> mark_published(Transaction& tx, std::span<const PartitionMark> marks) {
  if (marks.empty()) return {};
  nlohmann::json wanted = nlohmann::json::array();
  for (const auto& m : marks)
    wanted.push_back({{"stream", m.stream}, {"partition", m.partition}, {"seq", m.published}});
  eventstore::exec_prepared_here(tx, kMarkPublished, wanted.dump());
  return {};
}

StoreResult<std::map<PartitionKey, InboundProgress>> lock_progress(
    Transaction& tx, const std::set<PartitionKey>& partitions) {
  std::map<PartitionKey, InboundProgress> out;
  if (partitions.empty()) return out;
  nlohmann::json wanted = nlohmann::json::array();
  for (const auto& [stream, partition] : partitions)
    wanted.push_back({{"stream", stream}, {"partition", partition}});
  const auto text = wanted.dump();
  auto lock = [&] {
    out.clear();
    for (const auto& row : eventstore::exec_prepared_here(tx, kLockProgress, text))
      out.emplace(PartitionKey{row[0].as<std::string>(), row[1].as<std::int32_t>()},
                  InboundProgress{row[2].as<std::int64_t>(), row[3].as<std::int64_t>()});
  };
  lock();
  if (out.size() < partitions.size()) {
    // A partition's first batch: its row is created (a concurrent creator makes the insert
    // a no-op), and the whole set locked again, in order.
    for (const auto& key : partitions)
      if (!out.count(key))
        eventstore::exec_prepared_here(tx, kCreateProgress, key.first, key.second);
    lock();
  }
  CLEARING_ASSERT(out.size() == partitions.size());
  return out;
}

StoreResult<void> store_progress(Transaction& tx,
                                 const std::map<PartitionKey, InboundProgress>& progress) {
  if (progress.empty()) return {};
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [key, p] : progress)
    rows.push_back({{"stream", key.first},
                    {"partition", key.second},
                    {"last_seq", p.last_seq},
                    {"kafka_offset", p.kafka_offset}});
  const auto stored = eventstore::exec_prepared_here(tx, kStoreProgress, rows.dump());
  CLEARING_ASSERT(stored.affected_rows() == progress.size());
  return {};
}

StoreResult<std::optional<InboundProgress>> read_progress(Transaction& tx,
                                                          const std::string& stream,
                                                          std::int32_t partition) {
  const auto row = eventstore::exec_prepared_here(tx, kReadProgress, stream, partition);
  if (row.empty()) return std::optional<InboundProgress>{};
  return std::optional<InboundProgress>{
      InboundProgress{row[0][0].as<std::int64_t>(), row[0][1].as<std::int64_t>()}};
}

}  // namespace clearing::external_streams
