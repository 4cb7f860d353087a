#pragma once
// The command lines of the multi-process runs (tests/e2e, bench/e2e; the chaos run may adopt
// them): kafka-mock, clearing-mock, core-sim and `clearing-adapter run`, the adapter's
// environment, and what their first lines and core-sim's report say. Argument vectors and
// text only: starting the processes is the caller's (clearing/processes, which support/ does
// not link). Each builder writes the flags in one fixed order and leaves out what is not set,
// so every caller's command line is the one it wrote out before.
//
// Thread safety: free functions without shared state. Errors: free_port throws
// std::runtime_error when the kernel gives no port; core_sim_report passes on
// nlohmann::json's parse error for a report that is not JSON.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clearing::support {

// DK's streams, as config/dk.json names them.
inline constexpr const char* kCoreStream = "core.dk.payments.v1";
inline constexpr const char* kAdapterStream = "adapter.dk.payments.v1";
inline constexpr const char* kSettlementsStream = "adapter.dk.settlements.v1";

// A country's core stream, as config/<cc>.json names it: "core.<cc>.payments.v1".
std::string core_stream(std::string_view cc);

// kafka-mock with a country's three topics (DK's unless `cc` says): the core's payments
// (`core_partitions`), the adapter's payments (4) and its settlements (2); `brokers` 0 leaves
// kafka-mock's default. It prints "bootstrap <brokers>" first.
std::vector<std::string> kafka_mock_argv(const std::string& executable, int core_partitions = 4,
                                         int brokers = 0, std::string_view cc = "dk");

struct ClearingMockArgs {
  std::string token;
  std::optional<std::uint64_t> seed;
  std::optional<int> latency_ms;  // added to every answer
  std::optional<int> threads;
  std::optional<std::string> country;  // --country (the mock's default: dk)
  std::vector<std::string> more;       // faults and the rest, as given, after the flags above
};

// clearing-mock on a port of its choosing (--port 0). It prints "listening <host:port>" first.
std::vector<std::string> clearing_mock_argv(const std::string& executable,
                                            const ClearingMockArgs& args);

// The adapter's credential toward core-sim's catch-up API in tests, benches and the chaos run.
inline constexpr std::string_view kCoreCatchupToken = "core-catchup-token-for-the-adapter";
// The key-encryption key of personal data in tests, benches and the chaos run (base64 of 32
// bytes; CLEARING_ADAPTER_DATA_KEK). Never for a deployment: it is in the source.
inline constexpr std::string_view kTestDataKek = "dGVzdC1kYXRhLWtlay1ub3QtZm9yLXByb2R1Y3Rpb24=";

struct CoreSimArgs {
  std::string database_url;
  std::string bootstrap;
  std::int64_t transfers = 0;
  std::uint64_t seed = 0;
  double invalid_share = 0;
  std::optional<double> rate;  // transfers/s (0: as fast as it can)
  std::optional<int> batch, accounts, fetch_wait_ms, relay_round_interval_ms;
  int adapter_port = 0;   // the adapter whose catch-up API core-sim asks
  int http_port = 0;      // core-sim's own catch-up API
  std::string api_token;  // core-sim's calls to the adapter's API
  // Required on core-sim's own catch-up API: the adapter's credential toward the core, never
  // the adapter's API token (AdapterEndpoints::core_token is the same by default).
  std::string core_token = std::string(kCoreCatchupToken);
  std::optional<int> timeout_s;
  bool stay = false;                   // keep running after the report
  std::optional<std::string> country;  // --country (core-sim's default: dk)
};

// core-sim with its report as JSON and logs at warn. It prints "catch-up <...>" first (it
// has migrated and opened its accounts), its report when it is done.
std::vector<std::string> core_sim_argv(const std::string& executable, const CoreSimArgs& args);

// `clearing-adapter run --config <config_path>`.
std::vector<std::string> adapter_run_argv(const std::string& executable,
                                          const std::string& config_path);

// Where the adapter finds the others (its secrets and addresses come from the environment).
struct AdapterEndpoints {
  std::string database_url;
  std::string bootstrap;
  std::string clearing_address;  // clearing-mock's host:port
  std::string clearing_token;
  int core_port = 0;  // core-sim's catch-up API
  std::string api_token;
  std::string core_token = std::string(kCoreCatchupToken);  // toward core-sim's catch-up API
  std::string data_kek = std::string(kTestDataKek);
  int http_port = 0;  // 0: no CLEARING_ADAPTER_HTTP_ADDRESS (adapters sharing the rest set it)
};

std::map<std::string, std::string> adapter_environment(const AdapterEndpoints& endpoints);

// "127.0.0.1:<port>", and "http://127.0.0.1:<port>".
std::string local_address(int port);
std::string local_url(int port);

// What follows `prefix` on a process's first line ("bootstrap ", "listening ", "catch-up ");
// nothing when the line does not start with it (the process did not start).
std::optional<std::string> after_prefix(const std::string& line, const std::string& prefix);

// core-sim's --json report, the object after its first lines in `stdout_text`; nothing when
// it printed none.
std::optional<nlohmann::json> core_sim_report(const std::string& stdout_text);

// A port on 127.0.0.1 that was free a moment ago (the kernel's pick): the adapter and core-sim
// must know each other's ports before either starts. Throws when none can be had.
int free_port();

// `count` such ports, all different (the kernel may pick a just-released port again).
std::vector<int> free_ports(int count);

}  // namespace clearing::support
