#pragma once
// A statement prepared on each connection at its first use there, for SQL that runs in
// a caller's transaction without a pool at hand (external streams, the subscription's
// checkpoint, the append lock, the dispatcher's claim, core-sim). Prepared statements
// skip parsing and planning at every call: for a key look-up or a batch write, that is
// a large part of the statement's cost on the server.
//
// A prepared statement's generic plan is made from the tables as they are when it is
// made, and PostgreSQL keeps it until an analyze of a table it reads. A new database's
// tables grow from nothing to tens of thousands of rows before autovacuum's first
// analyze, and a plan made on the empty tables (a scan of the whole table) kept scanning
// them (README, "Deliberate choices on the hot path"). So each statement is prepared
// again on its connection after a while: 1 s after it was first prepared there, then
// after twice as long each time, up to replan_after_max (60 s by default). A plan is
// thus never older than the tables by more than half of their age, or a minute. The
// cost is two round trips (DEALLOCATE, PREPARE) and a few planned calls per statement
// and connection each time.
//
// Includes <pqxx/pqxx>: for .cpp files that run SQL, not for headers.

#include <chrono>
#include <pqxx/pqxx>
#include <string>
#include <utility>

namespace clearing::eventstore {

struct PreparedSql {
  const char* name;  // unique in the process
  const char* sql;
};

// The name under which `statement` is prepared on tx's connection, registered with
// libpqxx (which prepares it on the server at its next execution), and unprepared first
// when its plan is due to be made again.
std::string prepare_here(pqxx::transaction_base& tx, const PreparedSql& statement);

// The longest time between two preparations of a statement on a connection. For tests
// and benchmarks; the process's default is 60 s.
void set_replan_after_max(std::chrono::milliseconds interval);

template <class... Args>
pqxx::result exec_prepared_here(pqxx::transaction_base& tx, const PreparedSql& statement,
                                Args&&... args) {
  return tx.exec_prepared(prepare_here(tx, statement), std::forward<Args>(args)...);
}

}  // namespace clearing::eventstore
