#pragma once
// The whole system as separate processes, started the way the multi-process tests start it:
// fresh databases for the adapter and the core, kafka-mock, clearing-mock, the adapter's
// environment and its config file (config/dk.json for an operator in a hurry, edited by the
// test), and `clearing-adapter run`. core-sim is the test's to start, with core_args() filled
// in, because each test drives it differently. Needs clearing_uses_processes (tests.cmake).

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clearing/processes/process.hpp"
#include "clearing/support/adapter_config.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/scratch_database.hpp"
#include "process_output.hpp"
#include "test_database.hpp"

namespace clearing::testing {

struct SystemOptions {
  std::string name;                                  // of the databases and the config file
  support::ClearingMockArgs mock;                    // its token is the system's
  std::map<std::string, std::string> mock_env;       // e.g. OTEL_* for the mock
  std::map<std::string, std::string> adapter_env;    // added to the adapter's environment
  std::function<void(nlohmann::json&)> edit_config;  // of the adapter's config, if set
};

class SystemProcesses {
 public:
  static constexpr const char* kApiToken = "api-token-0123456789abcdef0123456";
  static constexpr const char* kClearingToken = "clearing-token-16";

  explicit SystemProcesses(SystemOptions options)
      : adapter_db(support::fresh_database(server_url(), options.name + "_adapter_dk")),
        core_db(support::fresh_database(server_url(), options.name + "_core_dk")),
        kafka(support::kafka_mock_argv(KAFKA_MOCK), {}, true),
        bootstrap(after(kafka.read_line(), "bootstrap ")),
        mock(mock_argv(options.mock), options.mock_env),
        mock_address(after(mock.read_line(), "listening ")),
        ports(support::free_ports(2)),
        env(adapter_env(options.adapter_env)),
        config_path(write_config(options)),
        adapter(support::adapter_run_argv(CLEARING_ADAPTER, config_path), env) {}
  ~SystemProcesses() { std::remove(config_path.c_str()); }
  SystemProcesses(const SystemProcesses&) = delete;
  SystemProcesses& operator=(const SystemProcesses&) = delete;

  // core-sim's arguments toward this system: its database, Kafka, both ports and the API token.
  support::CoreSimArgs core_args() const {
    return {.database_url = core_db,
            .bootstrap = bootstrap,
            .adapter_port = adapter_port(),
            .http_port = core_port(),
            .api_token = kApiToken};
  }
  int adapter_port() const { return ports[0]; }
  int core_port() const { return ports[1]; }

  const std::string adapter_db;
  const std::string core_db;
  processes::Process kafka;
  const std::string bootstrap;
  processes::Process mock;
  const std::string mock_address;
  const std::vector<int> ports;                  // the adapter's API, core-sim's catch-up API
  const std::map<std::string, std::string> env;  // the adapter's (and its commands')
  const std::string config_path;
  processes::Process adapter;

 private:
  static std::vector<std::string> mock_argv(support::ClearingMockArgs args) {
    args.token = kClearingToken;
    return support::clearing_mock_argv(CLEARING_MOCK, args);
  }

  std::map<std::string, std::string> adapter_env(
      const std::map<std::string, std::string>& more) const {
    auto out = support::adapter_environment({.database_url = adapter_db,
                                             .bootstrap = bootstrap,
                                             .clearing_address = mock_address,
                                             .clearing_token = kClearingToken,
                                             .core_port = ports[1],
                                             .api_token = kApiToken,
                                             .http_port = ports[0]});
    for (const auto& [key, value] : more) out[key] = value;
    return out;
  }

  static std::string write_config(const SystemOptions& options) {
    const auto path = "/tmp/" + options.name + "-dk-" + std::to_string(getpid()) + ".json";
    auto cfg = support::adapter_config_in_a_hurry(std::string(SOURCE_DIR) + "/config/dk.json");
    if (options.edit_config) options.edit_config(cfg);
    std::ofstream(path) << cfg.dump(2);
    return path;
  }
};

}  // namespace clearing::testing
