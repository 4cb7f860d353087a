#include "e2e_probes.hpp"

#include <fstream>
#include <sstream>

#include "clearing/http/client.hpp"
#include "clearing/support/command_lines.hpp"

namespace clearing::bench::e2e {

std::optional<std::int64_t> status_kb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    return std::stoll(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

std::pair<double, double> machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double busy = 0, total = 0;
  for (int i = 0; i < 8; ++i) {
    double v = 0;
    in >> v;
    total += v;
    if (i != 3 && i != 4) busy += v;  // idle, iowait
  }
  return {busy, total};
}

HttpAnswer http_get(int port, const std::string& path, const std::string& token) {
  constexpr int kTimeoutMs = 5'000;
  auto got = clearing::http::get(support::local_url(port) + path, token, kTimeoutMs);
  if (!got) return {};
  return {got->status, std::move(got->body)};
}

std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::optional<double> first_sample(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    const auto space = line.rfind(' ');
    return std::stod(line.substr(space + 1));
  }
  return std::nullopt;
}

}  // namespace clearing::bench::e2e
