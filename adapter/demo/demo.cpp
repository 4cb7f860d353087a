#include "demo.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/service.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/country.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/core_sim/core_sim.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/privacy/aead.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/scratch_database.hpp"
#include "reconcile.hpp"

namespace clearing::demo {
namespace {

using support::with_database;

constexpr int kDemoFetchWaitMs = 5;  // the consumers' fetch.wait.max.ms against the mock cluster

std::string server_url(const DemoOptions& options) {
  if (!options.database_url.empty()) return options.database_url;
  for (const char* name : {"CLEARING_TEST_DATABASE_URL", "CLEARING_ADAPTER_DATABASE_URL"})
    if (const char* value = std::getenv(name); value && *value) return value;
  return "";
}

// Faults as a mainframe has them: rare, every class, and answers that come late.
clearing_mock::FaultSettings realistic_faults() {
  clearing_mock::FaultSettings f;
  f.delay = 0.10;
  f.delay_ms_min = 5;
  f.delay_ms_max = 60;
  f.latency_ms = 5;
  for (double* p : {&f.timeout_before_execute, &f.timeout_after_execute, &f.close_after_execute,
                    &f.reset_before_execute, &f.http_500, &f.http_502, &f.http_504,
                    &f.error_body_200, &f.malformed_json, &f.maintenance_503})
    *p = 0.012;
  f.hold_ms = 1500;  // past the client's 1 s deadline
  f.retry_after_s = 1;
  return f;
}

void draw_progress(const core_sim::Progress& p, double elapsed_s, bool tty) {
  const auto done = p.succeeded + p.rejected + p.refused;
  const auto total = std::max<std::int64_t>(p.total_planned, 1);
  const int width = 30;
  const int filled = static_cast<int>(width * std::min<std::int64_t>(done, total) / total);
  char line[256];
  std::snprintf(line, sizeof line,
                "[%s%s] %lld/%lld  succeeded %lld  rejected %lld  open %lld  %.1f s",
                std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                static_cast<long long>(done), static_cast<long long>(p.total_planned),
                static_cast<long long>(p.succeeded), static_cast<long long>(p.rejected + p.refused),
                static_cast<long long>(p.open), elapsed_s);
  if (tty)
    std::fprintf(stderr, "\r%s", line);
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

// The demo's two databases on the server, named for this second.
struct DemoDatabases {
  std::string adapter, core;
};

tl::expected<DemoDatabases, std::string> create_databases(const std::string& server,
                                                          std::string_view cc) {
  const std::string suffix = std::string(cc) + "_demo_" + std::to_string(std::time(nullptr));
  DemoDatabases names{"clearing_" + suffix, "core_" + suffix};
  try {
    pqxx::connection admin(server);
    pqxx::nontransaction tx(admin);
    tx.exec("create database " + names.adapter);
    tx.exec("create database " + names.core);
  } catch (const std::exception& e) {
    return tl::unexpected(std::string(e.what()));
  }
  return names;
}

// The clearing of the config's country, with realistic faults from the demo's seed.
clearing_mock::MockOptions mock_options(const DemoOptions& options,
                                        const config::AdapterConfig& cfg) {
  clearing_mock::MockOptions mock;
  mock.seed = options.seed;
  mock.threads = 2;
  mock.bearer_token = base::new_uuid();
  mock.country = cfg.country.code;
  mock.amount_minor_max = cfg.country.amount_limit_minor;
  mock.faults = realistic_faults();
  mock.cutoff_minute_utc = static_cast<int>(cfg.country.cutoff_utc.count());
  mock.business_days = cfg.country.business_days;
  mock.settle_after_inquiries = 2;
  return mock;
}

// Where the others are, and timings short enough to watch.
struct Wiring {
  std::string adapter_database_url, core_database_url, clearing_url, clearing_token, api_token;
  // The adapter's credential toward the core's catch-up API: its own, never its API token.
  std::string core_token = base::new_uuid();
  int adapter_port = 0, core_port = 0;
};

void wire_adapter(config::AdapterConfig& cfg, const Wiring& w) {
  cfg.database.url = w.adapter_database_url;
  cfg.clearing.base_url = w.clearing_url;
  cfg.clearing.token = config::Secret(w.clearing_token);
  cfg.clearing.request_timeout_ms = 1000;
  cfg.clearing.connect_timeout_ms = 500;
  cfg.http.address = "127.0.0.1:" + std::to_string(w.adapter_port);
  cfg.http.api_token = config::Secret(w.api_token);
  cfg.streams.core_catchup_token = config::Secret(w.core_token);
  // A fresh key-encryption key per demo run, like its tokens: its database is new too.
  if (!cfg.privacy.data_kek.is_set()) {
    const auto kek = privacy::random_key();
    cfg.privacy.data_kek = config::Secret(privacy::to_base64(
        std::string_view(reinterpret_cast<const char*>(kek.data()), kek.size())));
  }
  cfg.streams.core_catchup_url = "http://127.0.0.1:" + std::to_string(w.core_port);
  // Seconds instead of minutes, so a demo's retries and inquiries happen while you watch.
  cfg.retry = {50, 2000, 2, 2, 300, 1000, 30'000};
  cfg.dispatcher.lease_ms = 5000;
  cfg.incoming.poll_interval_ms = 500;
  // The mock cluster waits out a consumer's whole fetch wait when a fetch finds nothing,
  // even if messages arrive meanwhile: keep it short (core-sim's consumer too, below).
  cfg.kafka.fetch_wait_max_ms = kDemoFetchWaitMs;
}

core_sim::CoreSimOptions core_options(const DemoOptions& options, const config::AdapterConfig& cfg,
                                      const Wiring& w, const std::string& bootstrap,
                                      int adapter_http_port) {
  core_sim::CoreSimOptions core;
  core.country = std::string(config::country_code_lower(cfg.country.code));
  core.database_url = w.core_database_url;
  core.kafka_bootstrap = bootstrap;
  core.fetch_wait_max_ms = kDemoFetchWaitMs;
  core.core_partitions = cfg.streams.inbound.partitions;
  core.adapter_partitions = cfg.streams.outbound.front().partitions;
  core.adapter_catch_up_url = "http://127.0.0.1:" + std::to_string(adapter_http_port);
  core.adapter_api_token = w.api_token;
  core.http_port = w.core_port;
  core.api_token = w.core_token;
  if (options.transfers > 0) {
    core.transfers = options.transfers;
  } else {
    core.jsonl_path = options.file;
  }
  core.seed = options.seed;
  core.rate_per_s = options.rate_per_s;
  core.amount_limit_minor = cfg.country.amount_limit_minor;
  return core;
}

// Until every transfer is resolved or --timeout; true when resolved.
bool wait_with_progress(core_sim::CoreSim& sim, const DemoOptions& options) {
  const bool tty = isatty(STDERR_FILENO) && !options.quiet;
  const auto began = std::chrono::steady_clock::now();
  const auto deadline = began + std::chrono::seconds(options.timeout_s);
  auto last_line = began;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    done = sim.wait_until_done(std::chrono::milliseconds(250));
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - began).count();
    if (tty || (!options.quiet && now - last_line > std::chrono::seconds(2)) || done) {
      draw_progress(sim.progress(), elapsed, tty);
      last_line = now;
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  return done;
}

void print_figures(const core_sim::Report& report, const clearing_mock::MockStats& mock_stats) {
  std::cout << "\n== Figures ==\n";
  std::printf("  transfers/s (requested -> resolved): %.1f\n", report.resolved_per_s);
  std::printf(
      "  latency TransferRequested -> outcome applied: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
      report.latency.p50_ms, report.latency.p95_ms, report.latency.p99_ms);
  std::int64_t calls = 0;
  for (const auto& [endpoint, n] : mock_stats.requests)
    if (endpoint == "submit" || endpoint == "inquire") calls += n;
  std::printf("  clearing calls: %lld for %lld transfers (%lld retries and inquiries)\n",
              static_cast<long long>(calls), static_cast<long long>(report.requested),
              static_cast<long long>(std::max<std::int64_t>(0, calls - report.requested)));
  std::cout << "  faults met:";
  for (const auto& [fault, n] : mock_stats.faults) std::cout << " " << fault << "=" << n;
  std::cout << "\n";
}

void print_trace(const std::string& adapter_database_url, const std::string& transfer_id) {
  eventstore::DatabaseOptions db;
  db.url = adapter_database_url;
  db.connections_max = 1;
  eventstore::ConnectionPool pool(db);
  eventstore::EventStore store(pool);
  adapter::TransferService transfers(store);
  auto story = adapter::build_trace(pool, transfers, transfer_id);
  if (story)
    std::cout << "\n== The transfer with the most trouble ==\n" << adapter::render_trace(*story);
}

int failed_to_start(const std::string& why) {
  std::fprintf(stderr, "%s\n", why.c_str());
  return 2;
}

}  // namespace

void add_demo_options(CLI::App& app, DemoOptions& o) {
  auto* config = app.add_option("--config", o.config_path, "the country's config file")
                     ->check(CLI::ExistingFile);
  auto* file = app.add_option("--file", o.file, "TransferRequested data, one JSON object per line");
  auto* transfers = app.add_option("--transfers", o.transfers,
                                   "generate this many transfers instead of reading --file")
                        ->check(CLI::Range(1, 1'000'000));
  app.add_option("--country", o.country,
                 "the country (" + base::country_codes_lower_text() +
                     "): config/<cc>.json, and examples/transfers.<cc>.jsonl or, where there is "
                     "none, " +
                     std::to_string(kCountryTransfers) + " generated transfers")
      ->check(CLI::IsMember(base::country_codes_lower()))
      ->excludes(config);
  // After parsing: what --country implies, where the other options did not say.
  app.callback([&o, file, transfers] {
    if (o.country.empty()) return;
    o.config_path = "config/" + o.country + ".json";
    if (*file || *transfers) return;
    o.file = "examples/transfers." + o.country + ".jsonl";
    if (!std::filesystem::exists(o.file)) o.transfers = kCountryTransfers;
  });
  app.add_option("--seed", o.seed, "seed of the generator and of the clearing mock's faults");
  app.add_option(
      "--database-url", o.database_url,
      "PostgreSQL server to create the demo's databases on (default: $CLEARING_TEST_DATABASE_URL, "
      "as scripts/demo sets it)");
  app.add_option("--rate", o.rate_per_s,
                 "transfers per second the core requests (0: as fast as it can)");
  app.add_option("--timeout", o.timeout_s, "give up after this many seconds")
      ->check(CLI::Range(10, 36'000));
  app.add_flag("--quiet", o.quiet, "no progress bar");
}

int run_demo(const DemoOptions& options) {
  const auto server = server_url(options);
  if (server.empty())
    return failed_to_start(
        "clearing-demo: no PostgreSQL server: run it through scripts/demo (it starts a throwaway "
        "one) or pass --database-url");
  // The demo's own report is the output; the components' warnings (every injected
  // fault is one) would drown it.
  base::set_log_level("error");
  auto loaded = config::load_config(options.config_path, config::Environment::process(), {true});
  if (!loaded) return failed_to_start("clearing-demo: " + loaded.error().to_string());
  auto cfg = *loaded;
  const auto databases = create_databases(server, config::country_code_lower(cfg.country.code));
  if (!databases)
    return failed_to_start("clearing-demo: cannot create the demo databases: " + databases.error());

  std::fprintf(stderr,
               "demo: Kafka (librdkafka mock cluster), clearing mock with faults, core simulator, "
               "adapter %s\n",
               config::country_code_upper(cfg.country.code).data());
  auto kafka = external_streams::EmbeddedKafka::start(1);
  if (!kafka) return failed_to_start("demo: " + kafka.error().message);
  for (const auto& [topic, partitions] : adapter::configured_topics(cfg))
    (void)(*kafka)->create_topic(topic, partitions);
  const auto clearing = mock_options(options, cfg);
  auto mock = clearing_mock::MockServer::start(clearing);
  if (!mock) return failed_to_start("demo: clearing mock: " + mock.error());

  Wiring w{with_database(server, databases->adapter), with_database(server, databases->core),
           (*mock)->base_url(), clearing.bearer_token, base::new_uuid()};
  const auto ports = support::free_ports(2);
  w.adapter_port = ports[0];
  w.core_port = ports[1];
  wire_adapter(cfg, w);
  auto service = adapter::Service::create(cfg, (*kafka)->bootstrap_servers());
  if (!service) return failed_to_start("demo: " + service.error());
  if (auto started = (*service)->start(); !started)
    return failed_to_start("demo: adapter: " + started.error().message);
  auto sim = core_sim::CoreSim::create(
      core_options(options, cfg, w, (*kafka)->bootstrap_servers(), (*service)->http_port()));
  if (!sim) return failed_to_start("demo: core-sim: " + sim.error());
  if (auto started = (*sim)->start(); !started)
    return failed_to_start("demo: core-sim: " + started.error());

  const bool done = wait_with_progress(**sim, options);
  // Let the last outcomes and incoming payments flow before the books are compared.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto report = (*sim)->report();
  const Books books{w.adapter_database_url, w.core_database_url, (*mock)->state().ledger(),
                    (*mock)->state().stats()};
  (*sim)->stop();
  (*service)->stop();

  const auto checks = reconcile(books);
  std::cout << "\n== Core simulator ==\n" << core_sim::to_text(report);
  std::cout << "\n== Reconciliation (core outcomes vs clearing ledger vs adapter streams) ==\n"
            << render(checks);
  print_figures(report, books.mock_stats);
  if (!checks.most_troubled_transfer.empty())
    print_trace(w.adapter_database_url, checks.most_troubled_transfer);
  const bool ok = done && checks.all_hold();
  std::cout << "\n" << (ok ? "All invariants hold." : "INVARIANT VIOLATED (see above).") << "\n";
  if (!done) std::cout << "Not every transfer finished within " << options.timeout_s << " s.\n";
  return ok ? 0 : 1;
}

}  // namespace clearing::demo
