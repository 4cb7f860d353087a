#pragma once
// What the multi-process tests (e2e_pgtest, takeover_pgtest) check when core-sim ends: it
// exited 0, and its report says that every transfer it offered was either refused or
// requested and resolved exactly once, none left open.

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "clearing/processes/process.hpp"
#include "clearing/support/command_lines.hpp"

namespace clearing::testing {

struct CoreSimFinish {
  int exit_code = -1;  // -1: still running after the wait
  nlohmann::json report;
};

// Waits up to `timeout_ms` for core-sim, then checks its exit code and report against the
// `transfers` it offered (CHECK; REQUIRE that there is a report). Both, for the test's own
// checks and messages.
inline CoreSimFinish check_core_sim_finished(processes::Process& core, int timeout_ms,
                                             int transfers) {
  CoreSimFinish out;
  out.exit_code = core.wait(timeout_ms);
  const std::string report_text = core.read_all();
  CHECK_MESSAGE(out.exit_code == 0, "core-sim: " << core.stderr_text().substr(0, 2000));
  auto report = support::core_sim_report(report_text);
  REQUIRE_MESSAGE(report, report_text);
  out.report = *std::move(report);
  const auto& r = out.report;
  CHECK(r["resolved_exactly_once"] == true);
  CHECK(r["still_open"] == 0);
  CHECK(r["requested"].get<int>() + r["refused"].get<int>() == transfers);
  return out;
}

}  // namespace clearing::testing
