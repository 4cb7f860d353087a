// bench_saga: the Transfer saga's throughput through adapter::Dispatcher against the
// in-process clearing mock, over a real PostgreSQL.
//
// Prints figures, never a verdict: there are no thresholds here. For every cell of
// (mock latency) x (dispatchers sharing the database), on a fresh database of the server
// named by CLEARING_TEST_DATABASE_URL (or --database-url):
//   1. N valid transfers are initiated up front, --initiate-batch InitiateTransfer
//      commands per transaction (TransferService::execute inside pool.transact), and the
//      wall-clock instant after each batch's commit is kept for its transfers;
//   2. the dispatchers start (each one an instance of its own: its own pool, store,
//      TransferService and ClearingClient, as two processes would have) and drain them;
//   3. from the events table: the terminal event's recorded_at (TransferSettled or
//      TransferRejected) per transfer, so wall time = last terminal event - dispatcher
//      start, and latency = terminal recorded_at - initiate commit.
// Because everything is initiated before the dispatchers start, "initiate -> terminal"
// includes the time a transfer waited in the queue: it describes draining a backlog,
// not the latency of one transfer on an idle system. The clearing call itself is shown
// separately (latency_ms on the terminal event, measured by the client).
// Run it through bench/saga, which starts a throwaway server beside it.

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/support/bench.hpp"
#include "clearing/support/bench_program.hpp"

namespace clearing::bench {
namespace {

// The requests, the retry policy and the schema are the tests' (adapter/testing/saga_fixture.hpp).
using testing::fast_policy;
using testing::migrate;

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;
using Seconds = std::chrono::duration<double>;

// Named limits (TIGER_STYLE): every input and loop of the benchmark is bounded.
constexpr int kTransfersMax = 1'000'000;
constexpr int kInitiateBatchMax = 1'000;
constexpr int kDispatchersMax = 8;
constexpr int kLatencyMsMax = 10'000;
constexpr int kInFlightMax = 1'024;
constexpr int kCellTimeoutSecondsMax = 3'600;
constexpr std::size_t kPoolConnectionsPerInstance = 4;  // the dispatcher uses one at a time
constexpr std::chrono::milliseconds kProgressPoll{20};

struct Options {
  std::string database_url;
  int transfers = 5000;
  int initiate_batch = 100;
  int in_flight_max = 64;
  int claim_batch_max = 64;
  std::vector<int> latencies_ms{0, 50};
  std::vector<int> dispatcher_counts{1, 2};
  int mock_threads = 2;
  int cell_timeout_seconds = 120;
  bool quick = false;
  bool keep_database = false;
  // One info line per clearing call or batch would be measured too: quiet by default.
  std::string log_level = "warn";
};

// ---- Figures ----------------------------------------------------------------------------

double wall_ms(WallClock::time_point t) {
  return std::chrono::duration<double, std::milli>(t.time_since_epoch()).count();
}

// ---- One adapter instance -------------------------------------------------------------

// What one process of the adapter would hold: its own pool, store, service, client and
// dispatcher, all on the shared database and the one mock.
struct Instance {
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<adapter::TransferService> transfers;
  std::unique_ptr<clearing_client::ClearingClient> client;
  std::unique_ptr<adapter::Dispatcher> dispatcher;
};

std::unique_ptr<eventstore::ConnectionPool> open_pool(const std::string& url,
                                                      const std::string& name) {
  eventstore::DatabaseOptions database;
  database.url = url;
  database.connections_max = kPoolConnectionsPerInstance;
  database.application_name = name;
  return std::make_unique<eventstore::ConnectionPool>(database);
}

Instance make_instance(const std::string& url, const std::string& mock_url, const Options& options,
                       const base::Clock& clock, int number) {
  Instance instance;
  const auto name = fmt::format("bench-saga-{}", number);
  instance.pool = open_pool(url, name);
  instance.store = std::make_unique<eventstore::EventStore>(*instance.pool);
  instance.transfers = std::make_unique<adapter::TransferService>(*instance.store);
  clearing_client::ClientOptions client_options;
  client_options.base_url = mock_url;
  client_options.bearer_token = "mock-token";
  client_options.request_timeout_ms = 5'000;
  client_options.connect_timeout_ms = 1'000;
  client_options.in_flight_max = options.in_flight_max;  // the client must not be the limit
  client_options.pool_connections_max = options.in_flight_max;
  auto client = clearing_client::ClearingClient::start(client_options);
  if (!client) throw std::runtime_error("clearing client: " + client.error().message);
  instance.client = std::move(*client);
  adapter::DispatcherOptions dispatcher_options;
  dispatcher_options.owner = name;
  dispatcher_options.in_flight_max = options.in_flight_max;
  dispatcher_options.claim_batch_max = options.claim_batch_max;
  dispatcher_options.policy = fast_policy();
  dispatcher_options.jitter_seed = static_cast<std::uint64_t>(number + 1);
  instance.dispatcher = std::make_unique<adapter::Dispatcher>(*instance.transfers, *instance.client,
                                                              clock, dispatcher_options);
  return instance;
}

// ---- One cell ---------------------------------------------------------------------------

struct CellFigures {
  double initiate_seconds = 0;
  double drain_seconds = 0;  // dispatcher start -> last terminal event
  int terminal = 0;
  std::int64_t calls = 0;
  std::vector<std::int64_t> calls_per_dispatcher;
  std::map<std::string, std::int64_t> answers_by_class;
  std::int64_t answers_stale = 0, record_failures = 0;
  std::int64_t mock_requests = 0, mock_executions = 0, mock_in_flight_peak = 0;
  std::map<std::string, int> terminal_types;
  std::vector<double> initiate_to_terminal_ms, start_to_terminal_ms, call_ms;
};

// Initiates every transfer, batch by batch; returns each transfer's commit instant.
std::unordered_map<std::string, WallClock::time_point> initiate_all(
    adapter::TransferService& transfers, eventstore::ConnectionPool& pool, const base::Clock& clock,
    const Options& options) {
  std::unordered_map<std::string, WallClock::time_point> committed_at;
  std::vector<sagas::InitiateTransfer> batch;
  for (int first = 0; first < options.transfers; first += options.initiate_batch) {
    const int count = std::min(options.initiate_batch, options.transfers - first);
    batch.clear();
    for (int i = 0; i < count; ++i)
      batch.push_back(testing::make_initiate(first + i, testing::RequestKind::valid, clock.now()));
    auto done =
        pool.transact_with_retry([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
          for (const auto& command : batch) {
            auto result =
                transfers.execute(tx, command, {command.correlation_id, "bench-core", nullptr, ""});
            if (!result) {
              if (auto* error = std::get_if<eventstore::StoreError>(&result.error()))
                return tl::unexpected(*error);
              throw std::runtime_error("InitiateTransfer refused for transfer " +
                                       command.request.transfer_id);
            }
            CLEARING_ASSERT(!result->events.empty());
          }
          return {};
        });
    if (!done) throw std::runtime_error("initiate batch failed: " + done.error().message);
    const auto now = WallClock::now();
    for (const auto& command : batch) committed_at.emplace(command.request.transfer_id, now);
  }
  CLEARING_ASSERT(static_cast<int>(committed_at.size()) == options.transfers);
  return committed_at;
}

int terminal_count(pqxx::connection& connection) {
  pqxx::nontransaction tx(connection);
  return tx
      .exec("select count(*) from transfer_status where status in ('succeeded', 'rejected')")[0][0]
      .as<int>();
}

void read_outcomes(const std::string& url,
                   const std::unordered_map<std::string, WallClock::time_point>& committed_at,
                   WallClock::time_point dispatch_start, CellFigures& figures) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(
      "select stream_id, type, extract(epoch from recorded_at)::float8 * 1000,"
      " coalesce((data->>'latency_ms')::float8, -1)"
      " from events where type in ('TransferSettled', 'TransferRejected')");
  const std::string prefix = "transfer-";
  double last_ms = wall_ms(dispatch_start);
  for (const auto& row : rows) {
    const auto stream = row[0].as<std::string>();
    const auto it = committed_at.find(stream.substr(prefix.size()));
    CLEARING_ASSERT(stream.rfind(prefix, 0) == 0 && it != committed_at.end());
    const double recorded_ms = row[2].as<double>();
    ++figures.terminal_types[row[1].as<std::string>()];
    figures.initiate_to_terminal_ms.push_back(recorded_ms - wall_ms(it->second));
    figures.start_to_terminal_ms.push_back(recorded_ms - wall_ms(dispatch_start));
    if (row[3].as<double>() >= 0) figures.call_ms.push_back(row[3].as<double>());
    last_ms = std::max(last_ms, recorded_ms);
  }
  figures.drain_seconds = (last_ms - wall_ms(dispatch_start)) / 1000.0;
}

CellFigures run_cell(const Options& options, int latency_ms, int dispatchers) {
  ScratchDatabase database(options.database_url, options.keep_database);
  base::SystemClock clock;
  CellFigures figures;

  clearing_mock::MockOptions mock_options;
  mock_options.threads = options.mock_threads;
  mock_options.faults.latency_ms = latency_ms;
  auto mock = clearing_mock::MockServer::start(mock_options);
  if (!mock) throw std::runtime_error("clearing mock: " + mock.error());

  std::vector<Instance> instances;
  for (int i = 0; i < dispatchers; ++i)
    instances.push_back(make_instance(database.url(), (*mock)->base_url(), options, clock, i));
  migrate(*instances.front().pool);

  const auto initiate_start = Clock::now();
  const auto committed_at =
      initiate_all(*instances.front().transfers, *instances.front().pool, clock, options);
  figures.initiate_seconds = Seconds(Clock::now() - initiate_start).count();

  pqxx::connection progress(database.url());
  const auto dispatch_start = WallClock::now();
  const auto deadline = Clock::now() + std::chrono::seconds(options.cell_timeout_seconds);
  for (auto& instance : instances) instance.dispatcher->start();
  while (terminal_count(progress) < options.transfers && Clock::now() < deadline)
    std::this_thread::sleep_for(kProgressPoll);
  for (auto& instance : instances) instance.dispatcher->stop();
  figures.terminal = terminal_count(progress);

  for (auto& instance : instances) {
    const auto stats = instance.dispatcher->stats();
    figures.calls += stats.calls_started;
    figures.calls_per_dispatcher.push_back(stats.calls_started);
    figures.answers_stale += stats.answers_stale;
    figures.record_failures += stats.record_failures;
    for (const auto& [name, count] : stats.answers_by_class)
      figures.answers_by_class[name] += count;
  }
  const auto mock_stats = (*mock)->state().stats();
  figures.mock_requests = mock_stats.requests_total;
  figures.mock_executions = mock_stats.executions_total;
  figures.mock_in_flight_peak = mock_stats.in_flight_peak;
  read_outcomes(database.url(), committed_at, dispatch_start, figures);
  return figures;
}

void print_cell(const Options& options, int latency_ms, int dispatchers, const CellFigures& f) {
  fmt::print(
      "\n== mock latency {} ms, {} dispatcher{} (in_flight_max {} each, claim_batch_max {})\n",
      latency_ms, dispatchers, dispatchers == 1 ? "" : "s", options.in_flight_max,
      options.claim_batch_max);
  fmt::print("  initiate: {} transfers in {:.2f} s ({:.0f} transfers/s, {} per transaction)\n",
             options.transfers, f.initiate_seconds, options.transfers / f.initiate_seconds,
             options.initiate_batch);
  const double rate = f.drain_seconds > 0 ? f.terminal / f.drain_seconds : 0;
  fmt::print("  drain:    {} of {} terminal in {:.2f} s wall  ->  {:.0f} transfers/s{}\n",
             f.terminal, options.transfers, f.drain_seconds, rate,
             f.terminal < options.transfers ? "  (TIMED OUT)" : "");
  std::string classes, per_dispatcher, types;
  for (const auto& [name, count] : f.answers_by_class)
    classes += fmt::format(" {}={}", name, count);
  for (const auto calls : f.calls_per_dispatcher) per_dispatcher += fmt::format(" {}", calls);
  for (const auto& [name, count] : f.terminal_types) types += fmt::format(" {}={}", name, count);
  fmt::print("  calls:    {} made (per dispatcher:{}), answers:{}, stale {}, record failures {}\n",
             f.calls, per_dispatcher, classes, f.answers_stale, f.record_failures);
  fmt::print("  mock:     {} requests, {} executions, peak {} in flight; terminal events:{}\n",
             f.mock_requests, f.mock_executions, f.mock_in_flight_peak, types);
  print_distribution("initiate commit -> terminal event ", f.initiate_to_terminal_ms,
                     DistributionLayout::columns);
  print_distribution("dispatcher start -> terminal event", f.start_to_terminal_ms,
                     DistributionLayout::columns);
  print_distribution("clearing call (client latency_ms) ", f.call_ms, DistributionLayout::columns);
}

void print_environment(const Options& options) {
  support::print_server(options.database_url, {"fsync", "synchronous_commit"});
  support::print_machine("server, mock, dispatchers and benchmark");
  std::string latencies, counts;
  for (const auto l : options.latencies_ms) latencies += fmt::format(" {}", l);
  for (const auto c : options.dispatcher_counts) counts += fmt::format(" {}", c);
  fmt::print(
      "config: transfers={} initiate_batch={} (InitiateTransfer commands per transaction, all "
      "before "
      "the dispatchers start)\n"
      "        in_flight_max={} claim_batch_max={} per dispatcher (client in_flight_max the same), "
      "idle_poll=20 ms, lease=30 s\n"
      "        mock latencies ms:{}  dispatchers:{}  mock threads={}  no faults; fresh database "
      "per "
      "cell{}\n",
      options.transfers, options.initiate_batch, options.in_flight_max, options.claim_batch_max,
      latencies, counts, options.mock_threads, options.quick ? " (--quick)" : "");
}

int run(const Options& options) {
  print_environment(options);
  for (const auto latency_ms : options.latencies_ms)
    for (const auto dispatchers : options.dispatcher_counts)
      print_cell(options, latency_ms, dispatchers, run_cell(options, latency_ms, dispatchers));
  return 0;
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  using namespace clearing::bench;
  Options options;
  CLI::App app{
      "Transfers/s through the dispatcher against the in-process clearing mock, and the latency "
      "from "
      "initiate to terminal event. Prints figures; no thresholds."};
  clearing::support::add_database_url_option(
      app, options.database_url,
      "libpq URI of the server (a fresh database is made on it per cell)");
  app.add_option("--transfers", options.transfers, "transfers per cell")
      ->check(CLI::Range(1, kTransfersMax));
  app.add_option("--initiate-batch", options.initiate_batch,
                 "InitiateTransfer commands per transaction")
      ->check(CLI::Range(1, kInitiateBatchMax));
  app.add_option("--in-flight-max", options.in_flight_max,
                 "clearing calls in flight per dispatcher")
      ->check(CLI::Range(1, kInFlightMax));
  app.add_option("--claim-batch-max", options.claim_batch_max,
                 "work rows claimed per claim transaction")
      ->check(CLI::Range(1, kInFlightMax));
  app.add_option("--latencies-ms", options.latencies_ms, "mock latencies, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(0, kLatencyMsMax));
  app.add_option("--dispatchers", options.dispatcher_counts, "dispatcher counts, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(1, kDispatchersMax));
  app.add_option("--mock-threads", options.mock_threads, "the mock server's threads")
      ->check(CLI::Range(1, 16));
  app.add_option("--cell-timeout-seconds", options.cell_timeout_seconds,
                 "give up on a cell after this long")
      ->check(CLI::Range(1, kCellTimeoutSecondsMax));
  app.add_flag("--quick", options.quick, "smoke run: 500 transfers per cell");
  app.add_flag("--keep-database", options.keep_database, "do not drop the scratch databases");
  clearing::support::add_log_level_option(app, options.log_level);
  CLI11_PARSE(app, argc, argv);
  clearing::base::set_log_level(options.log_level);
  if (options.quick && app.count("--transfers") == 0) options.transfers = 500;
  return clearing::support::run_benchmark("bench_saga", [&] { return run(options); });
}
