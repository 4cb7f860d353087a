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

// Phase 4, the degrading clearing.
void define_degrading(CLI::App& app, Options& options) {
  app.add_flag("--degrading", options.degrading,
               "add the degrading clearing phase: clearing-mock with a capacity model, the "
               "adapter's adaptive concurrency limit against each fixed cap of --degrading-caps")
      ->group("Degrading clearing");
  app.add_flag("--degrading-only", options.degrading_only,
               "run the degrading clearing phase alone (implies --degrading)")
      ->group("Degrading clearing");
  app.add_option("--degrading-capacity", options.degrading_capacity,
                 "clearing-mock --capacity: the executors of the degrading clearing")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000))
      ->group("Degrading clearing");
  app.add_option("--degrading-service-ms", options.degrading_service_ms,
                 "clearing-mock --service-ms: one call's execution time")
      ->capture_default_str()
      ->check(CLI::Range(1, kLatencyMsMax))
      ->group("Degrading clearing");
  app.add_option("--degrading-thrash-permille", options.degrading_thrash_permille,
                 "clearing-mock --thrash-permille: how much slower execution gets per queued "
                 "call per executor")
      ->capture_default_str()
      ->check(CLI::Range(0, 100'000))
      ->group("Degrading clearing");
  app.add_option("--degrading-queue-max", options.degrading_queue_max,
                 "clearing-mock --queue-max: calls that may wait for an executor; beyond, 503 "
                 "OVERLOADED with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000))
      ->group("Degrading clearing");
  app.add_option("--degrading-caps", options.degrading_caps,
                 "the fixed caps (clearing.in_flight_max, concurrency_mode fixed) compared with "
                 "the adaptive limit, one run each")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::Range(1, kDegradingCapMax))
      ->group("Degrading clearing");
  app.add_option("--degrading-seconds", options.degrading_seconds,
                 "window of each degrading run, after the warm-up (--quick: 10 unless given)")
      ->capture_default_str()
      ->check(CLI::Range(1, kSecondsMax))
      ->group("Degrading clearing");
  app.add_option("--degrading-rate", options.degrading_rate,
                 "core-sim --rate in the degrading runs (0: 1.5 x capacity x 1000 / service-ms, "
                 "faster than the clearing can take)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0))
      ->group("Degrading clearing");
  app.add_option("--degrading-constant-ms", options.degrading_constant_ms,
                 "one more adaptive run against a clearing of this constant latency and no "
                 "capacity limit, core-sim as fast as it can (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, kLatencyMsMax))
      ->group("Degrading clearing");
}

}  // namespace

void define_options(CLI::App& app, Options& options) {
  define_durations(app, options);
  define_load(app, options);
  define_degrading(app, options);
}

std::optional<std::string> finish_options(Options& options, const CLI::App& app) {
  if (options.quick) {
    if (app.count("--seconds") == 0) options.seconds = 10;
    if (app.count("--latency-seconds") == 0) options.latency_seconds = 10;
    if (app.count("--ceiling-seconds") == 0) options.ceiling_seconds = 3;
    if (app.count("--degrading-seconds") == 0) options.degrading_seconds = 10;
  }
  if (options.degrading_only) options.degrading = true;
  if (options.degrading_caps.size() > kDegradingCapsMax)
    return fmt::format("--degrading-caps wants at most {} values", kDegradingCapsMax);
  if (options.latencies_ms.empty() || options.latencies_ms.size() > kLatenciesMax)
    return fmt::format("--latency-ms-list wants 1..{} values", kLatenciesMax);
  return std::nullopt;
}

}  // namespace clearing::bench::e2e
