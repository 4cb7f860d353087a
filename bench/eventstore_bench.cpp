// bench_eventstore: the event store measured against the same server's raw ceiling.
//
// Prints figures, never a verdict: there are no thresholds here. In one run, on a fresh
// database of the server named by CLEARING_TEST_DATABASE_URL (or --database-url):
//   1. appends: for every (writers, events per transaction) cell, events/s through
//      EventStore::append, and beside it single-row INSERTs into a plain table with the
//      same writers and rows per transaction (the ceiling), and their ratio;
//   2. catch-up reads of everything written: read_all_after in pages, and a Subscription
//      catching up from zero with a no-op handler;
//   3. live latency from commit to handler: one paced writer, one started Subscription.
// Each writer is a thread of its own with a connection of its own. Run it through
// bench/eventstore, which starts a throwaway server beside it.

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/eventstore/subscription.hpp"
#include "clearing/support/bench.hpp"
#include "clearing/support/bench_program.hpp"

namespace clearing::bench {
namespace {

using eventstore::Checkpoint;
using eventstore::ConnectionPool;
using eventstore::DatabaseOptions;
using eventstore::EventData;
using eventstore::EventId;
using eventstore::EventStore;
using eventstore::ExpectedVersion;
using eventstore::Metadata;
using eventstore::RecordedEvent;
using eventstore::StreamId;
using eventstore::StreamVersion;
using eventstore::Subscription;
using eventstore::SubscriptionOptions;
using eventstore::Transaction;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Named limits (TIGER_STYLE): every loop and input of the benchmark is bounded.
constexpr std::size_t kWritersMax = 64;
constexpr std::size_t kPoolSpareConnections = 4;  // the subscriptions' own transactions
constexpr double kSecondsMax = 600;
constexpr int kLiveRateMax = 10'000;
// A stream is one payment flow: after this many appends its writer starts a new one,
// so streams stay the size real ones have and the first append of each is no_stream.
constexpr std::int64_t kAppendsPerStream = 10;
// Store and raw alternate within a cell (see run_append_cell).
constexpr int kSlicesPerCell = 3;
constexpr std::size_t kReadPageSize = 1000;
constexpr std::size_t kCatchUpBatchSize = 1000;  // the subscription's batch, like the pages
constexpr std::size_t kReadPagesMax = 100'000;
constexpr std::chrono::seconds kCatchUpTimeout{600};
constexpr std::chrono::seconds kLiveDrainTimeout{30};
constexpr std::chrono::milliseconds kStatusPollInterval{2};

struct Options {
  std::string database_url;
  double seconds = 3;
  double warmup_seconds = 0.5;
  bool quick = false;
  std::vector<std::size_t> writers{1, 8, 32};
  std::vector<std::size_t> batch_sizes{1, 10, 100};
  std::string expected = "exact";
  int live_rate_per_second = 200;
  bool without_notify = false;
  bool appends_only = false;
  bool keep_database = false;
};

// ---- The raw table and the environment ---------------------------------------------

constexpr const char* kRawTableSql = R"sql(
create table raw_inserts (
  id   bigint generated always as identity primary key,
  data jsonb not null
))sql";

constexpr const char* kRawInsertSql = "insert into raw_inserts (data) values ($1::jsonb)";

void print_environment(const std::string& url, const Options& options) {
  support::print_server(
      url, {"fsync", "synchronous_commit", "shared_buffers", "wal_sync_method", "full_page_writes",
            "commit_delay", "max_wal_size", "max_connections"});
  support::print_machine("server and benchmark");
  fmt::print(
      "cells: {:.1f} s measured per side, in {} alternating store/raw slices, each after a {:.1f} "
      "s "
      "warm-up{}\n",
      options.seconds, kSlicesPerCell, options.warmup_seconds, options.quick ? " (--quick)" : "");
}

// ---- Payloads ---------------------------------------------------------------------

// A realistic small event: what an accepted incoming payment looks like, about 200
// bytes of data, with correlation, causation and source metadata.
EventData payment_event(std::uint64_t sequence) {
  nlohmann::json data = {
      {"payment_id", base::new_uuid()},
      {"clearing_reference", fmt::format("NICS{:012}", sequence)},
      {"amount_minor", 125'000 + static_cast<std::int64_t>(sequence % 1000)},
      {"currency", "NOK"},
      {"debtor_account", "NO9386011117947"},
      {"creditor_account", "NO8330001234567"},
  };
  Metadata metadata{
      base::new_uuid(), base::new_uuid(),
      nlohmann::json{{"stream", "incoming-payments"}, {"partition", 3}, {"seq", sequence}},
      nullptr};
  return EventData{EventId{base::new_uuid()}, "IncomingPaymentAccepted", std::move(data),
                   std::move(metadata)};
}

// The same bytes as one JSON document, for the raw table.
std::string raw_document(const EventData& event) {
  return nlohmann::json{{"id", event.event_id.value()},
                        {"type", event.type},
                        {"data", event.data},
                        {"metadata", event.metadata.to_json()}}
      .dump();
}

// ---- Running a cell -----------------------------------------------------------------

// One writer: each step is one committed transaction of `units` rows or events.
class Writer {
 public:
  virtual ~Writer() = default;
  // The number of rows committed, or the reason nothing was.
  virtual tl::expected<std::uint64_t, std::string> step() = 0;
};

// Appends to streams of its own, batch events per append (one transaction each).
class StoreWriter final : public Writer {
 public:
  StoreWriter(EventStore& store, std::string stream_prefix, std::size_t batch_size, bool exact)
      : store_(store), prefix_(std::move(stream_prefix)), batch_size_(batch_size), exact_(exact) {
    CLEARING_ASSERT(batch_size_ > 0 && batch_size_ <= eventstore::kEventsPerAppendMax);
  }

  tl::expected<std::uint64_t, std::string> step() override {
    batch_.clear();
    for (std::size_t i = 0; i < batch_size_; ++i) batch_.push_back(payment_event(sequence_++));
    const StreamId stream{fmt::format("{}-{}", prefix_, stream_number_)};
    const auto expected = !exact_                 ? ExpectedVersion::any()
                          : version_.value() == 0 ? ExpectedVersion::no_stream()
                                                  : ExpectedVersion::exactly(version_);
    auto appended = store_.append(stream, expected, batch_);
    if (!appended) {
      next_stream();  // the version is unknown after a failure: go on elsewhere
      return tl::unexpected(fmt::format("{}: {}", eventstore::to_string(appended.error().code),
                                        appended.error().message));
    }
    CLEARING_ASSERT(!appended->already_appended);
    CLEARING_ASSERT(!exact_ || appended->next_expected_version.value() ==
                                   version_.value() + static_cast<std::int64_t>(batch_size_));
    version_ = appended->next_expected_version;
    if (++appends_in_stream_ >= kAppendsPerStream) next_stream();
    return batch_size_;
  }

  const std::vector<EventData>& last_batch() const { return batch_; }

 private:
  void next_stream() {
    ++stream_number_;
    appends_in_stream_ = 0;
    version_ = StreamVersion{0};
  }

  EventStore& store_;
  std::string prefix_;
  std::size_t batch_size_;
  bool exact_;
  std::vector<EventData> batch_;
  std::uint64_t sequence_ = 0;
  std::uint64_t stream_number_ = 0;
  std::int64_t appends_in_stream_ = 0;
  StreamVersion version_{0};
};

// The ceiling: one prepared single-row INSERT per row, committed every batch_size rows.
class RawInsertWriter final : public Writer {
 public:
  RawInsertWriter(const std::string& url, std::size_t batch_size, std::string document)
      : connection_(url), batch_size_(batch_size), document_(std::move(document)) {
    connection_.prepare("raw_insert", kRawInsertSql);
  }

  tl::expected<std::uint64_t, std::string> step() override {
    try {
      pqxx::work tx(connection_);
      for (std::size_t i = 0; i < batch_size_; ++i) tx.exec_prepared("raw_insert", document_);
      tx.commit();
      return batch_size_;
    } catch (const std::exception& e) {
      return tl::unexpected(std::string(e.what()));
    }
  }

 private:
  pqxx::connection connection_;
  std::size_t batch_size_;
  std::string document_;
};

// What committed during the measured part of one or more slices of a cell.
struct CellResult {
  std::uint64_t units = 0;
  std::uint64_t transactions = 0;
  std::uint64_t errors = 0;
  double seconds = 0;
  std::string first_error;

  double units_per_second() const { return seconds > 0 ? static_cast<double>(units) / seconds : 0; }
  double transactions_per_second() const {
    return seconds > 0 ? static_cast<double>(transactions) / seconds : 0;
  }
  void add(const CellResult& slice) {
    units += slice.units;
    transactions += slice.transactions;
    errors += slice.errors;
    seconds += slice.seconds;
    if (first_error.empty()) first_error = slice.first_error;
  }
};

// Counters of one writer thread, on a cache line of their own.
struct alignas(64) WriterCounters {
  std::atomic<std::uint64_t> units{0};
  std::atomic<std::uint64_t> transactions{0};
  std::atomic<std::uint64_t> errors{0};
};

struct Totals {
  std::uint64_t units = 0;
  std::uint64_t transactions = 0;
  Clock::time_point at;
};

Totals sum(const std::vector<WriterCounters>& counters) {
  Totals totals{0, 0, Clock::now()};
  for (const auto& c : counters) {
    totals.units += c.units.load(std::memory_order_relaxed);
    totals.transactions += c.transactions.load(std::memory_order_relaxed);
  }
  return totals;
}

// Runs every writer on a thread of its own; counts what commits between the end of the
// warm-up and the end of the window.
CellResult run_cell(std::vector<std::unique_ptr<Writer>>& writers, Seconds warmup, Seconds window) {
  CLEARING_ASSERT(!writers.empty() && writers.size() <= kWritersMax);
  std::vector<WriterCounters> counters(writers.size());
  std::atomic<bool> stopping{false};
  std::mutex error_mutex;
  std::string first_error;
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < writers.size(); ++i) {
    threads.emplace_back([&, i] {
      while (!stopping.load(std::memory_order_relaxed)) {
        auto committed = writers[i]->step();
        if (committed) {
          counters[i].units.fetch_add(*committed, std::memory_order_relaxed);
          counters[i].transactions.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        counters[i].errors.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = committed.error();
      }
    });
  }
  std::this_thread::sleep_for(warmup);
  const Totals begin = sum(counters);
  std::this_thread::sleep_for(window);
  const Totals end = sum(counters);
  stopping = true;
  for (auto& t : threads) t.join();

  CellResult result;
  result.seconds = Seconds(end.at - begin.at).count();
  CLEARING_ASSERT(result.seconds > 0);
  result.units = end.units - begin.units;
  result.transactions = end.transactions - begin.transactions;
  for (const auto& c : counters) result.errors += c.errors.load();
  result.first_error = std::move(first_error);
  return result;
}

// ---- 1. Appends ---------------------------------------------------------------------

struct AppendCell {
  std::size_t writers;
  std::size_t batch_size;
  CellResult store;
  CellResult raw;
};

// The store and the raw ceiling take turns, kSlicesPerCell slices each, so that a
// change in the machine's background load during a cell weighs on both sides alike.
AppendCell run_append_cell(EventStore& store, const std::string& url, const Options& options,
                           std::size_t writers, std::size_t batch_size, std::size_t cell_number) {
  std::vector<std::unique_ptr<Writer>> store_writers;
  std::vector<std::unique_ptr<Writer>> raw_writers;
  const std::string document = raw_document(payment_event(0));
  for (std::size_t w = 0; w < writers; ++w) {
    store_writers.push_back(
        std::make_unique<StoreWriter>(store, fmt::format("bench-c{}-w{}", cell_number, w),
                                      batch_size, options.expected == "exact"));
    raw_writers.push_back(std::make_unique<RawInsertWriter>(url, batch_size, document));
  }
  const Seconds warmup{options.warmup_seconds};
  const Seconds slice{options.seconds / kSlicesPerCell};
  AppendCell cell{writers, batch_size, {}, {}};
  for (int i = 0; i < kSlicesPerCell; ++i) {
    cell.store.add(run_cell(store_writers, warmup, slice));
    cell.raw.add(run_cell(raw_writers, warmup, slice));
  }
  return cell;
}

void print_append_header(const Options& options) {
  const auto sample = payment_event(0);
  fmt::print(
      "\nappends: expected version {}; a stream takes {} appends, then its writer starts a new "
      "one\n",
      options.expected == "exact" ? "exact (no_stream on a stream's first append, then exactly(v))"
                                  : "any()",
      kAppendsPerStream);
  fmt::print(
      "payload: data {} bytes, metadata {} bytes; raw row: the same envelope as one jsonb ({} "
      "bytes)\n",
      sample.data.dump().size(), sample.metadata.to_json().dump().size(),
      raw_document(sample).size());
  fmt::print(
      "raw: one prepared single-row INSERT per row into (bigint identity, jsonb), no triggers,\n"
      "     committed every <events/tx> rows; each writer a thread with its own connection.\n"
      "     The raw side makes one round trip per row, the store one per append, so at larger\n"
      "     batches the store can pass the 'ceiling'.\n");
  if (options.without_notify)
    fmt::print(
        "NOTE: the appends of the matrix send no notification after commit "
        "(--without-notify)\n");
  fmt::print("\n{:>7} {:>9} {:>14} {:>12} {:>10} {:>12} {:>10} {:>7}\n", "writers", "events/tx",
             "store events/s", "raw rows/s", "store/raw", "store tx/s", "raw tx/s", "errors");
}

void print_append_cell(const AppendCell& cell) {
  const double store = cell.store.units_per_second();
  const double raw = cell.raw.units_per_second();
  fmt::print("{:>7} {:>9} {:>14.0f} {:>12.0f} {:>9.0f}% {:>12.0f} {:>10.0f} {:>7}\n", cell.writers,
             cell.batch_size, store, raw, raw > 0 ? store / raw * 100 : 0,
             cell.store.transactions_per_second(), cell.raw.transactions_per_second(),
             cell.store.errors + cell.raw.errors);
  for (const auto* r : {&cell.store, &cell.raw})
    if (!r->first_error.empty()) fmt::print("        first error: {}\n", r->first_error);
}

void run_appends(EventStore& store, const std::string& url, const Options& options) {
  print_append_header(options);
  std::size_t cell_number = 0;
  for (const auto writers : options.writers)
    for (const auto batch_size : options.batch_sizes)
      print_append_cell(run_append_cell(store, url, options, writers, batch_size, cell_number++));
}

// ---- 2. Catch-up reads --------------------------------------------------------------

void run_catch_up_reads(EventStore& store, const std::string& url) {
  const auto total = std::stoull(query_value(url, "select count(*) from events"));
  fmt::print("\ncatch-up reads over all {} events:\n", total);

  std::uint64_t read = 0;
  Checkpoint checkpoint;
  const auto read_start = Clock::now();
  for (std::size_t page = 0; page < kReadPagesMax; ++page) {
    auto events = store.read_all_after(checkpoint, kReadPageSize);
    CLEARING_ASSERT_MSG(events.has_value(), "read_all_after failed");
    if (events->empty()) break;
    read += events->size();
    checkpoint = Checkpoint::after(events->back());
  }
  const double read_seconds = Seconds(Clock::now() - read_start).count();
  CLEARING_ASSERT(read == total);
  fmt::print("  read_all_after, pages of {:>4}:        {:>9.0f} events/s ({:.2f} s)\n",
             kReadPageSize, static_cast<double>(read) / read_seconds, read_seconds);

  SubscriptionOptions subscription_options;
  subscription_options.name = "bench-catch-up";
  subscription_options.batch_size = kCatchUpBatchSize;
  Subscription subscription(
      store, subscription_options,
      [](Transaction&, const RecordedEvent&) -> eventstore::HandlerResult { return {}; });
  const auto subscription_start = Clock::now();
  subscription.start();
  while (subscription.status().events_handled < total &&
         Clock::now() - subscription_start < kCatchUpTimeout)
    std::this_thread::sleep_for(kStatusPollInterval);
  const double subscription_seconds = Seconds(Clock::now() - subscription_start).count();
  const auto handled = subscription.status().events_handled;
  subscription.stop();
  fmt::print(
      "  Subscription from zero, batches of {:>4}: {:>9.0f} events/s ({:.2f} s, no-op handler{})\n",
      kCatchUpBatchSize, static_cast<double>(handled) / subscription_seconds, subscription_seconds,
      handled < total ? ", TIMED OUT" : "");
}

// ---- 3. Live latency ----------------------------------------------------------------

// Starts the subscription at the end of the log: the latency run measures live
// delivery, not a catch-up.
void seed_checkpoint_at_end(const std::string& url, const std::string& name) {
  query_value(url,
              "insert into subscription_checkpoints (name, transaction_id, position)"
              " select '" +
                  name +
                  "', transaction_id, position from events"
                  " order by transaction_id desc, position desc limit 1");
}

// The live run's writer: one append of one event every 1/rate s for --seconds, each kept by
// event id with the clock read before the call and after it returned.
struct Written {
  Clock::time_point before_append;
  Clock::time_point after_commit;
};

struct PacedAppends {
  std::unordered_map<std::string, Written> written;
  std::uint64_t errors = 0;
  double seconds = 0;  // from the first append to the last one's return
};

PacedAppends paced_appends(EventStore& store, const Options& options) {
  PacedAppends out;
  StoreWriter writer(store, "bench-live", 1, true);
  const auto period =
      std::chrono::duration_cast<Clock::duration>(Seconds(1.0 / options.live_rate_per_second));
  const auto appends = static_cast<std::size_t>(options.seconds * options.live_rate_per_second);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < appends; ++i) {
    std::this_thread::sleep_until(start + period * static_cast<std::int64_t>(i));
    const auto before = Clock::now();
    auto appended = writer.step();
    const auto after = Clock::now();
    if (!appended) {
      ++out.errors;
      continue;
    }
    out.written.emplace(writer.last_batch().front().event_id.value(), Written{before, after});
  }
  out.seconds = Seconds(Clock::now() - start).count();
  return out;
}

// The bounds of commit -> handler from the writer's and the handler's clock reads.
void print_live_latency(const PacedAppends& appends,
                        const std::unordered_map<std::string, Clock::time_point>& seen_at,
                        const Options& options, const SubscriptionOptions& subscription_options) {
  std::vector<double> append_ms, from_return_ms, from_call_ms;
  std::size_t missing = 0;
  for (const auto& [id, w] : appends.written) {
    append_ms.push_back(ms(w.after_commit - w.before_append));
    const auto it = seen_at.find(id);
    if (it == seen_at.end()) {
      ++missing;
      continue;
    }
    from_return_ms.push_back(ms(it->second - w.after_commit));
    from_call_ms.push_back(ms(it->second - w.before_append));
  }
  fmt::print(
      "\nlive latency: one writer, 1 event per append, paced at {}/s for {:.1f} s (achieved "
      "{:.0f}/s);\n"
      "a started Subscription (batch {}, poll interval {} ms) whose handler reads steady_clock.\n"
      "The commit happens inside append(): the writer keeps steady_clock before the call and\n"
      "after it returned (post-commit) in a map by event id; the two give the bounds.\n",
      options.live_rate_per_second, options.seconds,
      static_cast<double>(appends.written.size()) / appends.seconds,
      subscription_options.batch_size, subscription_options.poll_interval.count());
  print_distribution("append() call                         ", append_ms);
  print_distribution("commit -> handler (from append return)", from_return_ms);
  print_distribution("commit -> handler (from append call)  ", from_call_ms);
  if (missing > 0 || appends.errors > 0)
    fmt::print("  {} appended events not seen by the handler within {} s, {} append errors\n",
               missing, kLiveDrainTimeout.count(), appends.errors);
}

void run_live_latency(EventStore& store, const std::string& url, const Options& options) {
  const std::string name = "bench-live";
  seed_checkpoint_at_end(url, name);

  // The handler's clock reads, keyed by event id; touched only by the subscription's
  // thread, and read here after stop() joined it.
  std::unordered_map<std::string, Clock::time_point> seen_at;
  std::atomic<std::uint64_t> seen_count{0};
  SubscriptionOptions subscription_options;
  subscription_options.name = name;
  Subscription subscription(store, subscription_options,
                            [&](Transaction&, const RecordedEvent& e) -> eventstore::HandlerResult {
                              seen_at.emplace(e.event_id.value(), Clock::now());
                              seen_count.fetch_add(1);
                              return {};
                            });
  subscription.start();
  const auto appends = paced_appends(store, options);
  const auto drain_start = Clock::now();
  while (seen_count.load() < appends.written.size() &&
         Clock::now() - drain_start < kLiveDrainTimeout)
    std::this_thread::sleep_for(kStatusPollInterval);
  subscription.stop();
  print_live_latency(appends, seen_at, options, subscription_options);
}

// ---- Wiring -------------------------------------------------------------------------

std::unique_ptr<ConnectionPool> open_store_pool(const std::string& url, const Options& options,
                                                bool notify_after_commit = true) {
  DatabaseOptions database;
  database.url = url;
  database.notify_after_commit = notify_after_commit;
  const auto writers_max = *std::max_element(options.writers.begin(), options.writers.end());
  database.connections_max = writers_max + kPoolSpareConnections;
  database.application_name = "bench-eventstore";
  auto pool = std::make_unique<ConnectionPool>(database);
  auto applied = eventstore::apply_migrations(*pool, eventstore::eventstore_migrations());
  if (!applied) throw std::runtime_error("migrations failed: " + applied.error().message);
  return pool;
}

int run(const Options& options) {
  ScratchDatabase database(options.database_url, options.keep_database);
  auto pool = open_store_pool(database.url(), options);
  EventStore store(*pool);
  query_value(database.url(), kRawTableSql);
  print_environment(database.url(), options);

  if (options.without_notify) {
    auto silent_pool = open_store_pool(database.url(), options, false);
    EventStore silent(*silent_pool);
    run_appends(silent, database.url(), options);
  } else {
    run_appends(store, database.url(), options);
  }
  if (options.appends_only) return 0;
  run_catch_up_reads(store, database.url());
  run_live_latency(store, database.url(), options);
  return 0;
}

void apply_quick(Options& options, const CLI::App& app) {
  if (!options.quick) return;
  if (app.count("--seconds") == 0) options.seconds = 1;
  if (app.count("--warmup-seconds") == 0) options.warmup_seconds = 0.2;
  if (app.count("--writers") == 0) options.writers = {1, 32};
  if (app.count("--batch-sizes") == 0) options.batch_sizes = {1, 100};
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  using clearing::bench::Options;
  Options options;
  CLI::App app{
      "The event store's append, read and live-latency figures against the same server's raw "
      "INSERT ceiling. Prints figures; no thresholds."};
  clearing::support::add_database_url_option(
      app, options.database_url, "libpq URI of the server (a fresh database is made on it)");
  app.add_option("--seconds", options.seconds, "measured seconds per cell, and of the latency run")
      ->check(CLI::Range(0.1, clearing::bench::kSecondsMax));
  app.add_option("--warmup-seconds", options.warmup_seconds, "unmeasured seconds before each cell")
      ->check(CLI::Range(0.0, clearing::bench::kSecondsMax));
  app.add_flag("--quick", options.quick,
               "reduced matrix (1 and 32 writers, 1 and 100 events/tx), 1 s cells");
  app.add_option("--writers", options.writers, "writer counts, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(std::size_t{1}, clearing::bench::kWritersMax));
  app.add_option("--batch-sizes", options.batch_sizes,
                 "events (rows) per transaction, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(std::size_t{1}, clearing::eventstore::kEventsPerAppendMax));
  app.add_option("--expected", options.expected, "expected version of the store's appends")
      ->check(CLI::IsMember({"exact", "any"}));
  app.add_option("--live-rate", options.live_rate_per_second,
                 "appends per second in the latency run")
      ->check(CLI::Range(1, clearing::bench::kLiveRateMax));
  app.add_flag(
      "--without-notify", options.without_notify,
      "the append matrix's appends send no notification after commit (to measure its cost)");
  app.add_flag("--appends-only", options.appends_only, "skip the read and latency parts");
  app.add_flag("--keep-database", options.keep_database,
               "do not drop the scratch database at the end");
  CLI11_PARSE(app, argc, argv);
  clearing::bench::apply_quick(options, app);
  return clearing::support::run_benchmark("bench_eventstore",
                                          [&] { return clearing::bench::run(options); });
}
