#include "clearing/core_sim/core_sim_schema.hpp"

namespace clearing::core_sim {

const std::vector<eventstore::Migration>& core_sim_migrations() {
  static const std::vector<eventstore::Migration> migrations{
      {"core_sim/0001_tables", R"sql(
create table core_transfers (
  transfer_id text primary key,
  account_id text not null,
  amount_minor bigint not null,
  currency text not null,
  correlation_id text not null,
  reserved_event_id text not null,
  stream_partition int not null,
  stream_seq bigint not null,
  request_batch text not null,
  expected_reason_code text,
  status text not null default 'open' check (status in ('open', 'succeeded', 'rejected')),
  reason_code text,
  clearing_reference text,
  pending_seen boolean not null default false,
  under_investigation_seen boolean not null default false,
  dupl_seen int not null default 0,
  requested_at timestamptz not null,
  outcome_at timestamptz,
  outcome_event_id text
);
create index core_transfers_status on core_transfers (status);
create index core_transfers_batch on core_transfers (request_batch);
create table core_refused (
  transfer_id text primary key,
  account_id text not null,
  reason text not null,
  refused_at timestamptz not null default clock_timestamp()
);
create table core_violations (
  id bigint generated always as identity primary key,
  transfer_id text not null,
  kind text not null,
  message_type text not null,
  stream text not null,
  partition int not null,
  seq bigint not null,
  event_id text not null,
  recorded_at timestamptz not null default clock_timestamp()
);
create table core_parked_messages (
  id bigint generated always as identity primary key,
  topic text not null,
  partition int not null,
  kafka_offset bigint not null,
  reason_code text not null,
  reason text not null,
  correlation_id text not null,
  raw text not null,
  parked_at timestamptz not null default clock_timestamp()
);
create table core_incoming_payments (
  payment_id text primary key,
  amount_minor bigint not null,
  currency text not null,
  event_id text not null,
  received_at timestamptz not null default clock_timestamp()
);
create table core_accounts (
  account_id text primary key,
  currency text not null,
  balance_minor bigint not null,
  reserved_minor bigint not null,
  updated_at timestamptz not null default clock_timestamp()
);
)sql"},
      // The index served an update of each batch's requested_at after its other writes;
      // the insert, now the batch's last statement, sets it.
      {"core_sim/0002_no_request_batch_index", R"sql(
drop index core_transfers_batch;
)sql"},
      // The internal event of the adapter behind each transfer message handled (its
      // source_event_id), whichever version of the stream carried it: what makes a switch
      // from adapter.<cc>.payments.v1 to .v2 apply each outcome once (outcome_applier.hpp).
      {"core_sim/0003_outcome_sources", R"sql(
create table core_outcome_sources (
  source_event_id text primary key,
  transfer_id text not null,
  stream text not null,
  partition int not null,
  seq bigint not null
);
)sql"},
      // The account event that resolved each transfer (ReservationCompleted or
      // ReservationReleased), beside outcome_event_id, the adapter's message it applied: the
      // story of a transfer (transfer_story.hpp) finds it by its id. Transfers resolved
      // before this migration have none, and their story shows no resolution event.
      {"core_sim/0004_resolved_event_id", R"sql(
alter table core_transfers add column resolved_event_id text;
)sql"},
  };
  return migrations;
}

}  // namespace clearing::core_sim
