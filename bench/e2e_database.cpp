#include "e2e_database.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <exception>

#include "clearing/support/command_lines.hpp"
#include "e2e_common.hpp"

namespace clearing::bench::e2e {
namespace {

using support::kAdapterStream;
using support::kCoreStream;

// The one row of a probe's query, counted: each is a commit of its own in the database it
// reads, which the figures subtract.
template <class... Args>
pqxx::row counted_row(pqxx::connection& connection, std::int64_t& queries, const char* sql,
                      Args&&... args) {
  ++queries;
  pqxx::nontransaction tx(connection);
  return tx.exec_params(sql, std::forward<Args>(args)...)[0];
}

}  // namespace

std::unique_ptr<pqxx::connection> connect(const std::string& url) {
  auto c = std::make_unique<pqxx::connection>(url);
  pqxx::nontransaction tx(*c);
  tx.exec(std::string("set application_name = '") + kAppName + "'");
  return c;
}

ServerProbe::ServerProbe(const std::string& server_url) : connection_(connect(server_url)) {}

ServerCounters ServerProbe::counters(const std::vector<std::string>& databases) {
  ServerCounters out;
  pqxx::nontransaction tx(*connection_);
  // Each statement is its own transaction: pg_stat's snapshot is not cached across them.
  for (const auto& row :
       tx.exec("select datname, xact_commit, xact_rollback, active_time from pg_stat_database"
               " where datname is not null")) {
    const auto name = row[0].as<std::string>();
    if (std::find(databases.begin(), databases.end(), name) == databases.end()) continue;
    out.commits[name] = row[1].as<std::int64_t>();
    out.rollbacks[name] = row[2].as<std::int64_t>();
    out.active_ms[name] = row[3].as<double>();
  }
  out.next_xid = tx.exec("select pg_snapshot_xmax(pg_current_snapshot())::text::bigint")[0][0]
                     .as<std::int64_t>();
  return out;
}

bool ServerProbe::reset_statements() {
  try {
    pqxx::nontransaction tx(*connection_);
    tx.exec("create extension if not exists pg_stat_statements");
    tx.exec("select pg_stat_statements_reset()");
    return true;
  } catch (const std::exception& e) {
    progress(fmt::format("no statement figures (pg_stat_statements not loaded?): {}", e.what()));
    return false;
  }
}

std::vector<std::string> ServerProbe::top_statements(const std::vector<std::string>& databases,
                                                     int limit, double per) {
  std::vector<std::string> lines;
  std::string names;
  for (const auto& d : databases) names += (names.empty() ? "" : ",") + d;
  pqxx::nontransaction tx(*connection_);
  const auto rows = tx.exec_params(
      "select d.datname, s.calls, s.total_exec_time, s.rows,"
      " left(regexp_replace(s.query, '\\s+', ' ', 'g'), 150)"
      " from pg_stat_statements s join pg_database d on d.oid = s.dbid"
      " where d.datname = any(string_to_array($1, ','))"
      " order by s.total_exec_time desc limit $2",
      names, limit);
  // Totals first: statements per transfer do not depend on how busy the machine is.
  for (const auto& row : tx.exec_params(
           "select d.datname, sum(s.calls), sum(s.total_exec_time),"
           " coalesce(sum(s.calls) filter (where s.query ~* '^\\s*(begin|commit|rollback)'), 0)"
           " from pg_stat_statements s join pg_database d on d.oid = s.dbid"
           " where d.datname = any(string_to_array($1, ',')) group by 1 order by 1",
           names))
    lines.push_back(
        fmt::format("{:>7.3f} ms {:>6.2f} calls {:>13} {:<8} all statements (of the calls, "
                    "{:.2f} begin/commit/rollback; the benchmark's own probes included)",
                    row[2].as<double>() / per, row[1].as<double>() / per, "",
                    row[0].as<std::string>().substr(0, 8), row[3].as<double>() / per));
  for (const auto& row : rows)
    lines.push_back(fmt::format("{:>7.3f} ms {:>6.2f} calls {:>7.2f} rows  {:<8} {}",
                                row[2].as<double>() / per, row[1].as<double>() / per,
                                row[3].as<double>() / per, row[0].as<std::string>().substr(0, 8),
                                row[4].as<std::string>()));
  return lines;
}

int ServerProbe::connections(const std::string& database) {
  pqxx::nontransaction tx(*connection_);
  return tx
      .exec_params(
          "select count(*) from pg_stat_activity where datname = $1 and application_name <> $2",
          database, kAppName)[0][0]
      .as<int>();
}

PipelineProbe::PipelineProbe(const std::string& core_url, const std::string& adapter_url)
    : core_(connect(core_url)), adapter_(connect(adapter_url)) {}

Pipeline PipelineProbe::sample() {
  Pipeline p;
  sample_core(p);
  if (!adapter_failed_) {
    try {
      sample_adapter(p);
    } catch (const std::exception& e) {
      adapter_failed_ = true;
      progress(std::string("the adapter's pipeline figures are left out: ") + e.what());
    }
  }
  return p;
}

void PipelineProbe::sample_core(Pipeline& p) {
  // core-sim writes one TransferRequested on its stream per core_transfers row, in the
  // same transaction (request_all): the stream's heads count the requested transfers.
  const auto row = counted_row(
      *core_, core_queries_,
      "select (select coalesce(sum(head), 0) from external_stream_heads where stream = $1),"
      " (select count(*) from core_transfers where status = 'open'),"
      " (select count(*) from core_refused),"
      " (select coalesce(sum(head - published), 0) from external_stream_heads)",
      kCoreStream);
  p.requested = row[0].as<std::int64_t>();
  p.resolved = p.requested - row[1].as<std::int64_t>();
  p.refused = row[2].as<std::int64_t>();
  p.core_outbox = row[3].as<std::int64_t>();
}

void PipelineProbe::sample_adapter(Pipeline& p) {
  // Received: the core stream's messages applied (the benchmark sends no duplicates
  // and nothing to park). Not terminal: through the adapter's index of unfinished
  // transfers (a count of transfer_work read every row it ever held until vacuum:
  // 50 ms a sample late in a 60 s window).
  const auto row = counted_row(
      *adapter_, adapter_queries_,
      "select (select coalesce(sum(last_seq), 0) from inbound_stream_progress where stream = $1),"
      " (select count(*) from transfer_status where status not in ('succeeded', 'rejected')),"
      " (select coalesce(sum(head - published), 0) from external_stream_heads"
      "   where stream = $2)",
      kCoreStream, kAdapterStream);
  p.adapter_received = row[0].as<std::int64_t>();
  p.adapter_terminal = p.adapter_received - row[1].as<std::int64_t>();
  p.adapter_outbox = row[2].as<std::int64_t>();
  p.adapter_known = true;
}

std::string where_they_are(const Pipeline& p) {
  if (!p.adapter_known) return fmt::format("core outbox {}", p.core_outbox);
  return fmt::format(
      "core outbox {}, Kafka->adapter {}, in the adapter {}, adapter outbox {}, Kafka->core {}",
      p.core_outbox, p.requested - p.core_outbox - p.adapter_received,
      p.adapter_received - p.adapter_terminal, p.adapter_outbox,
      p.adapter_terminal - p.adapter_outbox - p.resolved);
}

}  // namespace clearing::bench::e2e
