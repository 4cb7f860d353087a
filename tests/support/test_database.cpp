#include "test_database.hpp"

#include <cstdlib>
#include <pqxx/pqxx>
#include <stdexcept>

#include "clearing/base/uuid.hpp"

namespace clearing::testing {

std::string server_url() {
  const char* url = std::getenv("CLEARING_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0')
    throw std::runtime_error(
        "CLEARING_TEST_DATABASE_URL is not set: run the tests through scripts/test (or "
        "scripts/with-postgres ctest ...), which starts a throwaway PostgreSQL server");
  return url;
}

std::string with_database(const std::string& url, const std::string& database) {
  const auto query = url.find('?');
  const auto path = url.rfind('/', query);
  if (path == std::string::npos || path < url.find("//") + 2)
    throw std::runtime_error("cannot find the database name in " + url);
  return url.substr(0, path + 1) + database + (query == std::string::npos ? "" : url.substr(query));
}

std::string tables_holding(const std::string& url, const std::string& clear) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : clear) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  pqxx::connection c(url);
  pqxx::work tx(c);
  std::string found;
  for (const auto& table : tx.exec("select table_name from information_schema.tables"
                                   " where table_schema = 'public' and table_type = 'BASE TABLE'"
                                   " order by 1")) {
    const auto name = table[0].as<std::string>();
    const auto rows = tx.exec_params1("select count(*) from " + tx.quote_name(name) +
                                          " t where position($1 in t::text) > 0"
                                          " or position($2 in t::text) > 0",
                                      clear, hex)[0]
                          .as<long>();
    if (rows > 0) found += name + " ";
  }
  return found;
}

TestDatabase::TestDatabase() : admin_url_(server_url()) {
  std::string id = base::new_uuid();
  std::erase(id, '-');
  name_ = "test_" + id.substr(0, 16);
  pqxx::connection admin(admin_url_);
  pqxx::nontransaction tx(admin);
  tx.exec("create database " + name_);
  url_ = with_database(admin_url_, name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction tx(admin);
    tx.exec("drop database if exists " + name_ + " with (force)");
  } catch (const std::exception&) {
    // The server goes away with the whole folder at the end of the run.
  }
}

void TestDatabase::exec(const std::string& sql) const {
  pqxx::connection c(url_);
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

std::string TestDatabase::query_value(const std::string& sql) const {
  pqxx::connection c(url_);
  pqxx::nontransaction tx(c);
  const auto rows = tx.exec(sql);
  if (rows.empty() || rows[0][0].is_null()) return "";
  return rows[0][0].c_str();
}

}  // namespace clearing::testing
