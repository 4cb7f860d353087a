// bench_floor: the PostgreSQL server CPU that the fewest writes of one transfer cost, by
// batch size, on the project's real schema (its migrations, every index).
//
// It answers: if every stage of the pipeline wrote batches of B transfers with the fewest
// statements possible, what would PostgreSQL alone cost per transfer? A floor to set beside
// bench/e2e's "CPU µs per resolved transfer: postgres". Prints figures, never a verdict:
// there are no thresholds here.
//
// One script is B transfers through every stage of one side, one transaction per stage:
//   core     request (FundsReserved on the accounts' streams, core_transfers rows,
//            TransferRequested messages), relay (read the unpublished, move the mark),
//            outcome (consumer progress, ReservationCompleted, core_transfers settled);
//   adapter  consume (progress, the transfers' streams, TransferInitiated, work rows), claim
//            (lease the work rows), record (TransferSettled, work rows gone), derive (read the
//            new events, TransferSucceeded and OutgoingTransferSettled messages, the
//            subscription's checkpoint), relay (both streams: read, move the marks).
// Each stage writes its rows set-wise with one statement per table: ids made in the server
// by generate_series, payloads (of the sizes bench/e2e writes) constant in the statement
// text, rows looked up with `= any(array(select ...))` (an `in (subquery)` got a hash plan
// over the whole table). Every statement is prepared, and prepared again as the tables grow
// (eventstore/prepared.hpp), as the project's own statements whose plan depends on sizes.
//
// Left out, so a real pipeline costs more: application logic; JSON input parsing (the
// payloads are parsed once, when a statement is prepared); the projections transfer_status
// and core_accounts; the dispatcher's loads of transfer streams; dedupe probes (once-per-key
// messages, already applied input); NOTIFY after commit; Kafka.
//
// Each (side, batch size) runs on a fresh scratch database with that side's migrations,
// seeded like a running system: 5000 account streams on the core, the streams' partitions
// registered, inbound progress rows, subscription checkpoints. --writers threads, each on
// the partition (writer % 4), run scripts back to back; after a warm-up, a window of
// --seconds measures the server's CPU (postmaster and children, /proc: backends,
// autovacuum, checkpointer, WAL writer) and this process's (getrusage) against the
// transfers of the scripts completed in it. Run it through bench/floor, which starts a
// throwaway server beside it (and sets CLEARING_PG_DATA, which the CPU figures need).

#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/core_sim/core_sim_schema.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/eventstore/prepared.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/support/bench.hpp"
#include "clearing/support/bench_program.hpp"

namespace clearing::bench {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// The system the schema is seeded as: core-sim's account streams (--accounts 5000, named
// acct-0000 .. acct-4999), and config/dk.json's streams and partitions.
constexpr int kAccounts = 5000;
static_assert(kAccounts <= 10'000, "account ids have four digits");
constexpr int kPartitions = 4;
constexpr int kSettlementPartitions = 2;
constexpr const char* kCorePayments = "core.dk.payments.v1";
constexpr const char* kAdapterPayments = "adapter.dk.payments.v1";
constexpr const char* kAdapterSettlements = "adapter.dk.settlements.v1";

// Named limits (TIGER_STYLE): every input and loop of the benchmark is bounded.
constexpr std::size_t kBatchSizeMax = 1000;
constexpr std::size_t kWritersMax = 64;
constexpr double kSecondsMin = 0.5;
constexpr double kSecondsMax = 600;
constexpr Seconds kWarmup{1.0};
constexpr std::chrono::milliseconds kFailurePollInterval{100};

// A batch's transfers are numbered first + 1 .. first + B, first a multiple of
// kBatchSizeMax from here: unique within a cell, and as long as the prototype's ids.
constexpr std::int64_t kFirstBatchNumber = 100'000'000;

// ---- Payloads: constants of the statements, of the sizes bench/e2e writes -------------------

constexpr const char* kCorrelationId = "af73e608-250c-8f04-b793-d5dd3df0e302";
constexpr const char* kMetadata =
    R"({"source": {"stream": "core.dk.payments.v1", "partition": 2, "seq": 2456}, )"
    R"("causation_id": "017910b6-feff-42c3-a61c-53c49490662c", )"
    R"("correlation_id": "af73e608-250c-8f04-b793-d5dd3df0e302"})";
// TransferRequested, TransferInitiated and the work row's submit request.
constexpr const char* kRequest =
    R"({"amount": {"currency": "DKK", "minor_units": 1394261}, )"
    R"("debtor": {"name": "Account holder 174", "account": {"id": "3358-6013162435", "scheme": "BBAN"}}, )"
    R"("creditor": {"name": "Payee 7147", "account": {"id": "4002-3441617178", "scheme": "BBAN"}}, )"
    R"("account_id": "acct-0174", "transfer_id": "7f4a42cc-3f13-8484-8ad2-af6004ff9e04", )"
    R"("requested_at": "2026-11-27T07:39:17.699Z", "remittance_info": "Invoice 3"})";
// FundsReserved, TransferSettled, TransferSucceeded, OutgoingTransferSettled.
constexpr const char* kSettled =
    R"({"transfer_id": "7f4a42cc-3f13-8484-8ad2-af6004ff9e04", )"
    R"("clearing_reference": "CLR-000000012345", "settlement_date": "2026-11-27", )"
    R"("amount": {"currency": "DKK", "minor_units": 1394261}})";
constexpr const char* kCompleted = R"({"transfer_id": "7f4a42cc-3f13-8484-8ad2-af6004ff9e04"})";

// ---- Statements -----------------------------------------------------------------------------

// A prepared statement whose text is made at start (the payloads are spliced in).
struct Statement {
  std::string name;
  std::string sql;
  eventstore::PreparedSql prepared() const { return {name.c_str(), sql.c_str()}; }
};

// Parameters, the same in every statement that has them: $1 the batch's first transfer
// number (or account number), $2 the batch size, $3 the partition. Statements of one
// partition's marks and progress take $1 the partition, $2 the batch size.
constexpr const char* kBatchRows = "generate_series(1, $2::int) g";

std::string transfer_ids(const char* prefix) {
  return fmt::format("'{}' || ($1::bigint + g)", prefix);
}

std::string account_ids() {
  return fmt::format("'acct-' || lpad((($1::int + g) % {})::text, 4, '0')", kAccounts);
}

// `= any(array(select ...))`: the planner probes the key index once per id.
std::string any_of(const std::string& ids) {
  return fmt::format("any(array(select {} from {}))", ids, kBatchRows);
}

// One event on each of the batch's streams, which exist: their version rows moved with one
// statement, the events inserted from what it returned.
Statement append_to_streams(const char* name, const std::string& stream_ids, const char* type,
                            const char* data) {
  return {name,
          fmt::format("with up as (update event_streams set version = version + 1"
                      " where stream_id = {} returning stream_id, version)"
                      " insert into events (stream_id, version, event_id, type, data, metadata)"
                      " select stream_id, version, gen_random_uuid(), '{}', '{}'::jsonb,"
                      " '{}'::jsonb from up",
                      any_of(stream_ids), type, data, kMetadata)};
}

// The batch's messages on one partition of an outgoing stream: its head moved by B, the
// messages inserted with the seqs below the new head.
Statement publish(const char* name, const char* stream, const char* type, const char* data) {
  return {name,
          fmt::format("with h as (update external_stream_seqs set head = head + $2::int"
                      " where stream = '{0}' and partition = $3::int returning head)"
                      " insert into external_events (stream, partition, seq, event_id, type,"
                      " entity_key, data, source_event_id, correlation_id, occurred_at)"
                      " select '{0}', $3::int, h.head - $2::int + g, gen_random_uuid(), '{1}', {2},"
                      " '{3}'::jsonb, gen_random_uuid(), '{4}', now() from h, {5}",
                      stream, type, transfer_ids("T"), data, kCorrelationId, kBatchRows)};
}

// The relay's read of one partition: B messages after its published mark.
Statement relay_read(const char* name, const char* stream, const char* columns) {
  return {name,
          fmt::format("select {1} from external_events where stream = '{0}'"
                      " and partition = $1::int and seq > (select published from"
                      " external_stream_published where stream = '{0}' and partition = $1::int)"
                      " order by seq limit $2::int",
                      stream, columns)};
}

Statement relay_mark(const char* name, const char* stream) {
  return {name, fmt::format("update external_stream_published set published = published + $2::int"
                            " where stream = '{}' and partition = $1::int",
                            stream)};
}

// A consumer's progress on one partition of an inbound stream, moved by B messages.
Statement consume_progress(const char* name, const char* stream) {
  return {name, fmt::format("update inbound_stream_progress set last_seq = last_seq + $2::int,"
                            " kafka_offset = kafka_offset + $2::int, updated_at = now()"
                            " where stream = '{}' and partition = $1::int",
                            stream)};
}

struct CoreStatements {
  Statement reserve =
      append_to_streams("floor_core_reserve", account_ids(), "FundsReserved", kSettled);
  Statement record_requests{
      "floor_core_record_requests",
      fmt::format("insert into core_transfers (transfer_id, account_id, amount_minor, currency,"
                  " correlation_id, reserved_event_id, stream_partition, stream_seq, request_batch,"
                  " requested_at) select {0}, 'acct-0001', 100, 'DKK', '{1}', '{1}', $3::int, g,"
                  " 'b1', now() from {2}",
                  transfer_ids("T"), kCorrelationId, kBatchRows)};
  Statement publish_requests =
      publish("floor_core_publish_requests", kCorePayments, "TransferRequested", kRequest);
  Statement read_unpublished = relay_read(
      "floor_core_read_unpublished", kCorePayments,
      "seq, event_id::text, type, entity_key, data::text, source_event_id::text, correlation_id");
  Statement mark_published = relay_mark("floor_core_mark_published", kCorePayments);
  Statement consume_outcomes = consume_progress("floor_core_consume_outcomes", kAdapterPayments);
  Statement complete =
      append_to_streams("floor_core_complete", account_ids(), "ReservationCompleted", kCompleted);
  Statement settle_transfers{
      "floor_core_settle_transfers",
      fmt::format("update core_transfers set status = 'succeeded', outcome_at ="
                  " now() where transfer_id = {}",
                  any_of(transfer_ids("T")))};
};

struct AdapterStatements {
  Statement consume_requests = consume_progress("floor_adapter_consume_requests", kCorePayments);
  Statement create_streams{"floor_adapter_create_streams",
                           fmt::format("insert into event_streams (stream_id, version) select {}, 1"
                                       " from {}",
                                       transfer_ids("transfer-T"), kBatchRows)};
  Statement initiate{
      "floor_adapter_initiate",
      fmt::format("insert into events (stream_id, version, event_id, type, data, metadata)"
                  " select {}, 1, gen_random_uuid(), 'TransferInitiated', '{}'::jsonb, '{}'::jsonb"
                  " from {}",
                  transfer_ids("transfer-T"), kRequest, kMetadata, kBatchRows)};
  Statement schedule{
      "floor_adapter_schedule",
      fmt::format("insert into transfer_work (transfer_id, action, attempt, due_at_ms,"
                  " correlation_id, caused_by, submit_request) select {}, 'submit', 1, 0, '{}',"
                  " gen_random_uuid(), '{}'::jsonb from {}",
                  transfer_ids("T"), kCorrelationId, kRequest, kBatchRows)};
  Statement claim{"floor_adapter_claim",
                  fmt::format("update transfer_work set lease_owner = 'a1', lease_until_ms = 1,"
                              " claims = claims + 1 where transfer_id = {}",
                              any_of(transfer_ids("T")))};
  Statement record_settled = append_to_streams(
      "floor_adapter_record_settled", transfer_ids("transfer-T"), "TransferSettled", kSettled);
  Statement unschedule{
      "floor_adapter_unschedule",
      fmt::format("delete from transfer_work where transfer_id = {}", any_of(transfer_ids("T")))};
  // The derivation's read of the newest events ($1: the batch size; 2 events a transfer).
  Statement derive_read{
      "floor_adapter_derive_read",
      "select position, stream_id, version, type, data::text, metadata::text"
      " from events order by transaction_id desc, position desc limit 2 * $1::int"};
  Statement publish_outcomes =
      publish("floor_adapter_publish_outcomes", kAdapterPayments, "TransferSucceeded", kSettled);
  Statement publish_settlements = publish("floor_adapter_publish_settlements", kAdapterSettlements,
                                          "OutgoingTransferSettled", kSettled);
  Statement checkpoint{"floor_adapter_checkpoint",
                       "update subscription_checkpoints set position = position + 1,"
                       " updated_at = now() where name = $1"};
  Statement read_unpublished_outcomes =
      relay_read("floor_adapter_read_unpublished_outcomes", kAdapterPayments,
                 "seq, event_id::text, type, entity_key, data::text");
  Statement mark_published_outcomes =
      relay_mark("floor_adapter_mark_published_outcomes", kAdapterPayments);
  Statement read_unpublished_settlements =
      relay_read("floor_adapter_read_unpublished_settlements", kAdapterSettlements,
                 "seq, event_id::text, type, entity_key, data::text");
  Statement mark_published_settlements =
      relay_mark("floor_adapter_mark_published_settlements", kAdapterSettlements);
};

// ---- Scripts --------------------------------------------------------------------------------

// What one script execution works on.
struct ScriptInput {
  std::int64_t first_transfer = 0;  // the transfers first_transfer + 1 .. + batch
  int batch = 0;
  int partition = 0;
  int first_account = 0;  // the core's accounts first_account + 1 .. + batch, modulo kAccounts
  std::string checkpoint;
};

// One stage's statements on its transaction, counted, each checked for the rows it must
// touch: the seeds and the ids make every row exist, so another count is a bug here.
class StageStatements {
 public:
  StageStatements(Transaction& tx, std::uint64_t& count) : tx_(tx), count_(count) {}

  template <class... Args>
  void exec(const Statement& statement, std::size_t rows_expected, Args&&... args) {
    const auto result =
        eventstore::exec_prepared_here(tx_, statement.prepared(), std::forward<Args>(args)...);
    ++count_;
    const auto rows = result.columns() > 0 ? result.size() : result.affected_rows();
    CLEARING_ASSERT_MSG(rows == rows_expected, statement.name.c_str());
  }

 private:
  Transaction& tx_;
  std::uint64_t& count_;
};

// One writer thread's way through the scripts: each stage one committed transaction on
// the pool. It counts what committed, for the main thread to read; alone on its cache line.
class alignas(64) Writer {
 public:
  explicit Writer(eventstore::ConnectionPool& pool) : pool_(pool) {}

  template <class F>
  StoreResult<void> run(F&& statements) {
    std::uint64_t count = 0;
    auto done = pool_.transact([&](Transaction& tx) -> StoreResult<void> {
      count = 0;
      StageStatements stage(tx, count);
      statements(stage);
      return {};
    });
    if (!done) return done;
    commits_.fetch_add(1, std::memory_order_relaxed);
    statements_.fetch_add(count, std::memory_order_relaxed);
    return {};
  }
  void script_done() { scripts_.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t scripts() const { return scripts_.load(std::memory_order_relaxed); }
  std::uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  std::uint64_t statements() const { return statements_.load(std::memory_order_relaxed); }

 private:
  eventstore::ConnectionPool& pool_;
  std::atomic<std::uint64_t> scripts_{0}, commits_{0}, statements_{0};
};

StoreResult<void> core_script(Writer& writer, const CoreStatements& s, const ScriptInput& in) {
  const auto b = static_cast<std::size_t>(in.batch);
  auto done = writer.run([&](StageStatements& stage) {
    stage.exec(s.reserve, b, in.first_account, in.batch);
    stage.exec(s.record_requests, b, in.first_transfer, in.batch, in.partition);
    stage.exec(s.publish_requests, b, in.first_transfer, in.batch, in.partition);
  });
  if (!done) return done;
  done = writer.run([&](StageStatements& stage) {
    stage.exec(s.read_unpublished, b, in.partition, in.batch);
    stage.exec(s.mark_published, 1, in.partition, in.batch);
  });
  if (!done) return done;
  return writer.run([&](StageStatements& stage) {
    stage.exec(s.consume_outcomes, 1, in.partition, in.batch);
    stage.exec(s.complete, b, in.first_account, in.batch);
    stage.exec(s.settle_transfers, b, in.first_transfer, in.batch);
  });
}

StoreResult<void> adapter_script(Writer& writer, const AdapterStatements& s,
                                 const ScriptInput& in) {
  const auto b = static_cast<std::size_t>(in.batch);
  const int settlement_partition = in.partition % kSettlementPartitions;
  auto done = writer.run([&](StageStatements& stage) {
    stage.exec(s.consume_requests, 1, in.partition, in.batch);
    stage.exec(s.create_streams, b, in.first_transfer, in.batch);
    stage.exec(s.initiate, b, in.first_transfer, in.batch);
    stage.exec(s.schedule, b, in.first_transfer, in.batch);
  });
  if (!done) return done;
  done = writer.run(
      [&](StageStatements& stage) { stage.exec(s.claim, b, in.first_transfer, in.batch); });
  if (!done) return done;
  done = writer.run([&](StageStatements& stage) {
    stage.exec(s.record_settled, b, in.first_transfer, in.batch);
    stage.exec(s.unschedule, b, in.first_transfer, in.batch);
  });
  if (!done) return done;
  done = writer.run([&](StageStatements& stage) {
    stage.exec(s.derive_read, 2 * b, in.batch);
    stage.exec(s.publish_outcomes, b, in.first_transfer, in.batch, in.partition);
    stage.exec(s.publish_settlements, b, in.first_transfer, in.batch, settlement_partition);
    stage.exec(s.checkpoint, 1, in.checkpoint);
  });
  if (!done) return done;
  return writer.run([&](StageStatements& stage) {
    stage.exec(s.read_unpublished_outcomes, b, in.partition, in.batch);
    stage.exec(s.mark_published_outcomes, 1, in.partition, in.batch);
    stage.exec(s.read_unpublished_settlements, b, settlement_partition, in.batch);
    stage.exec(s.mark_published_settlements, 1, settlement_partition, in.batch);
  });
}

// ---- Sides: schema and seed -----------------------------------------------------------------

enum class Side { core, adapter };

const char* name_of(Side side) { return side == Side::core ? "core" : "adapter"; }

std::vector<eventstore::Migration> migrations_of(Side side) {
  std::vector<eventstore::Migration> all;
  for (const auto* list :
       {&eventstore::eventstore_migrations(), &external_streams::external_streams_migrations(),
        side == Side::core ? &core_sim::core_sim_migrations() : &adapter::adapter_migrations()})
    all.insert(all.end(), list->begin(), list->end());
  return all;
}

void check(const StoreResult<void>& done, const std::string& what) {
  if (!done)
    throw std::runtime_error(fmt::format("{}: {} ({})", what, done.error().message,
                                         eventstore::to_string(done.error().code)));
}

// The rows a running system has before the first transfer: what the statements update.
void seed(eventstore::ConnectionPool& pool, Side side, std::size_t writers) {
  std::vector<external_streams::StreamSpec> outgoing;
  if (side == Side::core) {
    outgoing = {{kCorePayments, kPartitions}};
  } else {
    outgoing = {{kAdapterPayments, kPartitions}, {kAdapterSettlements, kSettlementPartitions}};
  }
  check(external_streams::ensure_streams(pool, outgoing), "registering the outgoing streams");
  check(pool.transact([&](Transaction& tx) -> StoreResult<void> {
    tx.exec_params(
        "insert into inbound_stream_progress (stream, partition)"
        " select $1, p from generate_series(0, $2 - 1) p",
        side == Side::core ? kAdapterPayments : kCorePayments, kPartitions);
    if (side == Side::core) {
      tx.exec_params(
          "insert into event_streams (stream_id, version)"
          " select 'acct-' || lpad(g::text, 4, '0'), 1 from generate_series(0, $1 - 1) g",
          kAccounts);
    } else {
      tx.exec_params(
          "insert into subscription_checkpoints (name, transaction_id, position)"
          " select 'floor-' || c, '1'::xid8, 0 from generate_series(0, $1 - 1) c",
          static_cast<int>(writers));
    }
    return {};
  }),
        "seeding");
}

std::unique_ptr<eventstore::ConnectionPool> open_pool(const std::string& url, Side side,
                                                      std::size_t writers) {
  eventstore::DatabaseOptions database;
  database.url = url;
  database.connections_max = writers + 1;  // the writers', and one for set-up
  database.application_name = "bench-floor";
  database.notify_after_commit = false;  // the statements append events behind the store's back
  auto pool = std::make_unique<eventstore::ConnectionPool>(database);
  const auto migrations = migrations_of(side);
  auto applied = eventstore::apply_migrations(*pool, migrations);
  if (!applied)
    throw std::runtime_error(
        fmt::format("{} migrations: {}", name_of(side), applied.error().message));
  return pool;
}

// ---- Running a cell ------------------------------------------------------------------------

struct Options {
  std::string database_url;
  std::vector<std::size_t> batch_sizes{10, 20, 50, 100};
  std::size_t writers = 4;
  double seconds = 10;
  std::vector<std::string> sides{"core", "adapter"};
  bool quick = false;
};

// CPU seconds of this process, every thread.
double client_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

struct Sample {
  Clock::time_point at;
  double postgres_cpu_s = 0;
  double client_cpu_s = 0;
  std::uint64_t scripts = 0;
  std::uint64_t commits = 0;
  std::uint64_t statements = 0;
};

Sample sample(const std::vector<std::unique_ptr<Writer>>& writers) {
  const auto postgres = postgres_cpu_s();
  if (!postgres) throw std::runtime_error("the PostgreSQL server's CPU cannot be read (/proc)");
  Sample s{Clock::now(), *postgres, client_cpu_s(), 0, 0, 0};
  for (const auto& w : writers) {
    s.scripts += w->scripts();
    s.commits += w->commits();
    s.statements += w->statements();
  }
  return s;
}

struct CellResult {
  Side side = Side::core;
  std::size_t batch = 0;
  double seconds = 0;
  double transfers = 0;
  double commits = 0;
  double statements = 0;
  double postgres_cpu_s = 0;
  double client_cpu_s = 0;

  double transfers_per_second() const { return transfers / seconds; }
  double per_transfer(double value) const { return transfers > 0 ? value / transfers : 0; }
  double postgres_us_per_transfer() const { return per_transfer(postgres_cpu_s * 1e6); }
};

CellResult figures(Side side, std::size_t batch, const Sample& begin, const Sample& end) {
  CellResult r;
  r.side = side;
  r.batch = batch;
  r.seconds = Seconds(end.at - begin.at).count();
  CLEARING_ASSERT(r.seconds > 0 && end.scripts >= begin.scripts);
  r.transfers = static_cast<double>((end.scripts - begin.scripts) * batch);
  r.commits = static_cast<double>(end.commits - begin.commits);
  r.statements = static_cast<double>(end.statements - begin.statements);
  r.postgres_cpu_s = end.postgres_cpu_s - begin.postgres_cpu_s;
  r.client_cpu_s = end.client_cpu_s - begin.client_cpu_s;
  return r;
}

// The first error of a cell's writers; the others stop at their next script.
class FirstFailure {
 public:
  void set(std::string message) {
    std::lock_guard lock(mutex_);
    if (!failed_.exchange(true)) message_ = std::move(message);
  }
  bool failed() const { return failed_.load(); }
  std::string message() const {
    std::lock_guard lock(mutex_);
    return message_;
  }

 private:
  mutable std::mutex mutex_;
  std::atomic<bool> failed_{false};
  std::string message_;
};

// Sleeps for `duration`, or less when a writer failed.
void sleep_unless_failed(const FirstFailure& failure, Seconds duration) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(duration);
  while (!failure.failed()) {
    const auto now = Clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(std::min<Clock::duration>(kFailurePollInterval, until - now));
  }
}

struct Statements {
  CoreStatements core;
  AdapterStatements adapter;
};

CellResult run_cell(const Options& options, const Statements& statements, Side side,
                    std::size_t batch) {
  CLEARING_ASSERT(batch > 0 && batch <= kBatchSizeMax);
  CLEARING_ASSERT(options.writers > 0 && options.writers <= kWritersMax);
  const auto label = fmt::format("{} B={}", name_of(side), batch);
  fmt::print(stderr, "[bench-floor] {}: fresh database, migrations, seed\n", label);
  ScratchDatabase database(options.database_url, false);
  const auto pool = open_pool(database.url(), side, options.writers);
  seed(*pool, side, options.writers);

  std::vector<std::unique_ptr<Writer>> writers;
  for (std::size_t w = 0; w < options.writers; ++w)
    writers.push_back(std::make_unique<Writer>(*pool));
  std::atomic<std::int64_t> next_batch{kFirstBatchNumber};
  FirstFailure failure;
  // Declared last, so destroyed first: each asked to stop and joined, also when a sample
  // throws, while what the threads use still lives.
  std::vector<std::jthread> threads;
  for (std::size_t w = 0; w < options.writers; ++w) {
    threads.emplace_back([&, w](std::stop_token stop) {
      Writer& writer = *writers[w];
      std::mt19937 random(static_cast<std::uint32_t>(w));
      std::uniform_int_distribution<int> account(0, kAccounts - 1);
      ScriptInput in;
      in.batch = static_cast<int>(batch);
      in.partition = static_cast<int>(w % kPartitions);
      in.checkpoint = fmt::format("floor-{}", w);
      while (!stop.stop_requested() && !failure.failed()) {
        in.first_transfer = next_batch.fetch_add(1) * static_cast<std::int64_t>(kBatchSizeMax);
        in.first_account = account(random);
        const auto done = side == Side::core ? core_script(writer, statements.core, in)
                                             : adapter_script(writer, statements.adapter, in);
        if (!done) {
          failure.set(fmt::format("{} writer {}: database error ({}): {}", label, w,
                                  eventstore::to_string(done.error().code), done.error().message));
          return;
        }
        writer.script_done();
      }
    });
  }
  fmt::print(stderr, "[bench-floor] {}: {} writers, {:.0f} s warm-up, then {:.1f} s measured\n",
             label, options.writers, kWarmup.count(), options.seconds);
  sleep_unless_failed(failure, kWarmup);
  const Sample begin = sample(writers);
  sleep_unless_failed(failure, Seconds(options.seconds));
  const Sample end = sample(writers);
  threads.clear();
  if (failure.failed()) throw std::runtime_error(failure.message());
  const auto result = figures(side, batch, begin, end);
  fmt::print(stderr, "[bench-floor] {}: {:.0f} transfers/s, postgres {:.0f} µs/transfer\n", label,
             result.transfers_per_second(), result.postgres_us_per_transfer());
  return result;
}

// ---- Output ---------------------------------------------------------------------------------

std::string joined(const auto& values) { return fmt::format("{}", fmt::join(values, ",")); }

void print_header(const Options& options) {
  fmt::print(
      "bench_floor: the fewest writes of B transfers per stage on the real schema (PostgreSQL "
      "{}); sides {}; batch sizes {}; {} writers per side (partition = writer % {}); {:.1f} s "
      "measured per (side, batch size) after a {:.0f} s warm-up, each on a fresh database; {} "
      "cores shared by server and client{}\n",
      query_value(options.database_url, "show server_version"), joined(options.sides),
      joined(options.batch_sizes), options.writers, kPartitions, options.seconds, kWarmup.count(),
      std::thread::hardware_concurrency(), options.quick ? " (--quick)" : "");
  fmt::print(
      "  postgres: CPU of the server's processes (backends, autovacuum, checkpointer, WAL "
      "writer); client: this process; commits and statements (BEGIN/COMMIT left out) as the "
      "client ran them\n\n");
  fmt::print("{:<8} {:>5} {:>12} {:>9} {:>12} {:>12} {:>11} {:>11}\n", "side", "B", "transfers/s",
             "pg cores", "pg µs/tr", "client µs/tr", "commits/tr", "stmts/tr");
}

void print_cell(const CellResult& r) {
  fmt::print("{:<8} {:>5} {:>12.0f} {:>9.2f} {:>12.0f} {:>12.0f} {:>11.3f} {:>11.3f}\n",
             name_of(r.side), r.batch, r.transfers_per_second(), r.postgres_cpu_s / r.seconds,
             r.postgres_us_per_transfer(), r.per_transfer(r.client_cpu_s * 1e6),
             r.per_transfer(r.commits), r.per_transfer(r.statements));
}

void print_sums(const std::vector<CellResult>& results, const Options& options) {
  fmt::print(
      "\npostgres CPU µs per transfer, both sides (the floor beside bench/e2e's \"CPU µs per "
      "resolved transfer: postgres\"):\n");
  for (const auto batch : options.batch_sizes) {
    double core = 0, adapter = 0;
    for (const auto& r : results) {
      if (r.batch != batch) continue;
      if (r.side == Side::core) core = r.postgres_us_per_transfer();
      if (r.side == Side::adapter) adapter = r.postgres_us_per_transfer();
    }
    fmt::print("  B={:<4} core {:.0f} + adapter {:.0f} = {:.0f}\n", batch, core, adapter,
               core + adapter);
  }
}

// ---- Wiring ---------------------------------------------------------------------------------

int run(const Options& options) {
  if (!postgres_cpu_s())
    throw std::runtime_error(
        "the PostgreSQL server's CPU cannot be read: CLEARING_PG_DATA must name the data folder "
        "of a server on this machine (run bench/floor, which starts one)");
  const Statements statements;
  print_header(options);
  std::vector<CellResult> results;
  for (const auto batch : options.batch_sizes) {
    for (const auto& side : options.sides) {
      results.push_back(
          run_cell(options, statements, side == "core" ? Side::core : Side::adapter, batch));
      print_cell(results.back());
    }
  }
  if (options.sides.size() == 2) print_sums(results, options);
  return 0;
}

// The command line: every option with its limits (and its default, shown by --help).
void define_options(CLI::App& app, Options& options) {
  support::add_database_url_option(app, options.database_url,
                                   "libpq URI of the server (fresh databases are made on it)");
  app.add_option("--batch-sizes", options.batch_sizes,
                 "transfers per script (each stage's batch), comma separated")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, kBatchSizeMax));
  app.add_option("--writers", options.writers, "connections (threads) per side")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, kWritersMax));
  app.add_option("--seconds", options.seconds, "measured seconds per (side, batch size)")
      ->capture_default_str()
      ->check(CLI::Range(kSecondsMin, kSecondsMax));
  app.add_option("--sides", options.sides, "the sides to run, comma separated")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"core", "adapter"}));
  app.add_flag("--quick", options.quick, "2 s per (side, batch size), batch sizes 10 and 50");
}

void apply_quick(Options& options, const CLI::App& app) {
  if (!options.quick) return;
  if (app.count("--seconds") == 0) options.seconds = 2;
  if (app.count("--batch-sizes") == 0) options.batch_sizes = {10, 50};
}

// What CLI11's checks cannot say: lists without repeats (a sum line per batch size).
std::optional<std::string> invalid(const Options& options) {
  const std::set<std::size_t> batches(options.batch_sizes.begin(), options.batch_sizes.end());
  if (batches.size() != options.batch_sizes.size()) return "--batch-sizes lists a batch size twice";
  const std::set<std::string> sides(options.sides.begin(), options.sides.end());
  if (sides.size() != options.sides.size()) return "--sides lists a side twice";
  return std::nullopt;
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  clearing::bench::Options options;
  CLI::App app{
      "The PostgreSQL server CPU that the fewest writes of one transfer cost, by batch size, on "
      "the real schema: a floor for bench/e2e's postgres CPU per transfer. Prints figures; no "
      "thresholds."};
  clearing::bench::define_options(app, options);
  CLI11_PARSE(app, argc, argv);
  clearing::bench::apply_quick(options, app);
  if (const auto error = clearing::bench::invalid(options)) {
    fmt::print(stderr, "bench_floor: {}\n", *error);
    return 2;
  }
  return clearing::support::run_benchmark("bench_floor",
                                          [&] { return clearing::bench::run(options); });
}
