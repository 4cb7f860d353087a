#include "demo.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/service.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/core_sim/core_sim.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/support/scratch_database.hpp"
#include "reconcile.hpp"

namespace clearing::demo {
namespace {

using support::with_database;

constexpr int kDemoFetchWaitMs = 5;  // the consumers' fetch.wait.max.ms against the mock cluster

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

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

}  // namespace

void add_demo_options(CLI::App& app, DemoOptions& o) {
  app.add_option("--config", o.config_path, "the country's config file")->check(CLI::ExistingFile);
  app.add_option("--file", o.file, "TransferRequested data, one JSON object per line");
  app.add_option("--transfers", o.transfers,
                 "generate this many transfers instead of reading --file")
      ->check(CLI::Range(1, 1'000'000));
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
  if (server.empty()) {
    std::fprintf(
        stderr,
        "clearing-demo: no PostgreSQL server: run it through scripts/demo (it starts a throwaway "
        "one) or pass --database-url\n");
    return 2;
  }
  // The demo's own report is the output; the components' warnings (every injected
  // fault is one) would drown it.
  base::set_log_level("error");
  const std::string suffix = std::to_string(std::time(nullptr));
  const std::string adapter_db = "clearing_dk_demo_" + suffix, core_db = "core_dk_demo_" + suffix;
  try {
    pqxx::connection admin(server);
    pqxx::nontransaction tx(admin);
    tx.exec("create database " + adapter_db);
    tx.exec("create database " + core_db);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clearing-demo: cannot create the demo databases: %s\n", e.what());
    return 2;
  }

  auto loaded = config::load_config(options.config_path, config::Environment::process(), {true});
  if (!loaded) {
    std::fprintf(stderr, "clearing-demo: %s\n", loaded.error().to_string().c_str());
    return 2;
  }
  auto cfg = *loaded;
  const auto cc = std::string(config::country_code_lower(cfg.country.code));

  std::fprintf(stderr,
               "demo: Kafka (librdkafka mock cluster), clearing mock with faults, core simulator, "
               "adapter %s\n",
               config::country_code_upper(cfg.country.code).data());
  auto kafka = external_streams::EmbeddedKafka::start(1);
  if (!kafka) return std::fprintf(stderr, "demo: %s\n", kafka.error().c_str()), 2;
  for (const auto& [topic, partitions] : adapter::configured_topics(cfg))
    (void)(*kafka)->create_topic(topic, partitions);

  clearing_mock::MockOptions mock_options;
  mock_options.seed = options.seed;
  mock_options.threads = 2;
  mock_options.bearer_token = base::new_uuid();
  mock_options.amount_minor_max = cfg.country.amount_limit_minor;
  mock_options.faults = realistic_faults();
  mock_options.cutoff_minute_utc = static_cast<int>(cfg.country.cutoff_utc.count());
  mock_options.settle_after_inquiries = 2;
  auto mock = clearing_mock::MockServer::start(mock_options);
  if (!mock) return std::fprintf(stderr, "demo: clearing mock: %s\n", mock.error().c_str()), 2;

  const std::string api_token = base::new_uuid();
  const int adapter_port = free_port(), core_port = free_port();
  cfg.database.url = with_database(server, adapter_db);
  cfg.clearing.base_url = (*mock)->base_url();
  cfg.clearing.token = config::Secret(mock_options.bearer_token);
  cfg.clearing.request_timeout_ms = 1000;
  cfg.clearing.connect_timeout_ms = 500;
  cfg.http.address = "127.0.0.1:" + std::to_string(adapter_port);
  cfg.http.api_token = config::Secret(api_token);
  cfg.streams.core_catchup_url = "http://127.0.0.1:" + std::to_string(core_port);
  // Seconds instead of minutes, so a demo's retries and inquiries happen while you watch.
  cfg.retry = {50, 2000, 2, 2, 300, 1000, 30'000};
  cfg.dispatcher.lease_ms = 5000;
  cfg.incoming.poll_interval_ms = 500;
  // The mock cluster waits out a consumer's whole fetch wait when a fetch finds nothing,
  // even if messages arrive meanwhile: keep it short (core-sim's consumer too, below).
  cfg.kafka.fetch_wait_max_ms = kDemoFetchWaitMs;

  auto service = adapter::Service::create(cfg, (*kafka)->bootstrap_servers());
  if (!service) return std::fprintf(stderr, "demo: %s\n", service.error().c_str()), 2;
  if (auto started = (*service)->start(); !started)
    return std::fprintf(stderr, "demo: adapter: %s\n", started.error().c_str()), 2;

  core_sim::CoreSimOptions core;
  core.country = cc;
  core.database_url = with_database(server, core_db);
  core.kafka_bootstrap = (*kafka)->bootstrap_servers();
  core.fetch_wait_max_ms = kDemoFetchWaitMs;
  core.core_partitions = cfg.streams.inbound.partitions;
  core.adapter_partitions = cfg.streams.outbound.front().partitions;
  core.adapter_catch_up_url = "http://127.0.0.1:" + std::to_string((*service)->http_port());
  core.adapter_api_token = api_token;
  core.http_port = core_port;
  core.api_token = api_token;
  if (options.transfers > 0) {
    core.transfers = options.transfers;
  } else {
    core.jsonl_path = options.file;
  }
  core.seed = options.seed;
  core.rate_per_s = options.rate_per_s;
  core.amount_limit_minor = cfg.country.amount_limit_minor;
  auto sim = core_sim::CoreSim::create(core);
  if (!sim) return std::fprintf(stderr, "demo: core-sim: %s\n", sim.error().c_str()), 2;
  if (auto started = (*sim)->start(); !started)
    return std::fprintf(stderr, "demo: core-sim: %s\n", started.error().c_str()), 2;

  const bool tty = isatty(STDERR_FILENO) && !options.quiet;
  const auto began = std::chrono::steady_clock::now();
  const auto deadline = began + std::chrono::seconds(options.timeout_s);
  auto last_line = began;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    done = (*sim)->wait_until_done(std::chrono::milliseconds(250));
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - began).count();
    if (tty || (!options.quiet && now - last_line > std::chrono::seconds(2)) || done) {
      draw_progress((*sim)->progress(), elapsed, tty);
      last_line = now;
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  // Let the last outcomes and incoming payments flow before the books are compared.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto report = (*sim)->report();
  const auto ledger = (*mock)->state().ledger();
  const auto mock_stats = (*mock)->state().stats();
  (*sim)->stop();
  (*service)->stop();

  Books books{with_database(server, adapter_db), with_database(server, core_db), ledger,
              mock_stats};
  const auto checks = reconcile(books);

  std::cout << "\n== Core simulator ==\n" << core_sim::to_text(report);
  std::cout << "\n== Reconciliation (core outcomes vs clearing ledger vs adapter streams) ==\n"
            << render(checks);
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

  if (!checks.most_troubled_transfer.empty()) {
    eventstore::DatabaseOptions db;
    db.url = with_database(server, adapter_db);
    db.connections_max = 1;
    eventstore::ConnectionPool pool(db);
    eventstore::EventStore store(pool);
    adapter::TransferService transfers(store);
    auto story = adapter::build_trace(pool, transfers, checks.most_troubled_transfer);
    if (story)
      std::cout << "\n== The transfer with the most trouble ==\n" << adapter::render_trace(*story);
  }
  const bool ok = done && checks.all_hold();
  std::cout << "\n" << (ok ? "All invariants hold." : "INVARIANT VIOLATED (see above).") << "\n";
  if (!done) std::cout << "Not every transfer finished within " << options.timeout_s << " s.\n";
  return ok ? 0 : 1;
}

}  // namespace clearing::demo
