// core-sim: the banking core simulator as a process. main only parses flags, wires the
// CoreSim library, waits, and prints the report (see core_sim.hpp for what it does).
//
// stdout: first line "catch-up <host>:<port>" (the core's catch-up API), then the report
// (text, or JSON with --json). Logs go to stderr.
// --outcomes-version v1|v2 picks the adapter stream consumed; switching a core from v1 to
// v2 is a restart over the same database with v2 (core_sim.hpp, outcome_applier.hpp).
// Exit codes: 0 all requested transfers resolved exactly once (or stopped by SIGTERM/SIGINT
// without a violation), 1 a reservation not resolved exactly once (a violation, or still
// open when --timeout-s ran out), 2 bad flags or a failed start.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "clearing/base/country.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/core_sim/core_sim.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/tracing/otlp.hpp"

namespace {

namespace cs = clearing::core_sim;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_signalled = 0;

extern "C" void on_signal(int) { g_signalled = 1; }

constexpr auto kWaitSlice = std::chrono::milliseconds(200);

// The flags about this process's run rather than the simulated core.
struct RunFlags {
  std::string jsonl;
  bool json = false;
  bool stay = false;
  int timeout_s = 0;
  int progress_s = 0;
  std::string log_level = "info";
  std::string log_format = "text";
};

// Where the core lives and whom it talks to.
void add_connection_options(CLI::App& app, cs::CoreSimOptions& o) {
  app.add_option("--country", o.country, clearing::base::country_codes_lower_text())
      ->capture_default_str()
      ->check(CLI::IsMember(clearing::base::country_codes_lower()));
  app.add_option("--database-url", o.database_url, "libpq URI of the core's own database")
      ->envname("CORE_SIM_DATABASE_URL")
      ->required();
  app.add_option(
         "--kafka", o.kafka_bootstrap,
         "Kafka bootstrap servers, or 'embedded': an in-process mock cluster of this process\n"
         "only (both topics created; for smoke runs, no adapter can reach it)")
      ->envname("CLEARING_ADAPTER_KAFKA_BROKERS")
      ->required();
  app.add_option("--core-partitions", o.core_partitions, "partitions of core.<cc>.payments.v1")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--adapter-partitions", o.adapter_partitions,
                 "partitions of adapter.<cc>.payments.v1 (or .v2, see --outcomes-version)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option(
         "--outcomes-version", o.outcomes_version,
         "which adapter stream to consume: v1 (adapter.<cc>.payments.v1) or v2\n"
         "(adapter.<cc>.payments.v2: TransferStatusChanged). To switch a running core, stop it\n"
         "and start it again over the same database with v2: each of the adapter's events is\n"
         "applied once whichever version brought it (its source_event_id is kept)")
      ->capture_default_str()
      ->check(CLI::IsMember({"v1", "v2"}));
  app.add_option("--adapter-catch-up-url", o.adapter_catch_up_url,
                 "base URL of the adapter's catch-up API (http://host:port); empty: no gap repair")
      ->envname("CORE_SIM_ADAPTER_CATCHUP_URL");
  app.add_option("--adapter-token", o.adapter_api_token,
                 "the adapter's reader token (role reader: its API token)")
      ->envname("CLEARING_ADAPTER_API_TOKEN");
  app.add_option("--http-host", o.http_host, "address of the core's catch-up API")
      ->capture_default_str();
  app.add_option("--http-port", o.http_port, "port of the core's catch-up API (0: a free one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--api-token", o.api_token, "bearer token required on the core's catch-up API")
      ->envname("CORE_SIM_API_TOKEN");
  app.add_option("--tls-cert", o.tls_cert_file,
                 "certificate chain (PEM): the catch-up API serves https only, with --tls-key")
      ->check(CLI::ExistingFile);
  auto* key = app.add_option("--tls-key", o.tls_key_file, "private key (PEM) of --tls-cert")
                  ->check(CLI::ExistingFile);
  app.get_option("--tls-cert")->needs(key);
  key->needs(app.get_option("--tls-cert"));
  app.add_option("--tls-client-ca", o.tls_client_ca_file,
                 "CA bundle (PEM): the catch-up API requires a client certificate it signed")
      ->check(CLI::ExistingFile)
      ->needs(key);
}

// The transfers it requests: a JSONL file, or generated.
void add_source_options(CLI::App& app, cs::CoreSimOptions& o, std::string& jsonl) {
  auto* jsonl_option =
      app.add_option("--jsonl", jsonl, "source: JSONL file, one TransferRequested data per line")
          ->check(CLI::ExistingFile);
  app.add_option("--transfers", o.transfers, "source: generate this many transfers")
      ->capture_default_str()
      ->check(CLI::Range(0, 100'000'000))
      ->excludes(jsonl_option);
  app.add_option("--seed", o.seed, "generator seed")->capture_default_str();
  app.add_option("--invalid-share", o.invalid_share, "generator: share of invalid requests (0..1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--rate", o.rate_per_s, "transfers per second (0: as fast as possible)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  app.add_option("--accounts", o.accounts, "generator: accounts in the country's currency")
      ->capture_default_str()
      ->check(CLI::Range(1, 9999));
  app.add_option("--opening-balance-minor", o.opening_balance_minor,
                 "opening balance of every account")
      ->capture_default_str();
  app.add_option("--amount-limit-minor", o.amount_limit_minor,
                 "generator: over-limit requests exceed this")
      ->capture_default_str();
}

// Batching, pacing and the consumer.
void add_tuning_options(CLI::App& app, cs::CoreSimOptions& o) {
  app.add_option("--batch", o.publish_batch_max, "transfers per transaction")
      ->capture_default_str()
      ->check(CLI::Range(1, cs::kPublishBatchMax));
  app.add_option(
         "--fetch-wait-ms", o.fetch_wait_max_ms,
         "consumer fetch.wait.max.ms; the embedded mock cluster waits it out on every empty fetch")
      ->capture_default_str()
      ->check(CLI::Range(1, 5000));
  app.add_option("--relay-round-interval-ms", o.relay_round_interval_min_ms,
                 "under load the relay starts a round no sooner than this after the last began (0: "
                 "no pacing)")
      ->capture_default_str()
      ->check(CLI::Range(0, cs::kRelayRoundIntervalMsMax));
  app.add_option("--consumer-group", o.consumer_group,
                 "Kafka consumer group (default core-sim-<cc>)");
}

void add_run_options(CLI::App& app, RunFlags& flags) {
  app.add_option("--timeout-s", flags.timeout_s,
                 "give up waiting for outcomes after this long (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86'400 * 7));
  app.add_option("--progress-s", flags.progress_s,
                 "log progress every this many seconds (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  app.add_flag("--json", flags.json, "print the report as JSON");
  app.add_flag(
      "--stay", flags.stay,
      "keep consuming after every transfer resolved (incoming payments, late messages) until\n"
      "SIGTERM/SIGINT; the exit code is then that of a finished run");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format,
                 "text, or json: one JSON object per line on stderr")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

// The flags into `o` and `flags`; an exit code when the process is to end here (--help: 0,
// bad flags: 2).
std::optional<int> parse_flags(int argc, char** argv, cs::CoreSimOptions& o, RunFlags& flags) {
  CLI::App app{
      "core-sim: a small event-sourced banking core that drives one country's clearing adapter.\n"
      "It reserves funds and publishes TransferRequested on core.<cc>.payments.v1 (from --jsonl "
      "or\n"
      "--transfers N --seed S), serves its catch-up API, consumes adapter.<cc>.payments.v1 (or "
      ".v2),\ncompletes "
      "or releases each reservation, and prints a report. First stdout line: 'catch-up "
      "HOST:PORT'.\n"
      "Exit 0: every reservation resolved exactly once; 1: not so; 2: bad flags or start failed."};
  add_connection_options(app, o);
  add_source_options(app, o, flags.jsonl);
  add_tuning_options(app, o);
  add_run_options(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  clearing::base::set_log_format(*clearing::base::parse_log_format(flags.log_format));
  if (!clearing::base::set_log_level(flags.log_level)) {
    std::cerr << "unknown --log-level " << flags.log_level << "\n";
    return 2;
  }
  if (!flags.jsonl.empty()) o.jsonl_path = flags.jsonl;
  return std::nullopt;
}

// --kafka embedded: a mock cluster in this process with both topics (the core's, and the
// adapter's of --outcomes-version); `o` then points at it.
tl::expected<std::unique_ptr<clearing::external_streams::EmbeddedKafka>, std::string>
start_embedded_kafka(cs::CoreSimOptions& o) {
  auto embedded = clearing::external_streams::EmbeddedKafka::start(1);
  if (!embedded) return tl::unexpected(embedded.error().message);
  for (const auto& [topic, partitions] :
       {std::pair{"core." + o.country + ".payments.v1", o.core_partitions},
        {"adapter." + o.country + ".payments." + o.outcomes_version, o.adapter_partitions}})
    if (auto created = (*embedded)->create_topic(topic, partitions); !created)
      return tl::unexpected(created.error().message);
  o.kafka_bootstrap = (*embedded)->bootstrap_servers();
  return std::move(*embedded);
}

void log_progress(const cs::CoreSim& sim) {
  const auto p = sim.progress();
  clearing::base::module_logger("core_sim")
      ->info(
          "progress planned={} processed={} requested={} refused={} succeeded={} rejected={} "
          "open={}",
          p.total_planned, p.processed, p.requested, p.refused, p.succeeded, p.rejected, p.open);
}

struct Waited {
  bool done = false;       // every requested transfer resolved
  bool timed_out = false;  // --timeout-s ran out first
};

// Until every transfer is resolved (with --stay: until a signal), a signal, or --timeout-s.
Waited wait_for_outcomes(cs::CoreSim& sim, const RunFlags& flags) {
  const auto begun = Clock::now();
  auto last_progress = begun;
  Waited w;
  while ((!w.done || flags.stay) && g_signalled == 0) {
    w.done = sim.wait_until_done(kWaitSlice) || w.done;
    if (w.done) {  // only with --stay
      std::this_thread::sleep_for(kWaitSlice);
      continue;
    }
    const auto now = Clock::now();
    if (flags.progress_s > 0 && now - last_progress >= std::chrono::seconds(flags.progress_s)) {
      last_progress = now;
      log_progress(sim);
    }
    if (flags.timeout_s > 0 && now - begun >= std::chrono::seconds(flags.timeout_s)) {
      w.timed_out = true;
      break;
    }
  }
  return w;
}

// Stopped by a signal: open transfers are expected (they resume on restart); only a
// violation fails the run. Otherwise every reservation must be resolved exactly once.
// With --stay, a run that had finished before the signal is judged as finished.
int exit_code(const cs::Report& report, const Waited& w) {
  const bool signalled = g_signalled != 0 && !w.done && !w.timed_out;
  const bool failed = signalled
                          ? (report.violations.total() > 0 || report.resolved_twice_in_ledger > 0)
                          : !report.resolved_exactly_once;
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  clearing::base::init_logging();
  cs::CoreSimOptions o;
  RunFlags flags;
  if (const auto exit = parse_flags(argc, argv, o, flags)) return *exit;

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  // Tracing from the standard OpenTelemetry variables (off when no endpoint is set): a span
  // for each transfer requested (the trace the adapter's spans follow) and each outcome
  // consumed under its traceparent.
  auto tracing = clearing::tracing::install_from_environment("core-sim");
  if (!tracing) {
    std::cerr << "core-sim: tracing: " << tracing.error() << "\n";
    return 2;
  }

  std::unique_ptr<clearing::external_streams::EmbeddedKafka> embedded;
  if (o.kafka_bootstrap == "embedded") {
    auto started = start_embedded_kafka(o);
    if (!started) {
      std::cerr << "core-sim: embedded Kafka: " << started.error() << "\n";
      return 2;
    }
    embedded = std::move(*started);
  }
  auto sim = cs::CoreSim::create(o);
  if (!sim) {
    std::cerr << "core-sim: " << sim.error() << "\n";
    return 2;
  }
  if (auto started = (*sim)->start(); !started) {
    std::cerr << "core-sim: " << started.error() << "\n";
    return 2;
  }
  std::cout << "catch-up " << o.http_host << ":" << (*sim)->catch_up_port() << std::endl;

  const auto waited = wait_for_outcomes(**sim, flags);
  (*sim)->stop();
  if (tracing->exporter) tracing->exporter->stop();  // posts the spans still queued
  const auto report = (*sim)->report();
  if (flags.json)
    std::cout << cs::to_json(report).dump(2) << std::endl;
  else
    std::cout << cs::to_text(report) << std::flush;
  return exit_code(report, waited);
}
