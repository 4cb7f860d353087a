#include "service_metrics.hpp"

#include <algorithm>
#include <chrono>
#include <pqxx/pqxx>
#include <stdexcept>

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {
namespace {

using base::metrics::LabelValues;
using Samples = std::vector<std::pair<LabelValues, double>>;

const std::vector<double> kLatencyBucketsSeconds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10};

// The states of a transfer that has no outcome yet: each is a sample (0 when none), so an
// alert on one never depends on a series appearing.
const std::vector<std::string>& unfinished_states() {
  static const std::vector<std::string> states = [] {
    std::vector<std::string> out;
    for (const auto status :
         {sagas::TransferStatus::initiated, sagas::TransferStatus::submitting,
          sagas::TransferStatus::outcome_unknown, sagas::TransferStatus::pending_settlement,
          sagas::TransferStatus::under_investigation, sagas::TransferStatus::parked_for_review})
      out.emplace_back(sagas::status_name(status));
    return out;
  }();
  return states;
}

// The oldest unfinished transfer of each state: one look-up of the partial index on
// (status, created_at) per state, however many transfers are open.
constexpr const char* kOldestUnfinished = R"sql(
select s.status, coalesce(extract(epoch from now() - (
  select min(t.created_at) from transfer_status t
  where t.status = s.status and t.status not in ('succeeded', 'rejected'))), 0)
from unnest($1::text[]) as s(status)
)sql";

// Calls due before now that no live lease holds: nobody is making them. A claimed call
// under way is not overdue until its lease runs out (its owner died or hangs). Counted up
// to kOverdueCountMax rows of the due_at_ms index; the oldest is the index's first match.
constexpr std::int64_t kOverdueCountMax = 100'000;
constexpr const char* kOverdue = R"sql(
select
  (select count(*) from (select 1 from transfer_work
     where due_at_ms < $1 and (lease_until_ms is null or lease_until_ms < $1) limit $2) as o),
  coalesce((select ($1 - due_at_ms) / 1000.0 from transfer_work
     where due_at_ms < $1 and (lease_until_ms is null or lease_until_ms < $1)
     order by due_at_ms limit 1), 0)
)sql";

// Per outbound partition: messages written and not yet acknowledged by Kafka (head less
// the published mark), and how long the first of them has waited (its row, by the key).
constexpr const char* kRelay = R"sql(
select h.stream, h.partition, h.head - h.published,
  case when h.head > h.published then coalesce(extract(epoch from now() - e.recorded_at), 0) else 0 end
from external_stream_heads h
left join external_events e on e.stream = h.stream and e.partition = h.partition and e.seq = h.published + 1
order by 1, 2
)sql";

// Per subscription, from its checkpoint row (whichever instance moves it): the events
// committed after it, counted along events_commit_order up to kLagCountMax (beyond that the
// position sequence's estimate, which also counts positions of rolled-back appends), and
// the seconds since it last moved. Idle and caught up, it has 0 events to handle and an
// old checkpoint; stalled, it has events and an old checkpoint.
constexpr std::int64_t kLagCountMax = 100'000;
constexpr const char* kSubscriptions = R"sql(
select c.name, greatest(l.counted, case when l.counted >= $2
    then (select case when is_called then last_value else 0 end from events_position_seq) - c.position else 0 end),
  extract(epoch from now() - c.updated_at)
from subscription_checkpoints c
cross join lateral (select count(*) as counted from (select 1 from events e
  where (e.transaction_id, e.position) > (c.transaction_id, c.position) limit $2) as a) as l
where c.name = any($1::text[])
)sql";

// Alarm events, all time: the partial index events_alarms holds only these types.
constexpr const char* kContradicting = "ContradictingClearingAnswerReceived";
constexpr const char* kConflictingIncoming = "ConflictingIncomingPaymentReceived";
constexpr const char* kAlarms = R"sql(
select t.type, (select count(*) from events e where e.type = t.type
  and e.type in ('ContradictingClearingAnswerReceived', 'ConflictingIncomingPaymentReceived', 'IncomingPaymentParked'))
from unnest($1::text[]) as t(type)
)sql";

// The same predicate as events_alarms', so that index serves it.
constexpr const char* kContradictions = R"sql(
select count(*) from events where type = 'ContradictingClearingAnswerReceived'
  and type in ('ContradictingClearingAnswerReceived', 'ConflictingIncomingPaymentReceived', 'IncomingPaymentParked')
)sql";

// Incoming payments recorded as parked by their aggregate (the money arrived; people book
// it), all time, by reason code (ISO 20022: AC01, AM02, AM03).
constexpr const char* kIncomingParked = R"sql(
select coalesce(data->>'reason_code', ''), count(*) from events
where type = 'IncomingPaymentParked'
group by 1
)sql";

// The open ones (not closed or replayed by an operator): parked_messages_open_source_reason
// serves this as an index-only scan.
constexpr const char* kParked =
    "select source, reason_code, count(*) from parked_messages where state = 'open' group by 1, "
    "2";

std::string pg_text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const auto& v : values) out += (out.size() > 1 ? ",\"" : "\"") + v + "\"";
  return out + "}";
}

double seconds_since(std::chrono::system_clock::time_point then) {
  return std::max(0.0,
                  std::chrono::duration<double>(std::chrono::system_clock::now() - then).count());
}

// A counter of one field of a worker's stats since start; no sample until the worker is made.
template <class Worker, class Stats>
void stats_counter(base::metrics::Registry& metrics, const std::unique_ptr<Worker>& worker,
                   const char* name, const char* help, std::int64_t Stats::*field) {
  metrics.counter_callback(name, help, {}, [&worker, field] {
    Samples out;
    if (worker) out.push_back({{}, static_cast<double>(worker->stats().*field)});
    return out;
  });
}

// A counter of several fields of a worker's stats since start, one series a field under one
// label (its value the first of each pair); no sample until the worker is made.
template <class Worker, class Stats>
void stats_counters(base::metrics::Registry& metrics, const std::unique_ptr<Worker>& worker,
                    const char* name, const char* help, const std::string& label,
                    std::vector<std::pair<std::string, std::int64_t Stats::*>> fields) {
  metrics.counter_callback(name, help, {label}, [&worker, fields = std::move(fields)] {
    Samples out;
    if (!worker) return out;
    const auto stats = worker->stats();
    for (const auto& [value, field] : fields)
      out.push_back({{value}, static_cast<double>(stats.*field)});
    return out;
  });
}

}  // namespace

AnswerHook register_service_metrics(base::metrics::Registry& metrics,
                                    const ServiceMetricParts& parts,
                                    std::shared_ptr<spdlog::logger> log) {
  auto& answers =
      metrics.counter("clearing_answers_total", "Clearing answers received, by action and class",
                      {"action", "class"});
  auto& latency =
      metrics.histogram("clearing_call_duration_seconds", "Clearing call latency, by action",
                        {"action"}, kLatencyBucketsSeconds);
  AnswerHook hook = [&answers, &latency](std::string_view action, std::string_view cls,
                                         std::int64_t latency_ms) {
    answers.with({std::string(action), std::string(cls)}).inc();
    latency.with({std::string(action)}).observe(static_cast<double>(latency_ms) / 1000.0);
  };

  // A figure from the database: one statement outside a transaction block. A failed
  // statement is counted, logged and thrown: the registry then renders the family without
  // samples for this scrape, never a count of zero that is not true, and the count says
  // which figures are missing (an alert can watch it; a missing series alone is easy to miss).
  auto& query_failures = metrics.counter(
      "clearing_metrics_query_failures_total",
      "Scrapes whose database figure could not be read, by metric family", {"family", "cause"});
  auto query = [parts, log, &query_failures](const char* family, auto&& read) {
    if (!parts.pool) throw std::runtime_error("no database yet");
    auto rows = parts.pool->autocommit(read);
    if (!rows) {
      query_failures.with({family, std::string(eventstore::to_string(rows.error().code))}).inc();
      log->warn("metrics query failed family={} cause={}", family,
                eventstore::to_string(rows.error().code));
      throw std::runtime_error(rows.error().message);
    }
    return std::move(*rows);
  };
  auto query_rows = [query](const char* family, const char* sql, auto... params) {
    return query(family, [&](eventstore::Transaction& tx) -> eventstore::StoreResult<pqxx::result> {
      return tx.exec_params(sql, params...);
    });
  };
  // Rows of (label..., value): the last column is the value, the others its labels.
  auto samples_of = [](const pqxx::result& rows) {
    Samples out;
    for (const auto& row : rows) {
      LabelValues labels;
      for (pqxx::row::size_type i = 0; i + 1 < row.size(); ++i)
        labels.push_back(row[i].as<std::string>());
      out.push_back({std::move(labels), row[row.size() - 1].as<double>()});
    }
    return out;
  };
  // A gauge with one sample per row of rows(name): the row's first label_names.size()
  // columns are its labels, figure(row) its value.
  const auto rows_gauge = [&metrics](const char* name, const char* help,
                                     const std::vector<std::string>& label_names, auto rows,
                                     auto figure) {
    auto samples = [name, labels = static_cast<pqxx::row::size_type>(label_names.size()), rows,
                    figure] {
      Samples out;
      for (const auto& row : rows(name)) {
        LabelValues values;
        for (pqxx::row::size_type i = 0; i < labels; ++i)
          values.push_back(row[i].template as<std::string>());
        out.push_back({std::move(values), figure(row)});
      }
      return out;
    };
    metrics.gauge_callback(name, help, label_names, std::move(samples));
  };

  // --- Transfers: how many are open, since when, and the work due for them --------------
  metrics.gauge_callback(
      "clearing_transfers",
      "Unfinished transfers, by state (neither succeeded nor rejected; 0 when none)", {"state"},
      [query] {
        std::map<std::string, double> by_state;
        for (const auto& state : unfinished_states()) by_state[state] = 0;
        for (const auto& [status, n] :
             query("clearing_transfers", TransferService::unfinished_by_status))
          by_state[status] = static_cast<double>(n);
        Samples out;
        for (const auto& [state, n] : by_state) out.push_back({{state}, n});
        return out;
      });
  metrics.gauge_callback(
      "clearing_transfers_oldest_age_seconds",
      "Age of the oldest unfinished transfer of each state, since it was first recorded (0 when "
      "none)",
      {"state"}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_transfers_oldest_age_seconds", kOldestUnfinished,
                                     pg_text_array(unfinished_states())));
      });
  metrics.gauge_callback(
      "clearing_transfer_work_due", "Clearing calls scheduled (due now or later), by action",
      {"action"}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_transfer_work_due",
                                     "select action, count(*) from transfer_work group by action"));
      });
  // Overdue calls: one statement for both families would need a cache between them; the
  // statement costs a look-up of the due index (and a count of the overdue rows).
  auto overdue = [query_rows, parts](const char* family) {
    const auto now_ms = static_cast<std::int64_t>(parts.clock.now().time_since_epoch().count());
    const auto rows = query_rows(family, kOverdue, now_ms, kOverdueCountMax);
    return std::pair{rows[0][0].as<double>(), rows[0][1].as<double>()};
  };
  metrics.gauge_callback(
      "clearing_calls_overdue",
      "Clearing calls due and not under way (no live lease): nobody is making them now", {},
      [overdue] {
        return Samples{{{}, overdue("clearing_calls_overdue").first}};
      });
  metrics.gauge_callback(
      "clearing_calls_overdue_oldest_age_seconds",
      "How long the oldest overdue clearing call has been due (0 when none)", {}, [overdue] {
        return Samples{{{}, overdue("clearing_calls_overdue_oldest_age_seconds").second}};
      });

  // --- Alarms and parked input ---------------------------------------------------------
  metrics.counter_callback(
      "clearing_alarm_events_total",
      "Alarm events recorded, all time, by type: ContradictingClearingAnswerReceived (the clearing "
      "answered against a "
      "transfer's outcome), ConflictingIncomingPaymentReceived (the feed sent another payment "
      "under a known reference)",
      {"type"}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_alarm_events_total", kAlarms,
                                     pg_text_array({kContradicting, kConflictingIncoming})));
      });
  // The clearing answered against a transfer's outcome (a contradiction after a terminal
  // outcome: people must look; the dispatcher logs each at error level), all time, from the
  // events (every instance's, across restarts), through events_alarms.
  metrics.counter_callback(
      "clearing_contradictions_total",
      "Clearing answers that contradict a transfer's terminal outcome "
      "(ContradictingClearingAnswerReceived), all time",
      {}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_contradictions_total", kContradictions));
      });
  metrics.counter_callback(
      "clearing_incoming_payments_parked_total",
      "Incoming payments recorded as parked (the money arrived; people must book it), all time, "
      "by reason code",
      {"reason"}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_incoming_payments_parked_total", kIncomingParked));
      });
  metrics.gauge_callback(
      "clearing_parked_messages",
      "Open parked messages (input kept for people: GET /parked; not yet closed or replayed) "
      "and open parked incoming payments (source incoming-payment: not yet booked or "
      "returned), by source and reason",
      {"source", "reason"}, [query_rows, samples_of] {
        return samples_of(query_rows("clearing_parked_messages", kParked));
      });

  // --- Subscriptions ---------------------------------------------------------------------
  const std::vector<std::string> subscriptions{std::string(external_streams::kLiveDerivation)};
  auto subscription_rows = [query_rows, subscriptions](const char* family) {
    return query_rows(family, kSubscriptions, pg_text_array(subscriptions), kLagCountMax);
  };
  rows_gauge("clearing_subscription_lag_events",
             "Events committed after a subscription's checkpoint, not yet handled",
             {"subscription"}, subscription_rows,
             [](const pqxx::row& row) { return std::max(0.0, row[1].as<double>()); });
  rows_gauge("clearing_subscription_progress_age_seconds",
             "Seconds since a subscription's checkpoint last moved (by any instance); old is "
             "normal while it has no events to handle",
             {"subscription"}, subscription_rows,
             [](const pqxx::row& row) { return std::max(0.0, row[2].as<double>()); });
  metrics.gauge_callback(
      "clearing_subscription_state",
      "This instance's subscriptions: 1 for the state each is in (idle, catching_up, live, "
      "stalled, stopped)",
      {"subscription", "state"}, [parts] {
        Samples out;
        if (!parts.derivation) return out;
        const auto now = parts.derivation->status().state;
        for (const auto state :
             {eventstore::SubscriptionState::idle, eventstore::SubscriptionState::catching_up,
              eventstore::SubscriptionState::live, eventstore::SubscriptionState::stalled,
              eventstore::SubscriptionState::stopped})
          out.push_back(
              {{std::string(external_streams::kLiveDerivation), eventstore::to_string(state)},
               state == now ? 1.0 : 0.0});
        return out;
      });
  metrics.gauge_callback(
      "clearing_subscription_failures",
      "Consecutive failures of this instance's subscription (0 once it moves again)",
      {"subscription"}, [parts] {
        Samples out;
        if (parts.derivation)
          out.push_back({{std::string(external_streams::kLiveDerivation)},
                         static_cast<double>(parts.derivation->status().failures)});
        return out;
      });
  metrics.counter_callback(
      "clearing_derivation_lookups_total",
      "Look-ups of the derivation since start (a transfer's amount), by how they were answered",
      {"source"}, [parts] {
        return Samples{
            {{"remembered"}, static_cast<double>(parts.derivation_lookups->remembered.load())},
            {{"stream_read"}, static_cast<double>(parts.derivation_lookups->streams_read.load())}};
      });

  // --- Relay -----------------------------------------------------------------------------
  auto relay_rows = [query_rows](const char* family) { return query_rows(family, kRelay); };
  rows_gauge("clearing_relay_lag_messages",
             "External messages written and not yet acknowledged by Kafka, per stream and "
             "partition",
             {"stream", "partition"}, relay_rows,
             [](const pqxx::row& row) { return row[2].as<double>(); });
  rows_gauge("clearing_relay_oldest_unpublished_age_seconds",
             "How long the oldest unacknowledged message of each partition has waited (0 when "
             "none)",
             {"stream", "partition"}, relay_rows,
             [](const pqxx::row& row) { return row[3].as<double>(); });

  // --- Outbound streams: the registry's state and progress of each (stream_registry.hpp) --
  // Each family reads read_stream_progress (two statements over the registry's few rows and
  // the per-partition heads, marks and checkpoints); `clearing-adapter streams` prints the same.
  using external_streams::StreamProgress;
  auto stream_progress = [query](const char* family) {
    return query(family, [](eventstore::Transaction& tx) {
      return external_streams::read_stream_progress(tx);
    });
  };
  // A gauge with one sample per registered stream, figure(progress) its value; a retired
  // stream derives no more, so it has no sample of a derivation's figure (never a false 0).
  enum class Retired { sampled, skipped };
  const auto per_stream_gauge = [&metrics, stream_progress](const char* name, const char* help,
                                                            Retired retired, auto figure) {
    metrics.gauge_callback(name, help, {"stream"}, [name, stream_progress, retired, figure] {
      Samples out;
      for (const auto& p : stream_progress(name))
        if (retired == Retired::sampled || p.record.phase != external_streams::StreamPhase::retired)
          out.push_back({{p.record.name}, static_cast<double>(figure(p))});
      return out;
    });
  };
  metrics.gauge_callback(
      "clearing_stream_state",
      "Outbound streams: 1 for the state each is in (backfilling, live, deprecated, retired)",
      {"stream", "state"}, [stream_progress] {
        Samples out;
        for (const auto& p : stream_progress("clearing_stream_state")) {
          const auto now = external_streams::state_of(p.record);
          for (const auto& [state, name] : external_streams::kStreamStateNames)
            out.push_back({{p.record.name, std::string(name)}, state == now ? 1.0 : 0.0});
        }
        return out;
      });
  per_stream_gauge("clearing_stream_head",
                   "Messages written to each outbound stream, all partitions", Retired::sampled,
                   [](const StreamProgress& p) { return p.head; });
  per_stream_gauge("clearing_stream_published",
                   "Messages of each outbound stream acknowledged by Kafka (its published marks), "
                   "all partitions",
                   Retired::sampled, [](const StreamProgress& p) { return p.published; });
  per_stream_gauge("clearing_stream_derivation_position",
                   "The global position each outbound stream's derivation has reached (its "
                   "backfill's while it backfills, the live derivation's after; none for a "
                   "retired stream)",
                   Retired::skipped, [](const StreamProgress& p) { return p.position; });
  per_stream_gauge(
      "clearing_stream_live_lag_positions",
      "Global positions between the live derivation and each outbound stream's derivation: "
      "what a backfill has left to read (0 for a live stream; none for a retired one)",
      Retired::skipped, [](const StreamProgress& p) {
        return std::max<std::int64_t>(0, p.live_position - p.position);
      });

  // --- Tracing (OTLP/HTTP export; no samples while tracing is off) ---------------------
  // Spans dropped: the exporter's queue was full, or the receiver did not take their batch.
  // The service goes on either way; a rising count means traces have holes.
  metrics.counter_callback(
      "tracing_spans_dropped_total", "Spans dropped since start: queue full or batch not accepted",
      {}, [parts] {
        Samples out;
        if (parts.span_exporter && *parts.span_exporter)
          out.push_back({{}, static_cast<double>((*parts.span_exporter)->stats().spans_dropped)});
        return out;
      });
  metrics.counter_callback(
      "tracing_spans_exported_total", "Spans the OTLP receiver accepted since start", {}, [parts] {
        Samples out;
        if (parts.span_exporter && *parts.span_exporter)
          out.push_back({{}, static_cast<double>((*parts.span_exporter)->stats().spans_exported)});
        return out;
      });

  // --- Inbound consumer ------------------------------------------------------------------
  metrics.counter_callback("clearing_inbound_messages_total",
                           "Inbound messages since start, by outcome", {"outcome"}, [parts] {
                             Samples out;
                             if (!parts.consumer) return out;
                             const auto s = parts.consumer->stats();
                             out.push_back({{"applied"}, static_cast<double>(s.applied)});
                             out.push_back({{"duplicate"}, static_cast<double>(s.duplicates)});
                             out.push_back({{"gap_fetched"}, static_cast<double>(s.gap_fetched)});
                             for (const auto& [reason, n] : s.parked)
                               out.push_back({{"parked_" + reason}, static_cast<double>(n)});
                             return out;
                           });
  // Tail checks that found a partition behind and still while Kafka had its messages (its
  // leader down, a fetch that did not start again): its fetch was restarted and the catch-up
  // API fed it (docs/streams.md, "Delivery semantics"). InboundPartitionBehind alerts on the lag.
  stats_counter(
      metrics, parts.consumer, "clearing_inbound_fetch_restarts_total",
      "Inbound partitions found behind and still while Kafka had their messages, since start",
      &external_streams::ConsumerStats::fetch_restarts);
  // A held partition is never silent: how many, and since when each (docs/streams.md,
  // "Bad input and partitions"). Alert on clearing_inbound_partition_held_seconds.
  metrics.gauge_callback(
      "clearing_inbound_partitions_held", "Inbound partitions held (not flowing) now", {}, [parts] {
        return Samples{
            {{}, parts.consumer ? static_cast<double>(parts.consumer->stats().held.size()) : 0.0}};
      });
  metrics.gauge_callback(
      "clearing_inbound_partition_held_seconds",
      "How long each held inbound partition has been held", {"stream", "partition"}, [parts] {
        Samples out;
        if (!parts.consumer) return out;
        for (const auto& [key, held] : parts.consumer->stats().held)
          out.push_back({{key.first, std::to_string(key.second)}, seconds_since(held.since)});
        return out;
      });
  // Which inbound partitions this instance reads now (ConsumerStats.assignment, filled with
  // either kafka.partition_assignment): 1 for each, no sample for the others. Tells whose
  // partitions a dead instance had, and that every partition has a reader (the sum per
  // stream across instances); the chaos run reads it just before a kill.
  metrics.gauge_callback(
      "clearing_inbound_partition_assigned", "Inbound partitions this instance reads now (1 each)",
      {"stream", "partition"}, [parts] {
        Samples out;
        if (!parts.consumer) return out;
        for (const auto& [stream, partition] : parts.consumer->stats().assignment)
          out.push_back({{stream, std::to_string(partition)}, 1.0});
        return out;
      });
  // The inbound partitions this instance reads, against the producer's head as the tail
  // check (streams.tail_check_interval_ms) last saw it: how far behind, and how long behind
  // without moving (0 while level or moving). InboundPartitionBehind alerts on them.
  // One sample per inbound partition this instance reads, from the tail check's progress.
  const auto per_partition_gauge = [&metrics, parts](const char* name, const char* help,
                                                     auto figure) {
    metrics.gauge_callback(name, help, {"stream", "partition"}, [parts, figure] {
      Samples out;
      if (!parts.consumer) return out;
      for (const auto& [key, progress] : parts.consumer->stats().progress)
        if (progress.producer_head >= 0)
          out.push_back({{key.first, std::to_string(key.second)}, figure(progress)});
      return out;
    });
  };
  per_partition_gauge(
      "clearing_inbound_lag_messages",
      "The producer's head less the applied seq, per inbound partition, at the last tail check",
      [](const external_streams::PartitionProgress& p) {
        return static_cast<double>(std::max<std::int64_t>(0, p.producer_head - p.applied_seq));
      });
  per_partition_gauge(
      "clearing_inbound_lag_seconds",
      "How long each inbound partition has been behind the producer's head without moving",
      [](const external_streams::PartitionProgress& p) {
        return p.behind_still_since == std::chrono::system_clock::time_point{}
                   ? 0.0
                   : seconds_since(p.behind_still_since);
      });

  // --- Dispatcher ------------------------------------------------------------------------
  metrics.gauge_callback("clearing_dispatcher_in_flight", "Clearing calls in flight", {}, [parts] {
    Samples out;
    if (parts.dispatcher)
      out.push_back({{}, static_cast<double>(parts.dispatcher->stats().in_flight_now)});
    return out;
  });
  // The dispatcher's counts since start, each its own counter.
  const auto dispatcher_counter = [&metrics, &parts](const char* name, const char* help,
                                                     std::int64_t DispatcherStats::*field) {
    stats_counter(metrics, parts.dispatcher, name, help, field);
  };
  dispatcher_counter("clearing_dispatcher_calls_started_total",
                     "Clearing calls started since start", &DispatcherStats::calls_started);
  dispatcher_counter(
      "clearing_dispatcher_calls_abandoned_total",
      "Clearing calls without an answer within their lease since start (made again later)",
      &DispatcherStats::calls_abandoned);
  dispatcher_counter(
      "clearing_dispatcher_answers_refused_total",
      "Clearing answers the saga refused since start (parked, the call postponed: a defect)",
      &DispatcherStats::answers_refused);
  dispatcher_counter(
      "clearing_dispatcher_record_failures_total",
      "Answers that could not be recorded since start (the database; the call is made again)",
      &DispatcherStats::record_failures);
  dispatcher_counter("clearing_dispatcher_claim_failures_total",
                     "Claims of due calls that failed since start (the database)",
                     &DispatcherStats::claim_failures);
  dispatcher_counter(
      "clearing_dispatcher_calls_deferred_total",
      "Clearing calls (submissions and inquiries) not made since start because they fell inside a "
      "configured maintenance window: each deferred to the window's end (SubmissionDeferred)",
      &DispatcherStats::calls_deferred);
  dispatcher_counter("clearing_dispatcher_deferrals_refused_total",
                     "Maintenance-window deferrals the saga refused since start (parked, the call "
                     "postponed to the window's end: a defect)",
                     &DispatcherStats::deferrals_refused);
  dispatcher_counter("clearing_dispatcher_deferral_failures_total",
                     "Maintenance-window deferrals that could not be recorded since start (the "
                     "database; the calls are not made, and are claimed again)",
                     &DispatcherStats::deferral_failures);

  // --- Incoming feed poller --------------------------------------------------------------
  const auto poller_counter = [&metrics, &parts](const char* name, const char* help,
                                                 std::int64_t IncomingPollerStats::*field) {
    stats_counter(metrics, parts.poller, name, help, field);
  };
  poller_counter("clearing_incoming_feed_requests_total",
                 "Requests of the clearing's incoming feed since start",
                 &IncomingPollerStats::feed_requests);
  poller_counter("clearing_incoming_feed_failures_total",
                 "Requests of the incoming feed that failed since start (no answer, maintenance, a "
                 "broken page)",
                 &IncomingPollerStats::feed_failures);
  poller_counter("clearing_incoming_pages_not_applied_total",
                 "Feed pages the database did not take since start (polled again)",
                 &IncomingPollerStats::pages_not_applied);
  stats_counters<IncomingPoller, IncomingPollerStats>(
      metrics, parts.poller, "clearing_incoming_payments_total",
      "Incoming payments of the feed since start, by outcome (parked: broke the contract or "
      "refused, in parked_messages)",
      "outcome",
      {{"recorded", &IncomingPollerStats::payments_recorded},
       {"resent", &IncomingPollerStats::payments_resent},
       {"parked", &IncomingPollerStats::payments_parked}});

  // --- Clearing client -----------------------------------------------------------------
  using clearing_client::ClientStats;
  stats_counters<clearing_client::ClearingClient, ClientStats>(
      metrics, parts.client, "clearing_client_refused_total",
      "Clearing answers and connections the client refused since start, by kind "
      "(reference_mismatch is an alarm: an answer naming another transfer)",
      "kind",
      {{"reference_mismatch", &ClientStats::reference_mismatches},
       {"contract_violation", &ClientStats::contract_violations},
       {"connection_unread_after_answer", &ClientStats::connections_discarded_unread},
       {"idle_connection_unread_or_closed", &ClientStats::idle_connections_discarded}});
  metrics.gauge_callback(
      "clearing_concurrency_limit",
      "Clearing calls allowed on the wire at once now (clearing.concurrency_mode adaptive: learnt "
      "from the clearing's latency and drops, within [concurrency_min, in_flight_max])",
      {}, [parts] {
        Samples out;
        if (parts.client)
          out.push_back({{}, static_cast<double>(parts.client->concurrency_limit())});
        return out;
      });
  // Its bounds, so that an alert can tell a limit held at the ceiling (the cap, not the
  // clearing, sets the pace) or at the floor (the clearing is struggling).
  for (const auto& [name, field] :
       {std::pair{"clearing_concurrency_limit_min", &ClientStats::concurrency_limit_min},
        std::pair{"clearing_concurrency_limit_max", &ClientStats::concurrency_limit_max}}) {
    metrics.gauge_callback(
        name,
        "The bounds of clearing_concurrency_limit: clearing.concurrency_min "
        "and clearing.in_flight_max (both in_flight_max when fixed)",
        {}, [parts, field = field] {
          Samples out;
          if (parts.client) out.push_back({{}, static_cast<double>(parts.client->stats().*field)});
          return out;
        });
  }
  stats_counters<clearing_client::ClearingClient, ClientStats>(
      metrics, parts.client, "clearing_concurrency_limit_changes_total",
      "Changes of the adaptive concurrency limit since start, by direction (a cut: the "
      "clearing's latency rose or it dropped calls)",
      "direction",
      {{"raise", &ClientStats::concurrency_limit_raises},
       {"cut", &ClientStats::concurrency_limit_cuts}});
  return hook;
}

}  // namespace clearing::adapter
