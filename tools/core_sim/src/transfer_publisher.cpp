// core-sim's publisher: see transfer_publisher.hpp.

#include "transfer_publisher.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <span>
#include <string>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/trace_metadata.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::core_sim {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;
using Json = nlohmann::json;

constexpr auto kPublishRetryBackoffMax = std::chrono::milliseconds(5'000);
constexpr auto kPacingSleepMax = std::chrono::milliseconds(50);

// A batch's transfer rows: an insert from the batch, prepared once per connection.
constexpr eventstore::PreparedSql kInsertTransfers{
    "core_sim_insert_transfers",
    "insert into core_transfers (transfer_id, account_id, amount_minor, currency, correlation_id,"
    " reserved_event_id, stream_partition, stream_seq, request_batch, expected_reason_code, "
    "requested_at)"
    " select transfer_id, account_id, amount_minor, currency, correlation_id, reserved_event_id,"
    " stream_partition, stream_seq, $2, expected_reason_code, clock_timestamp()"
    " from jsonb_to_recordset($1::jsonb) as x(transfer_id text, account_id text, amount_minor "
    "bigint,"
    " currency text, correlation_id text, reserved_event_id text, stream_partition int, stream_seq "
    "bigint,"
    " expected_reason_code text)"};

// A transfer reserved in the batch's transaction, whose TransferRequested is appended
// with the batch's others.
struct Reserved {
  const TransferRequest* request = nullptr;
  std::string correlation_id;
  eventstore::RecordedEvent source;  // the FundsReserved it is caused by
};

// The transfer ids (a JSON array) that an earlier run requested or refused. `= any(array(...))`
// probes the primary keys; `in (select ...)` let the planner scan the tables. Prepared,
// and prepared again as the tables grow (prepared.hpp).
std::set<std::string> seen_transfers(Transaction& tx, const Json& ids) {
  static constexpr eventstore::PreparedSql kSeen{
      "core_sim_seen_transfers",
      "select transfer_id from core_transfers where transfer_id = any(array(select "
      "jsonb_array_elements_text($1::jsonb)))"
      " union all select transfer_id from core_refused"
      " where transfer_id = any(array(select jsonb_array_elements_text($1::jsonb)))"};
  std::set<std::string> seen;
  const auto rows = eventstore::exec_prepared_here(tx, kSeen, ids.dump());
  for (const auto& row : rows) seen.insert(row[0].as<std::string>());
  return seen;
}

// The requests no earlier run requested or refused (one look-up of the ids).
std::vector<const TransferRequest*> fresh_requests(
    Transaction& tx, std::span<const TransferRequest* const> requests) {
  Json ids = Json::array();
  for (const auto* r : requests) ids.push_back(r->transfer_id);
  const auto seen = seen_transfers(tx, ids);
  std::vector<const TransferRequest*> fresh;
  for (const auto* r : requests)
    if (seen.count(r->transfer_id) == 0) fresh.push_back(r);
  return fresh;
}

std::vector<AccountCommandRequest> reservations(std::span<const TransferRequest* const> fresh) {
  std::vector<AccountCommandRequest> commands;
  const auto tracer = tracing::global_tracer();
  for (const auto* r : fresh) {
    // Where the transfer's trace begins: FundsReserved keeps this span's context, and the
    // relay publishes TransferRequested (caused by it) under it, as the traceparent header
    // the adapter continues.
    auto span = tracer->start("core request transfer", nullptr, tracing::SpanKind::producer);
    span.set("transfer.id", r->transfer_id);
    commands.push_back(
        {r->account_id, ReserveFunds{r->transfer_id, r->amount},
         eventstore::CommandContext{base::new_uuid(), "", nullptr, "reserve|" + r->transfer_id,
                                    external_streams::with_trace(nullptr, span.context())}});
  }
  return commands;
}

// The transfer as reserved by its one FundsReserved event.
Reserved reserved_by(const TransferRequest& r, const std::string& correlation_id,
                     const AccountCommandDone& done) {
  CLEARING_ASSERT(done.event_ids.size() == 1);
  Reserved out{&r, correlation_id, {}};
  out.source.event_id = done.event_ids.front();
  out.source.stream_id = eventstore::StreamId{account_stream_name(r.account_id)};
  out.source.type = "FundsReserved";
  out.source.metadata.correlation_id = out.correlation_id;
  out.source.recorded_at = base::SystemClock{}.now();
  return out;
}

void record_refusals(Transaction& tx, const Json& refused) {
  if (refused.empty()) return;
  tx.exec_params(
      "insert into core_refused (transfer_id, account_id, reason)"
      " select transfer_id, account_id, reason from jsonb_to_recordset($1::jsonb)"
      " as x(transfer_id text, account_id text, reason text)",
      refused.dump());
}

// Reserves the batch's new transfers set-wise (one look-up of the ids done before, the
// account commands, one insert of the refusals) and returns the ones reserved now.
StoreResult<std::vector<Reserved>> reserve_all(spdlog::logger& log, eventstore::EventStore& store,
                                               const AccountCache& cache, Transaction& tx,
                                               std::span<const TransferRequest* const> requests,
                                               AccountStates& local,
                                               AccountProjection& projection) {
  const auto fresh = fresh_requests(tx, requests);
  const auto commands = reservations(fresh);
  auto handled = handle_account_commands(store, tx, commands, cache, local);
  if (!handled) return tl::unexpected(handled.error());
  if (handled->conflict_rounds > 0)
    log.debug("publish batch redone accounts rounds={}", handled->conflict_rounds);
  std::vector<Reserved> reserved;
  Json refused = Json::array();
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const auto& r = *fresh[i];
    const auto& result = handled->results[i];
    if (!result) {
      refused.push_back({{"transfer_id", r.transfer_id},
                         {"account_id", r.account_id},
                         {"reason", std::string(to_string(result.error().code))}});
      log.info("transfer refused by the core transfer_id={} reason={}", r.transfer_id,
               to_string(result.error().code));
      continue;
    }
    // No new event: reserved in an earlier run whose transfer row is this one's twin.
    if (result->event_ids.empty()) continue;
    projection.add(result->state);
    reserved.push_back(reserved_by(r, commands[i].context.correlation_id, *result));
  }
  record_refusals(tx, refused);
  return reserved;
}

// The core_transfers rows of the reserved transfers, whose messages are `appended`.
Json transfer_rows(const std::vector<Reserved>& reserved,
                   const std::vector<external_streams::ExternalMessage>& appended) {
  CLEARING_ASSERT(appended.size() == reserved.size());
  Json rows = Json::array();
  for (std::size_t i = 0; i < reserved.size(); ++i) {
    const auto& r = *reserved[i].request;
    const auto& message = appended[i];
    CLEARING_ASSERT(message.source_event_id == reserved[i].source.event_id.value() &&
                    message.seq >= 1);
    rows.push_back({{"transfer_id", r.transfer_id},
                    {"account_id", r.account_id},
                    {"amount_minor", r.amount.minor_units},
                    {"currency", std::string(r.amount.currency.code())},
                    {"correlation_id", reserved[i].correlation_id},
                    {"reserved_event_id", reserved[i].source.event_id.value()},
                    {"stream_partition", message.partition},
                    {"stream_seq", message.seq},
                    {"expected_reason_code",
                     r.expected_reason_code ? Json(*r.expected_reason_code) : Json(nullptr)}});
  }
  return rows;
}

// Requests the batch's reserved transfers: their TransferRequested messages with one
// batch append, their rows with one insert.
StoreResult<void> request_all(Transaction& tx, const external_streams::StreamSpec& core_stream,
                              const std::vector<Reserved>& reserved, const std::string& batch_id) {
  std::vector<external_streams::PendingAppend> appends;
  appends.reserve(reserved.size());
  for (const auto& one : reserved)
    appends.push_back({&core_stream,
                       external_streams::Draft{"TransferRequested", one.request->transfer_id,
                                               one.request->data, false, one.correlation_id},
                       &one.source});
  auto appended = external_streams::append_external_batch(tx, appends);
  if (!appended) return tl::unexpected(appended.error());
  const auto rows = transfer_rows(reserved, *appended);
  // requested_at: the batch's commit, as near as SQL can see it (the caller runs this last).
  eventstore::exec_prepared_here(tx, kInsertTransfers, rows.dump(), batch_id);
  return {};
}

// The batch's requests, a transfer id twice in one batch counting once (the first).
std::vector<const TransferRequest*> distinct_requests(const std::vector<TransferRequest>& batch) {
  std::set<std::string> in_batch;
  std::vector<const TransferRequest*> requests;
  for (const auto& r : batch)
    if (in_batch.insert(r.transfer_id).second) requests.push_back(&r);
  return requests;
}

}  // namespace

TransferPublisher::TransferPublisher(eventstore::EventStore& store, AccountCache& cache,
                                     const external_streams::StreamSpec& core_stream,
                                     const RequestSource& source, StopSignal& stop,
                                     PublisherPacing pacing)
    : store_(store),
      cache_(cache),
      core_stream_(core_stream),
      source_(source),
      stop_(stop),
      pacing_(pacing),
      log_(base::module_logger("core_sim")) {}

void TransferPublisher::start() {
  CLEARING_ASSERT(!thread_.joinable());
  thread_ = std::thread([this] { run(); });
}

void TransferPublisher::join() {
  if (thread_.joinable()) thread_.join();
}

StoreResult<std::int64_t> TransferPublisher::publish_batch(
    const std::vector<TransferRequest>& batch) {
  AccountStates local;
  auto published =
      store_.pool().transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
        local.clear();  // a retry starts again from the committed states
        const auto batch_id = base::new_uuid();
        AccountProjection projection;
        const auto requests = distinct_requests(batch);
        auto all = reserve_all(*log_, store_, cache_, tx, requests, local, projection);
        if (!all) return tl::unexpected(all.error());
        const auto& reserved = *all;
        if (reserved.empty()) return std::int64_t{0};
        // request_all's insert of the transfers is the batch's last statement: its
        // requested_at is the commit's instant, as near as SQL can see it.
        projection.write(tx);
        if (auto requested = request_all(tx, core_stream_, reserved, batch_id); !requested)
          return tl::unexpected(requested.error());
        return static_cast<std::int64_t>(reserved.size());
      });
  if (published) cache_.merge(local);  // committed now
  return published;
}

// How many transfers pacing allows now (>= 1), or 0 after waiting a little.
std::int64_t TransferPublisher::allowance(std::chrono::steady_clock::time_point begun,
                                          std::int64_t sent) {
  if (pacing_.rate_per_s <= 0) return pacing_.publish_batch_max;
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - begun;
  const auto due =
      static_cast<std::int64_t>(std::floor(elapsed.count() * pacing_.rate_per_s)) + 1 - sent;
  if (due >= 1) return std::min<std::int64_t>(due, pacing_.publish_batch_max);
  const auto wait_ms = static_cast<std::int64_t>(1000.0 * (1 - due) / pacing_.rate_per_s) + 1;
  stop_.pause(std::min(std::chrono::milliseconds(wait_ms),
                       std::chrono::duration_cast<std::chrono::milliseconds>(kPacingSleepMax)));
  return 0;
}

void TransferPublisher::run() {
  const auto planned = source_.planned();
  const auto begun = std::chrono::steady_clock::now();
  std::int64_t next = 0, requested_total = 0;
  int failures = 0;
  while (next < planned && !stop_.is_stopping()) {
    const auto allowed = allowance(begun, next);
    if (allowed == 0) continue;
    const auto count = std::min<std::int64_t>(allowed, planned - next);
    std::vector<TransferRequest> batch;
    batch.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) batch.push_back(source_.at(next + i));
    auto published = publish_batch(batch);
    if (!published) {
      ++failures;
      log_->error("publishing batch failed from={} count={} error=\"{}\" failures={}", next, count,
                  published.error().message, failures);
      stop_.pause(std::min(kPublishRetryBackoffMax,
                           std::chrono::milliseconds(50) * (1 << std::min(failures, 7))));
      continue;  // the same batch again: nothing of it was committed
    }
    failures = 0;
    next += count;
    requested_total += *published;
    processed_.store(next);
  }
  publishing_done_.store(next >= planned);
  log_->info("publisher finished processed={} requested_now={} planned={}", next, requested_total,
             planned);
}

}  // namespace clearing::core_sim
