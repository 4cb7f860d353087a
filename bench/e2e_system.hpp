#pragma once
// bench_e2e's system under test, as processes of their own: kafka-mock, clearing-mock and
// `clearing-adapter run` on fresh databases (one System per run), and core-sim, the load,
// started against it. Their command lines are support/'s (command_lines.hpp), shared with
// tests/e2e. Also what watches them while they run: the CPU of each, and a sampling loop that
// fails the run when a process exits or a phase outlasts its limit.
//
// Thread safety: a System and its processes belong to the thread that runs the phase.
// Errors: Failure, with the stderr tail of the process that broke.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "clearing/processes/process.hpp"
#include "e2e_common.hpp"
#include "e2e_database.hpp"
#include "e2e_options.hpp"

namespace clearing::bench::e2e {

using processes::Process;

// What one run sets beyond the options: clearing-mock flags after its usual ones, and adapter
// config keys ("a.b=value") applied after --config-set (the run's own settings win).
struct SystemExtras {
  std::vector<std::string> mock_flags;
  std::vector<std::string> config_set;
};

struct System {
  std::string label;
  std::string adapter_database, core_database;  // names
  std::string adapter_url, core_url;
  std::string bootstrap;
  int adapter_port = 0, core_port = 0, mock_port = 0;
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
  ~System();  // SIGKILLs whatever still runs (a graceful stop was tried before)

  // Failure when one of its processes has exited.
  void check_alive();

  // The core-sim command line for this system.
  std::vector<std::string> core_sim(std::int64_t transfers, double rate, int batch,
                                    int accounts) const;

  // clearing-mock's GET /admin/stats; null when it does not answer.
  nlohmann::json mock_stats() const;

  // SIGTERM to the adapter and clearing-mock, "quit" to kafka-mock; each waited for.
  void stop();
};

// A system on databases e2e_adapter_<slug> and e2e_core_<slug>, its adapter ready (/readyz).
std::unique_ptr<System> start_system(const Options& options, const std::string& label,
                                     const std::string& slug, int latency_ms,
                                     const SystemExtras& extras = {});

// Starts core-sim and waits for its first line (it has migrated and opened its accounts).
std::unique_ptr<Process> start_core(std::vector<std::string> argv);

// The JSON report core-sim printed after its first line.
nlohmann::json core_report(Process& core, const std::string& label);

// CPU seconds of each process of the run, for "where the time goes".
struct CpuSample {
  std::map<std::string, double> by_process;
  std::pair<double, double> machine;  // busy, total jiffies
};

CpuSample cpu_sample(System& s, Process* core);

// Waits, sampling every second, until `done` says so; the last sample. Progress lines every
// 5 s. Failure when a process of `s` exits, when core-sim exits (unless `core_may_exit`), or
// after `timeout` from `begun`.
Pipeline sample_until(System& s, Process& core, PipelineProbe& probe, const std::string& phase,
                      Clock::time_point begun, const std::function<bool(const Pipeline&)>& done,
                      std::chrono::seconds timeout, bool core_may_exit);

}  // namespace clearing::bench::e2e
