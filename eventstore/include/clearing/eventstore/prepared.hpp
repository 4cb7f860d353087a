#pragma once
// A statement prepared on each connection at its first use there, for the modules whose
// SQL runs in a caller's transaction without a pool at hand (external streams, the
// subscription's checkpoint, core-sim). Prepared statements skip parsing and planning
// at every call: for a single-row write or a key look-up in a table of a few rows, that
// is most of the statement's cost on the server.
//
// Only for statements whose best plan depends neither on their arguments nor on how big
// the tables have grown: key look-ups and writes of small tables, and inserts from a
// batch. A statement over a growing table whose plan depends on its size or on the
// batch (a look-up of many keys of `events`, say) is planned at every call instead: a
// generic plan made while a new database's tables were tiny kept scanning them whole
// (README, "Deliberate choices on the hot path").
//
// Includes <pqxx/pqxx>: for .cpp files that run SQL, not for headers.

#include <string>
#include <utility>

#include <pqxx/pqxx>

namespace clearing::eventstore {

struct PreparedSql {
  const char* name;  // unique in the process
  const char* sql;
};

template <class... Args>
pqxx::result exec_prepared_here(pqxx::transaction_base& tx, const PreparedSql& statement, Args&&... args) {
  // Registering a name again with the same text does nothing (libpqxx compares them); the
  // server prepares it at the connection's first execution.
  const std::string name(statement.name);
  tx.conn().prepare(name, statement.sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

}  // namespace clearing::eventstore
