#pragma once
// A fresh database per test on the throwaway server that scripts/with-postgres starts
// (CLEARING_TEST_DATABASE_URL). Dropped at the end of the test.

#include <string>

namespace clearing::testing {

class TestDatabase {
 public:
  TestDatabase();  // throws with a clear message if no server is configured
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  // Runs SQL on the test database (its own connection, autocommit).
  void exec(const std::string& sql) const;
  // First column of the first row as text ("" when no row).
  std::string query_value(const std::string& sql) const;

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

// The tables of the database at `url` with a row whose text holds `clear`, as text or as the
// hex of a bytea ("events parked_messages "; "" when none): the whole database searched, as a
// grep of its dump would, for personal data left in clear.
std::string tables_holding(const std::string& url, const std::string& clear);

// The server's admin URL, or throws when the tests run without a server.
std::string server_url();
// base URL with its database name replaced.
std::string with_database(const std::string& url, const std::string& database);

}  // namespace clearing::testing
