#include "reconcile.hpp"

#include <map>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

namespace clearing::demo {
namespace {

std::string n(std::int64_t v) { return std::to_string(v); }

std::int64_t scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  const auto r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? 0 : r[0][0].as<std::int64_t>();
}

using LedgerByReference = std::map<std::string, const clearing_mock::LedgerEntry*>;
using PartitionKey = std::pair<std::string, int>;

// A (stream, partition, value) query as a map by partition.
std::map<PartitionKey, std::int64_t> by_partition(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  std::map<PartitionKey, std::int64_t> out;
  for (const auto& r : tx.exec(sql))
    out[{r[0].as<std::string>(), r[1].as<int>()}] = r[2].as<std::int64_t>();
  return out;
}

// Partitions of the external streams a database wrote whose seqs are not 1..max.
std::int64_t partitions_with_gaps(pqxx::connection& c) {
  return scalar(c,
                "select count(*) from (select stream, partition, count(*) c, max(seq) m from "
                "external_events group by 1, 2) s where c <> m");
}

// 1. No money moves twice.
Check no_money_moves_twice(const std::vector<clearing_mock::LedgerEntry>& ledger) {
  int executions_max = 0, executed = 0;
  for (const auto& e : ledger) {
    executions_max = std::max(executions_max, e.execution_count);
    executed += e.execution_count > 0;
  }
  return {"1. no money moves twice: executions per transfer in the ledger <= 1",
          executions_max <= 1,
          "max executions " + n(executions_max) + ", transfers executed " + n(executed)};
}

// 2. Nothing is lost: every request has exactly one outcome on the core, agreeing with
//    the ledger.
Check nothing_is_lost(pqxx::connection& core, const LedgerByReference& ledger) {
  std::int64_t requested = 0, succeeded = 0, rejected = 0, open = 0, disagree = 0;
  {
    pqxx::nontransaction tx(core);
    for (const auto& row :
         tx.exec("select transfer_id, status, coalesce(reason_code, '') from core_transfers")) {
      ++requested;
      const auto status = row[1].as<std::string>();
      const auto it = ledger.find(row[0].as<std::string>());
      const bool in_ledger_executed = it != ledger.end() && it->second->execution_count > 0;
      if (status == "succeeded") {
        ++succeeded;
        disagree += !in_ledger_executed;
      } else if (status == "rejected") {
        ++rejected;
        disagree += in_ledger_executed;
      } else {
        ++open;
      }
    }
  }
  const auto resolved_twice = scalar(core, "select count(*) from core_violations");
  return {
      "2. nothing is lost: every TransferRequested has exactly one outcome, agreeing with the "
      "ledger",
      open == 0 && disagree == 0 && resolved_twice == 0,
      "requested " + n(requested) + ", succeeded " + n(succeeded) + ", rejected " + n(rejected) +
          ", still open " + n(open) + ", disagreeing with the ledger " + n(disagree) +
          ", resolved twice " + n(resolved_twice)};
}

// 3. Order and completeness of every stream partition, both directions: what each side
//    applied of the other's stream equals what the other wrote.
Check streams_complete(pqxx::connection& adapter, pqxx::connection& core) {
  const auto adapter_gaps = partitions_with_gaps(adapter);
  const auto core_gaps = partitions_with_gaps(core);
  const auto heads = "select stream, partition, head from external_stream_heads";
  const auto applied = "select stream, partition, last_seq from inbound_stream_progress";
  const auto core_heads = by_partition(core, heads);
  const auto adapter_heads = by_partition(adapter, heads);
  auto adapter_applied = by_partition(adapter, applied);
  auto core_applied = by_partition(core, applied);
  // The adapter's payment streams the core reads (payments.v1 or its successor v2: the
  // core consumes one of them), each partition to its head. None read counts as behind.
  std::set<std::string> core_reads;
  for (const auto& [key, _] : core_applied)
    if (key.first.find(".payments.") != std::string::npos) core_reads.insert(key.first);
  std::int64_t behind = core_reads.empty() ? 1 : 0;
  for (const auto& [key, head] : core_heads) behind += adapter_applied[key] != head;
  for (const auto& [key, head] : adapter_heads)
    if (core_reads.count(key.first)) behind += core_applied[key] != head;
  return {"3. order and completeness: every partition gapless, applied in full and in order",
          adapter_gaps == 0 && core_gaps == 0 && behind == 0,
          "partitions with gaps: adapter " + n(adapter_gaps) + ", core " + n(core_gaps) +
              "; partitions not applied to the head " + n(behind)};
}

// 4. Traceability: every external event to its internal event, every transfer to the
//    core event that started it.
Check traceable(pqxx::connection& adapter) {
  const auto uncaused_external =
      scalar(adapter,
             "select count(*) from external_events x where not exists "
             "(select 1 from events e where e.event_id = x.source_event_id)");
  const auto uncaused_transfers =
      scalar(adapter,
             "select count(*) from events where type = 'TransferInitiated' and "
             "(metadata->>'causation_id' is null or metadata->>'causation_id' = '')");
  const auto uncaused_answers =
      scalar(adapter,
             "select count(*) from events where stream_id like 'transfer-%' and "
             "type <> 'TransferInitiated' and coalesce(metadata->>'causation_id', '') = ''");
  return {"4. traceability: every external event and clearing answer traces back to its cause",
          uncaused_external == 0 && uncaused_transfers == 0 && uncaused_answers == 0,
          "external events without a cause " + n(uncaused_external) +
              ", transfers without a core event " + n(uncaused_transfers) +
              ", internal events without a cause " + n(uncaused_answers)};
}

// 5. A timeout is never a rejection; one transfer, one key; terminal outcomes stay.
Check timeouts_and_terminals(pqxx::connection& adapter, const LedgerByReference& ledger) {
  std::int64_t rejected_after_timeout = 0;
  {
    pqxx::nontransaction tx(adapter);
    for (const auto& row :
         tx.exec("select substr(stream_id, 10) from events where type = 'TransferRejected' and "
                 "(data->>'attempt')::int > 0")) {
      const auto it = ledger.find(row[0].as<std::string>());
      rejected_after_timeout += it == ledger.end() || it->second->status != "RJCT";
    }
  }
  const auto terminal_twice =
      scalar(adapter,
             "select count(*) from (select stream_id from events where type in "
             "('TransferSettled','TransferRejected','TransferResolvedManually') group by 1 "
             "having count(*) > 1) t");
  const auto alarms = scalar(
      adapter, "select count(*) from events where type = 'ContradictingClearingAnswerReceived'");
  return {"5. a timeout is never a rejection; a terminal outcome never changes",
          rejected_after_timeout == 0 && terminal_twice == 0,
          "rejections without a clearing RJCT " + n(rejected_after_timeout) +
              ", transfers with two terminal events " + n(terminal_twice) +
              ", contradiction alarms " + n(alarms)};
}

// 6. Bad input is kept, with its reason.
Check bad_input_parked(pqxx::connection& adapter, pqxx::connection& core) {
  std::string parked;
  {
    pqxx::nontransaction tx(adapter);
    for (const auto& row :
         tx.exec("select reason_code, count(*) from parked_messages group by 1 order by 1"))
      parked += " " + row[0].as<std::string>() + "=" + row[1].as<std::string>();
  }
  const auto core_parked = scalar(core, "select count(*) from core_parked_messages");
  return {"6. bad input is parked with its reason, never dropped", core_parked == 0,
          "parked by the adapter:" + (parked.empty() ? std::string(" none") : parked) +
              "; parked by the core " + n(core_parked)};
}

// The transfer with the most events ("" when none).
std::string most_troubled_transfer(pqxx::connection& adapter) {
  pqxx::nontransaction tx(adapter);
  const auto r = tx.exec(
      "select substr(stream_id, 10) from events where stream_id like 'transfer-%' "
      "group by stream_id order by count(*) desc, stream_id limit 1");
  return r.empty() ? std::string() : r[0][0].as<std::string>();
}

}  // namespace

Checks reconcile(const Books& books) {
  pqxx::connection adapter(books.adapter_database_url);
  pqxx::connection core(books.core_database_url);
  LedgerByReference ledger;
  for (const auto& e : books.ledger) ledger[e.reference] = &e;
  Checks out;
  out.checks.push_back(no_money_moves_twice(books.ledger));
  out.checks.push_back(nothing_is_lost(core, ledger));
  out.checks.push_back(streams_complete(adapter, core));
  out.checks.push_back(traceable(adapter));
  out.checks.push_back(timeouts_and_terminals(adapter, ledger));
  out.checks.push_back(bad_input_parked(adapter, core));
  out.most_troubled_transfer = most_troubled_transfer(adapter);
  return out;
}

std::string render(const Checks& checks) {
  std::ostringstream s;
  for (const auto& c : checks.checks)
    s << "  [" << (c.holds ? " ok " : "FAIL") << "] " << c.invariant << "\n         " << c.figures
      << "\n";
  return s.str();
}

}  // namespace clearing::demo
