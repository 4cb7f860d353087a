#pragma once
// The invariants of DESIGN.md section 7, checked on the books of a finished run: the
// clearing's ledger, the core's database and the adapter's database and streams. Its own
// code: it shares nothing with the code it checks but the table names.

#include <string>
#include <vector>

#include "clearing/clearing_mock/mock_state.hpp"

namespace clearing::demo {

struct Books {
  std::string adapter_database_url;
  std::string core_database_url;
  std::vector<clearing_mock::LedgerEntry> ledger;
  clearing_mock::MockStats mock_stats;
};

struct Check {
  std::string invariant;
  bool holds = false;
  std::string figures;
};

struct Checks {
  std::vector<Check> checks;
  std::string most_troubled_transfer;  // the transfer with the most events
  bool all_hold() const {
    for (const auto& c : checks)
      if (!c.holds) return false;
    return !checks.empty();
  }
};

Checks reconcile(const Books& books);
std::string render(const Checks& checks);

}  // namespace clearing::demo
