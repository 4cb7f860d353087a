#pragma once
// What every benchmark (bench/, adapter/bench/) needs around its measurement: a scratch database on
// the server of CLEARING_TEST_DATABASE_URL (or --database-url) and the figures of latency samples
// (both support/'s), the machine's speed, and the CPU seconds of a process and of the
// throwaway PostgreSQL server (from /proc).
//
// Header-only, for the benchmark programs alone. Thread safety: the probe and the /proc
// readers are free of shared state.

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "clearing/support/figures.hpp"
#include "clearing/support/scratch_database.hpp"

namespace clearing::bench {

// The scratch database and the figures are support/'s, shared with the tests and the demo.
using support::DistributionLayout;
using support::ms;
using support::percentile;
using support::print_distribution;
using support::query_value;
using support::ScratchDatabase;
using support::with_database;

// ---- The machine's speed ----------------------------------------------------------------

// Milliseconds this thread takes for a fixed chain of integer work (a dependent multiply,
// xor and shift per step: no memory, no vectorizing). On a virtual machine whose host lends
// it more or less of a core, the same work takes more or less time, and nothing inside the
// guest reports it (steal time reads 0 here): the same benchmark then gives figures twice
// as far apart. Probed on an otherwise idle machine (bench/e2e: before and after each run),
// it tells which runs can be compared.
inline double speed_probe_ms() {
  constexpr std::uint64_t kSteps = 100'000'000;
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::uint64_t i = 0; i < kSteps; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    x ^= x >> 29;
  }
  volatile std::uint64_t sink = x;  // keeps the loop
  (void)sink;
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
      .count();
}

// ---- CPU (/proc) ------------------------------------------------------------------------

struct ProcStat {
  pid_t ppid = 0;
  double cpu_s = 0;           // utime + stime
  double children_cpu_s = 0;  // cutime + cstime: children it reaped
};

inline std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string word; fields >> word && f.size() < 16;) f.push_back(word);
  if (f.size() < 15) return std::nullopt;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // Field 3 of proc(5) is f[0]: ppid is field 4, utime..cstime are fields 14..17.
  return ProcStat{static_cast<pid_t>(std::stol(f[1])), (std::stod(f[11]) + std::stod(f[12])) / tick,
                  (std::stod(f[13]) + std::stod(f[14])) / tick};
}

// CPU seconds of the PostgreSQL server: the postmaster, its live children and the
// children it reaped. Nothing when its data folder is unknown (not run under
// scripts/with-postgres, which sets CLEARING_PG_DATA).
inline std::optional<double> postgres_cpu_s() {
  const char* data = std::getenv("CLEARING_PG_DATA");
  if (data == nullptr) return std::nullopt;
  std::ifstream pid_file(std::string(data) + "/postmaster.pid");
  pid_t postmaster = 0;
  if (!(pid_file >> postmaster)) return std::nullopt;
  const auto root = proc_stat(postmaster);
  if (!root) return std::nullopt;
  double total = root->cpu_s + root->children_cpu_s;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const auto child = proc_stat(static_cast<pid_t>(std::stol(name)));
    if (child && child->ppid == postmaster) total += child->cpu_s;
  }
  return total;
}

}  // namespace clearing::bench
