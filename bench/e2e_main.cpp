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
//   4. Degrading clearing, with --degrading (alone with --degrading-only; in neither default
//      nor --quick): clearing-mock's capacity model (executors that slow down as their queue
//      grows), core-sim faster than it carries; the adapter's adaptive concurrency limit, then
//      each fixed cap of --degrading-caps, then (--degrading-constant-ms) the adaptive limit
//      against a constant clearing latency. Each a sustained run of --degrading-seconds:
//      resolved/s, end-to-end p50/p99 of the outcomes applied in the window, the mock's 503s,
//      and the adapter's clearing_concurrency_limit gauge once a second
//      (e2e_degrading.hpp).
// Progress goes to stderr; figures to stdout.
//
// The parts: e2e_options (the command line), e2e_system (the processes, started with
// support/'s command lines), e2e_database and e2e_probes (what is read around the
// measurement), e2e_sustained, e2e_latency, e2e_ceiling and e2e_degrading (the phases),
// e2e_report (stdout).

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "clearing/support/bench.hpp"
#include "e2e_ceiling.hpp"
#include "e2e_common.hpp"
#include "e2e_database.hpp"
#include "e2e_degrading.hpp"
#include "e2e_latency.hpp"
#include "e2e_options.hpp"
#include "e2e_report.hpp"
#include "e2e_sustained.hpp"

namespace clearing::bench::e2e {
namespace {

constexpr int kCeilingClientsMax = 256;

// The server from CLEARING_TEST_DATABASE_URL when --database-url did not name one.
void resolve_server(Options& options) {
  if (options.server_url.empty()) {
    const char* env = std::getenv("CLEARING_TEST_DATABASE_URL");
    if (env == nullptr)
      throw Failure("no server: set CLEARING_TEST_DATABASE_URL or --database-url (bench/e2e does)");
    options.server_url = env;
  }
}

// One probe of SpeedProbes, logged with the run it brackets.
double probe_speed(const std::string& run) {
  const double ms = speed_probe_ms();
  progress(fmt::format("[{}] machine speed probe {:.0f} ms", run, ms));
  return ms;
}

// Phase 1: one sustained run per clearing latency, each printed when it is done.
std::vector<Sustained> run_sustained_phase(const Options& options) {
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
  return sustained;
}

// Phase 2: one latency run per --latency-rate (100/s and 1,000/s unless given; 0 = 50% of the
// first sustained rate), each printed when it is done.
std::vector<LatencyRun> run_latency_phase(const Options& options, const Sustained& base) {
  std::vector<LatencyRun> out;
  for (const double asked : options.latency_rates) {
    const double rate = asked > 0 ? asked : std::max(1.0, std::floor(base.resolved_per_s / 2));
    const auto latency_run = fmt::format("latency {} ms @ {:.0f}/s", base.latency_ms, rate);
    const double latency_before = probe_speed(latency_run);
    auto latency = run_latency(options, base.latency_ms, rate);
    latency.speed = {latency_before, probe_speed(latency_run)};
    print_latency(latency, base, options);
    out.push_back(std::move(latency));
  }
  return out;
}

// Phase 3: the commit ceiling at as many clients as the first sustained run held.
Ceiling run_ceiling_phase(const Options& options, const Sustained& base) {
  const int clients =
      std::clamp(base.adapter_connections + base.core_connections, 1, kCeilingClientsMax);
  progress(fmt::format("commit ceiling: {} clients for {} s", clients, options.ceiling_seconds));
  const auto ceiling = run_ceiling(options, clients);
  print_ceiling(ceiling, base);
  return ceiling;
}

// Phase 4: the degrading clearing, each run printed when it is done.
std::vector<DegradingRun> run_degrading_phase(const Options& options) {
  ServerProbe server(options.server_url);
  std::vector<DegradingRun> runs;
  for (const auto& setup : degrading_setups(options)) {
    const auto run = "degrading: " + setup.label;
    const double before = probe_speed(run);
    runs.push_back(run_degrading(options, setup, server));
    runs.back().speed = {before, probe_speed(run)};
    print_degrading(runs.back(), options);
  }
  return runs;
}

int run(Options options) {
  resolve_server(options);
  print_header(options);
  std::vector<Sustained> sustained;
  if (!options.degrading_only) {
    sustained = run_sustained_phase(options);
    const auto latency = run_latency_phase(options, sustained.front());
    const auto ceiling = run_ceiling_phase(options, sustained.front());
    print_summary(sustained, latency, ceiling);
  }
  if (options.degrading) print_degrading_summary(run_degrading_phase(options), sustained, options);
  return 0;
}

}  // namespace
}  // namespace clearing::bench::e2e

int main(int argc, char** argv) {
  using namespace clearing::bench::e2e;
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
  define_options(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (const auto error = finish_options(options, app)) {
    fmt::print(stderr, "bench_e2e: {}\n", *error);
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
