// core-sim's wiring: schema, accounts, publisher, relay, consumer, catch-up API, report.
// See core_sim.hpp for the contract.

#include "clearing/core_sim/core_sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/core_sim/account_decider.hpp"
#include "clearing/core_sim/core_sim_schema.hpp"
#include "clearing/core_sim/outcome_applier.hpp"
#include "clearing/core_sim/transfer_source.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/server.hpp"

namespace clearing::core_sim {
static_assert(kRelayRoundIntervalMsDefault == external_streams::kRoundIntervalMinDefault.count());
static_assert(kRelayRoundIntervalMsMax == external_streams::kRoundIntervalMinMax.count());

namespace {

// How often core-sim compares its progress on the adapter's stream with the adapter's head
// and fetches a missing tail: the adapter's default for the same check.
constexpr std::chrono::milliseconds kTailCheckInterval{2'000};

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;
using external_streams::ExternalMessage;
using external_streams::MessageErrc;
using external_streams::MessageError;
using Json = nlohmann::json;

constexpr auto kDonePollInterval = std::chrono::milliseconds(50);
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

std::shared_ptr<spdlog::logger> logger() { return base::module_logger("core_sim"); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

tl::expected<void, std::string> validate(const CoreSimOptions& o) {
  const auto bad = [](std::string message) { return tl::unexpected(std::move(message)); };
  if (!sagas::parse_country(o.country))
    return bad("country must be dk, se or no, not '" + o.country + "'");
  if (o.database_url.empty()) return bad("database_url is required");
  if (o.kafka_bootstrap.empty()) return bad("kafka_bootstrap is required");
  if (o.core_partitions < 1 || o.core_partitions > external_streams::kPartitionsMax)
    return bad(fmt::format("core_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.adapter_partitions < 1 || o.adapter_partitions > external_streams::kPartitionsMax)
    return bad(
        fmt::format("adapter_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.http_port < 0 || o.http_port > 65535) return bad("http_port must be in [0, 65535]");
  if (o.transfers < 0) return bad("transfers must not be negative");
  if (!(o.invalid_share >= 0.0 && o.invalid_share <= 1.0))
    return bad("invalid_share must be in [0, 1]");
  if (!(o.rate_per_s >= 0.0) || std::isinf(o.rate_per_s))
    return bad("rate_per_s must be >= 0 (0: unlimited)");
  if (o.accounts < 1 || o.accounts > 9999) return bad("accounts must be in [1, 9999]");
  if (o.opening_balance_minor < 0) return bad("opening_balance_minor must not be negative");
  if (o.amount_limit_minor < 1 || o.amount_limit_minor > (std::int64_t{1} << 52))
    return bad("amount_limit_minor must be in [1, 2^52]");
  if (o.publish_batch_max < 1 || o.publish_batch_max > kPublishBatchMax)
    return bad(fmt::format("publish_batch_max must be in [1, {}]", kPublishBatchMax));
  if (o.fetch_wait_max_ms < 1 || o.fetch_wait_max_ms > 5000)
    return bad("fetch_wait_max_ms must be in [1, 5000]");
  if (o.relay_round_interval_min_ms < 0 || o.relay_round_interval_min_ms > kRelayRoundIntervalMsMax)
    return bad(
        fmt::format("relay_round_interval_min_ms must be in [0, {}]", kRelayRoundIntervalMsMax));
  if (o.database_connections_max < 3 || o.database_connections_max > 64)
    return bad("database_connections_max must be in [3, 64]");
  return {};
}

std::int64_t as_int(const pqxx::field& f) { return f.is_null() ? 0 : f.as<std::int64_t>(); }
double as_double(const pqxx::field& f) { return f.is_null() ? 0.0 : f.as<double>(); }

}  // namespace

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  CLEARING_ASSERT(q >= 0.0 && q <= 1.0);
  // Nearest rank: the smallest value with at least q of all values at or below it.
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(q * n));
  if (rank < 1) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

namespace {

// The report's figures, read in the report's one transaction.

// The transfers by outcome, and what their messages said besides.
void read_outcomes(Transaction& tx, Report& out) {
  for (const auto& row :
       tx.exec("select status, reason_code, count(*) from core_transfers group by 1, 2")) {
    const auto status = row[0].as<std::string>();
    const auto n = row[2].as<std::int64_t>();
    out.requested += n;
    if (status == "succeeded") out.succeeded += n;
    if (status == "open") out.still_open += n;
    if (status == "rejected") {
      out.rejected += n;
      out.rejected_by_reason[row[1].is_null() ? "" : row[1].as<std::string>()] += n;
    }
  }
  const auto seen = tx.exec(
      "select count(*) filter (where pending_seen), count(*) filter (where "
      "under_investigation_seen),"
      " coalesce(sum(dupl_seen), 0),"
      " count(*) filter (where status <> 'open' and expected_reason_code is not null"
      "   and coalesce(reason_code, '') <> expected_reason_code)"
      " from core_transfers")[0];
  out.pending_seen = as_int(seen[0]);
  out.under_investigation_seen = as_int(seen[1]);
  out.duplicate_requests_reported = as_int(seen[2]);
  out.expectation_mismatches = as_int(seen[3]);
}

// What the core refused, the outcomes it could not apply, what it parked, and the ledger's
// transfers resolved twice.
void read_refusals_and_violations(Transaction& tx, Report& out) {
  for (const auto& row : tx.exec("select reason, count(*) from core_refused group by 1")) {
    out.refused += row[1].as<std::int64_t>();
    out.refused_by_reason[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  }
  for (const auto& row : tx.exec("select kind, count(*) from core_violations group by 1")) {
    const auto n = row[1].as<std::int64_t>();
    switch (parse_violation(row[0].as<std::string>()).value_or(Violation::unknown_transfer)) {
      case Violation::double_completion:
        out.violations.double_completion += n;
        break;
      case Violation::completion_after_release:
        out.violations.completion_after_release += n;
        break;
      case Violation::release_after_completion:
        out.violations.release_after_completion += n;
        break;
      case Violation::double_release:
        out.violations.double_release += n;
        break;
      case Violation::unknown_transfer:
        out.violations.unknown_transfer += n;
        break;
    }
  }
  out.parked_messages =
      tx.exec("select count(*) from core_parked_messages")[0][0].as<std::int64_t>();
  out.incoming_payments =
      tx.exec("select count(*) from core_incoming_payments")[0][0].as<std::int64_t>();
  out.resolved_twice_in_ledger =
      tx.exec(
            "select count(*) from (select data->>'transfer_id' from events"
            " where type in ('ReservationCompleted', 'ReservationReleased') group by 1 having "
            "count(*) > 1) twice")[0][0]
          .as<std::int64_t>();
}

// Latency from request to outcome, and the rates of requests and of outcomes.
void read_timing(Transaction& tx, Report& out) {
  std::vector<double> latencies;
  for (const auto& row : tx.exec("select extract(epoch from (outcome_at - requested_at)) * 1000.0"
                                 " from core_transfers where outcome_at is not null order by 1"))
    latencies.push_back(row[0].as<double>());
  out.latency.count = static_cast<std::int64_t>(latencies.size());
  out.latency.p50_ms = percentile(latencies, 0.50);
  out.latency.p95_ms = percentile(latencies, 0.95);
  out.latency.p99_ms = percentile(latencies, 0.99);
  out.latency.max_ms = latencies.empty() ? 0.0 : latencies.back();
  const auto times = tx.exec(
      "select extract(epoch from min(requested_at)), extract(epoch from max(requested_at)),"
      " extract(epoch from max(outcome_at)), extract(epoch from clock_timestamp()),"
      " count(*) filter (where status = 'open') from core_transfers")[0];
  if (times[0].is_null()) return;
  const double first = as_double(times[0]);
  const double last_request = as_double(times[1]);
  const double end =
      as_int(times[4]) == 0 && !times[2].is_null() ? as_double(times[2]) : as_double(times[3]);
  out.elapsed_s = std::max(0.0, end - first);
  if (last_request > first)
    out.requested_per_s = static_cast<double>(out.requested) / (last_request - first);
  if (out.elapsed_s > 0)
    out.resolved_per_s = static_cast<double>(out.succeeded + out.rejected) / out.elapsed_s;
}

}  // namespace

struct CoreSim::Impl {
  CoreSimOptions options;
  sagas::Country country = sagas::Country::dk;
  external_streams::StreamSpec core_stream;
  std::string adapter_stream;
  std::shared_ptr<spdlog::logger> log = logger();

  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  AccountCache account_cache;
  std::unique_ptr<http::HttpServer> http;
  std::unique_ptr<external_streams::Relay> relay;
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  std::thread publisher;

  // The source: JSONL requests, or the generator (requests made by index).
  std::optional<JsonlSource> jsonl;
  GeneratorOptions generator;
  std::int64_t planned = 0;
  std::int64_t source_lines_skipped = 0;

  std::atomic<std::int64_t> processed{0};
  std::atomic<bool> publishing_done{false};
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopping = false;  // under stop_mutex
  bool started = false;
  bool stopped = false;

  // ---- start ----

  tl::expected<void, std::string> load_source() {
    if (options.jsonl_path) {
      auto read = read_jsonl_file(*options.jsonl_path);
      if (!read) return tl::unexpected(read.error());
      jsonl = std::move(*read);
      planned = static_cast<std::int64_t>(jsonl->requests.size());
      source_lines_skipped = jsonl->lines_skipped;
      for (const auto& skipped : jsonl->skipped)
        log->warn("source line skipped line={} reason=\"{}\"", skipped.line_number, skipped.reason);
      log->info("source jsonl lines={} usable={} skipped={}", jsonl->lines_read, planned,
                jsonl->lines_skipped);
      return {};
    }
    generator = GeneratorOptions{country, options.seed, options.invalid_share, options.accounts,
                                 options.amount_limit_minor};
    planned = options.transfers;
    log->info("source generator transfers={} seed={} invalid_share={}", planned, options.seed,
              options.invalid_share);
    return {};
  }

  // The accounts the source debits, each in the currency it is first debited in.
  std::vector<std::pair<std::string, sagas::Currency>> accounts_to_open() const {
    std::vector<std::pair<std::string, sagas::Currency>> out;
    if (jsonl) {
      std::set<std::string> seen;
      for (const auto& r : jsonl->requests)
        if (seen.insert(r.account_id).second) out.emplace_back(r.account_id, r.amount.currency);
      return out;
    }
    for (int i = 1; i <= options.accounts; ++i)
      out.emplace_back(generated_account_id(i), sagas::country_currency(country));
    if (options.invalid_share > 0)
      out.emplace_back(kForeignAccountId, *sagas::Currency::parse(kForeignCurrency));
    return out;
  }

  tl::expected<void, std::string> open_accounts() {
    const auto wanted = accounts_to_open();
    AccountStates local;
    auto opened = pool->transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
      local.clear();
      std::vector<AccountCommandRequest> commands;
      commands.reserve(wanted.size());
      for (const auto& [id, currency] : wanted)
        commands.push_back(
            {id, OpenAccount{id, sagas::Money{options.opening_balance_minor, currency}},
             eventstore::CommandContext{base::new_uuid(), "", nullptr, "open|" + id}});
      auto handled = handle_account_commands(*store, tx, commands, account_cache, local);
      if (!handled) return tl::unexpected(handled.error());
      AccountProjection projection;
      std::int64_t count = 0;
      for (std::size_t i = 0; i < commands.size(); ++i) {
        const auto& result = handled->results[i];
        if (!result) {
          log->warn("account not opened account_id={} reason={}", commands[i].account_id,
                    result.error().message);
          continue;
        }
        if (!result->event_ids.empty()) ++count;
        projection.add(result->state);
      }
      projection.write(tx);
      return count;
    });
    if (!opened) return tl::unexpected("opening accounts: " + opened.error().message);
    account_cache.merge(local);
    log->info("accounts ready total={} opened_now={}", wanted.size(), *opened);
    return {};
  }

  // ---- publisher ----

  TransferRequest request_at(std::int64_t index) const {
    if (jsonl) return jsonl->requests[static_cast<std::size_t>(index)];
    return generate_request(generator, index, base::SystemClock{}.now()).request;
  }

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
  static std::set<std::string> seen_transfers(Transaction& tx, const Json& ids) {
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

  // Reserves the batch's new transfers set-wise (one look-up of the ids done before, the
  // account commands, one insert of the refusals) and returns the ones reserved now.
  StoreResult<std::vector<Reserved>> reserve_all(Transaction& tx,
                                                 std::span<const TransferRequest* const> requests,
                                                 AccountStates& local,
                                                 AccountProjection& projection) {
    Json ids = Json::array();
    for (const auto* r : requests) ids.push_back(r->transfer_id);
    const auto seen = seen_transfers(tx, ids);
    std::vector<const TransferRequest*> fresh;
    std::vector<AccountCommandRequest> commands;
    for (const auto* r : requests) {
      if (seen.count(r->transfer_id) > 0) continue;
      fresh.push_back(r);
      commands.push_back(
          {r->account_id, ReserveFunds{r->transfer_id, r->amount},
           eventstore::CommandContext{base::new_uuid(), "", nullptr, "reserve|" + r->transfer_id}});
    }
    auto handled = handle_account_commands(*store, tx, commands, account_cache, local);
    if (!handled) return tl::unexpected(handled.error());
    if (handled->conflict_rounds > 0)
      log->debug("publish batch redone accounts rounds={}", handled->conflict_rounds);
    std::vector<Reserved> reserved;
    Json refused = Json::array();
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const auto& r = *fresh[i];
      const auto& result = handled->results[i];
      if (!result) {
        refused.push_back({{"transfer_id", r.transfer_id},
                           {"account_id", r.account_id},
                           {"reason", std::string(to_string(result.error().code))}});
        log->info("transfer refused by the core transfer_id={} reason={}", r.transfer_id,
                  to_string(result.error().code));
        continue;
      }
      // No new event: reserved in an earlier run whose transfer row is this one's twin.
      if (result->event_ids.empty()) continue;
      CLEARING_ASSERT(result->event_ids.size() == 1);
      projection.add(result->state);
      Reserved out{&r, commands[i].context.correlation_id, {}};
      out.source.event_id = result->event_ids.front();
      out.source.stream_id = eventstore::StreamId{account_stream_name(r.account_id)};
      out.source.type = "FundsReserved";
      out.source.metadata.correlation_id = out.correlation_id;
      out.source.recorded_at = base::SystemClock{}.now();
      reserved.push_back(std::move(out));
    }
    if (!refused.empty())
      tx.exec_params(
          "insert into core_refused (transfer_id, account_id, reason)"
          " select transfer_id, account_id, reason from jsonb_to_recordset($1::jsonb)"
          " as x(transfer_id text, account_id text, reason text)",
          refused.dump());
    return reserved;
  }

  // Requests the batch's reserved transfers: their TransferRequested messages with one
  // batch append, their rows with one insert.
  StoreResult<void> request_all(Transaction& tx, const std::vector<Reserved>& reserved,
                                const std::string& batch_id) {
    std::vector<external_streams::PendingAppend> appends;
    appends.reserve(reserved.size());
    for (const auto& one : reserved)
      appends.push_back({&core_stream,
                         external_streams::Draft{"TransferRequested", one.request->transfer_id,
                                                 one.request->data, false, one.correlation_id},
                         &one.source});
    auto appended = external_streams::append_external_batch(tx, appends);
    if (!appended) return tl::unexpected(appended.error());
    CLEARING_ASSERT(appended->size() == reserved.size());
    nlohmann::json rows = nlohmann::json::array();
    for (std::size_t i = 0; i < reserved.size(); ++i) {
      const auto& r = *reserved[i].request;
      const auto& message = (*appended)[i];
      CLEARING_ASSERT(message.source_event_id == reserved[i].source.event_id.value() &&
                      message.seq >= 1);
      rows.push_back(
          {{"transfer_id", r.transfer_id},
           {"account_id", r.account_id},
           {"amount_minor", r.amount.minor_units},
           {"currency", std::string(r.amount.currency.code())},
           {"correlation_id", reserved[i].correlation_id},
           {"reserved_event_id", reserved[i].source.event_id.value()},
           {"stream_partition", message.partition},
           {"stream_seq", message.seq},
           {"expected_reason_code", r.expected_reason_code ? nlohmann::json(*r.expected_reason_code)
                                                           : nlohmann::json(nullptr)}});
    }
    // requested_at: the batch's commit, as near as SQL can see it (the caller runs this last).
    eventstore::exec_prepared_here(tx, kInsertTransfers, rows.dump(), batch_id);
    return {};
  }

  StoreResult<std::int64_t> publish_batch(const std::vector<TransferRequest>& batch) {
    AccountStates local;
    auto published = pool->transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
      local.clear();  // a retry starts again from the committed states
      const auto batch_id = base::new_uuid();
      AccountProjection projection;
      std::set<std::string> in_batch;  // a transfer id twice in one batch: the first one counts
      std::vector<const TransferRequest*> requests;
      for (const auto& r : batch)
        if (in_batch.insert(r.transfer_id).second) requests.push_back(&r);
      auto all = reserve_all(tx, requests, local, projection);
      if (!all) return tl::unexpected(all.error());
      const auto& reserved = *all;
      if (reserved.empty()) return std::int64_t{0};
      // request_all's insert of the transfers is the batch's last statement: its
      // requested_at is the commit's instant, as near as SQL can see it.
      projection.write(tx);
      if (auto requested = request_all(tx, reserved, batch_id); !requested)
        return tl::unexpected(requested.error());
      return static_cast<std::int64_t>(reserved.size());
    });
    if (published) account_cache.merge(local);  // committed now
    return published;
  }

  // Sleeps up to `duration` unless stopping; false when stopping.
  bool pause(std::chrono::milliseconds duration) {
    std::unique_lock lock(stop_mutex);
    return !stop_cv.wait_for(lock, duration, [&] { return stopping; });
  }

  bool is_stopping() {
    std::lock_guard lock(stop_mutex);
    return stopping;
  }

  // How many transfers pacing allows now (>= 1), or 0 after waiting a little.
  std::int64_t allowance(std::chrono::steady_clock::time_point begun, std::int64_t sent) {
    if (options.rate_per_s <= 0) return options.publish_batch_max;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - begun;
    const auto due =
        static_cast<std::int64_t>(std::floor(elapsed.count() * options.rate_per_s)) + 1 - sent;
    if (due >= 1) return std::min<std::int64_t>(due, options.publish_batch_max);
    const auto wait_ms = static_cast<std::int64_t>(1000.0 * (1 - due) / options.rate_per_s) + 1;
    pause(std::min(std::chrono::milliseconds(wait_ms),
                   std::chrono::duration_cast<std::chrono::milliseconds>(kPacingSleepMax)));
    return 0;
  }

  void run_publisher() {
    const auto begun = std::chrono::steady_clock::now();
    std::int64_t next = 0, requested_total = 0;
    int failures = 0;
    while (next < planned && !is_stopping()) {
      const auto allowed = allowance(begun, next);
      if (allowed == 0) continue;
      const auto count = std::min<std::int64_t>(allowed, planned - next);
      std::vector<TransferRequest> batch;
      batch.reserve(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) batch.push_back(request_at(next + i));
      auto published = publish_batch(batch);
      if (!published) {
        ++failures;
        log->error("publishing batch failed from={} count={} error=\"{}\" failures={}", next, count,
                   published.error().message, failures);
        pause(std::min(kPublishRetryBackoffMax,
                       std::chrono::milliseconds(50) * (1 << std::min(failures, 7))));
        continue;  // the same batch again: nothing of it was committed
      }
      failures = 0;
      next += count;
      requested_total += *published;
      processed.store(next);
    }
    publishing_done.store(next >= planned);
    log->info("publisher finished processed={} requested_now={} planned={}", next, requested_total,
              planned);
  }

  // ---- consumer ----

  tl::expected<void, std::string> start() {
    if (started) return tl::unexpected(std::string("already started"));
    started = true;
    for (const auto* migrations :
         {&eventstore::eventstore_migrations(), &external_streams::external_streams_migrations(),
          &core_sim_migrations()}) {
      auto applied = eventstore::apply_migrations(*pool, *migrations);
      if (!applied) return tl::unexpected("migrations: " + applied.error().message);
    }
    const std::vector<external_streams::StreamSpec> streams{core_stream};
    if (auto ensured = external_streams::ensure_streams(*pool, streams); !ensured)
      return tl::unexpected("streams: " + ensured.error().message);
    if (auto loaded = load_source(); !loaded) return loaded;
    if (auto opened = open_accounts(); !opened) return opened;

    auto server = http::HttpServer::create(
        {.host = options.http_host, .port = options.http_port, .bearer_token = options.api_token});
    if (!server) return tl::unexpected("catch-up API: " + server.error());
    http = std::move(*server);
    external_streams::add_catch_up_routes(*http, *pool);
    if (auto listening = http->start(); !listening)
      return tl::unexpected("catch-up API: " + listening.error());

    external_streams::KafkaClientOptions kafka;
    kafka.bootstrap_servers = options.kafka_bootstrap;
    kafka.client_id = options.kafka_client_id + "-relay";
    kafka.fetch_wait_max_ms = options.fetch_wait_max_ms;
    auto made_relay = external_streams::Relay::create(
        *pool,
        {.kafka = kafka,
         .round_interval_min = std::chrono::milliseconds(options.relay_round_interval_min_ms)});
    if (!made_relay)
      return tl::unexpected("relay: " + external_streams::message_of(made_relay.error()));
    relay = std::move(*made_relay);

    external_streams::ConsumerOptions consumer_options;
    consumer_options.kafka = kafka;
    consumer_options.kafka.client_id = options.kafka_client_id + "-consumer";
    consumer_options.group_id = options.consumer_group.empty()
                                    ? "core-sim-" + std::string(sagas::country_code_lower(country))
                                    : options.consumer_group;
    consumer_options.topics = {adapter_stream};
    // The core repairs a lost last outcome as the adapter does (streams.tail_check_interval_ms).
    consumer_options.tail_check_interval = kTailCheckInterval;
    external_streams::CatchUpFetcher fetcher;
    if (!options.adapter_catch_up_url.empty())
      fetcher =
          external_streams::make_http_catch_up_fetcher({.base_url = options.adapter_catch_up_url,
                                                        .bearer_token = options.adapter_api_token,
                                                        .token_setting = "--adapter-token",
                                                        .url_setting = "--adapter-catch-up-url"});
    // Outcomes are queued per message and applied set-wise at the batch's end.
    auto made_consumer = external_streams::StreamConsumer::create(
        *pool, consumer_options, std::make_unique<OutcomeApplier>(*store, account_cache),
        std::move(fetcher));
    if (!made_consumer)
      return tl::unexpected("consumer: " + external_streams::message_of(made_consumer.error()));
    consumer = std::move(*made_consumer);

    relay->start();
    consumer->start();
    publisher = std::thread([this] { run_publisher(); });
    log->info("started country={} stream={} partitions={} catch_up_port={} planned={}",
              sagas::country_code_lower(country), core_stream.name, core_stream.partitions,
              http->port(), planned);
    return {};
  }

  void stop() {
    {
      std::lock_guard lock(stop_mutex);
      if (stopped) return;
      stopped = true;
      stopping = true;
    }
    stop_cv.notify_all();
    if (publisher.joinable()) publisher.join();
    if (consumer) consumer->stop();
    if (relay) relay->stop();
    if (http) http->stop();
    if (started) log->info("stopped");
  }

  // ---- figures ----

  template <class T, class F>
  T query(F&& fn) const {
    auto result =
        pool->transact_with_retry([&](Transaction& tx) -> StoreResult<T> { return fn(tx); });
    if (!result) {
      log->warn("report query failed error=\"{}\"", result.error().message);
      return T{};
    }
    return *result;
  }

  Progress progress() const {
    Progress p = query<Progress>([](Transaction& tx) {
      Progress out;
      for (const auto& row :
           tx.exec("select status, count(*) from core_transfers group by status")) {
        const auto status = row[0].as<std::string>();
        const auto n = row[1].as<std::int64_t>();
        out.requested += n;
        if (status == "succeeded") out.succeeded = n;
        if (status == "rejected") out.rejected = n;
        if (status == "open") out.open = n;
      }
      out.refused = tx.exec("select count(*) from core_refused")[0][0].as<std::int64_t>();
      return out;
    });
    p.total_planned = planned;
    p.processed = processed.load();
    p.publishing_done = publishing_done.load();
    return p;
  }

  // Transfers without an outcome yet, through the status index: cheap at any table size
  // (wait_until_done asks every 50 ms; progress() counts every transfer). Empty when
  // the database did not answer: not a reason to think the work is done.
  std::optional<std::int64_t> open_count() const {
    auto n = pool->autocommit([](Transaction& tx) -> StoreResult<std::int64_t> {
      return tx.exec("select count(*) from core_transfers where status = 'open'")[0][0]
          .as<std::int64_t>();
    });
    if (!n) {
      log->warn("open transfers query failed error=\"{}\"", n.error().message);
      return std::nullopt;
    }
    return *n;
  }

  Report report() const {
    Report r = query<Report>([](Transaction& tx) {
      Report out;
      read_outcomes(tx, out);
      read_refusals_and_violations(tx, out);
      read_timing(tx, out);
      return StoreResult<Report>(std::move(out));
    });
    r.country = std::string(sagas::country_code_lower(country));
    r.planned = planned;
    r.source_lines_skipped = source_lines_skipped;
    r.resolved_exactly_once = r.violations.total() == 0 && r.still_open == 0 &&
                              r.resolved_twice_in_ledger == 0 &&
                              r.succeeded + r.rejected == r.requested;
    return r;
  }
};

CoreSim::CoreSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoreSim::~CoreSim() { stop(); }

tl::expected<std::unique_ptr<CoreSim>, std::string> CoreSim::create(CoreSimOptions options) {
  options.country = lower(options.country);
  if (auto valid = validate(options); !valid) return tl::unexpected(valid.error());
  auto impl = std::make_unique<Impl>();
  impl->country = *sagas::parse_country(options.country);
  const auto cc = std::string(sagas::country_code_lower(impl->country));
  impl->core_stream = {"core." + cc + ".payments.v1", options.core_partitions};
  impl->adapter_stream = "adapter." + cc + ".payments.v1";
  eventstore::DatabaseOptions database;
  database.url = options.database_url;
  database.connections_max = static_cast<std::size_t>(options.database_connections_max);
  database.application_name = "core-sim";
  // core-sim runs no subscription, so nothing listens on its database: a NOTIFY after
  // each appending commit was a round trip (and a transaction) for nobody.
  database.notify_after_commit = false;
  impl->options = std::move(options);
  impl->pool = std::make_unique<eventstore::ConnectionPool>(database);
  impl->store = std::make_unique<eventstore::EventStore>(*impl->pool);
  return std::unique_ptr<CoreSim>(new CoreSim(std::move(impl)));
}

tl::expected<void, std::string> CoreSim::start() {
  try {
    return impl_->start();
  } catch (const std::exception& e) {
    // Library exceptions stop at the module boundary (STYLE.md).
    return tl::unexpected(std::string("start failed: ") + e.what());
  }
}

void CoreSim::stop() { impl_->stop(); }

std::uint16_t CoreSim::catch_up_port() const { return impl_->http ? impl_->http->port() : 0; }

Progress CoreSim::progress() const { return impl_->progress(); }

Report CoreSim::report() const { return impl_->report(); }

bool CoreSim::wait_until_done(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (impl_->publishing_done.load() && impl_->open_count() == std::optional<std::int64_t>{0})
      return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!impl_->pause(kDonePollInterval)) return false;  // stopping
  }
}

}  // namespace clearing::core_sim
