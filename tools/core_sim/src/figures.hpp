#pragma once
// Private to core-sim: the figures of progress() and report() as the core's database holds
// them (transfers by status, refusals, violations, parked messages, latency and rates).
// What only the running process knows (planned, processed, the source's skipped lines) is
// the caller's to add.
//
// Thread safety: the functions are; each runs its own transaction on the pool. A query
// that fails is logged and answered with empty figures (progress and report never fail).

#include <cstdint>
#include <optional>

#include "clearing/core_sim/core_sim.hpp"
#include "clearing/eventstore/database.hpp"

namespace clearing::core_sim {

// Transfers by status and the refusals, in one transaction. The totals of the source and
// of the publisher are left at 0.
Progress read_progress(eventstore::ConnectionPool& pool);

// Transfers without an outcome yet, through the status index: cheap at any table size.
// Empty when the database did not answer: not a reason to think the work is done.
std::optional<std::int64_t> read_open_count(eventstore::ConnectionPool& pool);

// Everything the report reads from the database, in one transaction: country, planned,
// source_lines_skipped and resolved_exactly_once are left to the caller.
Report read_report(eventstore::ConnectionPool& pool);

}  // namespace clearing::core_sim
