// Structured logs (issue 22, item 2) across separate processes: clearing-adapter run with
// CLEARING_ADAPTER_LOG_FORMAT=json, clearing-mock and core-sim with --log-format json, a few
// dozen transfers with clearing faults (retries, warnings) and invalid core messages (parked).
// Every line each process wrote to stderr is one JSON object with time, level, module and
// message; the fields come out as members; no line carries a name or an account number.

#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>

#include "core_sim_finish.hpp"
#include "system_processes.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;

namespace {

constexpr int kTransfers = 40;

// Every line of `log` parsed; a line that is not a JSON object with the four members fails.
std::vector<nlohmann::json> json_lines(const std::string& process, const std::string& log) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    CAPTURE(process);
    CAPTURE(line);
    auto json = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(json.is_discarded());
    REQUIRE(json.is_object());
    for (const char* member : {"time", "level", "module", "message"}) {
      CAPTURE(member);
      REQUIRE(json.contains(member));
      CHECK(json[member].is_string());
    }
    out.push_back(std::move(json));
  }
  return out;
}

}  // namespace

TEST_CASE("in JSON mode every log line of every process is JSON, without names or accounts") {
  // At debug: every call and answer is a line with the transfer's ids.
  SystemProcesses system({.name = "json_logs",
                          .mock = {.seed = 3,
                                   .more = {"--fault-http-502", "0.1", "--fault-malformed-json",
                                            "0.05", "--fault-maintenance-503", "0.05",
                                            "--retry-after-s", "1", "--log-format", "json"}},
                          .adapter_env = {{"CLEARING_ADAPTER_LOG_FORMAT", "json"}},
                          .edit_config = [](nlohmann::json& cfg) { cfg["log_level"] = "debug"; }});
  auto& adapter = system.adapter;
  auto& mock = system.mock;
  auto& kafka = system.kafka;
  auto args = system.core_args();
  args.transfers = kTransfers;
  args.seed = 7;
  args.invalid_share = 0.2;
  args.timeout_s = 60;
  auto core_argv = support::core_sim_argv(CORE_SIM, args);
  core_argv.insert(core_argv.end(), {"--log-format", "json"});
  Process core(core_argv);
  check_core_sim_finished(core, 90'000, kTransfers);

  adapter.signal(SIGTERM);
  CHECK(adapter.wait(60'000) == 0);
  mock.signal(SIGTERM);
  mock.wait();
  kafka.write_line("quit");
  kafka.wait();

  // What must be on no line: core-sim's names and the accounts the core sent.
  std::vector<std::string> secret{"Account holder", "Payee "};
  {
    pqxx::connection c(system.core_db);
    pqxx::nontransaction tx(c);
    for (const auto& row :
         tx.exec("select data->'debtor'->'account'->>'id', data->'creditor'->'account'->>'id'"
                 " from external_events where data ? 'debtor' limit 10"))
      for (const auto& field : row)
        if (!field.is_null() && field.size() > 4) secret.push_back(field.as<std::string>());
  }
  CHECK(secret.size() > 2);

  const auto adapter_log = adapter.stderr_text();
  const auto core_log = core.stderr_text();
  const auto mock_log = mock.stderr_text();
  const auto adapter_lines = json_lines("clearing-adapter", adapter_log);
  const auto core_lines = json_lines("core-sim", core_log);
  const auto mock_lines = json_lines("clearing-mock", mock_log);
  MESSAGE("lines: adapter " << adapter_lines.size() << ", core-sim " << core_lines.size()
                            << ", clearing-mock " << mock_lines.size());
  for (const auto* log : {&adapter_log, &core_log, &mock_log})
    for (const auto& text : secret) CHECK_MESSAGE(log->find(text) == std::string::npos, text);

  // The adapter said what it does: its config, retried calls with their ids as members.
  CHECK(adapter_lines.size() > 10);
  bool config_line = false;
  std::size_t with_ids = 0;
  for (const auto& line : adapter_lines) {
    if (line["module"] == "main" && line["message"].get<std::string>().starts_with("config"))
      config_line = true;
    if (line.contains("transfer_id") && line.contains("correlation_id")) ++with_ids;
  }
  CHECK(config_line);
  CHECK(with_ids > 0);
  MESSAGE("adapter lines with transfer_id and correlation_id: " << with_ids);
  if (with_ids == 0) MESSAGE(adapter_log);
}
