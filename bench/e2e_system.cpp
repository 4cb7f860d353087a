#include "e2e_system.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "clearing/support/bench.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/scratch_database.hpp"
#include "e2e_probes.hpp"

namespace clearing::bench::e2e {
namespace {

constexpr auto kAdapterReadyTimeout = std::chrono::seconds(90);
constexpr int kFirstLineTimeoutMs = 120'000;  // core-sim migrates and opens accounts first
constexpr auto kSamplePeriod = std::chrono::seconds(1);
constexpr auto kProgressPeriod = std::chrono::seconds(5);
constexpr const char* kClearingToken = "bench-clearing-token";

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

// kafka-mock and clearing-mock, each up (its first line read); clearing-mock's address.
std::string start_mocks(System& s, const Options& options, int latency_ms,
                        const std::vector<std::string>& mock_flags) {
  s.kafka = std::make_unique<Process>(support::kafka_mock_argv(KAFKA_MOCK),
                                      std::map<std::string, std::string>{}, true);
  s.bootstrap = after(s.kafka->read_line(), "bootstrap ", *s.kafka, "kafka-mock");

  s.mock = std::make_unique<Process>(
      support::clearing_mock_argv(CLEARING_MOCK, {.token = kClearingToken,
                                                  .seed = std::nullopt,
                                                  .latency_ms = latency_ms,
                                                  .threads = options.mock_threads,
                                                  .more = mock_flags}));
  auto address = after(s.mock->read_line(), "listening ", *s.mock, "clearing-mock");
  s.mock_port = std::stoi(address.substr(address.rfind(':') + 1));
  return address;
}

// config/dk.json as shipped, logs at warn (one line per call would be measured too), written
// to s.config_path.
void write_adapter_config(System& s, const Options& options, const std::string& slug,
                          const std::vector<std::string>& run_settings) {
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  auto config = nlohmann::json::parse(in);
  config["log_level"] = "warn";
  // The adapter's consumer waits as long as core-sim's; --config-set may still override.
  apply_config_setting(config, fmt::format("kafka.fetch_wait_max_ms={}", options.fetch_wait_ms));
  apply_config_setting(
      config, fmt::format("kafka.relay_round_interval_min_ms={}", options.relay_round_interval_ms));
  for (const auto& setting : options.config_set) apply_config_setting(config, setting);
  for (const auto& setting : run_settings) apply_config_setting(config, setting);
  s.config_path = fmt::format("/tmp/bench-e2e-{}-{}.json", getpid(), slug);
  std::ofstream(s.config_path) << config.dump(2);
  s.calls_in_flight_max = std::min(config.at("clearing").at("in_flight_max").get<int>(),
                                   config.at("dispatcher").at("in_flight_max").get<int>());
}

// `clearing-adapter run`, waited for until /readyz answers 200; when it was started.
Clock::time_point start_adapter(System& s, const std::string& mock_address) {
  const auto env = support::adapter_environment({.database_url = s.adapter_url,
                                                 .bootstrap = s.bootstrap,
                                                 .clearing_address = mock_address,
                                                 .clearing_token = kClearingToken,
                                                 .core_port = s.core_port,
                                                 .api_token = kApiToken,
                                                 .http_port = s.adapter_port});
  const auto begun = Clock::now();
  s.adapter =
      std::make_unique<Process>(support::adapter_run_argv(CLEARING_ADAPTER, s.config_path), env);
  for (;;) {
    s.check_alive();
    if (http_get(s.adapter_port, "/readyz", "").status == 200) break;
    if (Clock::now() - begun > kAdapterReadyTimeout)
      throw Failure(fmt::format(
          "[{}] the adapter was not ready within {} s; its stderr:\n{}", s.label,
          std::chrono::duration_cast<std::chrono::seconds>(kAdapterReadyTimeout).count(),
          tail(s.adapter->stderr_text())));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return begun;
}

}  // namespace

System::~System() {
  if (!config_path.empty()) std::filesystem::remove(config_path);
}

void System::check_alive() {
  for (auto* p : {kafka.get(), mock.get(), adapter.get()}) {
    if (p == nullptr) continue;
    const int code = p->wait(0);
    if (code != -1)
      throw Failure(
          fmt::format("[{}] a process (pid {}) exited with {} during the run; its stderr:\n{}",
                      label, p->pid(), code, tail(p->stderr_text())));
  }
}

std::vector<std::string> System::core_sim(std::int64_t transfers, double rate, int batch,
                                          int accounts) const {
  return support::core_sim_argv(CORE_SIM, {.database_url = core_url,
                                           .bootstrap = bootstrap,
                                           .transfers = transfers,
                                           .seed = 7,
                                           .invalid_share = 0,
                                           .rate = rate,
                                           .batch = batch,
                                           .accounts = accounts,
                                           .fetch_wait_ms = fetch_wait_ms,
                                           .relay_round_interval_ms = relay_round_interval_ms,
                                           .adapter_port = adapter_port,
                                           .http_port = core_port,
                                           .api_token = kApiToken});
}

nlohmann::json System::mock_stats() const {
  const auto answer = http_get(mock_port, "/admin/stats", kClearingToken);
  if (answer.status != 200) return nullptr;
  auto stats = nlohmann::json::parse(answer.body, nullptr, false);
  if (stats.is_discarded()) return nullptr;
  return stats;
}

void System::stop() {
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

std::unique_ptr<System> start_system(const Options& options, const std::string& label,
                                     const std::string& slug, int latency_ms,
                                     const SystemExtras& extras) {
  auto s = std::make_unique<System>();
  s->label = label;
  s->fetch_wait_ms = options.fetch_wait_ms;
  s->relay_round_interval_ms = options.relay_round_interval_ms;
  s->adapter_database = "e2e_adapter_" + slug;
  s->core_database = "e2e_core_" + slug;
  s->adapter_url = support::fresh_database(options.server_url, s->adapter_database);
  s->core_url = support::fresh_database(options.server_url, s->core_database);

  const auto mock_address = start_mocks(*s, options, latency_ms, extras.mock_flags);
  const auto ports = support::free_ports(2);
  s->adapter_port = ports[0];
  s->core_port = ports[1];
  write_adapter_config(*s, options, slug, extras.config_set);
  const auto begun = start_adapter(*s, mock_address);
  progress(fmt::format(
      "[{}] kafka-mock pid {}, clearing-mock pid {} (latency {} ms), adapter pid {} ready after "
      "{:.1f} s",
      label, s->kafka->pid(), s->mock->pid(), latency_ms, s->adapter->pid(), seconds_since(begun)));
  return s;
}

std::unique_ptr<Process> start_core(std::vector<std::string> argv) {
  auto core = std::make_unique<Process>(std::move(argv));
  const auto line = core->read_line(kFirstLineTimeoutMs);
  after(line, "catch-up ", *core, "core-sim");
  return core;
}

nlohmann::json core_report(Process& core, const std::string& label) {
  auto report = support::core_sim_report(core.read_all());
  if (!report)
    throw Failure(fmt::format("[{}] core-sim printed no report; its stderr:\n{}", label,
                              tail(core.stderr_text())));
  return *std::move(report);
}

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

Pipeline sample_until(System& s, Process& core, PipelineProbe& probe, const std::string& phase,
                      Clock::time_point begun, const std::function<bool(const Pipeline&)>& done,
                      std::chrono::seconds timeout, bool core_may_exit) {
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

}  // namespace clearing::bench::e2e
