#pragma once
// `clearing-demo`: one country's adapter, the clearing mock with faults, the core
// simulator and Kafka (librdkafka's in-process mock cluster), all in this process, on a
// PostgreSQL server given by URL (scripts/demo starts a throwaway one). Prints progress,
// a reconciliation report, figures, and the trace of the transfer with the most trouble.
// Exits non-zero if any invariant of DESIGN.md section 7 failed.

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace clearing::demo {

struct DemoOptions {
  std::string config_path = "config/dk.json";
  std::string file = "examples/transfers.dk.jsonl";
  // --country cc: config/<cc>.json, and, for a country without examples/transfers.<cc>.jsonl,
  // kCountryTransfers generated transfers (unless --config, --file or --transfers say more).
  std::string country;
  int transfers = 0;  // > 0: generate instead of reading the file
  std::uint64_t seed = 1;
  std::string database_url;  // server URL; default from the environment
  double rate_per_s = 0;
  int timeout_s = 300;
  bool quiet = false;
};

inline constexpr int kCountryTransfers = 300;  // as many as examples/transfers.dk.jsonl

void add_demo_options(CLI::App& app, DemoOptions& options);
int run_demo(const DemoOptions& options);

}  // namespace clearing::demo
