#pragma once
// bench_e2e's probes around the measurement, not part of it (the load comes from core-sim):
// the processes' memory and the machine's CPU from /proc, and the adapter's /readyz and
// /metrics through http/'s client.
//
// Thread safety: free functions without shared state. Errors: none thrown; what cannot be
// read is nothing (nullopt, status -1).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace clearing::bench::e2e {

// A "<key>: <n> kB" line of /proc/<pid>/status (VmHWM, VmRSS).
std::optional<std::int64_t> status_kb(pid_t pid, const std::string& key);

// Busy and total jiffies of the whole machine (every user of it, not only this run).
std::pair<double, double> machine_cpu();

struct HttpAnswer {
  int status = -1;  // -1: no answer (not listening yet, timed out)
  std::string body;
};

// GET http://127.0.0.1:<port><path> with a bearer token ("" for none), 5 s at the most.
HttpAnswer http_get(int port, const std::string& path, const std::string& token);

// The value of one Prometheus sample line `name{labels} value`; nothing when absent.
std::optional<double> metric(const std::string& text, const std::string& series);

// The value of the first sample of metric `name`, whatever its labels; nothing when absent.
std::optional<double> first_sample(const std::string& text, const std::string& name);

}  // namespace clearing::bench::e2e
