// core-sim's figures, read from its database: see figures.hpp.

#include "figures.hpp"

#include <algorithm>
#include <cmath>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/core_sim/outcome_applier.hpp"

namespace clearing::core_sim {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;

std::int64_t as_int(const pqxx::field& f) { return f.is_null() ? 0 : f.as<std::int64_t>(); }
double as_double(const pqxx::field& f) { return f.is_null() ? 0.0 : f.as<double>(); }

}  // namespace

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  CLEARING_ASSERT(q >= 0.0 && q <= 1.0);
  // Nearest rank: the smallest value with at least q of all values at or below it.
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(q * n));
  if (rank < 1) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

namespace {

// The report's figures, read in the report's one transaction.

// The transfers by outcome, and what their messages said besides.
void read_outcomes(Transaction& tx, Report& out) {
  for (const auto& row :
       tx.exec("select status, reason_code, count(*) from core_transfers group by 1, 2")) {
    const auto status = row[0].as<std::string>();
    const auto n = row[2].as<std::int64_t>();
    out.requested += n;
    if (status == "succeeded") out.succeeded += n;
    if (status == "open") out.still_open += n;
    if (status == "rejected") {
      out.rejected += n;
      out.rejected_by_reason[row[1].is_null() ? "" : row[1].as<std::string>()] += n;
    }
  }
  const auto seen = tx.exec(
      "select count(*) filter (where pending_seen), count(*) filter (where "
      "under_investigation_seen),"
      " coalesce(sum(dupl_seen), 0),"
      " count(*) filter (where status <> 'open' and expected_reason_code is not null"
      "   and coalesce(reason_code, '') <> expected_reason_code)"
      " from core_transfers")[0];
  out.pending_seen = as_int(seen[0]);
  out.under_investigation_seen = as_int(seen[1]);
  out.duplicate_requests_reported = as_int(seen[2]);
  out.expectation_mismatches = as_int(seen[3]);
}

// What the core refused, the outcomes it could not apply, what it parked, and the ledger's
// transfers resolved twice.
void read_refusals_and_violations(Transaction& tx, Report& out) {
  for (const auto& row : tx.exec("select reason, count(*) from core_refused group by 1")) {
    out.refused += row[1].as<std::int64_t>();
    out.refused_by_reason[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  }
  for (const auto& row : tx.exec("select kind, count(*) from core_violations group by 1")) {
    const auto n = row[1].as<std::int64_t>();
    switch (parse_violation(row[0].as<std::string>()).value_or(Violation::unknown_transfer)) {
      case Violation::double_completion:
        out.violations.double_completion += n;
        break;
      case Violation::completion_after_release:
        out.violations.completion_after_release += n;
        break;
      case Violation::release_after_completion:
        out.violations.release_after_completion += n;
        break;
      case Violation::double_release:
        out.violations.double_release += n;
        break;
      case Violation::unknown_transfer:
        out.violations.unknown_transfer += n;
        break;
    }
  }
  out.parked_messages =
      tx.exec("select count(*) from core_parked_messages")[0][0].as<std::int64_t>();
  out.incoming_payments =
      tx.exec("select count(*) from core_incoming_payments")[0][0].as<std::int64_t>();
  out.resolved_twice_in_ledger =
      tx.exec(
            "select count(*) from (select data->>'transfer_id' from events"
            " where type in ('ReservationCompleted', 'ReservationReleased') group by 1 having "
            "count(*) > 1) twice")[0][0]
          .as<std::int64_t>();
}

// Latency from request to outcome, and the rates of requests and of outcomes.
void read_timing(Transaction& tx, Report& out) {
  std::vector<double> latencies;
  for (const auto& row : tx.exec("select extract(epoch from (outcome_at - requested_at)) * 1000.0"
                                 " from core_transfers where outcome_at is not null order by 1"))
    latencies.push_back(row[0].as<double>());
  out.latency.count = static_cast<std::int64_t>(latencies.size());
  out.latency.p50_ms = percentile(latencies, 0.50);
  out.latency.p95_ms = percentile(latencies, 0.95);
  out.latency.p99_ms = percentile(latencies, 0.99);
  out.latency.max_ms = latencies.empty() ? 0.0 : latencies.back();
  const auto times = tx.exec(
      "select extract(epoch from min(requested_at)), extract(epoch from max(requested_at)),"
      " extract(epoch from max(outcome_at)), extract(epoch from clock_timestamp()),"
      " count(*) filter (where status = 'open') from core_transfers")[0];
  if (times[0].is_null()) return;
  const double first = as_double(times[0]);
  const double last_request = as_double(times[1]);
  const double end =
      as_int(times[4]) == 0 && !times[2].is_null() ? as_double(times[2]) : as_double(times[3]);
  out.elapsed_s = std::max(0.0, end - first);
  if (last_request > first)
    out.requested_per_s = static_cast<double>(out.requested) / (last_request - first);
  if (out.elapsed_s > 0)
    out.resolved_per_s = static_cast<double>(out.succeeded + out.rejected) / out.elapsed_s;
}

template <class T, class F>
T query(eventstore::ConnectionPool& pool, F&& fn) {
  auto result = pool.transact_with_retry([&](Transaction& tx) -> StoreResult<T> { return fn(tx); });
  if (!result) {
    base::module_logger("core_sim")
        ->warn("report query failed error=\"{}\"", result.error().message);
    return T{};
  }
  return *result;
}

}  // namespace

Progress read_progress(eventstore::ConnectionPool& pool) {
  return query<Progress>(pool, [](Transaction& tx) {
    Progress out;
    for (const auto& row : tx.exec("select status, count(*) from core_transfers group by status")) {
      const auto status = row[0].as<std::string>();
      const auto n = row[1].as<std::int64_t>();
      out.requested += n;
      if (status == "succeeded") out.succeeded = n;
      if (status == "rejected") out.rejected = n;
      if (status == "open") out.open = n;
    }
    out.refused = tx.exec("select count(*) from core_refused")[0][0].as<std::int64_t>();
    return out;
  });
}

std::optional<std::int64_t> read_open_count(eventstore::ConnectionPool& pool) {
  auto n = pool.autocommit([](Transaction& tx) -> StoreResult<std::int64_t> {
    return tx.exec("select count(*) from core_transfers where status = 'open'")[0][0]
        .as<std::int64_t>();
  });
  if (!n) {
    base::module_logger("core_sim")
        ->warn("open transfers query failed error=\"{}\"", n.error().message);
    return std::nullopt;
  }
  return *n;
}

Report read_report(eventstore::ConnectionPool& pool) {
  return query<Report>(pool, [](Transaction& tx) {
    Report out;
    read_outcomes(tx, out);
    read_refusals_and_violations(tx, out);
    read_timing(tx, out);
    return StoreResult<Report>(std::move(out));
  });
}

}  // namespace clearing::core_sim
