#pragma once
// bench_e2e's options: what to run and for how long, their limits, and the command line that
// sets them (--help lists each with its default).
//
// Thread safety: plain values, set once in main before the run.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace clearing::bench::e2e {

// Named limits of the inputs.
constexpr int kSecondsMax = 3'600;
constexpr int kLatencyMsMax = 10'000;
constexpr std::size_t kLatenciesMax = 8;
constexpr int kTransfersMax = 10'000'000;
constexpr std::size_t kDegradingCapsMax = 16;
constexpr int kDegradingCapMax = 4'096;  // the adapter's clearing.in_flight_max bound

struct Options {
  std::string server_url;
  bool quick = false;
  int seconds = 60;
  int latency_seconds = 30;
  int ceiling_seconds = 5;
  std::vector<int> latencies_ms{0, 50};
  int transfers = 0;     // 0: timed window
  double load_rate = 0;  // core-sim --rate in the sustained runs; 0 = as fast as possible
  // core-sim --rate of each latency run, in order: ordinary load and the 1,000/s goal; 0 =
  // 50% of the first sustained rate. --latency-rate N runs at N alone.
  std::vector<double> latency_rates{100, 1000};
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
  // The degrading clearing (phase 4, off unless --degrading): clearing-mock's capacity model
  // (executors, execution time, thrashing past them), the adapter's adaptive limit against
  // fixed caps, each a sustained run of degrading_seconds.
  bool degrading = false;
  bool degrading_only = false;  // skip phases 1-3
  int degrading_capacity = 32;
  int degrading_service_ms = 40;
  int degrading_thrash_permille = 500;
  int degrading_queue_max = 256;  // beyond, 503 OVERLOADED: an adaptive limit at 512 meets it
  std::vector<int> degrading_caps{16, 32, 64, 128};
  int degrading_seconds = 20;
  double degrading_rate = 0;        // core-sim --rate; 0: 1.5 x what the executors carry
  int degrading_constant_ms = 200;  // an adaptive run against a constant clearing; 0: none
};

// Every option on `app`, each with its limits, writing into `options`.
void define_options(CLI::App& app, Options& options);

// After parsing: --quick shortens what was not given explicitly; what CLI11's checks cannot
// say comes back as a message (exit code 2).
std::optional<std::string> finish_options(Options& options, const CLI::App& app);

}  // namespace clearing::bench::e2e
