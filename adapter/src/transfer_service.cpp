#include "clearing/adapter/transfer_service.hpp"

#include <pqxx/pqxx>

#include "clearing/adapter/answer_mapping.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/clearing_client/classify.hpp"

namespace clearing::adapter {
namespace {

constexpr const char* kAdapterSchema = R"sql(
-- The clearing call due for each unfinished transfer. Times are epoch milliseconds of
-- the adapter's clock (the same clock that computed them in the saga).
create table transfer_work (
  transfer_id    text primary key,
  action         text not null check (action in ('submit', 'inquiry')),
  attempt        int not null check (attempt > 0),
  due_at_ms      bigint not null,
  correlation_id text not null,
  caused_by      uuid,              -- the event that scheduled this call
  lease_owner    text,
  lease_until_ms bigint,
  claims         int not null default 0
);
create index transfer_work_due on transfer_work (due_at_ms);

create table transfer_status (
  transfer_id    text primary key,
  status         text not null,
  correlation_id text not null,
  updated_at     timestamptz not null default now()
);
create index transfer_status_status on transfer_status (status);

-- Input the adapter could not use, kept with the reason: never dropped.
create table parked_messages (
  id             bigint generated always as identity primary key,
  source         text not null,          -- 'kafka', 'clearing-feed', ...
  reason_code    text not null,          -- stable: 'not_json', 'missing_field', ...
  reason         text not null,          -- for people
  raw            text not null,
  topic          text,
  kafka_partition int,
  kafka_offset   bigint,
  correlation_id text,
  parked_at      timestamptz not null default now()
);
create index parked_messages_reason on parked_messages (reason_code);
)sql";

// What a submit needs, kept on the work row so that a dispatcher claims it with the row
// instead of loading the transfer's stream for it: the body of POST /v1/transfers
// (clearing_client::encode_submit_body), null for inquiries. Rows written before this
// migration have it null too; the dispatcher then loads the stream as before.
constexpr const char* kSubmitRequestColumn = R"sql(
alter table transfer_work add column submit_request jsonb
  check (submit_request is null or jsonb_typeof(submit_request) = 'object');
)sql";

// The projections' statements run for every command on a transfer: prepared once per
// connection, like the event store's own, instead of parsed and planned each time, and
// both tables written by one statement (a data-modifying WITH runs whether or not the
// main statement reads it), so a command costs one round trip besides its append.
// A clearing call is due: the work row set to it (lease cleared), and the status.
constexpr const char* kScheduledName = "adapter_sync_transfer_scheduled";
constexpr const char* kScheduled = R"sql(
with work as (
  insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id, caused_by, submit_request)
  values ($1, $2, $3, $4, $5, $6::uuid, $7::jsonb)
  on conflict (transfer_id) do update set action = excluded.action, attempt = excluded.attempt,
    due_at_ms = excluded.due_at_ms, correlation_id = excluded.correlation_id,
    caused_by = excluded.caused_by, submit_request = excluded.submit_request,
    lease_owner = null, lease_until_ms = null
)
insert into transfer_status (transfer_id, status, correlation_id) values ($1, $8, $5)
on conflict (transfer_id) do update set status = excluded.status, updated_at = now()
)sql";

// No call is due (an outcome, or parked for people): the work row gone, and the status.
constexpr const char* kUnscheduledName = "adapter_sync_transfer_unscheduled";
constexpr const char* kUnscheduled = R"sql(
with work as (
  delete from transfer_work where transfer_id = $1
)
insert into transfer_status (transfer_id, status, correlation_id) values ($1, $2, $3)
on conflict (transfer_id) do update set status = excluded.status, updated_at = now()
)sql";

// The same for a batch of transfers (TransferService::execute_batch), one row each.
constexpr const char* kSyncBatchName = "adapter_sync_transfers";
constexpr const char* kSyncBatch = R"sql(
with input as (
  select * from jsonb_to_recordset($1::jsonb) as x(transfer_id text, action text, attempt int, due_at_ms bigint,
    correlation_id text, caused_by uuid, submit_request text, status text)
), work as (
  insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id, caused_by, submit_request)
  select transfer_id, action, attempt, due_at_ms, correlation_id, caused_by, submit_request::jsonb from input
  where action is not null order by transfer_id
  on conflict (transfer_id) do update set action = excluded.action, attempt = excluded.attempt,
    due_at_ms = excluded.due_at_ms, correlation_id = excluded.correlation_id,
    caused_by = excluded.caused_by, submit_request = excluded.submit_request,
    lease_owner = null, lease_until_ms = null
), gone as (
  delete from transfer_work w using input where input.action is null and w.transfer_id = input.transfer_id
)
insert into transfer_status (transfer_id, status, correlation_id)
select transfer_id, status, correlation_id from input order by transfer_id
on conflict (transfer_id) do update set status = excluded.status, updated_at = now()
)sql";

// The status index held every transfer ever made, and a status change moved each one's
// entry. The gauge of transfers by state counted them all at every scrape, a scan of the
// whole table that grows for as long as the adapter runs. Only the unfinished ones are
// indexed now, and only they are counted; finished transfers leave the index.
// transfer_work rows are claimed (lease columns, not indexed) between their insert and
// their delete: with room on their page, the claim is a HOT update without index entries.
constexpr const char* kUnfinishedIndex = R"sql(
drop index transfer_status_status;
create index transfer_status_unfinished on transfer_status (status)
  where status not in ('succeeded', 'rejected');
alter table transfer_work set (fillfactor = 50);
)sql";

// parked_messages.raw held text: a Kafka value with invalid UTF-8 could not be parked at all
// (the insert failed, and the consumer retried its batch for ever), and one with NUL was
// cut at it (libpq sends text parameters as C strings). The raw is the bytes as received
// now; rows parked before keep their text as its UTF-8 bytes. GET /parked filters by
// reason and pages by id, newest first: the reason index carries the id.
constexpr const char* kParkedRawBytes = R"sql(
alter table parked_messages alter column raw type bytea using convert_to(raw, 'UTF8');
drop index parked_messages_reason;
create index parked_messages_reason_id on parked_messages (reason_code, id);
)sql";

// For /metrics (adapter/src/service_metrics.cpp), each read by one look-up of an index:
// - when each transfer was first recorded, so the age of the oldest unfinished transfer of
//   each state is the first entry of its state in transfer_status_unfinished, which now
//   carries it (no index more: every status change moves that entry already). Rows finished
//   before this migration keep null; unfinished ones take their first event's time.
// - the alarm events, all time: a partial index holds only their rare types, so it costs
//   every other append nothing (no entry).
// - parked messages by source and reason, an index-only scan.
constexpr const char* kMetricIndexes = R"sql(
alter table transfer_status add column created_at timestamptz;
alter table transfer_status alter column created_at set default now();
update transfer_status s set created_at = coalesce(
    (select e.recorded_at from events e where e.stream_id = 'transfer-' || s.transfer_id and e.version = 1),
    s.updated_at)
  where s.status not in ('succeeded', 'rejected');
drop index transfer_status_unfinished;
create index transfer_status_unfinished on transfer_status (status, created_at)
  where status not in ('succeeded', 'rejected');
create index events_alarms on events (type, position)
  where type in ('ContradictingClearingAnswerReceived', 'ConflictingIncomingPaymentReceived', 'IncomingPaymentParked');
create index parked_messages_source_reason on parked_messages (source, reason_code);
)sql";

}  // namespace

struct TransferService::ProjectionRow {
  std::string transfer_id;
  std::optional<std::string> action;  // empty: no call is due
  int attempt = 0;
  std::int64_t due_at_ms = 0;
  std::string correlation_id;
  std::string caused_by;
  std::optional<clearing_client::SubmitRequest> submit;  // encoded into submit_request
  std::string subject;  // whose personal data submit holds: the core's account
  std::optional<std::string> submit_request;
  std::string status;
};

// Personal data at rest (privacy/vault.hpp): a parked raw value sealed whole, its length
// and its sealed first bytes apart for the listing. Rows parked before stay clear.
constexpr const char* kParkedSealed = R"sql(
alter table parked_messages add column raw_sealed boolean not null default false,
  add column raw_length bigint, add column raw_preview bytea,
  add constraint parked_messages_sealed
    check (raw_sealed = (raw_length is not null) and raw_sealed = (raw_preview is not null));
)sql";

// Operator actions on parked messages (issue 22): each message's state, written with the
// action's event; the parked metric counts the open ones through the partial index.
constexpr const char* kParkedState = R"sql(
alter table parked_messages add column state text not null default 'open',
  add constraint parked_messages_state check (state in ('open', 'closed', 'replayed'));
create index parked_messages_open_source_reason on parked_messages (source, reason_code)
  where state = 'open';
)sql";

// Parked incoming payments listed beside the parked messages (issue 22): a row per payment the
// saga parked (IncomingPaymentParked), its payment id (at most one row each), and the states
// an operator's booking or return leaves.
constexpr const char* kParkedPayments = R"sql(
alter table parked_messages add column payment_id text,
  drop constraint parked_messages_state,
  add constraint parked_messages_state
    check (state in ('open', 'closed', 'replayed', 'booked', 'returned'));
create unique index parked_messages_payment on parked_messages (payment_id)
  where payment_id is not null;
)sql";

// A parked incoming payment's clearing reference, which names its stream
// (incoming-payment-<reference>), in its row: an operator's booking or return finds the payment
// by it instead of opening the sealed raw (the IncomingPaymentParked data) for it, which needed
// the data key. A reference is an id, not personal data (docs/personal-data.md): kept clear.
// Rows parked before take it from their IncomingPaymentParked event, whose ids are never
// sealed, so no sealed data is read; the poller writes it with the row from now on
// (set_parked_payment_state), and a row an older version writes after this ran gets it from
// its event when an operator acts on it (lock_parked_state).
constexpr const char* kParkedClearingReference = R"sql(
alter table parked_messages add column clearing_reference text,
  add constraint parked_messages_clearing_reference
    check (clearing_reference is null or payment_id is not null);
update parked_messages p set clearing_reference = e.data->>'clearing_reference'
  from events e
  where p.payment_id is not null and e.data->>'payment_id' = p.payment_id
    and e.type = 'IncomingPaymentParked'
    and e.type in ('ContradictingClearingAnswerReceived', 'ConflictingIncomingPaymentReceived',
                   'IncomingPaymentParked');
)sql";

const std::vector<eventstore::Migration>& adapter_migrations() {
  static const std::vector<eventstore::Migration> migrations{
      {"adapter/0001_transfer_work", kAdapterSchema},
      {"adapter/0002_transfer_work_submit_request", kSubmitRequestColumn},
      {"adapter/0003_transfer_status_unfinished", kUnfinishedIndex},
      {"adapter/0004_parked_messages_raw_bytes", kParkedRawBytes},
      {"adapter/0005_metric_indexes", kMetricIndexes},
      {"adapter/0006_parked_sealed", kParkedSealed},
      {"adapter/0007_parked_state", kParkedState},
      {"adapter/0008_parked_payments", kParkedPayments},
      {"adapter/0009_parked_clearing_reference", kParkedClearingReference}};
  return migrations;
}

eventstore::StreamId transfer_stream(const std::string& transfer_id) {
  return eventstore::StreamId{"transfer-" + transfer_id};
}

std::string transfer_id_of(const sagas::TransferCommand& command) {
  return sagas::target_transfer_id(command);
}

TransferService::TransferService(eventstore::EventStore& store) : store_(store), aggregate_(store) {
  store_.pool().prepare(kScheduledName, kScheduled);
  store_.pool().prepare(kUnscheduledName, kUnscheduled);
  store_.pool().prepare(kSyncBatchName, kSyncBatch);
}

std::vector<TransferResult> TransferService::execute_batch(eventstore::Transaction& tx,
                                                           std::span<const BatchCommand> commands) {
  std::vector<eventstore::BatchCommand<sagas::TransferDecider>> batch;
  batch.reserve(commands.size());
  for (const auto& c : commands)
    batch.push_back({transfer_stream(transfer_id_of(c.command)), c.command, c.context, c.assumed});
  auto results = aggregate_.handle_batch(tx, batch);
  // Each transfer's last state that moved, in transfer id order (the lock order).
  std::map<std::string, ProjectionRow> rows;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i] || results[i]->events.empty()) continue;
    const auto transfer_id = transfer_id_of(commands[i].command);
    rows.insert_or_assign(transfer_id,
                          projection_row(transfer_id, *results[i], commands[i].context));
  }
  for (auto& [id, row] : rows) encode_submit_request(tx, row);
  if (rows.empty()) return results;
  std::string input = "[";
  for (const auto& [id, row] : rows) {
    nlohmann::json j = {{"transfer_id", row.transfer_id},
                        {"correlation_id", row.correlation_id},
                        {"status", row.status}};
    if (row.action) {
      j["action"] = *row.action;
      j["attempt"] = row.attempt;
      j["due_at_ms"] = row.due_at_ms;
      j["caused_by"] = row.caused_by;
      if (row.submit_request) j["submit_request"] = *row.submit_request;
    }
    input += input.size() == 1 ? "" : ",";
    input += j.dump();
  }
  input += "]";
  tx.exec_prepared(kSyncBatchName, input);
  return results;
}

TransferResult TransferService::execute(eventstore::Transaction& tx,
                                        const sagas::TransferCommand& command,
                                        const eventstore::CommandContext& context) {
  const auto transfer_id = transfer_id_of(command);
  auto result = aggregate_.handle(tx, transfer_stream(transfer_id), command, context);
  if (result && !result->events.empty()) sync_projections(tx, transfer_id, *result, context);
  return result;
}

TransferResult TransferService::execute(eventstore::Transaction& tx,
                                        const sagas::TransferCommand& command,
                                        const eventstore::CommandContext& context,
                                        const TransferLoaded& assumed) {
  const auto transfer_id = transfer_id_of(command);
  auto result = aggregate_.handle(tx, transfer_stream(transfer_id), command, context, assumed);
  if (result && !result->events.empty()) sync_projections(tx, transfer_id, *result, context);
  return result;
}

TransferResult TransferService::execute(const sagas::TransferCommand& command,
                                        const eventstore::CommandContext& context) {
  TransferResult out = tl::unexpected(eventstore::CommandFailure<sagas::TransferDecider>{
      eventstore::StoreError{eventstore::StoreErrc::internal, "not run"}});
  auto status = store_.pool().transact_with_retry(
      [&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
        out = execute(tx, command, context);
        if (!out && std::holds_alternative<eventstore::StoreError>(out.error()))
          return tl::unexpected(std::get<eventstore::StoreError>(out.error()));
        return {};
      });
  if (!status && out)
    return tl::unexpected(eventstore::CommandFailure<sagas::TransferDecider>{status.error()});
  return out;
}

eventstore::StoreResult<eventstore::Loaded<sagas::TransferDecider>> TransferService::load(
    eventstore::Transaction& tx, const std::string& transfer_id) {
  return aggregate_.load(tx, transfer_stream(transfer_id));
}

eventstore::StoreResult<std::map<std::string, TransferLoaded>> TransferService::load_many(
    eventstore::Transaction& tx, const std::vector<std::string>& transfer_ids) {
  std::vector<eventstore::StreamId> streams;
  streams.reserve(transfer_ids.size());
  for (const auto& id : transfer_ids) streams.push_back(transfer_stream(id));
  auto loaded = aggregate_.load_many(tx, streams);
  if (!loaded) return tl::unexpected(loaded.error());
  const std::string prefix = transfer_stream("").value();
  std::map<std::string, TransferLoaded> out;
  for (auto& [stream, state] : *loaded) {
    CLEARING_ASSERT(stream.value().rfind(prefix, 0) == 0);
    out.emplace(stream.value().substr(prefix.size()), std::move(state));
  }
  return out;
}

eventstore::StoreResult<std::vector<std::pair<std::string, std::int64_t>>>
TransferService::unfinished_by_status(eventstore::Transaction& tx) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& row : tx.exec(kUnfinishedByStatusQuery))
    out.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
  return out;
}

TransferService::ProjectionRow TransferService::projection_row(
    const std::string& transfer_id, const eventstore::Decision<sagas::TransferDecider>& decision,
    const eventstore::CommandContext& context) {
  CLEARING_ASSERT(!decision.event_ids.empty());
  const auto& state = decision.state;
  ProjectionRow row;
  row.transfer_id = transfer_id;
  row.correlation_id = state.correlation_id.empty() ? context.correlation_id : state.correlation_id;
  row.status = std::string(sagas::state_name(state));
  const auto next = sagas::next_action(state);
  if (!next) return row;
  CLEARING_ASSERT(next->idempotency_key == transfer_id);
  row.action = std::string(sagas::action_name(next->action));
  row.attempt = next->attempt;
  row.due_at_ms = static_cast<std::int64_t>(next->due_at.time_since_epoch().count());
  row.caused_by = decision.event_ids.back().value();
  if (next->action == sagas::ClearingAction::submit) {
    CLEARING_ASSERT(state.request.transfer_id == transfer_id);
    row.submit = to_submit_request(state.request);
    row.subject = state.request.account_id;
  }
  return row;
}

void TransferService::encode_submit_request(eventstore::Transaction& tx, ProjectionRow& row) {
  if (!row.submit) return;
  const auto* protector = store_.pool().protector();
  if (protector == nullptr) {
    row.submit_request = clearing_client::encode_submit_body(*row.submit);
    return;
  }
  auto body = clearing_client::submit_body_json(*row.submit);
  if (auto sealed = protector->seal(tx, body, row.subject); !sealed)
    throw eventstore::StoreFailure(sealed.error());
  row.submit_request = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void TransferService::sync_projections(eventstore::Transaction& tx, const std::string& transfer_id,
                                       const eventstore::Decision<sagas::TransferDecider>& decision,
                                       const eventstore::CommandContext& context) {
  auto row = projection_row(transfer_id, decision, context);
  encode_submit_request(tx, row);
  if (row.action)
    tx.exec_prepared(kScheduledName, transfer_id, *row.action, row.attempt, row.due_at_ms,
                     row.correlation_id, row.caused_by, row.submit_request, row.status);
  else
    tx.exec_prepared(kUnscheduledName, transfer_id, row.status, row.correlation_id);
}

}  // namespace clearing::adapter
