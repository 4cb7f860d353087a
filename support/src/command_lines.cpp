#include "clearing/support/command_lines.hpp"

#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace clearing::support {
namespace {

void add(std::vector<std::string>& argv, const char* flag, std::string value) {
  argv.emplace_back(flag);
  argv.push_back(std::move(value));
}

template <class T>
void add_if(std::vector<std::string>& argv, const char* flag, const std::optional<T>& value) {
  if (value) add(argv, flag, fmt::format("{}", *value));
}

}  // namespace

std::string core_stream(std::string_view cc) { return "core." + std::string(cc) + ".payments.v1"; }

std::vector<std::string> kafka_mock_argv(const std::string& executable, int core_partitions,
                                         int brokers, std::string_view cc) {
  std::vector<std::string> argv{executable};
  if (brokers > 0) add(argv, "--brokers", std::to_string(brokers));
  const std::string adapter = "adapter." + std::string(cc) + ".";
  add(argv, "--topic", core_stream(cc) + ":" + std::to_string(core_partitions));
  add(argv, "--topic", adapter + "payments.v1:4");
  add(argv, "--topic", adapter + "settlements.v1:2");
  return argv;
}

std::vector<std::string> clearing_mock_argv(const std::string& executable,
                                            const ClearingMockArgs& args) {
  std::vector<std::string> argv{executable};
  add(argv, "--port", "0");
  add(argv, "--token", args.token);
  add_if(argv, "--seed", args.seed);
  add_if(argv, "--latency-ms", args.latency_ms);
  add_if(argv, "--threads", args.threads);
  add_if(argv, "--country", args.country);
  argv.insert(argv.end(), args.more.begin(), args.more.end());
  return argv;
}

std::vector<std::string> core_sim_argv(const std::string& executable, const CoreSimArgs& args) {
  std::vector<std::string> argv{executable};
  add(argv, "--database-url", args.database_url);
  add(argv, "--kafka", args.bootstrap);
  add(argv, "--transfers", std::to_string(args.transfers));
  add(argv, "--seed", std::to_string(args.seed));
  // fmt's shortest form: 0 -> "0", 0.05 -> "0.05", 480.0 -> "480".
  add(argv, "--invalid-share", fmt::format("{}", args.invalid_share));
  add_if(argv, "--rate", args.rate);
  add_if(argv, "--batch", args.batch);
  add_if(argv, "--accounts", args.accounts);
  add_if(argv, "--fetch-wait-ms", args.fetch_wait_ms);
  add_if(argv, "--relay-round-interval-ms", args.relay_round_interval_ms);
  add(argv, "--adapter-catch-up-url", local_url(args.adapter_port));
  add(argv, "--adapter-token", args.api_token);
  add(argv, "--http-port", std::to_string(args.http_port));
  add(argv, "--api-token", args.core_token);
  add_if(argv, "--timeout-s", args.timeout_s);
  if (args.stay) argv.emplace_back("--stay");
  add_if(argv, "--country", args.country);
  argv.emplace_back("--json");
  add(argv, "--log-level", "warn");
  return argv;
}

std::vector<std::string> adapter_run_argv(const std::string& executable,
                                          const std::string& config_path) {
  return {executable, "run", "--config", config_path};
}

std::map<std::string, std::string> adapter_environment(const AdapterEndpoints& endpoints) {
  std::map<std::string, std::string> env{
      {"CLEARING_ADAPTER_DATABASE_URL", endpoints.database_url},
      {"CLEARING_ADAPTER_KAFKA_BROKERS", endpoints.bootstrap},
      {"CLEARING_ADAPTER_CLEARING_URL", "http://" + endpoints.clearing_address},
      {"CLEARING_ADAPTER_CLEARING_TOKEN", endpoints.clearing_token},
      {"CLEARING_ADAPTER_CORE_CATCHUP_URL", local_url(endpoints.core_port)},
      {"CLEARING_ADAPTER_API_TOKEN", endpoints.api_token},
      {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", endpoints.core_token},
      {"CLEARING_ADAPTER_DATA_KEK", endpoints.data_kek}};
  if (endpoints.http_port != 0)
    env["CLEARING_ADAPTER_HTTP_ADDRESS"] = local_address(endpoints.http_port);
  return env;
}

std::string local_address(int port) { return "127.0.0.1:" + std::to_string(port); }

std::string local_url(int port) { return "http://" + local_address(port); }

std::optional<std::string> after_prefix(const std::string& line, const std::string& prefix) {
  if (line.rfind(prefix, 0) != 0) return std::nullopt;
  return line.substr(prefix.size());
}

std::optional<nlohmann::json> core_sim_report(const std::string& stdout_text) {
  const auto start = stdout_text.find('{');
  if (start == std::string::npos) return std::nullopt;
  return nlohmann::json::parse(stdout_text.substr(start));
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("cannot find a free port: socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!bound) throw std::runtime_error("cannot find a free port on 127.0.0.1");
  return ntohs(address.sin_port);
}

std::vector<int> free_ports(int count) {
  std::vector<int> ports;
  while (static_cast<int>(ports.size()) < count) {
    const int port = free_port();
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
  }
  return ports;
}

}  // namespace clearing::support
