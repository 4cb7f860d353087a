// core-sim's wiring: schema, accounts, publisher, relay, consumer, catch-up API, report.
// See core_sim.hpp for the contract.

#include "clearing/core_sim/core_sim.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/adapter/catch_up_api.hpp"
#include "clearing/adapter/http_server.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/account_decider.hpp"
#include "clearing/core_sim/core_sim_schema.hpp"
#include "clearing/core_sim/transfer_source.hpp"
#include "clearing/eventstore/aggregate.hpp"  // Loaded, Decision, CommandContext
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::core_sim {
namespace {

using eventstore::StoreError;
using eventstore::StoreErrc;
using eventstore::StoreResult;
using eventstore::Transaction;
using external_streams::ExternalMessage;
using external_streams::MessageErrc;
using external_streams::MessageError;
using Json = nlohmann::json;

constexpr auto kDonePollInterval = std::chrono::milliseconds(50);
constexpr auto kPublishRetryBackoffMax = std::chrono::milliseconds(5'000);
constexpr auto kPacingSleepMax = std::chrono::milliseconds(50);

std::shared_ptr<spdlog::logger> logger() { return base::module_logger("core_sim"); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

tl::expected<void, std::string> validate(const CoreSimOptions& o) {
  const auto bad = [](std::string message) { return tl::unexpected(std::move(message)); };
  if (!sagas::parse_country(o.country)) return bad("country must be dk, se or no, not '" + o.country + "'");
  if (o.database_url.empty()) return bad("database_url is required");
  if (o.kafka_bootstrap.empty()) return bad("kafka_bootstrap is required");
  if (o.core_partitions < 1 || o.core_partitions > external_streams::kPartitionsMax)
    return bad(fmt::format("core_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.adapter_partitions < 1 || o.adapter_partitions > external_streams::kPartitionsMax)
    return bad(fmt::format("adapter_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.http_port < 0 || o.http_port > 65535) return bad("http_port must be in [0, 65535]");
  if (o.transfers < 0) return bad("transfers must not be negative");
  if (!(o.invalid_share >= 0.0 && o.invalid_share <= 1.0)) return bad("invalid_share must be in [0, 1]");
  if (!(o.rate_per_s >= 0.0) || std::isinf(o.rate_per_s)) return bad("rate_per_s must be >= 0 (0: unlimited)");
  if (o.accounts < 1 || o.accounts > 9999) return bad("accounts must be in [1, 9999]");
  if (o.opening_balance_minor < 0) return bad("opening_balance_minor must not be negative");
  if (o.amount_limit_minor < 1 || o.amount_limit_minor > (std::int64_t{1} << 52))
    return bad("amount_limit_minor must be in [1, 2^52]");
  if (o.publish_batch_max < 1 || o.publish_batch_max > kPublishBatchMax)
    return bad(fmt::format("publish_batch_max must be in [1, {}]", kPublishBatchMax));
  if (o.fetch_wait_max_ms < 1 || o.fetch_wait_max_ms > 5000) return bad("fetch_wait_max_ms must be in [1, 5000]");
  if (o.database_connections_max < 3 || o.database_connections_max > 64)
    return bad("database_connections_max must be in [3, 64]");
  return {};
}

// Translates a failed command into the error that rolls the transaction back.
StoreError store_error_of(const eventstore::CommandFailure<AccountDecider>& failure) {
  if (const auto* error = std::get_if<StoreError>(&failure)) return *error;
  return StoreError{StoreErrc::internal, "not a store error"};
}

// The core_accounts read model: the last state each account reached in the transaction,
// written with one statement.
class AccountProjection {
 public:
  void add(const AccountState& state) {
    if (!state.opened) return;
    rows_[state.account_id] = Json{{"account_id", state.account_id},
                                   {"currency", std::string(state.currency.code())},
                                   {"balance_minor", state.balance_minor},
                                   {"reserved_minor", state.reserved_minor}};
  }
  void clear() { rows_.clear(); }
  void write(Transaction& tx) const {
    if (rows_.empty()) return;
    Json rows = Json::array();
    for (const auto& [id, row] : rows_) rows.push_back(row);  // account order: the lock order
    tx.exec_params(
        "insert into core_accounts (account_id, currency, balance_minor, reserved_minor)"
        " select account_id, currency, balance_minor, reserved_minor from jsonb_to_recordset($1::jsonb)"
        " as x(account_id text, currency text, balance_minor bigint, reserved_minor bigint)"
        " on conflict (account_id) do update set balance_minor = excluded.balance_minor,"
        " reserved_minor = excluded.reserved_minor, updated_at = clock_timestamp()",
        rows.dump());
  }

 private:
  std::map<std::string, Json> rows_;
};

// Account states known to be committed, each the fold of its stream's first `version`
// events. Aggregate::handle folds a whole stream per command, which makes a long run
// quadratic (every reservation reloads every earlier event of its account); here a
// command starts from the cached state and folds only the tail read in its own
// transaction, so the cache can be behind but never wrong. Only states whose events are
// known to be committed (merged after the publisher's commit) enter it. Thread safe.
class AccountCache {
 public:
  using Loaded = eventstore::Loaded<AccountDecider>;
  Loaded get(const std::string& stream) const {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(stream);
    if (it == states_.end()) return Loaded{AccountDecider::initial_state(), eventstore::StreamVersion{0}};
    return it->second;
  }
  void merge(const std::map<std::string, Loaded>& committed) {
    std::lock_guard lock(mutex_);
    for (const auto& [stream, loaded] : committed) {
      auto [it, inserted] = states_.try_emplace(stream, loaded);
      if (!inserted && it->second.version < loaded.version) it->second = loaded;
    }
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Loaded> states_;
};

constexpr const char* kAccountEventIdNamespace = "9b2e6c1a-4f7d-4a3b-8e5c-1d0f2a7b6c94";

// Load (from `start`), decide, append with the expected version; on a concurrency
// conflict load the tail again and decide again, a bounded number of times. `start`
// becomes the state and version after the command (or after the tail, on a rejection).
eventstore::CommandResult<AccountDecider> handle_account(eventstore::EventStore& store, Transaction& tx,
                                                         const eventstore::StreamId& stream,
                                                         const AccountCommand& command,
                                                         const eventstore::CommandContext& context,
                                                         AccountCache::Loaded& start) {
  using Failure = eventstore::CommandFailure<AccountDecider>;
  for (int attempt = 1;; ++attempt) {
    for (;;) {  // the tail, in pages
      auto page = store.read_stream(tx, stream, eventstore::StreamVersion{start.version.value() + 1});
      if (!page) return tl::unexpected(Failure{page.error()});
      for (const auto& recorded : *page) {
        auto event = AccountCodec::decode(recorded.type, recorded.data);
        if (!event)
          return tl::unexpected(Failure{StoreError{StoreErrc::corrupt_data, "cannot decode " + recorded.type +
                                                                                " in " + stream.value() + ": " +
                                                                                event.error()}});
        CLEARING_ASSERT(recorded.version.value() == start.version.value() + 1);
        start.state = AccountDecider::evolve(start.state, *event);
        start.version = recorded.version;
      }
      if (page->size() < eventstore::kReadBatchMax) break;
    }
    auto decided = AccountDecider::decide(command, start.state);
    if (!decided) return tl::unexpected(Failure{decided.error()});
    eventstore::Decision<AccountDecider> decision{std::move(*decided), {}, start.state, start.version};
    if (decision.events.empty()) return decision;
    std::vector<eventstore::EventData> data;
    for (std::size_t i = 0; i < decision.events.size(); ++i) {
      const auto& event = decision.events[i];
      eventstore::EventId id{context.idempotency_seed.empty()
                                 ? base::new_uuid()
                                 : base::derived_uuid(kAccountEventIdNamespace, context.idempotency_seed + "|" +
                                                                                    stream.value() + "|" +
                                                                                    std::to_string(i))};
      decision.event_ids.push_back(id);
      data.push_back({std::move(id), std::string(AccountCodec::event_type(event)), AccountCodec::encode(event),
                      eventstore::Metadata{context.correlation_id, context.causation_id, context.source, nullptr}});
    }
    const auto expected = start.version.value() == 0 ? eventstore::ExpectedVersion::no_stream()
                                                     : eventstore::ExpectedVersion::exactly(start.version);
    auto appended = store.append(tx, stream, expected, data);
    if (appended) {
      for (const auto& event : decision.events) decision.state = AccountDecider::evolve(decision.state, event);
      decision.version = appended->next_expected_version;
      CLEARING_ASSERT(decision.version.value() ==
                      start.version.value() + static_cast<std::int64_t>(decision.events.size()));
      start = {decision.state, decision.version};
      if (appended->already_appended) decision.events.clear();
      return decision;
    }
    if (appended.error().code != StoreErrc::wrong_expected_version || attempt >= eventstore::kConflictRetriesMax)
      return tl::unexpected(Failure{appended.error()});
  }
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

struct CoreSim::Impl {
  CoreSimOptions options;
  sagas::Country country = sagas::Country::dk;
  external_streams::StreamSpec core_stream;
  std::string adapter_stream;
  std::shared_ptr<spdlog::logger> log = logger();

  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  AccountCache account_cache;
  std::unique_ptr<adapter::HttpServer> http;
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

  // One account command in `tx`. `local` holds the states this transaction has reached;
  // the caller merges it into the cache once the transaction committed (or drops it).
  eventstore::CommandResult<AccountDecider> command(Transaction& tx, const std::string& account_id,
                                                    const AccountCommand& c, const eventstore::CommandContext& context,
                                                    std::map<std::string, AccountCache::Loaded>& local) {
    const auto stream = account_stream_name(account_id);
    auto it = local.find(stream);
    if (it == local.end()) it = local.emplace(stream, account_cache.get(stream)).first;
    return handle_account(*store, tx, eventstore::StreamId{stream}, c, context, it->second);
  }

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
      log->info("source jsonl lines={} usable={} skipped={}", jsonl->lines_read, planned, jsonl->lines_skipped);
      return {};
    }
    generator = GeneratorOptions{country, options.seed, options.invalid_share, options.accounts,
                                 options.amount_limit_minor};
    planned = options.transfers;
    log->info("source generator transfers={} seed={} invalid_share={}", planned, options.seed, options.invalid_share);
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
    if (options.invalid_share > 0) out.emplace_back(kForeignAccountId, *sagas::Currency::parse(kForeignCurrency));
    return out;
  }

  tl::expected<void, std::string> open_accounts() {
    const auto wanted = accounts_to_open();
    std::map<std::string, AccountCache::Loaded> local;
    auto opened = pool->transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
      local.clear();
      AccountProjection projection;
      std::int64_t count = 0;
      for (const auto& [id, currency] : wanted) {
        eventstore::CommandContext context{base::new_uuid(), "", nullptr, "open|" + id};
        auto result =
            command(tx, id, OpenAccount{id, sagas::Money{options.opening_balance_minor, currency}}, context, local);
        if (!result) {
          if (std::holds_alternative<StoreError>(result.error())) return tl::unexpected(store_error_of(result.error()));
          log->warn("account not opened account_id={} reason={}", id,
                    std::get<AccountRejection>(result.error()).message);
          continue;
        }
        if (!result->events.empty()) ++count;
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

  // Reserves one transfer in the batch's transaction: nullopt when skipped (done before,
  // or refused by the core).
  StoreResult<std::optional<Reserved>> reserve_one(Transaction& tx, const TransferRequest& r,
                                                   std::map<std::string, AccountCache::Loaded>& local,
                                                   AccountProjection& projection) {
    const auto seen = tx.exec_params(
        "select 1 from core_transfers where transfer_id = $1 union all select 1 from core_refused where transfer_id = $1",
        r.transfer_id);
    if (!seen.empty()) return std::optional<Reserved>{};
    const auto correlation_id = base::new_uuid();
    eventstore::CommandContext context{correlation_id, "", nullptr, "reserve|" + r.transfer_id};
    auto reserved = command(tx, r.account_id, ReserveFunds{r.transfer_id, r.amount}, context, local);
    if (!reserved) {
      if (std::holds_alternative<StoreError>(reserved.error())) return tl::unexpected(store_error_of(reserved.error()));
      const auto& rejection = std::get<AccountRejection>(reserved.error());
      tx.exec_params("insert into core_refused (transfer_id, account_id, reason) values ($1, $2, $3)", r.transfer_id,
                     r.account_id, std::string(to_string(rejection.code)));
      log->info("transfer refused by the core transfer_id={} reason={}", r.transfer_id, to_string(rejection.code));
      return std::optional<Reserved>{};
    }
    // No new event: reserved in an earlier run whose transfer row is this one's twin.
    if (reserved->events.empty()) return std::optional<Reserved>{};
    CLEARING_ASSERT(reserved->event_ids.size() == 1);
    projection.add(reserved->state);

    Reserved out{&r, correlation_id, {}};
    out.source.event_id = reserved->event_ids.front();
    out.source.stream_id = eventstore::StreamId{account_stream_name(r.account_id)};
    out.source.type = "FundsReserved";
    out.source.metadata.correlation_id = correlation_id;
    out.source.recorded_at = base::SystemClock{}.now();
    return std::optional<Reserved>{std::move(out)};
  }

  // Requests the batch's reserved transfers: their TransferRequested messages with one
  // batch append, their rows with one insert.
  StoreResult<void> request_all(Transaction& tx, const std::vector<Reserved>& reserved, const std::string& batch_id) {
    std::vector<external_streams::PendingAppend> appends;
    appends.reserve(reserved.size());
    for (const auto& one : reserved)
      appends.push_back({&core_stream,
                         external_streams::Draft{"TransferRequested", one.request->transfer_id, one.request->data,
                                                 false, one.correlation_id},
                         &one.source});
    auto appended = external_streams::append_external_batch(tx, appends);
    if (!appended) return tl::unexpected(appended.error());
    CLEARING_ASSERT(appended->size() == reserved.size());
    nlohmann::json rows = nlohmann::json::array();
    for (std::size_t i = 0; i < reserved.size(); ++i) {
      const auto& r = *reserved[i].request;
      const auto& message = (*appended)[i];
      CLEARING_ASSERT(message.source_event_id == reserved[i].source.event_id.value() && message.seq >= 1);
      rows.push_back({{"transfer_id", r.transfer_id}, {"account_id", r.account_id},
                      {"amount_minor", r.amount.minor_units}, {"currency", std::string(r.amount.currency.code())},
                      {"correlation_id", reserved[i].correlation_id},
                      {"reserved_event_id", reserved[i].source.event_id.value()},
                      {"stream_partition", message.partition}, {"stream_seq", message.seq},
                      {"expected_reason_code", r.expected_reason_code ? nlohmann::json(*r.expected_reason_code)
                                                                      : nlohmann::json(nullptr)}});
    }
    // requested_at: the batch's commit, as near as SQL can see it (set last, by the caller).
    tx.exec_params(
        "insert into core_transfers (transfer_id, account_id, amount_minor, currency, correlation_id,"
        " reserved_event_id, stream_partition, stream_seq, request_batch, expected_reason_code, requested_at)"
        " select transfer_id, account_id, amount_minor, currency, correlation_id, reserved_event_id,"
        " stream_partition, stream_seq, $2, expected_reason_code, clock_timestamp()"
        " from jsonb_to_recordset($1::jsonb) as x(transfer_id text, account_id text, amount_minor bigint,"
        " currency text, correlation_id text, reserved_event_id text, stream_partition int, stream_seq bigint,"
        " expected_reason_code text)",
        rows.dump(), batch_id);
    return {};
  }

  StoreResult<std::int64_t> publish_batch(const std::vector<TransferRequest>& batch) {
    std::map<std::string, AccountCache::Loaded> local;
    auto published = pool->transact_with_retry([&](Transaction& tx) -> StoreResult<std::int64_t> {
      local.clear();  // a retry starts again from the committed states
      const auto batch_id = base::new_uuid();
      std::vector<Reserved> reserved;
      AccountProjection projection;
      std::set<std::string> in_batch;  // a transfer id twice in one batch: the first one counts
      for (const auto& r : batch) {
        if (!in_batch.insert(r.transfer_id).second) continue;
        auto one = reserve_one(tx, r, local, projection);
        if (!one) return tl::unexpected(one.error());
        if (*one) reserved.push_back(std::move(**one));
      }
      if (reserved.empty()) return std::int64_t{0};
      if (auto requested = request_all(tx, reserved, batch_id); !requested) return tl::unexpected(requested.error());
      projection.write(tx);
      // The request instant is the batch's commit, as near as SQL can see it: set last.
      tx.exec_params("update core_transfers set requested_at = clock_timestamp() where request_batch = $1",
                     batch_id);
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
    const auto due = static_cast<std::int64_t>(std::floor(elapsed.count() * options.rate_per_s)) + 1 - sent;
    if (due >= 1) return std::min<std::int64_t>(due, options.publish_batch_max);
    const auto wait_ms = static_cast<std::int64_t>(1000.0 * (1 - due) / options.rate_per_s) + 1;
    pause(std::min(std::chrono::milliseconds(wait_ms), std::chrono::duration_cast<std::chrono::milliseconds>(kPacingSleepMax)));
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
        pause(std::min(kPublishRetryBackoffMax, std::chrono::milliseconds(50) * (1 << std::min(failures, 7))));
        continue;  // the same batch again: nothing of it was committed
      }
      failures = 0;
      next += count;
      requested_total += *published;
      processed.store(next);
    }
    publishing_done.store(next >= planned);
    log->info("publisher finished processed={} requested_now={} planned={}", next, requested_total, planned);
  }

  // ---- consumer ----

  void record_violation(Transaction& tx, const std::string& transfer_id, Violation violation,
                        const ExternalMessage& m) {
    tx.exec_params(
        "insert into core_violations (transfer_id, kind, message_type, stream, partition, seq, event_id)"
        " values ($1, $2, $3, $4, $5, $6, $7)",
        transfer_id, std::string(to_string(violation)), m.type, m.stream, m.partition, m.seq, m.event_id);
    log->error("outcome not applied transfer_id={} violation={} type={} seq={} correlation_id={}", transfer_id,
               to_string(violation), m.type, m.seq, m.correlation_id);
  }

  static std::optional<std::string> text(const Json& data, const char* name) {
    const auto it = data.find(name);
    if (it == data.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
    return it->get<std::string>();
  }

  tl::expected<void, MessageError> apply_incoming(Transaction& tx, const ExternalMessage& m) {
    const auto payment_id = text(m.data, "payment_id");
    if (!payment_id) return tl::unexpected(MessageError{MessageErrc::invalid_data, "payment_id is missing"});
    const auto amount = m.data.find("amount");
    std::optional<std::int64_t> minor;
    std::optional<std::string> currency;
    if (amount != m.data.end() && amount->is_object()) {
      if (auto it = amount->find("minor_units"); it != amount->end() && it->is_number_integer())
        minor = it->get<std::int64_t>();
      if (auto it = amount->find("currency"); it != amount->end() && it->is_string()) currency = it->get<std::string>();
    }
    tx.exec_params(
        "insert into core_incoming_payments (payment_id, amount_minor, currency, event_id) values ($1, $2, $3, $4)"
        " on conflict (payment_id) do nothing",
        *payment_id, minor.value_or(0), currency.value_or(""), m.event_id);
    return {};
  }

  tl::expected<void, MessageError> apply_outcome(Transaction& tx, const ExternalMessage& m) {
    const auto transfer_id = text(m.data, "transfer_id");
    if (!transfer_id) return tl::unexpected(MessageError{MessageErrc::invalid_data, "transfer_id is missing"});
    const auto row = tx.exec_params("select account_id from core_transfers where transfer_id = $1 for update",
                                    *transfer_id);
    if (row.empty()) {
      record_violation(tx, *transfer_id, Violation::unknown_transfer, m);
      return {};
    }
    const auto account_id = row[0][0].as<std::string>();
    if (m.type == "TransferPending") {
      tx.exec_params("update core_transfers set pending_seen = true where transfer_id = $1", *transfer_id);
      return {};
    }
    if (m.type == "TransferUnderInvestigation") {
      tx.exec_params("update core_transfers set under_investigation_seen = true where transfer_id = $1", *transfer_id);
      log->warn("transfer under investigation transfer_id={} correlation_id={}", *transfer_id, m.correlation_id);
      return {};
    }
    AccountCommand account_command = CompleteReservation{*transfer_id};
    std::string reason_code;
    if (m.type == "TransferRejected") {
      const auto code = text(m.data, "reason_code");
      if (!code) return tl::unexpected(MessageError{MessageErrc::invalid_data, "reason_code is missing"});
      reason_code = *code;
      if (reason_code == "DUPL") {
        // About a second request under this id: this core never sends one, and the
        // first request still gets its own outcome. Releasing here would free money
        // that may yet leave.
        tx.exec_params("update core_transfers set dupl_seen = dupl_seen + 1 where transfer_id = $1", *transfer_id);
        log->warn("DUPL rejection recorded, nothing released transfer_id={}", *transfer_id);
        return {};
      }
      account_command = ReleaseReservation{*transfer_id, reason_code};
    }
    eventstore::CommandContext context{m.correlation_id, m.event_id,
                                       {{"stream", m.stream}, {"partition", m.partition}, {"seq", m.seq}},
                                       m.event_id};
    // Read-only use of the cache: the consumer's transaction commits out of our sight.
    std::map<std::string, AccountCache::Loaded> local;
    auto result = command(tx, account_id, account_command, context, local);
    if (!result) {
      if (auto* error = std::get_if<StoreError>(&result.error()))
        // A pqxx failure is what rolls the consumer's batch back as a retryable error.
        throw pqxx::failure("account command failed: " + error->message);
      const auto violation = violation_of(account_command, std::get<AccountRejection>(result.error()));
      CLEARING_ASSERT(violation.has_value());
      record_violation(tx, *transfer_id, *violation, m);
      return {};
    }
    CLEARING_ASSERT(result->events.size() == 1);  // outcomes are never idempotent no-ops
    const bool succeeded = m.type == "TransferSucceeded";
    // Written at the end of the batch (end_batch), the first outcome per transfer: a
    // second one was recorded as a violation by the account above.
    if (outcome_seen.insert(*transfer_id).second)
      outcome_rows.push_back({{"transfer_id", *transfer_id},
                              {"status", succeeded ? "succeeded" : "rejected"},
                              {"reason_code", succeeded ? std::string() : reason_code},
                              {"clearing_reference", text(m.data, "clearing_reference").value_or("")},
                              {"outcome_event_id", m.event_id}});
    outcome_projection.add(result->state);
    log->debug("outcome applied transfer_id={} type={} correlation_id={}", *transfer_id, m.type, m.correlation_id);
    return {};
  }

  // What the consumer's batch gathers to write set-wise at its end (consumer thread only).
  AccountProjection outcome_projection;
  Json outcome_rows = Json::array();
  std::set<std::string> outcome_seen;

  external_streams::BatchScope batch_scope() {
    return {[this](Transaction&) {
              outcome_projection.clear();
              outcome_rows = Json::array();
              outcome_seen.clear();
            },
            [this](Transaction& tx) -> tl::expected<void, std::string> {
              if (!outcome_rows.empty())
                tx.exec_params(
                    "update core_transfers t set status = x.status, reason_code = x.reason_code,"
                    " clearing_reference = x.clearing_reference, outcome_at = clock_timestamp(),"
                    " outcome_event_id = x.outcome_event_id"
                    " from jsonb_to_recordset($1::jsonb) as x(transfer_id text, status text, reason_code text,"
                    " clearing_reference text, outcome_event_id text)"
                    " where t.transfer_id = x.transfer_id and t.status = 'open'",
                    outcome_rows.dump());
              outcome_projection.write(tx);
              return {};
            }};
  }

  external_streams::MessageApplier applier() {
    return [this](Transaction& tx, const ExternalMessage& m) -> tl::expected<void, MessageError> {
      if (m.type == "TransferSucceeded" || m.type == "TransferRejected" || m.type == "TransferPending" ||
          m.type == "TransferUnderInvestigation")
        return apply_outcome(tx, m);
      if (m.type == "IncomingPaymentReceived") return apply_incoming(tx, m);
      return tl::unexpected(MessageError{MessageErrc::unknown_type, "unknown event type " + m.type});
    };
  }

  external_streams::MessageParker parker() {
    return [this](Transaction& tx, const external_streams::RawMessage& raw, const MessageError& error,
                  const std::optional<ExternalMessage>& parsed) {
      const std::string correlation = parsed ? parsed->correlation_id : std::string();
      tx.exec_params(
          "insert into core_parked_messages (topic, partition, kafka_offset, reason_code, reason, correlation_id, raw)"
          " values ($1, $2, $3, $4, $5, $6, $7)",
          raw.topic, raw.partition, raw.offset, std::string(to_string(error.code)), error.message, correlation,
          raw.value);
      log->warn("message parked topic={} partition={} offset={} reason={} correlation_id={}", raw.topic, raw.partition,
                raw.offset, to_string(error.code), correlation);
    };
  }

  tl::expected<void, std::string> start() {
    if (started) return tl::unexpected(std::string("already started"));
    started = true;
    for (const auto* migrations : {&eventstore::eventstore_migrations(),
                                   &external_streams::external_streams_migrations(), &core_sim_migrations()}) {
      auto applied = eventstore::apply_migrations(*pool, *migrations);
      if (!applied) return tl::unexpected("migrations: " + applied.error().message);
    }
    const std::vector<external_streams::StreamSpec> streams{core_stream};
    if (auto ensured = external_streams::ensure_streams(*pool, streams); !ensured)
      return tl::unexpected("streams: " + ensured.error().message);
    if (auto loaded = load_source(); !loaded) return loaded;
    if (auto opened = open_accounts(); !opened) return opened;

    auto server = adapter::HttpServer::create(
        {.host = options.http_host, .port = options.http_port, .bearer_token = options.api_token});
    if (!server) return tl::unexpected("catch-up API: " + server.error());
    http = std::move(*server);
    adapter::add_catch_up_routes(*http, *pool);
    if (auto listening = http->start(); !listening) return tl::unexpected("catch-up API: " + listening.error());

    external_streams::KafkaClientOptions kafka;
    kafka.bootstrap_servers = options.kafka_bootstrap;
    kafka.client_id = options.kafka_client_id + "-relay";
    kafka.fetch_wait_max_ms = options.fetch_wait_max_ms;
    auto made_relay = external_streams::Relay::create(*pool, {.kafka = kafka});
    if (!made_relay) return tl::unexpected("relay: " + made_relay.error());
    relay = std::move(*made_relay);

    external_streams::ConsumerOptions consumer_options;
    consumer_options.kafka = kafka;
    consumer_options.kafka.client_id = options.kafka_client_id + "-consumer";
    consumer_options.group_id =
        options.consumer_group.empty() ? "core-sim-" + std::string(sagas::country_code_lower(country))
                                       : options.consumer_group;
    consumer_options.topics = {adapter_stream};
    external_streams::CatchUpFetcher fetcher;
    if (!options.adapter_catch_up_url.empty())
      fetcher = adapter::make_http_catch_up_fetcher({options.adapter_catch_up_url, options.adapter_api_token});
    auto made_consumer =
        external_streams::StreamConsumer::create(*pool, consumer_options, applier(), parker(), std::move(fetcher),
                                                 batch_scope());
    if (!made_consumer) return tl::unexpected("consumer: " + made_consumer.error());
    consumer = std::move(*made_consumer);

    relay->start();
    consumer->start();
    publisher = std::thread([this] { run_publisher(); });
    log->info("started country={} stream={} partitions={} catch_up_port={} planned={}",
              sagas::country_code_lower(country), core_stream.name, core_stream.partitions, http->port(), planned);
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
    auto result = pool->transact_with_retry([&](Transaction& tx) -> StoreResult<T> { return fn(tx); });
    if (!result) {
      log->warn("report query failed error=\"{}\"", result.error().message);
      return T{};
    }
    return *result;
  }

  Progress progress() const {
    Progress p = query<Progress>([](Transaction& tx) {
      Progress out;
      for (const auto& row : tx.exec("select status, count(*) from core_transfers group by status")) {
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

  Report report() const {
    Report r = query<Report>([](Transaction& tx) {
      Report out;
      for (const auto& row : tx.exec("select status, reason_code, count(*) from core_transfers group by 1, 2")) {
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
          "select count(*) filter (where pending_seen), count(*) filter (where under_investigation_seen),"
          " coalesce(sum(dupl_seen), 0),"
          " count(*) filter (where status <> 'open' and expected_reason_code is not null"
          "   and coalesce(reason_code, '') <> expected_reason_code)"
          " from core_transfers")[0];
      out.pending_seen = as_int(seen[0]);
      out.under_investigation_seen = as_int(seen[1]);
      out.duplicate_requests_reported = as_int(seen[2]);
      out.expectation_mismatches = as_int(seen[3]);
      for (const auto& row : tx.exec("select reason, count(*) from core_refused group by 1")) {
        out.refused += row[1].as<std::int64_t>();
        out.refused_by_reason[row[0].as<std::string>()] = row[1].as<std::int64_t>();
      }
      for (const auto& row : tx.exec("select kind, count(*) from core_violations group by 1")) {
        const auto n = row[1].as<std::int64_t>();
        switch (parse_violation(row[0].as<std::string>()).value_or(Violation::unknown_transfer)) {
          case Violation::double_completion: out.violations.double_completion += n; break;
          case Violation::completion_after_release: out.violations.completion_after_release += n; break;
          case Violation::release_after_completion: out.violations.release_after_completion += n; break;
          case Violation::double_release: out.violations.double_release += n; break;
          case Violation::unknown_transfer: out.violations.unknown_transfer += n; break;
        }
      }
      out.parked_messages = tx.exec("select count(*) from core_parked_messages")[0][0].as<std::int64_t>();
      out.incoming_payments = tx.exec("select count(*) from core_incoming_payments")[0][0].as<std::int64_t>();
      out.resolved_twice_in_ledger =
          tx.exec("select count(*) from (select data->>'transfer_id' from events"
                  " where type in ('ReservationCompleted', 'ReservationReleased') group by 1 having count(*) > 1) twice")
              [0][0].as<std::int64_t>();
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
      if (!times[0].is_null()) {
        const double first = as_double(times[0]);
        const double last_request = as_double(times[1]);
        const double end = as_int(times[4]) == 0 && !times[2].is_null() ? as_double(times[2]) : as_double(times[3]);
        out.elapsed_s = std::max(0.0, end - first);
        if (last_request > first) out.requested_per_s = static_cast<double>(out.requested) / (last_request - first);
        if (out.elapsed_s > 0)
          out.resolved_per_s = static_cast<double>(out.succeeded + out.rejected) / out.elapsed_s;
      }
      return StoreResult<Report>(std::move(out));
    });
    r.country = std::string(sagas::country_code_lower(country));
    r.planned = planned;
    r.source_lines_skipped = source_lines_skipped;
    r.resolved_exactly_once = r.violations.total() == 0 && r.still_open == 0 && r.resolved_twice_in_ledger == 0 &&
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
    if (impl_->publishing_done.load()) {
      const auto p = impl_->progress();
      if (p.open == 0) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!impl_->pause(kDonePollInterval)) return false;  // stopping
  }
}

}  // namespace clearing::core_sim
