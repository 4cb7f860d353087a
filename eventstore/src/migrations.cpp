#include "clearing/eventstore/migrations.hpp"

#include <pqxx/pqxx>

namespace clearing::eventstore {
namespace {

// An arbitrary constant: the advisory lock key that serializes migrators.
constexpr std::int64_t kMigrationLockKey = 7'300'411'001;

constexpr const char* kEventsSchema = R"sql(
create table event_streams (
  stream_id text primary key,
  version   bigint not null check (version > 0)
);

create table events (
  position       bigint generated always as identity primary key,
  transaction_id xid8 not null default pg_current_xact_id(),
  stream_id      text not null,
  version        bigint not null check (version > 0),
  event_id       uuid not null,
  type           text not null,
  data           jsonb not null check (jsonb_typeof(data) = 'object'),
  metadata       jsonb not null check (jsonb_typeof(metadata) = 'object'),
  recorded_at    timestamptz not null default clock_timestamp(),
  constraint events_stream_version unique (stream_id, version),
  constraint events_event_id unique (event_id)
);

-- Readers of "all events" walk this order; see event_store.cpp.
create index events_commit_order on events (transaction_id, position);

create table subscription_checkpoints (
  name           text primary key,
  transaction_id xid8 not null,
  position       bigint not null,
  updated_at     timestamptz not null default now()
);

-- Wakes live subscriptions. Per statement, and NOTIFY folds duplicates within one
-- transaction, so a batch append sends one notification at commit.
create function events_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('clearing_events', '');
  return null;
end $$;

create trigger events_notify after insert on events
  for each statement execute function events_notify();
)sql";

// NOTIFY in a trigger makes PostgreSQL hold a database-wide lock from the NOTIFY to the
// end of the commit's flush, so notifying commits cannot share a WAL flush: with many
// writers it cut append throughput to a fraction (bench/eventstore). The pool now sends
// the notification after commit instead (ConnectionPool: notify_after_commit).
constexpr const char* kNotifyAfterCommit = R"sql(
drop trigger events_notify on events;
drop function events_notify();
)sql";

// `position` stays an identity column, unique by construction, but its index goes: no
// query looks a position up or walks positions alone (readers of all events walk
// events_commit_order, readers of a stream events_stream_version), and the index cost
// every append an entry. (stream_id, version), unique and not null, is the table's key,
// and its replica identity for logical replication. The subscription lag gauge reads the
// identity sequence instead of max(position).
constexpr const char* kPositionIndexDropped = R"sql(
alter table events drop constraint events_pkey;
alter table events replica identity using index events_stream_version;
)sql";

// Each event's schema version (types.hpp: SchemaVersion), in a column rather than in the
// metadata: a plain int beside the type is what `events check` and an operator count by
// (`group by type, schema_version`) without parsing JSON, and what a reader gets without
// a lookup into jsonb. The constant default makes the ALTER a catalogue change (no table
// rewrite since PostgreSQL 11), and every row stored before reads as version 1, which it
// is. The check is NOT VALID so that adding it does not scan the table: rows written from
// now on are checked, and the existing ones all hold the default.
constexpr const char* kSchemaVersion = R"sql(
alter table events add column schema_version integer not null default 1;
alter table events add constraint events_schema_version_positive
  check (schema_version > 0) not valid;
)sql";

}  // namespace

const std::vector<Migration>& eventstore_migrations() {
  static const std::vector<Migration> migrations{
      {"eventstore/0001_events", kEventsSchema},
      {"eventstore/0002_notify_after_commit", kNotifyAfterCommit},
      {"eventstore/0003_position_index_dropped", kPositionIndexDropped},
      {"eventstore/0004_schema_version", kSchemaVersion}};
  return migrations;
}

StoreResult<MigrationReport> apply_migrations(ConnectionPool& pool,
                                              std::span<const Migration> migrations) {
  return pool.transact([&](Transaction& tx) -> StoreResult<MigrationReport> {
    MigrationReport report;
    tx.exec("select pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
    tx.exec(
        "create table if not exists schema_migrations ("
        " id text primary key, applied_at timestamptz not null default now())");
    for (const auto& migration : migrations) {
      const auto found =
          tx.exec_params("select 1 from schema_migrations where id = $1", migration.id);
      if (!found.empty()) {
        ++report.already_applied;
        continue;
      }
      tx.exec(migration.sql);
      tx.exec_params("insert into schema_migrations (id) values ($1)", migration.id);
      report.applied.push_back(migration.id);
    }
    return report;
  });
}

}  // namespace clearing::eventstore
