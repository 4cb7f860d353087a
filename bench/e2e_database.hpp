#pragma once
// bench_e2e's look at the PostgreSQL server under test: the counters that give the cost per
// transfer (commits, statement time, xids, pg_stat_statements), the connections the processes
// hold, and where the transfers are in the pipeline, from the core's and the adapter's tables.
//
// Thread safety: each probe owns its connections; use it from one thread. Errors: pqxx
// exceptions pass through, except the adapter's pipeline figures, which are left out when its
// tables cannot be read.

#include <cstdint>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace clearing::bench::e2e {

// A connection that carries the benchmark's application_name (kAppName).
std::unique_ptr<pqxx::connection> connect(const std::string& url);

// Counters of the server that describe the cost per transfer.
struct ServerCounters {
  std::map<std::string, std::int64_t> commits;  // database -> xact_commit
  std::map<std::string, std::int64_t> rollbacks;
  std::map<std::string, double>
      active_ms;              // time its backends spent in statements (lock waits included)
  std::int64_t next_xid = 0;  // writing transactions (xids assigned), cluster-wide
};

class ServerProbe {
 public:
  explicit ServerProbe(const std::string& server_url);

  ServerCounters counters(const std::vector<std::string>& databases);

  // pg_stat_statements, when the server preloads it: creates the extension and clears its
  // figures. False when it is not loaded (CLEARING_PG_EXTRA_OPTIONS sets the preload).
  bool reset_statements();

  // The `limit` statements of `databases` that took the most time since the reset, each
  // figure divided by `per`, after a line of totals per database.
  std::vector<std::string> top_statements(const std::vector<std::string>& databases, int limit,
                                          double per);

  // Connections to `database` other than this benchmark's own.
  int connections(const std::string& database);

 private:
  std::unique_ptr<pqxx::connection> connection_;
};

// Where the transfers are, from the core's database (tools/core_sim/src/core_sim.cpp) and the
// adapter's (adapter/src/transfer_service.cpp, external_streams): requested on the core ->
// core outbox (not yet in Kafka) -> received by the adapter -> terminal in the adapter ->
// adapter outbox -> resolved on the core. The adapter's figures are informative: when its
// schema changes and the query fails, they are left out (adapter_known false).
// Sampled every second for the whole run, so every figure is read where it costs the same
// at any table size: heads and progress rows, and counts of the few open rows through an
// index. A count(*) over all transfers took 50 ms a sample per database after 90,000
// transfers, a load on the server under test that grew with the run.
struct Pipeline {
  std::int64_t requested = 0;
  std::int64_t resolved = 0;
  std::int64_t refused = 0;
  std::int64_t core_outbox = 0;  // core stream events not yet acknowledged by Kafka
  bool adapter_known = false;
  std::int64_t adapter_received = 0;  // core stream messages the adapter has applied
  std::int64_t adapter_terminal = 0;  // of them, succeeded or rejected in the adapter
  std::int64_t adapter_outbox = 0;    // adapter payments stream events not yet acknowledged
};

class PipelineProbe {
 public:
  PipelineProbe(const std::string& core_url, const std::string& adapter_url);

  Pipeline sample();

  // Commits this probe made (subtracted from the databases' xact_commit).
  std::int64_t core_queries() const { return core_queries_; }
  std::int64_t adapter_queries() const { return adapter_queries_; }

 private:
  void sample_core(Pipeline& p);
  void sample_adapter(Pipeline& p);

  std::unique_ptr<pqxx::connection> core_, adapter_;
  std::int64_t core_queries_ = 0, adapter_queries_ = 0;
  bool adapter_failed_ = false;
};

// "core outbox N, Kafka->adapter N, ...": the open transfers by where they are.
std::string where_they_are(const Pipeline& p);

}  // namespace clearing::bench::e2e
