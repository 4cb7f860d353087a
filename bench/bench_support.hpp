#pragma once
// What every benchmark of bench/ needs around its measurement: a scratch database on the
// server of CLEARING_TEST_DATABASE_URL (or --database-url), one-value queries on a
// connection of their own, percentiles of latency samples, and the CPU seconds of a
// process and of the throwaway PostgreSQL server (from /proc).
//
// Header-only, for the benchmark programs alone (they link libpqxx and fmt). Thread safety:
// with_database, query_value, the figures and the /proc readers are free of shared state
// (query_value opens a connection of its own per call); a ScratchDatabase belongs to the
// thread that made it.

#include <fmt/core.h>
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
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/uuid.hpp"

namespace clearing::bench {

// `url` with its database name replaced by `database` (query parameters kept).
inline std::string with_database(const std::string& url, const std::string& database) {
  const auto query = url.find('?');
  const auto path = url.rfind('/', query);
  if (path == std::string::npos || path < url.find("//") + 2)
    throw std::runtime_error("cannot find the database name in " + url);
  return url.substr(0, path + 1) + database + (query == std::string::npos ? "" : url.substr(query));
}

// First column of the first row as text ("" when no row or NULL), on a connection of its
// own (autocommit).
inline std::string query_value(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(sql);
  if (rows.empty() || rows[0][0].is_null()) return "";
  return rows[0][0].c_str();
}

// A database created for this run and dropped at its end (unless kept for a look).
class ScratchDatabase {
 public:
  ScratchDatabase(std::string server_url, bool keep)
      : server_url_(std::move(server_url)), keep_(keep) {
    std::string id = base::new_uuid();
    std::erase(id, '-');
    name_ = "bench_" + id.substr(0, 16);
    query_value(server_url_, "create database " + name_);
    url_ = with_database(server_url_, name_);
  }
  ~ScratchDatabase() {
    if (keep_) {
      fmt::print("database kept: {}\n", url_);
      return;
    }
    try {
      query_value(server_url_, "drop database if exists " + name_ + " with (force)");
    } catch (const std::exception&) {
      // A throwaway server goes away with its folder anyway.
    }
  }
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  const std::string& url() const { return url_; }

 private:
  std::string server_url_;
  bool keep_;
  std::string name_;
  std::string url_;
};

// ---- Figures ----------------------------------------------------------------------------

// The p-th percentile (0..100) of sorted samples, nearest rank.
inline double percentile(const std::vector<double>& sorted, double p) {
  CLEARING_ASSERT(!sorted.empty());
  const auto rank =
      static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

// Milliseconds of a steady_clock interval, as the latency samples are kept.
inline double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The two ways the benchmarks lay out a distribution line.
enum class DistributionLayout {
  // "  <label>: p50 1.23 ms, p99 4.56 ms, max 7.89 ms (min 0.12 ms, n=100)"
  compact,
  // "    <label>: p50      1.2 ms  p99      4.6 ms  max      7.9 ms  (min 0.1, n=100)"
  columns,
};

// One line of p50, p99, max, min and count of the samples, or "<label>: no samples".
inline void print_distribution(const char* label, std::vector<double> values_ms,
                               DistributionLayout layout = DistributionLayout::compact) {
  const char* indent = layout == DistributionLayout::compact ? "  " : "    ";
  if (values_ms.empty()) {
    fmt::print("{}{}: no samples\n", indent, label);
    return;
  }
  std::sort(values_ms.begin(), values_ms.end());
  const double p50 = percentile(values_ms, 50);
  const double p99 = percentile(values_ms, 99);
  if (layout == DistributionLayout::compact) {
    fmt::print("  {}: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms (min {:.2f} ms, n={})\n", label,
               p50, p99, values_ms.back(), values_ms.front(), values_ms.size());
  } else {
    fmt::print("    {}: p50 {:>8.1f} ms  p99 {:>8.1f} ms  max {:>8.1f} ms  (min {:.1f}, n={})\n",
               label, p50, p99, values_ms.back(), values_ms.front(), values_ms.size());
  }
}

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
