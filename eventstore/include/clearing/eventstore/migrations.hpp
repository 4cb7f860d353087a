#pragma once
// Schema under version control, applied at start. Each module contributes an ordered
// list of migrations with ids like "eventstore/0001_events"; a table records which ran.
// Applying twice is a no-op. Concurrent starters are serialized by an advisory lock, so
// two processes starting at once apply each migration exactly once.

#include <span>
#include <string>
#include <vector>

#include "clearing/eventstore/database.hpp"

namespace clearing::eventstore {

struct Migration {
  std::string id;   // unique, stable for ever: "<module>/<nnnn>_<name>"
  std::string sql;  // may hold several statements
};

// The event store's own schema: events, streams, checkpoints, the NOTIFY trigger.
const std::vector<Migration>& eventstore_migrations();

struct MigrationReport {
  std::vector<std::string> applied;  // ids applied by this call
  std::size_t already_applied = 0;
};

StoreResult<MigrationReport> apply_migrations(ConnectionPool& pool,
                                              std::span<const Migration> migrations);

}  // namespace clearing::eventstore
