// Both sides in one trace (issue 22, item 3) across separate processes: core-sim (staying up),
// clearing-adapter run and clearing-mock. `clearing-adapter trace` with the core's URL shows one
// timeline: the core's FundsReserved and TransferRequested before the adapter's first event, the
// core's ReservationCompleted after the adapter published the outcome, linked by the external
// event ids; from the config key as from --core-url. With core-sim stopped, trace tells the
// adapter's side and says, on one line, that the core's side is missing and why (exit 0).

#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "system_processes.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;

namespace {

constexpr int kTransfers = 6;

std::string query_value(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  const auto r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The index of the first line holding every one of `parts`; fails the test when none does.
std::size_t line_with(const std::vector<std::string>& lines,
                      const std::vector<std::string>& parts) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bool all = true;
    for (const auto& part : parts) all = all && lines[i].find(part) != std::string::npos;
    if (all) return i;
  }
  std::string wanted;
  for (const auto& part : parts) wanted += "'" + part + "' ";
  FAIL("no line with " << wanted);
  return lines.size();
}

struct Traced {
  int exit_code = -1;
  std::string out;
};

Traced run_trace(std::vector<std::string> argv, const std::map<std::string, std::string>& env) {
  Process trace(std::move(argv), env);
  Traced t;
  t.exit_code = trace.wait(60'000);
  t.out = trace.read_all();
  if (t.exit_code != 0) MESSAGE(trace.stderr_text());
  return t;
}

}  // namespace

TEST_CASE("trace merges the core's story of a transfer, and says when the core's side is missing") {
  SystemProcesses system({.name = "core_story", .mock = {.seed = 3}});
  const auto& adapter_db = system.adapter_db;
  const auto& core_db = system.core_db;
  const auto& env = system.env;
  const auto& config_path = system.config_path;
  const auto core_url = support::local_url(system.core_port());
  // The same config, with the core's story URL set.
  const auto config_with_core = "/tmp/core-story-dk-" + std::to_string(getpid()) + "-core.json";
  {
    std::ifstream in(config_path);
    auto cfg = nlohmann::json::parse(in);
    cfg["streams"]["core_story_url"] = core_url;
    std::ofstream(config_with_core) << cfg.dump(2);
  }
  auto core_args = system.core_args();
  core_args.transfers = kTransfers;
  core_args.seed = 9;
  core_args.timeout_s = 120;
  core_args.stay = true;
  Process core(support::core_sim_argv(CORE_SIM, core_args));
  after(core.read_line(30'000), "catch-up ");

  // Every transfer resolved in the core (core-sim stays up to serve the stories).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (query_value(core_db, "select count(*) from core_transfers where status <> 'open'") !=
         std::to_string(kTransfers)) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    "core-sim: " << core.stderr_text().substr(0, 2000));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto id = query_value(
      core_db,
      "select transfer_id from core_transfers where status = 'succeeded' order by transfer_id "
      "limit 1");
  REQUIRE_FALSE(id.empty());

  // --core-url: one timeline, each line marked core or adapter, in cause-then-effect order.
  const auto merged = run_trace(
      {CLEARING_ADAPTER, "trace", id, "--config", config_path, "--core-url", core_url}, env);
  MESSAGE(merged.out);
  CHECK(merged.exit_code == 0);
  const auto lines = lines_of(merged.out);
  CHECK(merged.out.find("  core:        succeeded\n") != std::string::npos);
  const auto reserved = line_with(lines, {"core     FundsReserved", "funds reserved"});
  const auto requested =
      line_with(lines, {"core     TransferRequested", "published core.dk.payments.v1",
                        ": the adapter's core event"});
  const auto first_adapter = line_with(lines, {"Z  adapter  "});
  const auto published_outcome =
      line_with(lines, {"adapter  published adapter.dk.payments.v1", "TransferSucceeded"});
  const auto completed =
      line_with(lines, {"core     ReservationCompleted", "applying adapter.dk.payments.v1",
                        ": the adapter's TransferSucceeded"});
  CHECK(reserved < requested);
  CHECK(requested < first_adapter);
  CHECK(published_outcome < completed);
  // The links are the ids both sides print: the request is the adapter's core event, the
  // completion applies the adapter's published message.
  const auto request_event = query_value(
      core_db, "select event_id::text from external_events where entity_key = '" + id + "'");
  CHECK(merged.out.find("started by:  core.dk.payments.v1 partition") != std::string::npos);
  CHECK(merged.out.find("(event " + request_event + ")") != std::string::npos);
  CHECK(lines[requested].find("(event " + request_event.substr(0, 8)) != std::string::npos);
  const auto outcome_event = query_value(
      adapter_db, "select event_id::text from external_events where entity_key = '" + id +
                      "' and stream = 'adapter.dk.payments.v1' and type = 'TransferSucceeded'");
  CHECK(lines[published_outcome].find("(event " + outcome_event.substr(0, 8)) != std::string::npos);
  CHECK(lines[completed].find("(event " + outcome_event.substr(0, 8) + ")") != std::string::npos);
  // No account id of the core's on any line.
  const auto account = query_value(
      core_db, "select account_id from core_transfers where transfer_id = '" + id + "'");
  REQUIRE_FALSE(account.empty());
  CHECK(merged.out.find(account) == std::string::npos);

  // From the config key, as JSON: the same steps, each with its side.
  const auto from_key =
      run_trace({CLEARING_ADAPTER, "trace", id, "--config", config_with_core, "--json"}, env);
  CHECK(from_key.exit_code == 0);
  const auto json = nlohmann::json::parse(from_key.out);
  CHECK(json["core_story"]["status"] == "succeeded");
  std::vector<std::string> core_types;
  for (const auto& step : json["timeline"]) {
    CHECK((step["side"] == "core" || step["side"] == "adapter"));
    if (step["side"] == "core") core_types.push_back(step["type"]);
  }
  CHECK(core_types ==
        std::vector<std::string>{"FundsReserved", "TransferRequested", "ReservationCompleted"});

  // A bad --core-url is refused, naming the flag.
  const auto bad = run_trace(
      {CLEARING_ADAPTER, "trace", id, "--config", config_path, "--core-url", "core:1"}, env);
  CHECK(bad.exit_code == 2);

  // The core down: the adapter's story whole, and one line saying the core's side is missing.
  core.signal(SIGTERM);
  CHECK(core.wait(60'000) == 0);
  const auto alone = run_trace({CLEARING_ADAPTER, "trace", id, "--config", config_with_core}, env);
  MESSAGE(alone.out);
  CHECK(alone.exit_code == 0);
  const auto alone_lines = lines_of(alone.out);
  std::size_t missing_lines = 0;
  for (const auto& line : alone_lines)
    if (line.find("the core's side is missing") != std::string::npos) ++missing_lines;
  CHECK(missing_lines == 1);
  CHECK(alone.out.find("  core:        the core's side is missing: the core at " + core_url +
                       " did not answer: connect: ") != std::string::npos);
  CHECK(alone.out.find("Transfer " + id) != std::string::npos);
  CHECK(alone.out.find("published adapter.dk.payments.v1") != std::string::npos);
  CHECK(alone.out.find("FundsReserved") == std::string::npos);
  CHECK(alone.out.find("  adapter  ") == std::string::npos);
  // Without a URL, trace is what it was: no core line at all.
  const auto plain = run_trace({CLEARING_ADAPTER, "trace", id, "--config", config_path}, env);
  CHECK(plain.exit_code == 0);
  CHECK(plain.out.find("  core:") == std::string::npos);

  system.adapter.signal(SIGTERM);
  CHECK(system.adapter.wait(60'000) == 0);
  system.mock.signal(SIGTERM);
  system.mock.wait();
  system.kafka.write_line("quit");
  system.kafka.wait();
  std::remove(config_with_core.c_str());
}
