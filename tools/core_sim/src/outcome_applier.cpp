// The consumer's outcomes, set-wise: see outcome_applier.hpp for the contract.

#include "clearing/core_sim/outcome_applier.hpp"

#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/payments_codec.hpp"
#include "clearing/external_streams/payments_v2_codec.hpp"
#include "clearing/external_streams/trace_metadata.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::core_sim {
namespace {

namespace payments = external_streams::payments;
using external_streams::MessageErrc;
using external_streams::MessageError;
using Json = nlohmann::json;

std::shared_ptr<spdlog::logger> logger() { return base::module_logger("core_sim"); }

// The updates below name their rows twice: joined to the input, and by primary key
// (`= any(array(...))`), without which the planner, expecting 100 input rows, scans the
// whole table.

// What the batch writes about its transfers besides their outcomes.
struct TransferFlags {
  bool pending_seen = false;
  bool under_investigation_seen = false;
  int dupl_seen = 0;
};

void write_violations(eventstore::Transaction& tx, const Json& rows) {
  if (rows.empty()) return;
  tx.exec_params(
      "insert into core_violations (transfer_id, kind, message_type, stream, partition, seq, "
      "event_id)"
      " select transfer_id, kind, message_type, stream, partition, seq, event_id from "
      "jsonb_to_recordset($1::jsonb)"
      " as x(transfer_id text, kind text, message_type text, stream text, partition int, seq "
      "bigint, event_id text)",
      rows.dump());
}

void write_flags(eventstore::Transaction& tx, const std::map<std::string, TransferFlags>& flags) {
  if (flags.empty()) return;
  Json rows = Json::array();
  for (const auto& [id, f] : flags)
    rows.push_back({{"transfer_id", id},
                    {"pending_seen", f.pending_seen},
                    {"under_investigation_seen", f.under_investigation_seen},
                    {"dupl_seen", f.dupl_seen}});
  tx.exec_params(
      "update core_transfers t set pending_seen = t.pending_seen or x.pending_seen,"
      " under_investigation_seen = t.under_investigation_seen or x.under_investigation_seen,"
      " dupl_seen = t.dupl_seen + x.dupl_seen"
      " from jsonb_to_recordset($1::jsonb) as x(transfer_id text, pending_seen boolean,"
      " under_investigation_seen boolean, dupl_seen int)"
      " where t.transfer_id = x.transfer_id"
      " and t.transfer_id = any(array(select r->>'transfer_id' from "
      "jsonb_array_elements($1::jsonb) r))",
      rows.dump());
}

// The outcomes of a batch: each open transfer found by its key. `status || ''` keeps the
// planner off the status index: before a new database's first analyze it combined the
// two indexes (a BitmapAnd), after it it took the status index alone, and either way it
// read every `open` entry the index held, dead ones included until vacuum: 11 million
// index entries per 10 s a minute into bench/e2e (now 0.5 million, the benchmark's
// probe of the open count).
void write_outcomes(eventstore::Transaction& tx, const Json& rows) {
  if (rows.empty()) return;
  // Prepared, and prepared again as the table grows (prepared.hpp).
  static constexpr eventstore::PreparedSql kWriteOutcomes{
      "core_sim_write_outcomes",
      "update core_transfers t set status = x.status, reason_code = x.reason_code,"
      " clearing_reference = x.clearing_reference, outcome_at = clock_timestamp(),"
      " outcome_event_id = x.outcome_event_id, resolved_event_id = x.resolved_event_id"
      " from jsonb_to_recordset($1::jsonb) as x(transfer_id text, status text, reason_code text,"
      " clearing_reference text, outcome_event_id text, resolved_event_id text)"
      " where t.transfer_id = x.transfer_id and t.status || '' = 'open'"
      " and t.transfer_id = any(array(select r->>'transfer_id' from "
      "jsonb_array_elements($1::jsonb) r))"};
  eventstore::exec_prepared_here(tx, kWriteOutcomes, rows.dump());
}

}  // namespace

OutcomeApplier::OutcomeApplier(eventstore::EventStore& store, const AccountCache& cache,
                               BeforeAccountAppend before_append, OutcomesVersion version)
    : store_(store), cache_(cache), before_append_(std::move(before_append)), version_(version) {}

bool OutcomeApplier::is_outcome(std::string_view type) {
  return payments::is_transfer_outcome(type);
}

bool OutcomeApplier::reads_outcome(std::string_view type) const {
  return version_ == OutcomesVersion::v2 ? type == payments::v2::TransferStatusChanged::kType
                                         : is_outcome(type);
}

void OutcomeApplier::begin_batch(eventstore::Transaction&) { queued_.clear(); }

tl::expected<void, external_streams::ApplyError> OutcomeApplier::apply(
    eventstore::Transaction& tx, const external_streams::ExternalMessage& m) {
  using external_streams::ApplyError;
  // Under the adapter's publish span (the message's traceparent), or a trace of its own.
  auto span = tracing::global_tracer()->start("consume " + m.stream,
                                              base::parse_traceparent(m.traceparent, m.tracestate),
                                              tracing::SpanKind::consumer);
  span.set("messaging.system", std::string("kafka"))
      .set("messaging.destination.name", m.stream)
      .set("messaging.destination.partition.id", std::int64_t{m.partition})
      .set("clearing.stream.seq", m.seq)
      .set("clearing.message.type", m.type);
  tl::expected<void, MessageError> applied =
      reads_outcome(m.type) ? queue(tx, m, span.context())
      : m.type == "IncomingPaymentReceived"
          ? apply_incoming_payment(tx, m)
          : tl::unexpected(MessageError{MessageErrc::unknown_type, "unknown event type " + m.type});
  if (!applied) {
    span.set_error(std::string(to_string(applied.error().code)));
    return tl::unexpected(ApplyError::unusable(std::move(applied.error())));
  }
  return {};
}

eventstore::StoreResult<void> OutcomeApplier::park(
    eventstore::Transaction& tx, const external_streams::RawMessage& raw,
    const MessageError& reason, const std::optional<external_streams::ExternalMessage>& parsed) {
  const std::string correlation = parsed ? parsed->correlation_id : std::string();
  tx.exec_params(
      "insert into core_parked_messages (topic, partition, kafka_offset, reason_code, reason, "
      "correlation_id, raw)"
      " values ($1, $2, $3, $4, $5, $6, $7)",
      raw.topic, raw.partition, raw.offset, std::string(to_string(reason.code)), reason.message,
      correlation, raw.value);
  logger()->warn("message parked topic={} partition={} offset={} reason={} correlation_id={}",
                 raw.topic, raw.partition, raw.offset, to_string(reason.code), correlation);
  return {};
}

tl::expected<void, MessageError> OutcomeApplier::queue(eventstore::Transaction& tx,
                                                       const external_streams::ExternalMessage& m,
                                                       const base::TraceContext& trace) {
  CLEARING_ASSERT(reads_outcome(m.type));
  // v2: the v1 outcome the status stands for; the message keeps its own type in records.
  auto outcome =
      version_ == OutcomesVersion::v2
          ? payments::v2::decode_transfer_status_changed(m.data).map(payments::v2::outcome_of)
          : payments::decode_transfer_outcome(m.type, m.data);
  if (!outcome) return tl::unexpected(outcome.error());
  const auto& transfer_id = outcome->transfer_id;
  const auto& type = outcome->type;
  Queued q{Kind::succeeded,
           transfer_id,
           m.type,
           m.stream,
           m.partition,
           m.seq,
           m.event_id,
           m.source_event_id,
           m.correlation_id,
           "",
           outcome->clearing_reference.value_or(""),
           trace};
  if (type == payments::TransferPending::kType) q.kind = Kind::pending;
  if (type == payments::TransferUnderInvestigation::kType) q.kind = Kind::under_investigation;
  if (type == payments::TransferRejected::kType) {
    const auto& code = outcome->reason_code;
    if (!code) {
      // An outcome for a transfer the core never requested is a violation whatever its
      // data; only a known transfer's rejection without a reason is unusable.
      if (!tx.exec_params("select 1 from core_transfers where transfer_id = $1", transfer_id)
               .empty())
        return tl::unexpected(MessageError{MessageErrc::invalid_data, "reason_code is missing"});
    }
    q.reason_code = code.value_or("");
    // DUPL is about a second request under this id: this core never sends one, and the
    // first request still gets its own outcome. Releasing here would free money that may
    // yet leave.
    q.kind = q.reason_code == "DUPL" ? Kind::duplicate_request : Kind::rejected;
  }
  queued_.push_back(std::move(q));
  return {};
}

// What the batch's messages ask for, gathered in message order: the rows to write, and the
// account commands with the message each came from.
struct OutcomeApplier::Plan {
  Json violations = Json::array();
  std::map<std::string, TransferFlags> flags;
  std::vector<AccountCommandRequest> commands;
  std::vector<const Queued*> commanded;  // the message of each command
  Json outcomes = Json::array();
  AccountProjection projection;

  void violate(const Queued& q, Violation violation) {
    violations.push_back({{"transfer_id", q.transfer_id},
                          {"kind", to_string(violation)},
                          {"message_type", q.type},
                          {"stream", q.stream},
                          {"partition", q.partition},
                          {"seq", q.seq},
                          {"event_id", q.event_id}});
    logger()->error(
        "outcome not applied transfer_id={} violation={} type={} seq={} correlation_id={}",
        q.transfer_id, to_string(violation), q.type, q.seq, q.correlation_id);
  }
};

// The batch's transfers, locked in transfer id order (so two batches cannot deadlock): the
// account of each one the core knows.
std::map<std::string, std::string> OutcomeApplier::lock_transfers(
    eventstore::Transaction& tx) const {
  Json ids = Json::array();
  for (const auto& q : queued_) ids.push_back(q.transfer_id);
  static constexpr eventstore::PreparedSql kLockTransfers{
      "core_sim_lock_transfers",
      "select transfer_id, account_id from core_transfers"
      " where transfer_id = any(array(select jsonb_array_elements_text($1::jsonb)))"
      " order by transfer_id for update"};
  std::map<std::string, std::string> account_of;
  for (const auto& row : eventstore::exec_prepared_here(tx, kLockTransfers, ids.dump()))
    account_of.emplace(row[0].as<std::string>(), row[1].as<std::string>());
  return account_of;
}

// Each message in order: what it records, or the account command it asks for.
OutcomeApplier::Plan OutcomeApplier::plan(
    const std::map<std::string, std::string>& account_of) const {
  const auto log = logger();
  Plan out;
  for (const auto& q : queued_) {
    const auto account = account_of.find(q.transfer_id);
    if (account == account_of.end()) {
      out.violate(q, Violation::unknown_transfer);
      continue;
    }
    switch (q.kind) {
      case Kind::pending:
        out.flags[q.transfer_id].pending_seen = true;
        continue;
      case Kind::under_investigation:
        out.flags[q.transfer_id].under_investigation_seen = true;
        log->warn("transfer under investigation transfer_id={} correlation_id={}", q.transfer_id,
                  q.correlation_id);
        continue;
      case Kind::duplicate_request:
        ++out.flags[q.transfer_id].dupl_seen;
        log->warn("DUPL rejection recorded, nothing released transfer_id={}", q.transfer_id);
        continue;
      case Kind::succeeded:
      case Kind::rejected:
        break;
    }
    AccountCommand command = CompleteReservation{q.transfer_id};
    if (q.kind == Kind::rejected) command = ReleaseReservation{q.transfer_id, q.reason_code};
    out.commands.push_back(
        {account->second, std::move(command),
         eventstore::CommandContext{
             q.correlation_id, q.event_id,
             Json{{"stream", q.stream}, {"partition", q.partition}, {"seq", q.seq}}, q.event_id,
             external_streams::with_trace(nullptr, q.trace)},
         q.stream + "/" +
             std::to_string(q.partition)});  // positions in message order per partition
    out.commanded.push_back(&q);
  }
  return out;
}

// The plan's account commands, set-wise: each accepted one is the transfer's outcome (the
// first per transfer) and its account's new state, a rejected one a violation.
eventstore::StoreResult<void> OutcomeApplier::command_accounts(eventstore::Transaction& tx,
                                                               Plan& plan) {
  AccountStates local;  // dropped: the cache is read only here
  auto handled = handle_account_commands(store_, tx, plan.commands, cache_, local, before_append_);
  // Tried again whatever its class, as the batch scope's string error was before: an
  // outcome is never parked for an account's sake (its money would stay reserved).
  if (!handled)
    return tl::unexpected(eventstore::StoreError{eventstore::StoreErrc::transient,
                                                 "account commands: " + handled.error().message});
  const auto log = logger();
  std::set<std::string> outcome_seen;
  for (std::size_t i = 0; i < plan.commands.size(); ++i) {
    const auto& q = *plan.commanded[i];
    const auto& result = handled->results[i];
    if (!result) {
      const auto violation = violation_of(plan.commands[i].command, result.error());
      CLEARING_ASSERT(violation.has_value());
      plan.violate(q, *violation);
      continue;
    }
    CLEARING_ASSERT(result->event_ids.size() == 1);  // outcomes are never idempotent no-ops
    const bool succeeded = q.kind == Kind::succeeded;
    // The first outcome per transfer: a second one was refused by the account above.
    if (outcome_seen.insert(q.transfer_id).second)
      plan.outcomes.push_back({{"transfer_id", q.transfer_id},
                               {"status", succeeded ? "succeeded" : "rejected"},
                               {"reason_code", q.reason_code},
                               {"clearing_reference", q.clearing_reference},
                               {"outcome_event_id", q.event_id},
                               {"resolved_event_id", result->event_ids.front().value()}});
    plan.projection.add(result->state);
    log->debug("outcome applied transfer_id={} type={} correlation_id={}", q.transfer_id, q.type,
               q.correlation_id);
  }
  return {};
}

// Keeps the source event of each queued message and drops the messages whose source event
// was handled already (by an earlier batch, from either version of the stream, or earlier
// in this one): see the header's "Switching from v1 to v2".
void OutcomeApplier::drop_handled_sources(eventstore::Transaction& tx) {
  std::map<std::string, const Queued*> sources;  // in source id order: the insert's lock order
  for (const auto& q : queued_)
    if (!q.source_event_id.empty()) sources.emplace(q.source_event_id, &q);
  if (sources.empty()) return;
  Json rows = Json::array();
  for (const auto& [source, q] : sources)
    rows.push_back({{"source_event_id", source},
                    {"transfer_id", q->transfer_id},
                    {"stream", q->stream},
                    {"partition", q->partition},
                    {"seq", q->seq}});
  static constexpr eventstore::PreparedSql kKeepSources{
      "core_sim_keep_outcome_sources",
      "insert into core_outcome_sources (source_event_id, transfer_id, stream, partition, seq)"
      " select source_event_id, transfer_id, stream, partition, seq from"
      " jsonb_to_recordset($1::jsonb) as x(source_event_id text, transfer_id text, stream text,"
      " partition int, seq bigint)"
      " on conflict (source_event_id) do nothing returning source_event_id"};
  std::set<std::string> fresh;
  for (const auto& row : eventstore::exec_prepared_here(tx, kKeepSources, rows.dump()))
    fresh.insert(row[0].as<std::string>());
  if (fresh.size() == sources.size() && sources.size() == queued_.size()) return;
  const auto log = logger();
  std::erase_if(queued_, [&](const Queued& q) {
    // The first message of a fresh source stays (erase answers 1 once).
    if (q.source_event_id.empty() || fresh.erase(q.source_event_id) == 1) return false;
    log->debug(
        "message of an event handled already skipped transfer_id={} type={} stream={} seq={}",
        q.transfer_id, q.type, q.stream, q.seq);
    return true;
  });
}

eventstore::StoreResult<void> OutcomeApplier::end_batch(eventstore::Transaction& tx) {
  if (queued_.empty()) return {};
  drop_handled_sources(tx);
  if (queued_.empty()) return {};
  auto batch = plan(lock_transfers(tx));
  if (auto commanded = command_accounts(tx, batch); !commanded) return commanded;
  // The set-wise writes.
  write_violations(tx, batch.violations);
  write_flags(tx, batch.flags);
  write_outcomes(tx, batch.outcomes);
  batch.projection.write(tx);
  return {};
}

tl::expected<void, MessageError> apply_incoming_payment(
    eventstore::Transaction& tx, const external_streams::ExternalMessage& m) {
  auto payment = payments::decode_incoming_payment_received(m.data);
  if (!payment) return tl::unexpected(payment.error());
  tx.exec_params(
      "insert into core_incoming_payments (payment_id, amount_minor, currency, event_id) values "
      "($1, $2, $3, $4)"
      " on conflict (payment_id) do nothing",
      payment->payment_id, payment->minor_units.value_or(0), payment->currency.value_or(""),
      m.event_id);
  return {};
}

}  // namespace clearing::core_sim
