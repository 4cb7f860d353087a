#include "clearing/adapter/dispatcher.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>

#include "clearing/adapter/answer_mapping.hpp"
#include "clearing/adapter/parking.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/clearing_client/classify.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/ownership.hpp"
#include "clearing/external_streams/trace_metadata.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::adapter {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;

// The dispatcher's per-answer statements, prepared once per connection (ConnectionPool::prepare).
constexpr const char* kReleaseName = "adapter_release_transfer_work";
constexpr const char* kPostponeName = "adapter_postpone_transfer_work";

// Claims due rows nobody holds a live lease on. SKIP LOCKED makes concurrent claimers
// pass over each other's rows instead of queueing behind them; the lease keeps a row
// away from others after this transaction commits, while the call is under way.
// The claimed ids are handed to the update as an array, so it finds its rows through the
// primary key: written as UPDATE ... FROM a CTE, the plan hash-joined the CTE
// with a sequential scan of the whole table, a claim costing as much as the backlog.
// Prepared, and prepared again as transfer_work grows and shrinks (prepared.hpp): a
// generic plan cached for good while the table was small (a new database) scanned it
// whole at every claim long after it had grown (bench/e2e: 2-6 ms a claim), and planning
// it at every call cost 0.2 ms. The first condition, evaluated once, makes the claim's
// commit asynchronous (why: claim()) without a statement of its own.
constexpr eventstore::PreparedSql kClaim{"dispatcher_claim", R"sql(
update transfer_work
set lease_owner = $3, lease_until_ms = $1 + $4, claims = claims + 1
where (select set_config('synchronous_commit', 'off', true)) = 'off'
  and transfer_id = any(array(
  select transfer_id from transfer_work
  where due_at_ms <= $1 and (lease_until_ms is null or lease_until_ms < $1
    -- lease_by_session: a lease whose owner's liveness session is gone counts for nothing.
    or ($5::int is not null and (hashtext(lease_owner)::bigint + 4294967296) % 4294967296 <> all(array(
      select objid::bigint from pg_locks
      where locktype = 'advisory' and granted and objsubid = 2 and classid = $5::int::oid
        and database = (select oid from pg_database where datname = current_database())))))
  order by due_at_ms
  limit $2
  for update skip locked))
returning transfer_id, action, attempt, correlation_id, coalesce(caused_by::text, ''),
  submit_request::text,
  -- The trace the call belongs to: the scheduling event's (trace_metadata.hpp), one probe
  -- of the events' unique event id index.
  (select e.metadata->'extra'->'trace' from events e where e.event_id = transfer_work.caused_by)::text
)sql"};

constexpr const char* kRelease = R"sql(
update transfer_work set lease_owner = null, lease_until_ms = null
where transfer_id = $1 and lease_owner = $2 and attempt = $3
)sql";

// Releases the lease and makes the call due no earlier than $4.
constexpr const char* kPostpone = R"sql(
update transfer_work set lease_owner = null, lease_until_ms = null, due_at_ms = greatest(due_at_ms, $4)
where transfer_id = $1 and lease_owner = $2 and attempt = $3
)sql";

// parked_messages.source of the answers the saga refused.
constexpr const char* kParkedSource = "dispatcher";

struct WorkItem {
  std::string transfer_id;
  sagas::ClearingAction action = sagas::ClearingAction::submit;
  std::int32_t attempt = 0;
  std::string correlation_id;
  std::string caused_by;
  std::optional<clearing_client::SubmitRequest> request;  // submit only
  std::optional<base::TraceContext> trace;                // the scheduling event's, if any
};

// The body stored on the work row read back with the clearing API's codec
// (clearing_client::decode_submit_body); nullopt when it is not there (a row written before
// it was stored), unreadable, or about another key than the row's, and the caller then takes
// the request from the stream: one transfer, one idempotency key. Sealed personal fields
// (the pool's protector) are opened first; one that does not open is unreadable too.
std::optional<clearing_client::SubmitRequest> parse_submit_request(
    Transaction& tx, const eventstore::DataProtector* protector, const pqxx::field& field,
    const std::string& transfer_id) {
  if (field.is_null()) return std::nullopt;
  auto body = nlohmann::json::parse(field.c_str(), nullptr, false);
  if (protector != nullptr && body.is_object() && !protector->open(tx, body)) return std::nullopt;
  auto request = clearing_client::decode_submit_body(body);
  if (!request || request->reference != transfer_id) return std::nullopt;
  return std::move(*request);
}

struct InFlight {
  WorkItem item;
  std::future<clearing_client::ClearingAnswer> answer;
  std::chrono::steady_clock::time_point started;
  tracing::Span span;  // the attempt: from the call to its answer
};

std::int64_t to_ms(base::Timestamp t) { return t.time_since_epoch().count(); }

}  // namespace

struct Dispatcher::Impl {
  TransferService& transfers;
  clearing_client::ClearingClient& client;
  const base::Clock& clock;
  DispatcherOptions options;
  std::shared_ptr<spdlog::logger> log = base::module_logger("dispatcher");
  std::mt19937 rng;

  base::BackgroundThread worker;
  std::atomic<bool> woken{false};
  std::deque<InFlight> in_flight;
  std::chrono::steady_clock::time_point next_claim_at{};
  std::chrono::steady_clock::time_point last_claim_at{};

  mutable std::mutex stats_mutex;
  DispatcherStats stats;

  Impl(TransferService& t, clearing_client::ClearingClient& c, const base::Clock& k,
       DispatcherOptions o)
      : transfers(t),
        client(c),
        clock(k),
        options(std::move(o)),
        rng(options.jitter_seed ? options.jitter_seed : std::random_device{}()) {
    CLEARING_ASSERT(options.in_flight_max > 0 && options.claim_batch_max > 0);
    CLEARING_ASSERT(!options.owner.empty());
    transfers.store().pool().prepare(kReleaseName, kRelease);
    transfers.store().pool().prepare(kPostponeName, kPostpone);
  }

  // lease_by_session: this dispatcher's liveness session (its member lock only).
  std::unique_ptr<external_streams::PartitionOwnership> liveness =
      options.lease_by_session
          ? std::make_unique<external_streams::PartitionOwnership>(
                transfers.store().pool().options(), liveness_options(options), log)
          : nullptr;

  static external_streams::OwnershipOptions liveness_options(const DispatcherOptions& options) {
    external_streams::OwnershipOptions o;
    o.partition_lock_class = kDispatcherLivenessLockClass + 1;  // no partitions: never taken
    o.member_lock_class = kDispatcherLivenessLockClass;
    o.scope = options.owner;
    o.partitions = std::vector<external_streams::PartitionKey>{};
    o.role = "dispatcher";
    o.owner_loss_timeout = options.owner_loss_timeout;
    return o;
  }

  StoreResult<std::vector<WorkItem>> claim(int limit) {
    // Without a live session this instance's leases would count for nothing to the others:
    // it claims nothing until the session is back.
    if (liveness) {
      if (auto alive = liveness->refresh_if_due(); !alive)
        return tl::unexpected(eventstore::StoreError{eventstore::StoreErrc::connection_failed,
                                                     "liveness session lost"});
    }
    // One statement, so no transaction block around it (ConnectionPool::autocommit): the
    // claim commits by itself. Should the stream load below fail (only for work rows
    // written before submit_request existed), those leases lapse after lease_ms and
    // the calls are claimed again, as after a crash.
    return transfers.store().pool().autocommit(
        [&](Transaction& tx) -> StoreResult<std::vector<WorkItem>> {
          std::vector<WorkItem> items;
          // A claim writes only leases, so its commit need not wait for the WAL flush. Only a
          // crash of the database server itself can lose such a commit (the adapter's
          // process dying cannot); the lease is then gone, and at worst the same call is
          // made twice under its one idempotency key, which the clearing executes once.
          // Every commit that records an answer is synchronous and flushes the claim's too.
          const auto rows = eventstore::exec_prepared_here(
              tx, kClaim, to_ms(clock.now()), limit, options.owner,
              static_cast<std::int64_t>(options.lease.count()),
              liveness ? std::optional<std::int32_t>(kDispatcherLivenessLockClass) : std::nullopt);
          for (const auto& row : rows) {
            WorkItem item;
            item.transfer_id = row[0].as<std::string>();
            auto action = sagas::parse_action(row[1].as<std::string>());
            CLEARING_ASSERT(action.has_value());
            item.action = *action;
            item.attempt = row[2].as<std::int32_t>();
            item.correlation_id = row[3].as<std::string>();
            item.caused_by = row[4].as<std::string>();
            if (!row[6].is_null())
              item.trace = external_streams::trace_from_json(
                  nlohmann::json::parse(row[6].c_str(), nullptr, false));
            if (item.action == sagas::ClearingAction::submit) {
              item.request = parse_submit_request(tx, transfers.store().pool().protector(), row[5],
                                                  item.transfer_id);
              if (!item.request) {
                auto loaded = transfers.load(tx, item.transfer_id);
                if (!loaded) return tl::unexpected(loaded.error());
                item.request = to_submit_request(loaded->state.request);
              }
            }
            items.push_back(std::move(item));
          }
          return items;
        });
  }

  void launch(WorkItem item) {
    log->debug("call action={} transfer_id={} attempt={} correlation_id={}",
               sagas::action_name(item.action), item.transfer_id, item.attempt,
               item.correlation_id);
    // Each attempt is a span under the event that scheduled it; its context goes with the call.
    auto span =
        tracing::global_tracer()->start("clearing " + std::string(sagas::action_name(item.action)),
                                        item.trace, tracing::SpanKind::client);
    span.set("transfer.id", item.transfer_id)
        .set("clearing.action", std::string(sagas::action_name(item.action)))
        .set("clearing.attempt", std::int64_t{item.attempt});
    clearing_client::CallTrace trace{span.context().traceparent(), span.context().tracestate};
    auto answer = item.action == sagas::ClearingAction::submit
                      ? client.submit(*item.request, std::move(trace))
                      : client.inquire(item.transfer_id, std::move(trace));
    in_flight.push_back(InFlight{std::move(item), std::move(answer),
                                 std::chrono::steady_clock::now(), std::move(span)});
    std::lock_guard lock(stats_mutex);
    ++stats.calls_started;
  }

  // The claimed calls to make now. Inside a known maintenance window none is made: each one's
  // transfer records SubmissionDeferred (DeferClearingCall, carrying the window found here once
  // for the batch), which moves its work row to the window's end and clears the lease, all in
  // one transaction. A call the saga does not defer (no events: a row behind its transfer; or a
  // refusal, parked with its reason and counted) is postponed to the window's end all the same:
  // nothing goes to the clearing during a window. Should the transaction fail (counted per
  // call), the leases lapse and the calls are claimed again, still not made.
  std::vector<WorkItem> without_deferred(std::vector<WorkItem> items) {
    if (options.maintenance.empty() || items.empty()) return items;
    const auto now = clock.now();
    const auto active = sagas::active_maintenance(options.maintenance, now);
    if (!active) return items;
    const auto until_ms = to_ms(active->end);
    std::vector<TransferService::BatchCommand> commands;
    commands.reserve(items.size());
    for (const auto& item : items) {
      commands.push_back({sagas::DeferClearingCall{.transfer_id = item.transfer_id,
                                                   .attempt = item.attempt,
                                                   .kind = item.action,
                                                   .now = now,
                                                   .window = active},
                          eventstore::CommandContext{item.correlation_id, item.caused_by, nullptr,
                                                     "defer|" + item.transfer_id + "|" +
                                                         std::to_string(item.attempt) + "|" +
                                                         std::to_string(until_ms)},
                          nullptr});
    }
    std::int64_t deferred = 0;
    // The refusals parked, logged once the transaction that parks them has committed.
    std::vector<std::pair<std::size_t, sagas::TransferRefusal>> refusals;
    auto done = transfers.store().pool().transact([&](Transaction& tx) -> StoreResult<void> {
      deferred = 0;
      refusals.clear();
      const auto results = transfers.execute_batch(tx, commands);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!results[i]) {
          if (auto* error = std::get_if<eventstore::StoreError>(&results[i].error()))
            return tl::unexpected(*error);
          const auto& refusal = std::get<sagas::TransferRefusal>(results[i].error());
          if (auto parked = park(tx, refused_deferral(items[i], *active, refusal),
                                 transfers.store().pool().protector());
              !parked)
            return tl::unexpected(parked.error());
          refusals.emplace_back(i, refusal);
        } else if (!results[i]->events.empty()) {
          ++deferred;
          continue;
        }
        tx.exec_prepared(kPostponeName, items[i].transfer_id, options.owner, items[i].attempt,
                         until_ms);
      }
      return {};
    });
    std::lock_guard lock(stats_mutex);
    if (!done) {
      log->error("deferring calls for maintenance failed count={} window={} cause={}", items.size(),
                 active->window, eventstore::to_string(done.error().code));
      // Each call of the batch is a deferral not recorded, as each answer is a record failure.
      stats.deferral_failures += static_cast<std::int64_t>(items.size());
      return {};
    }
    for (const auto& [i, refusal] : refusals)
      log->error(
          "deferral refused, parked, call postponed transfer_id={} attempt={} correlation_id={} "
          "code={} message={}",
          items[i].transfer_id, items[i].attempt, items[i].correlation_id,
          sagas::refusal_code_name(refusal.code), refusal.message);
    log->info("calls deferred for maintenance count={} deferred={} window={} until={}",
              items.size(), deferred, active->window, base::format_timestamp(active->end));
    stats.calls_deferred += deferred;
    stats.deferrals_refused += static_cast<std::int64_t>(refusals.size());
    return {};
  }

  // A deferral the saga refused, as a parked message: the work row disagrees with its transfer.
  static ParkedMessage refused_deferral(const WorkItem& item, const sagas::ActiveMaintenance& at,
                                        const sagas::TransferRefusal& refusal) {
    const nlohmann::json raw = {{"transfer_id", item.transfer_id},
                                {"action", sagas::action_name(item.action)},
                                {"attempt", item.attempt},
                                {"deferred_by", at.window},
                                {"until", base::format_timestamp(at.end)}};
    return ParkedMessage{kParkedSource,   std::string(sagas::refusal_code_name(refusal.code)),
                         refusal.message, raw.dump(),
                         std::nullopt,    std::nullopt,
                         std::nullopt,    item.correlation_id};
  }

  struct Ready {
    WorkItem item;
    clearing_client::ClearingAnswer answer;
    // Recording the answer, under the attempt's span: its context is kept in the events the
    // answer makes (so the next attempt follows from it). Ended when counted.
    mutable tracing::Span decide;
  };

  // Half a batch: the least worth a claim, and the most recorded in one go while calls
  // could be under way (see claim_and_launch).
  int half_batch() const {
    return std::max(1, std::min(options.in_flight_max, options.claim_batch_max) / 2);
  }

  // How many calls may be claimed and not yet answered now.
  int window() const {
    if (!options.window_follows_client_limit) return options.in_flight_max;
    return std::min(options.in_flight_max, client.concurrency_limit() + half_batch());
  }

  // At most ready_max answers; the others stay in flight for the next round, so that a
  // full window's answers are recorded in parts with a claim in between, and the next
  // calls are under way while the rest are recorded, instead of all waiting for them.
  // A call without an answer after the lease is abandoned: its lease has expired, so
  // the same call (same key) may already be made again elsewhere, and a client that
  // lost a call must not hold a dispatcher slot for ever. Nothing is recorded for it.
  std::vector<Ready> collect_ready(bool wait_all, std::size_t ready_max) {
    std::vector<Ready> ready;
    const auto now = std::chrono::steady_clock::now();
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      const auto wait =
          wait_all ? std::chrono::milliseconds(options.lease) : std::chrono::milliseconds(0);
      const bool answered = it->answer.wait_for(wait) == std::future_status::ready;
      if (answered && ready.size() >= ready_max) {
        ++it;
      } else if (answered) {
        auto answer = it->answer.get();
        auto& span = it->span;
        span.set("clearing.answer_class",
                 std::string(clearing_client::to_string(answer.answer_class)));
        if (answer.http_status > 0)
          span.set("http.response.status_code", std::int64_t{answer.http_status});
        auto decide = tracing::global_tracer()->start("decide", span.context());
        decide.set("transfer.id", it->item.transfer_id)
            .set("clearing.attempt", std::int64_t{it->item.attempt})
            .set("clearing.answer_class",
                 std::string(clearing_client::to_string(answer.answer_class)));
        span.end();
        ready.push_back(Ready{std::move(it->item), std::move(answer), std::move(decide)});
        it = in_flight.erase(it);
      } else if (wait_all || now - it->started > options.lease) {
        log->error(
            "clearing call abandoned: no answer within the lease transfer_id={} attempt={} "
            "correlation_id={}",
            it->item.transfer_id, it->item.attempt, it->item.correlation_id);
        it->span.set_error("no answer within the lease");
        it->span.end();
        {
          std::lock_guard lock(stats_mutex);
          ++stats.calls_abandoned;
        }
        it = in_flight.erase(it);
      } else {
        ++it;
      }
    }
    return ready;
  }

  // contradiction: with events, one of them ContradictingClearingAnswerReceived (an answer
  // against the transfer's terminal outcome).
  enum class Recorded { with_events, stale, refused, contradiction };

  // The command an answer makes, and its context: the same for a batch and for one.
  struct AnswerCommand {
    sagas::TransferCommand command;
    eventstore::CommandContext context;
    base::Timestamp now;
  };
  AnswerCommand answer_command(const Ready& r) {
    const auto jitter =
        std::uniform_int_distribution<std::int32_t>(0, sagas::kJitterPermilleMax)(rng);
    const auto now = clock.now();
    return {to_command(r.answer, r.item.transfer_id, r.item.attempt, r.item.action, now, jitter,
                       options.policy),
            eventstore::CommandContext{r.item.correlation_id, r.item.caused_by, nullptr,
                                       "answer|" + r.item.transfer_id + "|" +
                                           std::to_string(r.item.attempt) + "|" +
                                           std::string(sagas::action_name(r.item.action)),
                                       external_streams::with_trace(nullptr, r.decide.context())},
            now};
  }

  // What an answer's command came to, inside tx. A stale answer (no events) releases the
  // lease. A refusal (an answer the saga cannot take: the work row disagrees with the
  // transfer) is not a database failure: it is parked with its reason, and the call is
  // postponed by refused_retry_delay, so that a row the saga keeps refusing is not
  // claimed and called again at once, for ever.
  StoreResult<Recorded> settle(Transaction& tx, const Ready& r, base::Timestamp now,
                               const TransferResult& result) {
    if (!result) {
      if (auto* error = std::get_if<eventstore::StoreError>(&result.error()))
        return tl::unexpected(*error);
      const auto& refusal = std::get<sagas::TransferRefusal>(result.error());
      const auto due_at_ms =
          to_ms(now) + static_cast<std::int64_t>(options.refused_retry_delay.count());
      log->error(
          "answer refused, parked, call postponed transfer_id={} attempt={} correlation_id={} "
          "code={} "
          "message={} due_at_ms={}",
          r.item.transfer_id, r.item.attempt, r.item.correlation_id,
          sagas::refusal_code_name(refusal.code), refusal.message, due_at_ms);
      if (auto parked = park(tx, refused_answer(r, refusal), transfers.store().pool().protector());
          !parked)
        return tl::unexpected(parked.error());
      tx.exec_prepared(kPostponeName, r.item.transfer_id, options.owner, r.item.attempt, due_at_ms);
      return Recorded::refused;
    }
    const bool stale = result->events.empty();
    if (stale) tx.exec_prepared(kReleaseName, r.item.transfer_id, options.owner, r.item.attempt);
    log->debug(
        "answer transfer_id={} attempt={} class={} latency_ms={} correlation_id={} events={}",
        r.item.transfer_id, r.item.attempt, clearing_client::to_string(r.answer.answer_class),
        r.answer.latency_ms, r.item.correlation_id, result->events.size());
    if (stale) return Recorded::stale;
    const bool contradicts =
        std::any_of(result->events.begin(), result->events.end(), [](const auto& e) {
          return std::holds_alternative<sagas::ContradictingClearingAnswerReceived>(e);
        });
    return contradicts ? Recorded::contradiction : Recorded::with_events;
  }

  // Records one answer in a transaction of its own, loading its transfer.
  StoreResult<Recorded> record_one(Transaction& tx, const Ready& r) {
    const auto made = answer_command(r);
    return settle(tx, r, made.now, transfers.execute(tx, made.command, made.context));
  }

  // What people need to see about a refused answer: the call and the clearing's answer,
  // without names or account numbers (the answer carries none; its free text is left out).
  static ParkedMessage refused_answer(const Ready& r, const sagas::TransferRefusal& refusal) {
    const nlohmann::json raw = {
        {"transfer_id", r.item.transfer_id},
        {"action", sagas::action_name(r.item.action)},
        {"attempt", r.item.attempt},
        {"answer_class", clearing_client::to_string(r.answer.answer_class)},
        {"cause", clearing_client::to_string(r.answer.cause)},
        {"http_status", r.answer.http_status},
        {"status", r.answer.status},
        {"clearing_reference", r.answer.clearing_reference},
        {"settlement_date", r.answer.settlement_date},
        {"reason_code", r.answer.reason_code},
        {"latency_ms", r.answer.latency_ms},
    };
    return ParkedMessage{kParkedSource,   std::string(sagas::refusal_code_name(refusal.code)),
                         refusal.message, raw.dump(),
                         std::nullopt,    std::nullopt,
                         std::nullopt,    r.item.correlation_id};
  }

  // `outcome` is empty when recording failed.
  void count(const Ready& r, std::optional<Recorded> outcome) {
    if (!outcome)
      r.decide.set_error("recording failed");
    else if (*outcome == Recorded::refused)
      r.decide.set_error("refused");
    else
      r.decide.set("clearing.stale", *outcome == Recorded::stale);
    r.decide.end();
    if (options.on_answer)
      options.on_answer(sagas::action_name(r.item.action),
                        clearing_client::to_string(r.answer.answer_class), r.answer.latency_ms);
    // After the commit: once per recorded contradiction (clearing_contradictions_total counts
    // the events).
    if (outcome == Recorded::contradiction)
      log->error(
          "ALARM contradicting clearing answer after a terminal outcome transfer_id={} attempt={} "
          "class={} correlation_id={}",
          r.item.transfer_id, r.item.attempt, clearing_client::to_string(r.answer.answer_class),
          r.item.correlation_id);
    std::lock_guard lock(stats_mutex);
    if (!outcome) {
      ++stats.record_failures;
      return;
    }
    ++stats.answers_recorded;
    if (*outcome == Recorded::stale) ++stats.answers_stale;
    if (*outcome == Recorded::refused) ++stats.answers_refused;
    ++stats.answers_by_class[std::string(clearing_client::to_string(r.answer.answer_class))];
  }

  // All ready answers in one transaction, their transfers read with one statement and
  // their events appended with one (TransferService::execute_batch); if
  // that fails, one transaction each, so one bad answer cannot hold back the others.
  int record_all(const std::vector<Ready>& ready) {
    if (ready.empty()) return 0;
    std::vector<Recorded> outcomes;
    std::vector<std::string> transfer_ids;
    transfer_ids.reserve(ready.size());
    for (const auto& r : ready) transfer_ids.push_back(r.item.transfer_id);
    auto batch = transfers.store().pool().transact([&](Transaction& tx) -> StoreResult<int> {
      outcomes.clear();
      auto loaded = transfers.load_many(tx, transfer_ids);
      if (!loaded) return tl::unexpected(loaded.error());
      std::vector<TransferService::BatchCommand> commands;
      std::vector<base::Timestamp> made_at;
      commands.reserve(ready.size());
      for (const auto& r : ready) {
        const auto it = loaded->find(r.item.transfer_id);
        auto made = answer_command(r);
        commands.push_back({std::move(made.command), std::move(made.context),
                            it == loaded->end() ? nullptr : &it->second});
        made_at.push_back(made.now);
      }
      const auto results = transfers.execute_batch(tx, commands);
      for (std::size_t i = 0; i < ready.size(); ++i) {
        auto recorded = settle(tx, ready[i], made_at[i], results[i]);
        if (!recorded) return tl::unexpected(recorded.error());
        outcomes.push_back(*recorded);
      }
      return static_cast<int>(ready.size());
    });
    if (batch) {
      for (std::size_t i = 0; i < ready.size(); ++i) count(ready[i], outcomes[i]);
      return *batch;
    }
    int recorded = 0;
    for (const auto& r : ready) {
      auto one = transfers.store().pool().transact_with_retry(
          [&](Transaction& tx) -> StoreResult<Recorded> { return record_one(tx, r); });
      if (one) {
        ++recorded;
        count(r, *one);
      } else {
        // The answer is lost to us, not to the saga: the lease expires and the same call
        // is made again with the same key, and the clearing replays its answer.
        log->error("recording answer failed transfer_id={} attempt={} correlation_id={} error={}",
                   r.item.transfer_id, r.item.attempt, r.item.correlation_id, one.error().message);
        count(r, std::nullopt);
      }
    }
    return recorded;
  }

  enum class Claimed {
    filled,   // as many as asked: more may be due, claim again at once
    drained,  // fewer than asked (or the claim failed): look again after idle_poll
    waiting,  // not enough room yet: claim again as soon as answers make room
  };

  // Claims as much work as there is room for, once the room is worth a transaction: half
  // a batch at least, unless nothing is in flight or the last claim is idle_poll old (slow
  // calls must not keep the rest of the window empty). Claiming a few rows each time an
  // answer frees a slot would cost a commit per few calls; waiting for idle_poll once
  // the window is full would leave it half empty for up to idle_poll after each answer.
  Claimed claim_and_launch() {
    const auto now = std::chrono::steady_clock::now();
    const int room = window() - static_cast<int>(in_flight.size());
    const int worth = half_batch();
    const bool long_ago = now - last_claim_at >= options.idle_poll;
    if (room <= 0 || (room < worth && !in_flight.empty() && !long_ago)) return Claimed::waiting;
    const int limit = std::min(room, options.claim_batch_max);
    last_claim_at = now;
    auto items = claim(limit);
    note_claim(items ? nullptr : &items.error());
    if (!items) return Claimed::drained;
    const bool full = static_cast<int>(items->size()) == limit;
    for (auto& item : without_deferred(std::move(*items))) launch(std::move(item));
    return full ? Claimed::filled : Claimed::drained;
  }

  // Counts a claim's outcome. A failing claim (the database) is logged when it starts
  // failing and when it recovers, not at every idle poll (20 ms): the alert is the metric.
  void note_claim(const eventstore::StoreError* failure) {
    std::lock_guard lock(stats_mutex);
    if (failure) ++stats.claim_failures;
    if ((failure != nullptr) == stats.claim_failing) return;
    stats.claim_failing = failure != nullptr;
    if (failure)
      // The class only: a PostgreSQL error's DETAIL quotes a row's values.
      log->warn("claims failing cause={}", eventstore::to_string(failure->code));
    else
      log->info("claims recovered failures={}", stats.claim_failures);
  }

  void set_running(bool running) {
    std::lock_guard lock(stats_mutex);
    stats.running = running;
  }

  void run() {
    while (!worker.stopping()) {
      bool busy = false;
      if (woken.exchange(false)) next_claim_at = {};
      if (std::chrono::steady_clock::now() >= next_claim_at) {
        const auto claimed = claim_and_launch();
        if (claimed == Claimed::drained)
          next_claim_at = std::chrono::steady_clock::now() + options.idle_poll;
        busy = claimed == Claimed::filled;
      }
      auto ready = collect_ready(false, static_cast<std::size_t>(half_batch()));
      busy = busy || !ready.empty();
      record_all(ready);
      update_gauge();
      if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Graceful: answers already on their way are worth recording; the rest expire.
    const auto deadline = std::chrono::steady_clock::now() + options.stop_grace;
    while (!in_flight.empty() && std::chrono::steady_clock::now() < deadline) {
      record_all(collect_ready(false, static_cast<std::size_t>(options.in_flight_max)));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!in_flight.empty())
      log->warn(
          "stopping with calls in flight count={}: their leases expire and they are made again",
          in_flight.size());
    in_flight.clear();
    update_gauge();
    set_running(false);
  }

  void update_gauge() {
    std::lock_guard lock(stats_mutex);
    stats.in_flight_now = static_cast<std::int64_t>(in_flight.size());
  }
};

Dispatcher::Dispatcher(TransferService& transfers, clearing_client::ClearingClient& client,
                       const base::Clock& clock, DispatcherOptions options)
    : impl_(std::make_unique<Impl>(transfers, client, clock, std::move(options))) {}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::start() {
  impl_->set_running(true);  // before the thread, so /readyz never sees it started and not running
  impl_->worker.start([this] { impl_->run(); });
}

void Dispatcher::wake() { impl_->woken = true; }

void Dispatcher::stop() {
  impl_->worker.stop();
  // Graceful: the calls still leased (no answer within stop_grace) are the others' at once.
  if (impl_->liveness) impl_->liveness->release();
}

eventstore::StoreResult<int> Dispatcher::run_once() {
  auto items = impl_->claim(impl_->options.claim_batch_max);
  if (!items) return tl::unexpected(items.error());
  for (auto& item : impl_->without_deferred(std::move(*items))) impl_->launch(std::move(item));
  return impl_->record_all(impl_->collect_ready(true, impl_->in_flight.size()));
}

DispatcherStats Dispatcher::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::adapter
