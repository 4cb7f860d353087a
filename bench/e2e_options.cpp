#include "e2e_options.hpp"

#include <fmt/core.h>

#include <CLI/CLI.hpp>

namespace clearing::bench::e2e {
namespace {

// The server, the --quick switch and how long each phase runs.
void define_durations(CLI::App& app, Options& options) {
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
}

// The load and the system under test: rates, core-sim's and clearing-mock's settings, the
// adapter's config.
void define_load(CLI::App& app, Options& options) {
  app.add_option("--load-rate", options.load_rate,
                 "core-sim --rate in the sustained runs (0: as fast as possible at 0 ms, 1.5 x the "
                 "adapter's call cap with a clearing latency)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  app.add_option("--latency-rate", options.latency_rates,
                 "core-sim --rate of the latency runs, one run each, in order (0: 50% of the "
                 "first sustained rate); default 100 and 1000: ordinary load and the goal's rate")
      ->capture_default_str()
      ->delimiter(',')
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
}

}  // namespace

void define_options(CLI::App& app, Options& options) {
  define_durations(app, options);
  define_load(app, options);
}

std::optional<std::string> finish_options(Options& options, const CLI::App& app) {
  if (options.quick) {
    if (app.count("--seconds") == 0) options.seconds = 10;
    if (app.count("--latency-seconds") == 0) options.latency_seconds = 10;
    if (app.count("--ceiling-seconds") == 0) options.ceiling_seconds = 3;
  }
  if (options.latencies_ms.empty() || options.latencies_ms.size() > kLatenciesMax)
    return fmt::format("--latency-ms-list wants 1..{} values", kLatenciesMax);
  return std::nullopt;
}

}  // namespace clearing::bench::e2e
