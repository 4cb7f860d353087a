#include "clearing/support/scratch_database.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <pqxx/pqxx>
#include <utility>

#include "clearing/base/uuid.hpp"
#include "test_database.hpp"

namespace clearing::support {

// The tests' rule (pg_testing), so that every scratch database is named the same way.
std::string with_database(const std::string& url, const std::string& database) {
  return testing::with_database(url, database);
}

std::string query_value(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(sql);
  if (rows.empty() || rows[0][0].is_null()) return "";
  return rows[0][0].c_str();
}

std::string fresh_database(const std::string& server_url, const std::string& name) {
  pqxx::connection admin(server_url);
  pqxx::nontransaction tx(admin);
  tx.exec("drop database if exists " + name + " with (force)");
  tx.exec("create database " + name);
  return with_database(server_url, name);
}

ScratchDatabase::ScratchDatabase(std::string server_url, bool keep)
    : server_url_(std::move(server_url)), keep_(keep) {
  std::string id = base::new_uuid();
  std::erase(id, '-');
  name_ = "bench_" + id.substr(0, 16);
  query_value(server_url_, "create database " + name_);
  url_ = with_database(server_url_, name_);
}

ScratchDatabase::~ScratchDatabase() {
  if (keep_) {
    fmt::print("database kept: {}\n", url_);
    return;
  }
  try {
    query_value(server_url_, "drop database if exists " + name_ + " with (force)");
  } catch (const std::exception&) {
    // A throwaway server goes away with its folder anyway.
  }
}

}  // namespace clearing::support
