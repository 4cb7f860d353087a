// bench_e2e: the end-to-end benchmark (issue 6). Every part runs as a process of its own on
// this machine, started here:
//   core-sim -> Kafka (kafka-mock) -> clearing-adapter run -> clearing-mock -> clearing-adapter
//   -> Kafka -> core-sim
// on the PostgreSQL server named by CLEARING_TEST_DATABASE_URL (bench/e2e starts a throwaway
// one). It prints figures, never a verdict: there are no thresholds here. The exit code says
// only whether the run completed with every transfer resolved exactly once.
//
// Phases, each on fresh databases and fresh processes:
//   1. Sustained, once per clearing latency (--latency-ms-list): core-sim publishes as fast as
//      it can (--rate 0, or --load-rate); with a clearing latency, at 1.5 times the calls/s
//      the adapter's in_flight_max allows (kPublishOverClearingCap). Warm-up is excluded: the
//      window starts kWarmupAfterFirstOutcome after the first outcome was applied on the core (the
//      mock cluster's consumer-group joins take about 3 s) and lasts --seconds. Then core-sim is
//      stopped (SIGTERM) and started again with --transfers = what it had processed, which
//      publishes nothing new (ids derive from seed and index) and drains the backlog, so
//      every transfer must still resolve. With --transfers N instead, core-sim publishes N
//      and the window ends when 95% of them resolved (the drain tail runs at lower
//      concurrency). Figures: requested/s and resolved/s in the window (and by thirds of
//      it), the open transfers at its ends and where they are (core outbox, Kafka, adapter,
//      adapter outbox), commits per transfer (pg_stat_database xact_commit deltas of the
//      adapter's and the core's databases; writing transactions from the cluster's xid
//      counter), PostgreSQL statement time per database, CPU per process, and the
//      adapter's peak RSS (VmHWM).
//   2. Latency: core-sim at --rate = 50% of the sustained resolved rate measured with the
//      first latency of the list (0 ms by default), or at --latency-rate, for
//      --latency-seconds; percentiles of
//      TransferRequested commit -> outcome applied (core_transfers.requested_at/outcome_at)
//      over the transfers requested after the warm-up, beside core-sim's own report (all),
//      and the same split into four hops from the adapter's timestamps.
//   3. Commit ceiling: N threads, each with its own connection, commit one single-row insert
//      per transaction into a scratch table for --ceiling-seconds; N = the connections the
//      adapter and core-sim held during the first sustained run (pg_stat_activity).
// Progress goes to stderr; figures to stdout.

#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "clearing/http/client.hpp"
#include "clearing/processes/process.hpp"
#include "clearing/support/bench.hpp"
#include "clearing/support/command_lines.hpp"

namespace clearing::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
using processes::Process;

// Named limits (TIGER_STYLE): every input, wait and loop of the benchmark is bounded.
constexpr int kSecondsMax = 3'600;
constexpr int kLatencyMsMax = 10'000;
constexpr std::size_t kLatenciesMax = 8;
constexpr int kTransfersMax = 10'000'000;
// core-sim's source in a timed window: more than any window can publish; it is stopped.
constexpr int kTimedSourceTransfers = 10'000'000;
constexpr int kCeilingClientsMax = 256;
constexpr auto kWarmupAfterFirstOutcome = std::chrono::seconds(2);
constexpr auto kFirstOutcomeTimeout = std::chrono::seconds(90);
constexpr auto kAdapterReadyTimeout = std::chrono::seconds(90);
constexpr int kFirstLineTimeoutMs = 120'000;  // core-sim migrates and opens accounts first
constexpr int kStopTimeoutMs = 60'000;
constexpr auto kSamplePeriod = std::chrono::seconds(1);
constexpr auto kProgressPeriod = std::chrono::seconds(5);
constexpr int kDrainTimeoutSecondsMin = 120;
constexpr double kLatencyRunExtraSeconds = 5;   // warm-up that the percentiles exclude
constexpr double kFixedLoadWindowShare = 0.95;  // --transfers: window ends at this share resolved
constexpr std::size_t kStderrTailChars = 4'000;
constexpr const char* kAppName = "bench-e2e";
constexpr const char* kClearingToken = "bench-clearing-token";
constexpr const char* kApiToken = "bench-api-token-0123456789abcdef0";
using support::kAdapterStream;
using support::kCoreStream;

struct Options {
  std::string server_url;
  bool quick = false;
  int seconds = 60;
  int latency_seconds = 30;
  int ceiling_seconds = 5;
  std::vector<int> latencies_ms{0, 50};
  int transfers = 0;     // 0: timed window
  double load_rate = 0;  // core-sim --rate in the sustained runs; 0 = as fast as possible
  double latency_rate =
      0;  // core-sim --rate in the latency run; 0 = 50% of the first sustained rate
  // core-sim's publisher and its consumer lock the same account streams, and its publisher
  // holds its stream's head row for a whole batch: with core-sim's defaults (100 accounts,
  // 100 transfers per transaction) the simulated core, not the adapter, set the pace. A
  // bank has many accounts; short core transactions keep the core out of the way.
  int accounts = 5000;
  int core_batch = 10;  // core-sim --batch: transfers per core transaction
  int mock_threads = 2;
  int drain_timeout_s = 1'800;
  std::vector<std::string> config_set;
  int statements = 0;  // top statements of the window from pg_stat_statements (0: none)
  // The consumers' fetch.wait.max.ms. librdkafka's mock cluster answers an empty fetch only
  // when this runs out, even when data comes meanwhile (a real broker answers at once):
  // at the adapter's default of 50 ms that adds about 25 ms per Kafka hop to the latency.
  int fetch_wait_ms = 5;
  // Both relays' pacing under load (core-sim's and the adapter's), as shipped unless set.
  int relay_round_interval_ms = 50;
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void progress(const std::string& line) {
  fmt::print(stderr, "[bench-e2e] {}\n", line);
  std::fflush(stderr);
}

double seconds_since(Clock::time_point t) { return Seconds(Clock::now() - t).count(); }

std::string tail(const std::string& text) {
  return text.size() > kStderrTailChars ? "..." + text.substr(text.size() - kStderrTailChars)
                                        : text;
}

// ---- The database server ---------------------------------------------------------------

std::unique_ptr<pqxx::connection> connect(const std::string& url) {
  auto c = std::make_unique<pqxx::connection>(url);
  pqxx::nontransaction tx(*c);
  tx.exec(std::string("set application_name = '") + kAppName + "'");
  return c;
}

using support::fresh_database;

// Counters of the server that describe the cost per transfer.
struct ServerCounters {
  std::map<std::string, std::int64_t> commits;  // database -> xact_commit
  std::map<std::string, std::int64_t> rollbacks;
  std::map<std::string, double>
      active_ms;              // time its backends spent in statements (lock waits included)
  std::int64_t next_xid = 0;  // writing transactions (xids assigned), cluster-wide
};

class ServerProbe {
 public:
  explicit ServerProbe(const std::string& server_url) : connection_(connect(server_url)) {}

  ServerCounters counters(const std::vector<std::string>& databases) {
    ServerCounters out;
    pqxx::nontransaction tx(*connection_);
    // Each statement is its own transaction: pg_stat's snapshot is not cached across them.
    for (const auto& row :
         tx.exec("select datname, xact_commit, xact_rollback, active_time from pg_stat_database"
                 " where datname is not null")) {
      const auto name = row[0].as<std::string>();
      if (std::find(databases.begin(), databases.end(), name) == databases.end()) continue;
      out.commits[name] = row[1].as<std::int64_t>();
      out.rollbacks[name] = row[2].as<std::int64_t>();
      out.active_ms[name] = row[3].as<double>();
    }
    out.next_xid = tx.exec("select pg_snapshot_xmax(pg_current_snapshot())::text::bigint")[0][0]
                       .as<std::int64_t>();
    return out;
  }

  // pg_stat_statements, when the server preloads it: creates the extension and clears its
  // figures. False when it is not loaded (CLEARING_PG_EXTRA_OPTIONS sets the preload).
  bool reset_statements() {
    try {
      pqxx::nontransaction tx(*connection_);
      tx.exec("create extension if not exists pg_stat_statements");
      tx.exec("select pg_stat_statements_reset()");
      return true;
    } catch (const std::exception& e) {
      progress(fmt::format("no statement figures (pg_stat_statements not loaded?): {}", e.what()));
      return false;
    }
  }

  // The `limit` statements of `databases` that took the most time since the reset.
  std::vector<std::string> top_statements(const std::vector<std::string>& databases, int limit,
                                          double per) {
    std::vector<std::string> lines;
    std::string names;
    for (const auto& d : databases) names += (names.empty() ? "" : ",") + d;
    pqxx::nontransaction tx(*connection_);
    const auto rows = tx.exec_params(
        "select d.datname, s.calls, s.total_exec_time, s.rows,"
        " left(regexp_replace(s.query, '\\s+', ' ', 'g'), 150)"
        " from pg_stat_statements s join pg_database d on d.oid = s.dbid"
        " where d.datname = any(string_to_array($1, ','))"
        " order by s.total_exec_time desc limit $2",
        names, limit);
    // Totals first: statements per transfer do not depend on how busy the machine is.
    for (const auto& row : tx.exec_params(
             "select d.datname, sum(s.calls), sum(s.total_exec_time),"
             " coalesce(sum(s.calls) filter (where s.query ~* '^\\s*(begin|commit|rollback)'), 0)"
             " from pg_stat_statements s join pg_database d on d.oid = s.dbid"
             " where d.datname = any(string_to_array($1, ',')) group by 1 order by 1",
             names))
      lines.push_back(
          fmt::format("{:>7.3f} ms {:>6.2f} calls {:>13} {:<8} all statements (of the calls, "
                      "{:.2f} begin/commit/rollback; the benchmark's own probes included)",
                      row[2].as<double>() / per, row[1].as<double>() / per, "",
                      row[0].as<std::string>().substr(0, 8), row[3].as<double>() / per));
    for (const auto& row : rows)
      lines.push_back(fmt::format("{:>7.3f} ms {:>6.2f} calls {:>7.2f} rows  {:<8} {}",
                                  row[2].as<double>() / per, row[1].as<double>() / per,
                                  row[3].as<double>() / per, row[0].as<std::string>().substr(0, 8),
                                  row[4].as<std::string>()));
    return lines;
  }

  // Connections to `database` other than this benchmark's own.
  int connections(const std::string& database) {
    pqxx::nontransaction tx(*connection_);
    return tx
        .exec_params(
            "select count(*) from pg_stat_activity where datname = $1 and application_name <> $2",
            database, kAppName)[0][0]
        .as<int>();
  }

 private:
  std::unique_ptr<pqxx::connection> connection_;
};

// Where the transfers are, from the core's database (tools/core_sim/src/core_sim.cpp) and the
// adapter's (adapter/src/transfer_service.cpp, external_streams): requested on the core ->
// core outbox (not yet in Kafka) -> received by the adapter -> terminal in the adapter ->
// adapter outbox -> resolved on the core. The adapter's figures are informative: when its
// schema changes and the query fails, they are left out (adapter_known false).
// Sampled every second for the whole run, so every figure is read where it costs the same
// at any table size: heads and progress rows, and counts of the few open rows through an
// index. A count(*) over all transfers took 50 ms a sample per database after 90,000
// transfers, a load on the server under test that grew with the run.
struct Pipeline {
  std::int64_t requested = 0;
  std::int64_t resolved = 0;
  std::int64_t refused = 0;
  std::int64_t core_outbox = 0;  // core stream events not yet acknowledged by Kafka
  bool adapter_known = false;
  std::int64_t adapter_received = 0;  // core stream messages the adapter has applied
  std::int64_t adapter_terminal = 0;  // of them, succeeded or rejected in the adapter
  std::int64_t adapter_outbox = 0;    // adapter payments stream events not yet acknowledged
};

class PipelineProbe {
 public:
  PipelineProbe(const std::string& core_url, const std::string& adapter_url)
      : core_(connect(core_url)), adapter_(connect(adapter_url)) {}

  Pipeline sample() {
    Pipeline p;
    {
      // core-sim writes one TransferRequested on its stream per core_transfers row, in the
      // same transaction (request_all): the stream's heads count the requested transfers.
      ++core_queries_;
      pqxx::nontransaction tx(*core_);
      const auto row = tx.exec_params(
          "select (select coalesce(sum(head), 0) from external_stream_heads where stream = $1),"
          " (select count(*) from core_transfers where status = 'open'),"
          " (select count(*) from core_refused),"
          " (select coalesce(sum(head - published), 0) from external_stream_heads)",
          kCoreStream)[0];
      p.requested = row[0].as<std::int64_t>();
      p.resolved = p.requested - row[1].as<std::int64_t>();
      p.refused = row[2].as<std::int64_t>();
      p.core_outbox = row[3].as<std::int64_t>();
    }
    if (!adapter_failed_) {
      try {
        // Received: the core stream's messages applied (the benchmark sends no duplicates
        // and nothing to park). Not terminal: through the adapter's index of unfinished
        // transfers (a count of transfer_work read every row it ever held until vacuum:
        // 50 ms a sample late in a 60 s window).
        ++adapter_queries_;
        pqxx::nontransaction tx(*adapter_);
        const auto row = tx.exec_params(
            "select (select coalesce(sum(last_seq), 0) from inbound_stream_progress where stream = "
            "$1),"
            " (select count(*) from transfer_status where status not in ('succeeded', 'rejected')),"
            " (select coalesce(sum(head - published), 0) from external_stream_heads"
            "   where stream = $2)",
            kCoreStream, kAdapterStream)[0];
        p.adapter_received = row[0].as<std::int64_t>();
        p.adapter_terminal = p.adapter_received - row[1].as<std::int64_t>();
        p.adapter_outbox = row[2].as<std::int64_t>();
        p.adapter_known = true;
      } catch (const std::exception& e) {
        adapter_failed_ = true;
        progress(std::string("the adapter's pipeline figures are left out: ") + e.what());
      }
    }
    return p;
  }

  // Commits this probe made (subtracted from the databases' xact_commit).
  std::int64_t core_queries() const { return core_queries_; }
  std::int64_t adapter_queries() const { return adapter_queries_; }

 private:
  std::unique_ptr<pqxx::connection> core_, adapter_;
  std::int64_t core_queries_ = 0, adapter_queries_ = 0;
  bool adapter_failed_ = false;
};

std::string where_they_are(const Pipeline& p) {
  if (!p.adapter_known) return fmt::format("core outbox {}", p.core_outbox);
  return fmt::format(
      "core outbox {}, Kafka->adapter {}, in the adapter {}, adapter outbox {}, Kafka->core {}",
      p.core_outbox, p.requested - p.core_outbox - p.adapter_received,
      p.adapter_received - p.adapter_terminal, p.adapter_outbox,
      p.adapter_terminal - p.adapter_outbox - p.resolved);
}

// ---- /proc ---------------------------------------------------------------------------------

std::optional<std::int64_t> status_kb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    return std::stoll(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

// Busy and total jiffies of the whole machine (every user of it, not only this run).
std::pair<double, double> machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double busy = 0, total = 0;
  for (int i = 0; i < 8; ++i) {
    double v = 0;
    in >> v;
    total += v;
    if (i != 3 && i != 4) busy += v;  // idle, iowait
  }
  return {busy, total};
}

// ---- HTTP (the adapter's /readyz and /metrics): http/'s client ----------------------------
// Probes around the measurement, not part of it: the load comes from core-sim.

struct HttpAnswer {
  int status = -1;  // -1: no answer (not listening yet, timed out)
  std::string body;
};

HttpAnswer http_get(int port, const std::string& path, const std::string& token) {
  constexpr int kTimeoutMs = 5'000;
  auto got = clearing::http::get(support::local_url(port) + path, token, kTimeoutMs);
  if (!got) return {};
  return {got->status, std::move(got->body)};
}

// The value of one Prometheus sample line `name{labels} value`; nothing when absent.
std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

// ---- Percentiles: nearest rank, as core-sim's report computes it (support/figures.hpp) ----

using support::Percentiles;
using support::percentiles;

// ---- One system under test: kafka-mock, clearing-mock, the adapter --------------------------

std::string after(const std::string& line, const std::string& prefix, const Process& process,
                  const char* what) {
  auto rest = support::after_prefix(line, prefix);
  if (!rest)
    throw Failure(fmt::format("{} did not start (expected '{}...', got '{}'); its stderr:\n{}",
                              what, prefix, line, tail(process.stderr_text())));
  return *rest;
}

// Sets "a.b.c=value" in the config (value as JSON when it parses, else a string).
void apply_config_setting(nlohmann::json& config, const std::string& setting) {
  const auto equals = setting.find('=');
  if (equals == std::string::npos || equals == 0)
    throw Failure("--config-set wants key.path=value, got " + setting);
  const auto value_text = setting.substr(equals + 1);
  nlohmann::json value = nlohmann::json::parse(value_text, nullptr, false);
  if (value.is_discarded()) value = value_text;
  nlohmann::json* node = &config;
  std::istringstream path(setting.substr(0, equals));
  for (std::string key; std::getline(path, key, '.');) node = &(*node)[key];
  *node = value;
}

struct System {
  std::string label;
  std::string adapter_database, core_database;  // names
  std::string adapter_url, core_url;
  std::string bootstrap;
  int adapter_port = 0, core_port = 0;
  int fetch_wait_ms = 0;  // core-sim --fetch-wait-ms
  int relay_round_interval_ms =
      0;  // core-sim --relay-round-interval-ms (start_system sets it from Options)
  std::string config_path;
  // Clearing calls the adapter makes at once: min(clearing and dispatcher in_flight_max)
  // of the config it was given.
  int calls_in_flight_max = 0;
  std::unique_ptr<Process> kafka, mock, adapter;

  System() = default;
  System(const System&) = delete;
  System& operator=(const System&) = delete;
  ~System() {
    // Destructors SIGKILL whatever is still running; a graceful stop was tried before.
    if (!config_path.empty()) std::filesystem::remove(config_path);
  }

  void check_alive() {
    for (auto* p : {kafka.get(), mock.get(), adapter.get()}) {
      if (p == nullptr) continue;
      const int code = p->wait(0);
      if (code != -1)
        throw Failure(
            fmt::format("[{}] a process (pid {}) exited with {} during the run; its stderr:\n{}",
                        label, p->pid(), code, tail(p->stderr_text())));
    }
  }

  // The core-sim command line for this system.
  std::vector<std::string> core_sim(std::int64_t transfers, double rate, int batch,
                                    int accounts) const {
    support::CoreSimArgs args;
    args.database_url = core_url;
    args.bootstrap = bootstrap;
    args.transfers = transfers;
    args.seed = 7;
    args.invalid_share = 0;
    args.rate = rate;
    args.batch = batch;
    args.accounts = accounts;
    args.fetch_wait_ms = fetch_wait_ms;
    args.relay_round_interval_ms = relay_round_interval_ms;
    args.adapter_port = adapter_port;
    args.http_port = core_port;
    args.api_token = kApiToken;
    return support::core_sim_argv(CORE_SIM, args);
  }

  void stop() {
    if (adapter) {
      adapter->signal(SIGTERM);
      const int code = adapter->wait(kStopTimeoutMs);
      if (code != 0)
        progress(fmt::format("[{}] adapter stopped with exit code {}; its stderr tail:\n{}", label,
                             code, tail(adapter->stderr_text())));
    }
    if (mock) {
      mock->signal(SIGTERM);
      mock->wait(kStopTimeoutMs);
    }
    if (kafka) {
      kafka->write_line("quit");
      kafka->wait(kStopTimeoutMs);
    }
  }
};

std::unique_ptr<System> start_system(const Options& options, const std::string& label,
                                     const std::string& slug, int latency_ms) {
  auto s = std::make_unique<System>();
  s->label = label;
  s->fetch_wait_ms = options.fetch_wait_ms;
  s->relay_round_interval_ms = options.relay_round_interval_ms;
  s->adapter_database = "e2e_adapter_" + slug;
  s->core_database = "e2e_core_" + slug;
  s->adapter_url = fresh_database(options.server_url, s->adapter_database);
  s->core_url = fresh_database(options.server_url, s->core_database);

  s->kafka = std::make_unique<Process>(support::kafka_mock_argv(KAFKA_MOCK),
                                       std::map<std::string, std::string>{}, true);
  s->bootstrap = after(s->kafka->read_line(), "bootstrap ", *s->kafka, "kafka-mock");

  s->mock = std::make_unique<Process>(
      support::clearing_mock_argv(CLEARING_MOCK, {.token = kClearingToken,
                                                  .seed = std::nullopt,
                                                  .latency_ms = latency_ms,
                                                  .threads = options.mock_threads,
                                                  .more = {}}));
  const auto mock_address = after(s->mock->read_line(), "listening ", *s->mock, "clearing-mock");

  s->adapter_port = support::free_port();
  s->core_port = support::free_port();
  while (s->core_port == s->adapter_port) s->core_port = support::free_port();

  // config/dk.json as shipped, logs at warn (one line per call would be measured too).
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    auto config = nlohmann::json::parse(in);
    config["log_level"] = "warn";
    // The adapter's consumer waits as long as core-sim's; --config-set may still override.
    apply_config_setting(config, fmt::format("kafka.fetch_wait_max_ms={}", options.fetch_wait_ms));
    apply_config_setting(config, fmt::format("kafka.relay_round_interval_min_ms={}",
                                             options.relay_round_interval_ms));
    for (const auto& setting : options.config_set) apply_config_setting(config, setting);
    s->config_path = fmt::format("/tmp/bench-e2e-{}-{}.json", getpid(), slug);
    std::ofstream(s->config_path) << config.dump(2);
    s->calls_in_flight_max = std::min(config.at("clearing").at("in_flight_max").get<int>(),
                                      config.at("dispatcher").at("in_flight_max").get<int>());
  }
  const auto env = support::adapter_environment({.database_url = s->adapter_url,
                                                 .bootstrap = s->bootstrap,
                                                 .clearing_address = mock_address,
                                                 .clearing_token = kClearingToken,
                                                 .core_port = s->core_port,
                                                 .api_token = kApiToken,
                                                 .http_port = s->adapter_port});
  const auto begun = Clock::now();
  s->adapter =
      std::make_unique<Process>(support::adapter_run_argv(CLEARING_ADAPTER, s->config_path), env);
  for (;;) {
    s->check_alive();
    if (http_get(s->adapter_port, "/readyz", "").status == 200) break;
    if (Clock::now() - begun > kAdapterReadyTimeout)
      throw Failure(fmt::format(
          "[{}] the adapter was not ready within {} s; its stderr:\n{}", label,
          std::chrono::duration_cast<std::chrono::seconds>(kAdapterReadyTimeout).count(),
          tail(s->adapter->stderr_text())));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  progress(fmt::format(
      "[{}] kafka-mock pid {}, clearing-mock pid {} (latency {} ms), adapter pid {} ready after "
      "{:.1f} s",
      label, s->kafka->pid(), s->mock->pid(), latency_ms, s->adapter->pid(), seconds_since(begun)));
  return s;
}

// Starts core-sim and waits for its first line (it has migrated and opened its accounts).
std::unique_ptr<Process> start_core(std::vector<std::string> argv) {
  auto core = std::make_unique<Process>(std::move(argv));
  const auto line = core->read_line(kFirstLineTimeoutMs);
  after(line, "catch-up ", *core, "core-sim");
  return core;
}

// The JSON report core-sim printed after its first line.
nlohmann::json core_report(Process& core, const std::string& label) {
  auto report = support::core_sim_report(core.read_all());
  if (!report)
    throw Failure(fmt::format("[{}] core-sim printed no report; its stderr:\n{}", label,
                              tail(core.stderr_text())));
  return *std::move(report);
}

// CPU seconds of each process of the run, for "where the time goes".
struct CpuSample {
  std::map<std::string, double> by_process;
  std::pair<double, double> machine;  // busy, total jiffies
};

CpuSample cpu_sample(System& s, Process* core) {
  CpuSample c;
  const auto add = [&](const char* name, Process* p) {
    if (p == nullptr) return;
    if (const auto stat = proc_stat(p->pid())) c.by_process[name] = stat->cpu_s;
  };
  add("adapter", s.adapter.get());
  add("core-sim", core);
  add("clearing-mock", s.mock.get());
  add("kafka-mock", s.kafka.get());
  if (const auto pg = postgres_cpu_s()) c.by_process["postgres"] = *pg;
  c.machine = machine_cpu();
  return c;
}

// ---- Phase 1: sustained -------------------------------------------------------------------

// speed_probe_ms() on the machine as idle as the benchmark leaves it: before a run starts
// its processes and after it stopped them. The host's share can change within a run; the two
// bracket it.
struct SpeedProbes {
  double before_ms = 0, after_ms = 0;
};

struct Sustained {
  int latency_ms = 0;
  SpeedProbes speed;
  double publish_rate = 0;        // core-sim --rate (0: as fast as it can)
  bool held_at_cap = false;       // publish_rate = kPublishOverClearingCap x clearing_cap_per_s
  double clearing_cap_per_s = 0;  // calls/s the adapter's concurrency allows at this latency
  double window_s = 0;
  std::int64_t requested = 0, resolved = 0;  // in the window
  std::int64_t backlog_start = 0, backlog_end = 0;
  std::string where_at_end;  // where the open transfers were when the window ended
  std::vector<double> resolved_per_s_by_third;  // does the rate hold over the window?
  double requested_per_s = 0, resolved_per_s = 0;
  double warmup_s = 0;  // core-sim start -> window start
  std::int64_t adapter_commits = 0, core_commits = 0, adapter_rollbacks = 0, core_rollbacks = 0;
  std::int64_t writing_transactions = 0;
  double adapter_active_s = 0, core_active_s = 0;  // PostgreSQL statement time in the window
  // Whole run: from the empty databases to the stopped processes, per transfer.
  std::int64_t total_transfers = 0;
  std::int64_t total_adapter_commits = 0, total_core_commits = 0;
  int adapter_connections = 0, core_connections = 0;
  std::int64_t adapter_hwm_kb = 0, adapter_rss_kb = 0;
  std::map<std::string, double> cpu_s;  // in the window
  double machine_busy_share = 0;        // of all cores, every user of the machine
  double drain_s = 0;
  std::int64_t succeeded = 0, rejected = 0;
  std::optional<double> submit_mean_ms;
  std::map<std::string, double> answers;    // class -> count (submit)
  std::vector<std::string> top_statements;  // per resolved transfer, with --statements
};

// Resolved/s in each third of a window from its (seconds, resolved) samples.
std::vector<double> rates_by_third(const std::vector<std::pair<double, std::int64_t>>& series) {
  std::vector<double> rates;
  if (series.size() < 4) return rates;
  const double end = series.back().first;
  for (int third = 0; third < 3; ++third) {
    const double from = end * third / 3.0, to = end * (third + 1) / 3.0;
    const auto first =
        std::find_if(series.begin(), series.end(), [&](const auto& p) { return p.first >= from; });
    auto last =
        std::find_if(series.begin(), series.end(), [&](const auto& p) { return p.first >= to; });
    if (last == series.end()) last = std::prev(series.end());
    if (first == series.end() || last->first <= first->first) return {};
    rates.push_back(static_cast<double>(last->second - first->second) /
                    (last->first - first->first));
  }
  return rates;
}

// Waits, sampling, until `done` says so; progress lines every kProgressPeriod.
template <class Done>
Pipeline sample_until(System& s, Process& core, PipelineProbe& probe, const std::string& phase,
                      Clock::time_point begun, Done&& done, std::chrono::seconds timeout,
                      bool core_may_exit) {
  auto last_progress = Clock::now();
  Pipeline last_reported = probe.sample();
  for (;;) {
    s.check_alive();
    const auto p = probe.sample();
    if (done(p)) return p;
    if (!core_may_exit) {
      const int code = core.wait(0);
      if (code != -1)
        throw Failure(fmt::format("[{}] core-sim exited with {} during {}; its stderr:\n{}",
                                  s.label, code, phase, tail(core.stderr_text())));
    }
    if (Clock::now() - begun > timeout)
      throw Failure(fmt::format(
          "[{}] {} did not finish within {} s: requested {}, resolved {}, {} never resolved ({})",
          s.label, phase, timeout.count(), p.requested, p.resolved, p.requested - p.resolved,
          where_they_are(p)));
    if (Clock::now() - last_progress >= kProgressPeriod) {
      const double dt = Seconds(Clock::now() - last_progress).count();
      progress(
          fmt::format("[{}] {} {:>4.0f} s: requested {:>7} resolved {:>7} (last {:.0f} s: {:>5.0f} "
                      "req/s, {:>5.0f} "
                      "res/s); open {:>6}: {}",
                      s.label, phase, seconds_since(begun), p.requested, p.resolved, dt,
                      static_cast<double>(p.requested - last_reported.requested) / dt,
                      static_cast<double>(p.resolved - last_reported.resolved) / dt,
                      p.requested - p.resolved, where_they_are(p)));
      last_progress = Clock::now();
      last_reported = p;
    }
    std::this_thread::sleep_for(kSamplePeriod);
  }
}

void read_adapter_metrics(System& s, Sustained& out) {
  const auto answer = http_get(s.adapter_port, "/metrics", kApiToken);
  if (answer.status != 200) return;
  const auto sum = metric(answer.body, "clearing_call_duration_seconds_sum{action=\"submit\"}");
  const auto count = metric(answer.body, "clearing_call_duration_seconds_count{action=\"submit\"}");
  if (sum && count && *count > 0) out.submit_mean_ms = 1000.0 * *sum / *count;
  for (const char* cls : {"settled", "accepted_pending", "rejected", "ambiguous"}) {
    if (const auto n =
            metric(answer.body,
                   fmt::format("clearing_answers_total{{action=\"submit\",class=\"{}\"}}", cls)))
      out.answers[cls] = *n;
  }
}

// With a clearing latency, the adapter's concurrency caps its calls: calls_in_flight_max
// per latency, 16 per 50 ms = 320/s as shipped. Publishing
// faster than that only builds a backlog, which the drain after the window then took
// three and a half minutes to clear, without moving the resolved rate. Unless --load-rate
// says otherwise, core-sim is held at 1.5 times the cap: the backlog still grows, so the
// pipeline, not the publisher, sets the rate in the window.
constexpr double kPublishOverClearingCap = 1.5;

Sustained run_sustained(const Options& options, int latency_ms, ServerProbe& server) {
  const auto label = fmt::format("sustained {} ms", latency_ms);
  const auto slug = fmt::format("sustained_{}ms", latency_ms);
  auto system = start_system(options, label, slug, latency_ms);
  auto& s = *system;
  const std::vector<std::string> databases{s.adapter_database, s.core_database};
  const auto at_begin = server.counters(databases);

  Sustained out;
  out.latency_ms = latency_ms;
  out.publish_rate = options.load_rate;
  if (latency_ms > 0) {
    out.clearing_cap_per_s = 1000.0 * s.calls_in_flight_max / latency_ms;
    out.held_at_cap = options.load_rate == 0;
    if (out.held_at_cap) out.publish_rate = kPublishOverClearingCap * out.clearing_cap_per_s;
  }
  const bool timed = options.transfers == 0;
  const std::int64_t source = timed ? kTimedSourceTransfers : options.transfers;
  const auto begun = Clock::now();
  auto core =
      start_core(s.core_sim(source, out.publish_rate, options.core_batch, options.accounts));
  PipelineProbe probe(s.core_url, s.adapter_url);
  progress(fmt::format("[{}] core-sim pid {} publishing ({}), waiting for the first outcome", label,
                       core->pid(),
                       timed ? "until the window ends" : std::to_string(source) + " transfers"));

  sample_until(
      s, *core, probe, "warm-up", begun, [](const Pipeline& p) { return p.resolved > 0; },
      std::chrono::duration_cast<std::chrono::seconds>(kFirstOutcomeTimeout), false);
  std::this_thread::sleep_for(kWarmupAfterFirstOutcome);

  // The window.
  const auto window_begun = Clock::now();
  out.warmup_s = Seconds(window_begun - begun).count();
  const auto start_counts = probe.sample();
  const auto start_core_queries = probe.core_queries();
  const auto start_adapter_queries = probe.adapter_queries();
  const bool statements = options.statements > 0 && server.reset_statements();
  const auto start_server = server.counters(databases);
  const auto start_cpu = cpu_sample(s, core.get());
  out.adapter_connections = server.connections(s.adapter_database);
  out.core_connections = server.connections(s.core_database);
  progress(
      fmt::format("[{}] warm-up over after {:.1f} s: measuring {}", label, out.warmup_s,
                  timed ? fmt::format("for {} s", options.seconds)
                        : fmt::format("until {:.0f}% are resolved", 100 * kFixedLoadWindowShare)));
  const auto target = static_cast<std::int64_t>(kFixedLoadWindowShare * options.transfers);
  std::vector<std::pair<double, std::int64_t>> series{
      {0.0, start_counts.resolved}};  // (s, resolved)
  const auto window_timeout =
      std::chrono::seconds(timed ? options.seconds + 60 : options.drain_timeout_s);
  const auto end_counts = sample_until(
      s, *core, probe, "window", window_begun,
      [&](const Pipeline& c) {
        series.emplace_back(seconds_since(window_begun), c.resolved);
        // Connections grow with load: keep the largest count seen.
        out.adapter_connections =
            std::max(out.adapter_connections, server.connections(s.adapter_database));
        out.core_connections = std::max(out.core_connections, server.connections(s.core_database));
        return timed ? seconds_since(window_begun) >= options.seconds : c.resolved >= target;
      },
      window_timeout, !timed);
  out.window_s = seconds_since(window_begun);
  const auto end_server = server.counters(databases);
  const auto end_cpu = cpu_sample(s, core.get());
  if (statements)
    out.top_statements =
        server.top_statements(databases, options.statements,
                              static_cast<double>(std::max<std::int64_t>(
                                  1, end_counts.resolved - start_counts.resolved)));
  const auto own_core_queries = probe.core_queries() - start_core_queries;
  const auto own_adapter_queries = probe.adapter_queries() - start_adapter_queries;
  out.where_at_end = where_they_are(end_counts);
  out.requested = end_counts.requested - start_counts.requested;
  out.resolved = end_counts.resolved - start_counts.resolved;
  out.backlog_start = start_counts.requested - start_counts.resolved;
  out.backlog_end = end_counts.requested - end_counts.resolved;
  out.requested_per_s = static_cast<double>(out.requested) / out.window_s;
  out.resolved_per_s_by_third = rates_by_third(series);
  out.resolved_per_s = static_cast<double>(out.resolved) / out.window_s;
  out.adapter_commits = end_server.commits.at(s.adapter_database) -
                        start_server.commits.at(s.adapter_database) - own_adapter_queries;
  out.core_commits = end_server.commits.at(s.core_database) -
                     start_server.commits.at(s.core_database) - own_core_queries;
  out.adapter_rollbacks =
      end_server.rollbacks.at(s.adapter_database) - start_server.rollbacks.at(s.adapter_database);
  out.core_rollbacks =
      end_server.rollbacks.at(s.core_database) - start_server.rollbacks.at(s.core_database);
  out.writing_transactions = end_server.next_xid - start_server.next_xid;
  out.adapter_active_s = (end_server.active_ms.at(s.adapter_database) -
                          start_server.active_ms.at(s.adapter_database)) /
                         1000.0;
  out.core_active_s =
      (end_server.active_ms.at(s.core_database) - start_server.active_ms.at(s.core_database)) /
      1000.0;
  for (const auto& [name, cpu] : end_cpu.by_process)
    if (start_cpu.by_process.count(name)) out.cpu_s[name] = cpu - start_cpu.by_process.at(name);
  const double machine_total = end_cpu.machine.second - start_cpu.machine.second;
  if (machine_total > 0)
    out.machine_busy_share = (end_cpu.machine.first - start_cpu.machine.first) / machine_total;
  progress(fmt::format(
      "[{}] window over: {:.0f} requested/s, {:.0f} resolved/s over {:.1f} s; backlog {} -> {}",
      label, out.requested_per_s, out.resolved_per_s, out.window_s, out.backlog_start,
      out.backlog_end));

  // Drain: every transfer must resolve. A timed window stops core-sim's publisher by
  // stopping core-sim and starting it again on exactly the transfers it processed.
  const auto drain_begun = Clock::now();
  const int drain_timeout_s = static_cast<int>(std::min<double>(
      options.drain_timeout_s,
      std::max<double>(kDrainTimeoutSecondsMin, 4.0 * static_cast<double>(out.backlog_end) /
                                                    std::max(1.0, out.resolved_per_s))));
  if (timed) {
    core->signal(SIGTERM);
    const int code = core->wait(kStopTimeoutMs);
    if (code != 0)
      throw Failure(fmt::format("[{}] core-sim stopped with {} (a violation?); its stderr:\n{}",
                                label, code, tail(core->stderr_text())));
    const auto stopped = probe.sample();
    const auto processed = stopped.requested + stopped.refused;
    progress(fmt::format(
        "[{}] core-sim stopped: {} processed, {} open; draining with a core-sim on exactly those"
        " (timeout {} s)",
        label, processed, stopped.requested - stopped.resolved, drain_timeout_s));
    core = start_core(s.core_sim(processed, 0, 1000, options.accounts));
  }
  sample_until(
      s, *core, probe, "drain", drain_begun, [&](const Pipeline&) { return core->wait(0) != -1; },
      std::chrono::seconds(drain_timeout_s), true);
  out.drain_s = seconds_since(drain_begun);
  const int core_exit = core->wait(0);
  const auto report = core_report(*core, label);
  out.succeeded = report.value("succeeded", std::int64_t{0});
  out.rejected = report.value("rejected", std::int64_t{0});
  out.total_transfers = report.value("requested", std::int64_t{0});
  if (core_exit != 0 || !report.value("resolved_exactly_once", false))
    throw Failure(fmt::format(
        "[{}] not every transfer resolved exactly once: core-sim exit {}, requested {}, "
        "succeeded {}, rejected {}, still open {}, violations {}; its stderr:\n{}",
        label, core_exit, out.total_transfers, out.succeeded, out.rejected,
        report.value("still_open", -1), report.value("violations", nlohmann::json()).dump(),
        tail(core->stderr_text())));
  progress(fmt::format("[{}] drained in {:.1f} s: all {} transfers resolved exactly once", label,
                       out.drain_s, out.total_transfers));

  read_adapter_metrics(s, out);
  out.adapter_hwm_kb = status_kb(s.adapter->pid(), "VmHWM").value_or(0);
  out.adapter_rss_kb = status_kb(s.adapter->pid(), "VmRSS").value_or(0);
  s.stop();
  core.reset();
  // Backends that ended have flushed their statistics now.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto at_end = server.counters(databases);
  out.total_adapter_commits = at_end.commits.at(s.adapter_database) -
                              at_begin.commits.at(s.adapter_database) - probe.adapter_queries();
  out.total_core_commits = at_end.commits.at(s.core_database) -
                           at_begin.commits.at(s.core_database) - probe.core_queries();
  return out;
}

// ---- Phase 2: latency at a fixed rate -----------------------------------------------------

struct LatencyRun {
  double rate = 0;
  SpeedProbes speed;
  int seconds = 0;
  std::int64_t transfers = 0;
  double requested_per_s = 0;  // core-sim's report
  Percentiles steady;          // requested after the warm-up
  Percentiles all;             // core-sim's report: every transfer
  double excluded_s = 0;       // requests in the first this many seconds excluded
  std::int64_t adapter_hwm_kb = 0;
  std::vector<std::pair<std::string, Percentiles>>
      hops;  // empty when the adapter's tables were not readable
};

// Where a transfer's latency goes, hop by hop, from the timestamps both databases keep:
// the core's commit (core_transfers.requested_at), the adapter's first and last event of
// the transfer's stream (its initiation by the inbound consumer, the clearing answer
// recorded by the dispatcher), the adapter's outcome message (external_events), the
// core's application of it (outcome_at). The adapter's recorded_at columns are now(), the
// start of their transaction: a batch's later items look earlier than they committed.
std::vector<std::pair<std::string, Percentiles>> hop_breakdown(
    const std::string& adapter_url,
    const std::map<std::string, std::pair<double, double>>& core_times) {
  std::vector<std::pair<std::string, Percentiles>> hops;
  try {
    auto c = connect(adapter_url);
    pqxx::nontransaction tx(*c);
    std::map<std::string, std::pair<double, double>> events;  // initiated, answered
    for (const auto& row :
         tx.exec("select substr(stream_id, 10), extract(epoch from min(recorded_at))::float8,"
                 " extract(epoch from max(recorded_at))::float8 from events"
                 " where stream_id like 'transfer-%' group by stream_id"))
      events[row[0].as<std::string>()] = {row[1].as<double>(), row[2].as<double>()};
    std::map<std::string, double> derived;
    for (const auto& row :
         tx.exec("select entity_key, extract(epoch from min(recorded_at))::float8"
                 " from external_events where stream like 'adapter.%.payments.%' group by 1"))
      derived[row[0].as<std::string>()] = row[1].as<double>();
    std::vector<double> in, call, derive, out;
    for (const auto& [id, core] : core_times) {
      const auto e = events.find(id);
      const auto d = derived.find(id);
      if (e == events.end() || d == derived.end()) continue;
      in.push_back(1000.0 * (e->second.first - core.first));
      call.push_back(1000.0 * (e->second.second - e->second.first));
      derive.push_back(1000.0 * (d->second - e->second.second));
      out.push_back(1000.0 * (core.second - d->second));
    }
    for (auto* v : {&in, &call, &derive, &out}) std::sort(v->begin(), v->end());
    hops.emplace_back("core commit -> adapter initiated (core relay, Kafka, adapter consumer)",
                      percentiles(in));
    hops.emplace_back("initiated -> clearing answer recorded (dispatcher claim, call, record)",
                      percentiles(call));
    hops.emplace_back("answer -> outcome message derived (derivation subscription)",
                      percentiles(derive));
    hops.emplace_back("derived -> applied on the core (adapter relay, Kafka, core consumer)",
                      percentiles(out));
  } catch (const std::exception& e) {
    progress(std::string("the hop breakdown is left out: ") + e.what());
    hops.clear();
  }
  return hops;
}

LatencyRun run_latency(const Options& options, int latency_ms, double rate) {
  const auto label = fmt::format("latency {} ms @ {:.0f}/s", latency_ms, rate);
  auto system = start_system(options, label, fmt::format("latency_{}ms", latency_ms), latency_ms);
  auto& s = *system;
  LatencyRun out;
  out.rate = rate;
  out.seconds = options.latency_seconds;
  out.transfers = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(
             std::ceil(rate * (options.latency_seconds + kLatencyRunExtraSeconds))));
  const auto begun = Clock::now();
  auto core = start_core(s.core_sim(out.transfers, rate, options.core_batch, options.accounts));
  PipelineProbe probe(s.core_url, s.adapter_url);
  progress(fmt::format("[{}] core-sim pid {}: {} transfers at {:.0f}/s", label, core->pid(),
                       out.transfers, rate));
  const auto timeout =
      std::chrono::seconds(static_cast<int>(options.latency_seconds + kLatencyRunExtraSeconds) +
                           options.drain_timeout_s);
  sample_until(
      s, *core, probe, "run", begun, [&](const Pipeline&) { return core->wait(0) != -1; }, timeout,
      true);
  const int core_exit = core->wait(0);
  const auto report = core_report(*core, label);
  if (core_exit != 0 || !report.value("resolved_exactly_once", false))
    throw Failure(fmt::format(
        "[{}] not every transfer resolved exactly once: core-sim exit {}, still open {}; "
        "its stderr:\n{}",
        label, core_exit, report.value("still_open", -1), tail(core->stderr_text())));
  out.requested_per_s = report.value("requested_per_s", 0.0);
  const auto l = report.value("latency_ms", nlohmann::json::object());
  out.all = {static_cast<std::size_t>(l.value("count", 0)), l.value("p50", 0.0),
             l.value("p95", 0.0), l.value("p99", 0.0), l.value("max", 0.0)};

  // Steady state: transfers requested after the first outcome was applied plus the warm-up.
  auto c = connect(s.core_url);
  pqxx::nontransaction tx(*c);
  const auto warmup_s = std::chrono::duration_cast<Seconds>(kWarmupAfterFirstOutcome).count();
  out.excluded_s =
      tx.exec_params(
            "select extract(epoch from (min(outcome_at) - min(requested_at)))::float8 + $1"
            " from core_transfers",
            warmup_s)[0][0]
          .as<double>();
  std::vector<double> latencies;
  std::map<std::string, std::pair<double, double>>
      core_times;  // transfer id -> requested, outcome (epoch s)
  for (const auto& row :
       tx.exec_params("select transfer_id, extract(epoch from requested_at)::float8, extract(epoch "
                      "from outcome_at)::float8"
                      " from core_transfers where outcome_at is not null and requested_at >="
                      "   (select min(outcome_at) from core_transfers) + make_interval(secs => $1)",
                      warmup_s)) {
    const auto requested = row[1].as<double>(), outcome = row[2].as<double>();
    core_times[row[0].as<std::string>()] = {requested, outcome};
    latencies.push_back(1000.0 * (outcome - requested));
  }
  std::sort(latencies.begin(), latencies.end());
  out.steady = percentiles(latencies);
  out.hops = hop_breakdown(s.adapter_url, core_times);
  out.adapter_hwm_kb = status_kb(s.adapter->pid(), "VmHWM").value_or(0);
  s.stop();
  return out;
}

// ---- Phase 3: the commit ceiling ----------------------------------------------------------

struct Ceiling {
  int clients = 0;
  double seconds = 0;
  std::int64_t commits = 0;
  double per_s = 0;
};

Ceiling run_ceiling(const Options& options, int clients) {
  const auto url = fresh_database(options.server_url, "e2e_commit_ceiling");
  {
    auto c = connect(url);
    pqxx::nontransaction tx(*c);
    tx.exec(
        "create table commit_ceiling (id bigserial primary key, client int not null,"
        " at timestamptz not null default clock_timestamp())");
  }
  std::vector<std::unique_ptr<pqxx::connection>> connections;
  for (int i = 0; i < clients; ++i) {
    connections.push_back(connect(url));
    connections.back()->prepare("insert_one", "insert into commit_ceiling (client) values ($1)");
  }
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::int64_t> counts(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> errors(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      try {
        while (!stop.load()) {
          // As the adapter commits: BEGIN, one statement, COMMIT (pqxx::work).
          pqxx::work tx(*connections[static_cast<std::size_t>(i)]);
          tx.exec_prepared("insert_one", i);
          tx.commit();
          ++counts[static_cast<std::size_t>(i)];
        }
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  const auto begun = Clock::now();
  go.store(true);
  std::this_thread::sleep_for(std::chrono::seconds(options.ceiling_seconds));
  stop.store(true);
  for (auto& t : threads) t.join();
  Ceiling out;
  out.clients = clients;
  out.seconds = seconds_since(begun);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (!errors[i].empty())
      throw Failure("commit ceiling: client " + std::to_string(i) + ": " + errors[i]);
    out.commits += counts[i];
  }
  out.per_s = static_cast<double>(out.commits) / out.seconds;
  return out;
}

// ---- Printing -----------------------------------------------------------------------------

std::string mib(std::int64_t kb) {
  return fmt::format("{:.1f} MiB", static_cast<double>(kb) / 1024.0);
}

void print_speed_probe(const SpeedProbes& p) {
  fmt::print(
      "  machine speed probe before / after the run: {:.0f} / {:.0f} ms (support bench.hpp: a "
      "fixed loop,"
      " slower when the host lends this machine less; compare runs at similar figures)\n",
      p.before_ms, p.after_ms);
}

// One probe of SpeedProbes, logged with the run it brackets.
double probe_speed(const std::string& run) {
  const double ms = speed_probe_ms();
  progress(fmt::format("[{}] machine speed probe {:.0f} ms", run, ms));
  return ms;
}

void print_sustained(const Sustained& r) {
  const double n = static_cast<double>(std::max<std::int64_t>(1, r.resolved));
  fmt::print(
      "\nsustained, clearing latency {} ms (window {:.1f} s after a warm-up of {:.1f} s, "
      "excluded)\n",
      r.latency_ms, r.window_s, r.warmup_s);
  print_speed_probe(r.speed);
  fmt::print("  resolved   {:>8.0f} transfers/s   ({} in the window)\n", r.resolved_per_s,
             r.resolved);
  if (r.resolved_per_s_by_third.size() == 3)
    fmt::print("  resolved/s by thirds of the window: {:.0f}, {:.0f}, {:.0f}\n",
               r.resolved_per_s_by_third[0], r.resolved_per_s_by_third[1],
               r.resolved_per_s_by_third[2]);
  const auto publishing =
      r.publish_rate == 0 ? std::string("core-sim publishing as fast as it can")
      : r.held_at_cap
          ? fmt::format(
                "core-sim held at {:.0f}/s, {} x the {:.0f} calls/s the adapter's in_flight_max "
                "allows "
                "at {} ms",
                r.publish_rate, kPublishOverClearingCap, r.clearing_cap_per_s, r.latency_ms)
          : fmt::format("core-sim held at {:.0f}/s (--load-rate)", r.publish_rate);
  fmt::print("  requested  {:>8.0f} transfers/s   ({} in the window; {})\n", r.requested_per_s,
             r.requested, publishing);
  fmt::print("  open       {} at the window's start -> {} at its end ({})\n", r.backlog_start,
             r.backlog_end,
             r.backlog_end > r.backlog_start + r.resolved / 20
                 ? "growing: the pipeline, not the publisher, limits"
             : r.backlog_end + r.resolved / 20 < r.backlog_start
                 ? "shrinking"
                 : "steady: the publisher may be the limit");
  fmt::print("  open at the window's end: {}\n", r.where_at_end);
  fmt::print(
      "  commits per resolved transfer (xact_commit): adapter {:.2f} + core {:.2f} = {:.2f}"
      "   (rollbacks: adapter {}, core {})\n",
      static_cast<double>(r.adapter_commits) / n, static_cast<double>(r.core_commits) / n,
      static_cast<double>(r.adapter_commits + r.core_commits) / n, r.adapter_rollbacks,
      r.core_rollbacks);
  fmt::print(
      "  PostgreSQL statement time per resolved transfer (pg_stat_database.active_time, lock waits "
      "included):"
      " adapter {:.2f} ms, core {:.2f} ms\n",
      1000.0 * r.adapter_active_s / n, 1000.0 * r.core_active_s / n);
  fmt::print("  writing transactions per resolved transfer (xids assigned, whole server): {:.2f}\n",
             static_cast<double>(r.writing_transactions) / n);
  const double total = static_cast<double>(std::max<std::int64_t>(1, r.total_transfers));
  fmt::print(
      "  whole run incl. warm-up, drain and idle polls: {} transfers, commits per transfer adapter "
      "{:.2f} +"
      " core {:.2f}\n",
      r.total_transfers, static_cast<double>(r.total_adapter_commits) / total,
      static_cast<double>(r.total_core_commits) / total);
  fmt::print("  outcomes: {} succeeded, {} rejected; drain after the window {:.1f} s\n",
             r.succeeded, r.rejected, r.drain_s);
  if (r.submit_mean_ms) {
    std::string answers;
    for (const auto& [cls, count] : r.answers) answers += fmt::format(" {} {:.0f}", cls, count);
    fmt::print("  adapter's clearing submit calls: mean {:.1f} ms; answers:{}\n", *r.submit_mean_ms,
               answers);
  }
  fmt::print("  DB connections held: adapter {}, core-sim {}\n", r.adapter_connections,
             r.core_connections);
  std::string cpu;
  double ours = 0;
  for (const auto& [name, seconds] : r.cpu_s) {
    cpu += fmt::format("  {} {:.0f}%", name, 100.0 * seconds / r.window_s);
    ours += seconds;
  }
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  fmt::print(
      "  CPU in the window (100% = one core):{}  | ours {:.0f}% of {:.0f}%, machine busy {:.0f}% "
      "(every user)\n",
      cpu, 100.0 * ours / r.window_s, 100.0 * cores, 100.0 * cores * r.machine_busy_share);
  if (!r.cpu_s.empty() && r.resolved > 0) {
    std::string per;
    for (const auto& [name, seconds] : r.cpu_s)
      per += fmt::format("  {} {:.0f}", name, 1e6 * seconds / n);
    fmt::print("  CPU µs per resolved transfer:{}\n", per);
  }
  fmt::print("  adapter peak RSS (VmHWM) {}, RSS at the end {}\n", mib(r.adapter_hwm_kb),
             mib(r.adapter_rss_kb));
  if (!r.top_statements.empty()) {
    fmt::print(
        "  statements taking the most time, per resolved transfer (pg_stat_statements; "
        "time, calls, rows, database, statement):\n");
    for (const auto& line : r.top_statements) fmt::print("    {}\n", line);
  }
}

// ---- main ---------------------------------------------------------------------------------

int run(Options options) {
  if (options.server_url.empty()) {
    const char* env = std::getenv("CLEARING_TEST_DATABASE_URL");
    if (env == nullptr)
      throw Failure("no server: set CLEARING_TEST_DATABASE_URL or --database-url (bench/e2e does)");
    options.server_url = env;
  }
  std::string latencies;
  for (const int l : options.latencies_ms)
    latencies += (latencies.empty() ? "" : ",") + std::to_string(l);
  fmt::print(
      "bench_e2e: core-sim -> kafka-mock -> clearing-adapter run (config/dk.json, log warn{}) -> "
      "clearing-mock"
      " -> adapter -> kafka-mock -> core-sim, separate processes on this machine ({} cores, "
      "shared)\n",
      options.config_set.empty() ? "" : ", --config-set given",
      std::thread::hardware_concurrency());
  fmt::print(
      "  mode {}: sustained {} per clearing latency in [{}] ms (core-sim --rate {}, --batch {}, "
      "--accounts {}, --fetch-wait-ms {} (the adapter's too), --relay-round-interval-ms {} (the "
      "adapter's too),"
      " --invalid-share 0); latency run {} s at {} of {} ms; commit ceiling "
      "{} s;"
      " PostgreSQL {}\n",
      options.quick ? "quick" : "full",
      options.transfers > 0 ? fmt::format("{} transfers", options.transfers)
                            : fmt::format("{} s window", options.seconds),
      latencies, options.load_rate, options.core_batch, options.accounts, options.fetch_wait_ms,
      options.relay_round_interval_ms, options.latency_seconds,
      options.latency_rate > 0 ? fmt::format("{:.0f}/s, the sustained run", options.latency_rate)
                               : std::string("50% of the sustained rate"),
      options.latencies_ms.front(), options.ceiling_seconds,
      options.server_url.substr(0, options.server_url.rfind('/')));
  for (const auto& setting : options.config_set) fmt::print("  adapter config: {}\n", setting);
  std::fflush(stdout);

  ServerProbe server(options.server_url);
  std::vector<Sustained> sustained;
  for (const int latency_ms : options.latencies_ms) {
    const auto run = fmt::format("sustained {} ms", latency_ms);
    const double before = probe_speed(run);
    sustained.push_back(run_sustained(options, latency_ms, server));
    sustained.back().speed = {before, probe_speed(run)};
    print_sustained(sustained.back());
    std::fflush(stdout);
  }

  const auto& base = sustained.front();
  const double rate = options.latency_rate > 0 ? options.latency_rate
                                               : std::max(1.0, std::floor(base.resolved_per_s / 2));
  const auto latency_run = fmt::format("latency {} ms @ {:.0f}/s", base.latency_ms, rate);
  const double latency_before = probe_speed(latency_run);
  auto latency = run_latency(options, base.latency_ms, rate);
  latency.speed = {latency_before, probe_speed(latency_run)};
  fmt::print(
      "\nlatency, TransferRequested commit -> outcome applied on the core, at {:.0f} transfers/s "
      "({:.0f}% of"
      " {:.0f}), clearing latency {} ms, {} s\n",
      rate, 100.0 * rate / std::max(1.0, base.resolved_per_s), base.resolved_per_s, base.latency_ms,
      options.latency_seconds);
  fmt::print(
      "  steady (requested after the first {:.1f} s):  p50 {:>7.1f} ms  p95 {:>7.1f} ms  p99 "
      "{:>7.1f} ms"
      "  max {:>7.1f} ms  (n={})\n",
      latency.excluded_s, latency.steady.p50, latency.steady.p95, latency.steady.p99,
      latency.steady.max, latency.steady.count);
  print_speed_probe(latency.speed);
  fmt::print(
      "  core-sim's report (every transfer, warm-up included):  p50 {:.1f} ms  p95 {:.1f} ms  p99 "
      "{:.1f} ms"
      "  max {:.1f} ms  (n={}); requested at {:.0f}/s\n",
      latency.all.p50, latency.all.p95, latency.all.p99, latency.all.max, latency.all.count,
      latency.requested_per_s);
  for (const auto& [hop, p] : latency.hops)
    fmt::print("    {:<74} p50 {:>7.1f} ms  p99 {:>7.1f} ms\n", hop, p.p50, p.p99);
  fmt::print("  adapter peak RSS (VmHWM) {}\n", mib(latency.adapter_hwm_kb));
  std::fflush(stdout);

  const int clients =
      std::clamp(base.adapter_connections + base.core_connections, 1, kCeilingClientsMax);
  progress(fmt::format("commit ceiling: {} clients for {} s", clients, options.ceiling_seconds));
  const auto ceiling = run_ceiling(options, clients);
  const double commits_per_transfer =
      static_cast<double>(base.adapter_commits + base.core_commits) /
      static_cast<double>(std::max<std::int64_t>(1, base.resolved));
  const double writes_per_transfer = static_cast<double>(base.writing_transactions) /
                                     static_cast<double>(std::max<std::int64_t>(1, base.resolved));
  fmt::print(
      "\nPostgreSQL commit ceiling: {:.0f} single-row insert transactions/s at {} clients ({} "
      "commits in {:.1f} s;"
      " N = the connections the adapter ({}) and core-sim ({}) held in the {} ms run)\n",
      ceiling.per_s, ceiling.clients, ceiling.commits, ceiling.seconds, base.adapter_connections,
      base.core_connections, base.latency_ms);
  fmt::print(
      "  {} ms run: {:.2f} commits per transfer -> ceiling / commits per transfer = {:.0f} "
      "transfers/s;"
      " achieved {:.0f} ({:.0f}% of that bound)\n",
      base.latency_ms, commits_per_transfer, ceiling.per_s / commits_per_transfer,
      base.resolved_per_s, 100.0 * base.resolved_per_s * commits_per_transfer / ceiling.per_s);
  fmt::print(
      "  counting only writing transactions ({:.2f} per transfer): bound {:.0f} transfers/s\n",
      writes_per_transfer, ceiling.per_s / writes_per_transfer);

  std::int64_t peak_kb = latency.adapter_hwm_kb;
  for (const auto& r : sustained) peak_kb = std::max(peak_kb, r.adapter_hwm_kb);
  fmt::print(
      "\nsummary (noisy: the machine's {} cores are shared with other work; goal: >= 2000 "
      "transfers/s end to"
      " end, p99 < 250 ms at 1000 transfers/s)\n",
      std::thread::hardware_concurrency());
  for (const auto& r : sustained)
    fmt::print(
        "  sustained, clearing {:>3} ms: {:>6.0f} transfers/s resolved ({:.0f} requested/s)\n",
        r.latency_ms, r.resolved_per_s, r.requested_per_s);
  fmt::print("  latency at {:.0f}/s ({} ms): p50 {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms\n", rate,
             base.latency_ms, latency.steady.p50, latency.steady.p95, latency.steady.p99);
  fmt::print(
      "  commit ceiling {:.0f}/s at {} clients; {:.2f} commits per transfer -> bound {:.0f} "
      "transfers/s vs"
      " {:.0f} achieved\n",
      ceiling.per_s, ceiling.clients, commits_per_transfer, ceiling.per_s / commits_per_transfer,
      base.resolved_per_s);
  fmt::print("  adapter peak RSS {}\n", mib(peak_kb));
  std::string probes;
  for (const auto& r : sustained)
    probes += fmt::format("sustained {} ms {:.0f} / {:.0f}, ", r.latency_ms, r.speed.before_ms,
                          r.speed.after_ms);
  fmt::print("  machine speed probe before / after each run (ms): {}latency {:.0f} / {:.0f}\n",
             probes, latency.speed.before_ms, latency.speed.after_ms);
  fmt::print("  every transfer resolved exactly once in every run\n");
  return 0;
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  using namespace clearing::bench;
  Options options;
  CLI::App app{
      "bench_e2e: the end-to-end benchmark. Starts kafka-mock, clearing-mock, clearing-adapter run "
      "and\n"
      "core-sim as processes on the PostgreSQL server of CLEARING_TEST_DATABASE_URL (use "
      "bench/e2e) and\n"
      "prints sustained transfers/s per clearing latency, latency percentiles at 50% of the "
      "sustained\n"
      "rate (or --latency-rate), the server's commit ceiling and the adapter's peak RSS. No "
      "thresholds: exit 0 when "
      "every\n"
      "transfer resolved exactly once, 1 when something broke, 2 on bad flags."};
  app.add_option("--database-url", options.server_url, "libpq URI of the server's admin database")
      ->envname("CLEARING_TEST_DATABASE_URL");
  app.add_flag("--quick", options.quick, "smoke run: 10 s windows, 10 s latency run, 3 s ceiling");
  app.add_option("--seconds", options.seconds,
                 "sustained window per clearing latency, after the warm-up")
      ->capture_default_str()
      ->check(CLI::Range(1, kSecondsMax));
  app.add_option("--latency-seconds", options.latency_seconds, "length of the latency run")
      ->capture_default_str()
      ->check(CLI::Range(1, kSecondsMax));
  app.add_option("--ceiling-seconds", options.ceiling_seconds,
                 "length of the commit ceiling measurement")
      ->capture_default_str()
      ->check(CLI::Range(1, kSecondsMax));
  app.add_option(
         "--latency-ms-list", options.latencies_ms,
         "clearing latencies of the sustained runs; the first one also gets the latency run")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(0, kLatencyMsMax));
  app.add_option("--transfers", options.transfers,
                 "sustained runs publish this many transfers instead of a timed window (the window "
                 "ends at 95% "
                 "resolved)")
      ->check(CLI::Range(1, kTransfersMax));
  app.add_option("--load-rate", options.load_rate,
                 "core-sim --rate in the sustained runs (0: as fast as possible at 0 ms, 1.5 x the "
                 "adapter's call cap with a clearing latency)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  app.add_option("--latency-rate", options.latency_rate,
                 "core-sim --rate in the latency run (0: 50% of the first sustained rate)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  app.add_option("--core-batch", options.core_batch,
                 "core-sim --batch: transfers per core transaction")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--accounts", options.accounts, "core-sim --accounts")
      ->capture_default_str()
      ->check(CLI::Range(1, 9999));
  app.add_option("--mock-threads", options.mock_threads, "clearing-mock --threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--drain-timeout-s", options.drain_timeout_s,
                 "give up on unresolved transfers after this long")
      ->capture_default_str()
      ->check(CLI::Range(10, 86'400));
  app.add_option("--config-set", options.config_set,
                 "override a key of config/dk.json for the adapter, e.g. "
                 "clearing.in_flight_max=128 (repeatable)");
  app.add_option(
         "--fetch-wait-ms", options.fetch_wait_ms,
         "the consumers' fetch.wait.max.ms (the mock cluster waits it out on every empty fetch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 5000));
  app.add_option(
         "--relay-round-interval-ms", options.relay_round_interval_ms,
         "both relays' pacing: under load a round starts no sooner than this after the last began")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--statements", options.statements,
                 "print this many statements that took the most time in each window (needs "
                 "CLEARING_PG_EXTRA_OPTIONS=\"-c shared_preload_libraries=pg_stat_statements\")")
      ->check(CLI::Range(0, 100));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  // --quick shortens what was not given explicitly.
  if (options.quick) {
    if (app.count("--seconds") == 0) options.seconds = 10;
    if (app.count("--latency-seconds") == 0) options.latency_seconds = 10;
    if (app.count("--ceiling-seconds") == 0) options.ceiling_seconds = 3;
  }
  if (options.latencies_ms.empty() || options.latencies_ms.size() > kLatenciesMax) {
    fmt::print(stderr, "bench_e2e: --latency-ms-list wants 1..{} values\n", kLatenciesMax);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(options);
  } catch (const Failure& e) {
    fmt::print(stderr, "\nbench_e2e: FAILED: {}\n", e.what());
  } catch (const std::exception& e) {
    fmt::print(stderr, "\nbench_e2e: FAILED (unexpected error): {}\n", e.what());
  }
  std::fflush(stdout);
  return 1;
}
