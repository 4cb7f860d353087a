#pragma once
// Databases made for one run on a PostgreSQL server (the throwaway one of scripts/with-postgres,
// or --database-url): a URL with another database name, one-value queries, and a database
// dropped at the end of the run. Used by the benchmarks and the demo.
//
// Thread safety: with_database, query_value and fresh_database are free of shared state (the
// last two open a connection of their own per call); a ScratchDatabase belongs to the thread that
// made it. Errors: pqxx exceptions pass through; a URL without a database name throws
// runtime_error.

#include <string>

namespace clearing::support {

// `url` with its database name replaced by `database` (query parameters kept).
std::string with_database(const std::string& url, const std::string& database);

// First column of the first row as text ("" when no row or NULL), on a connection of its
// own (autocommit).
std::string query_value(const std::string& url, const std::string& sql);

// The database `name` on the server of `server_url`, dropped (with its sessions) if it was
// there and created empty; its URL. For runs that name their databases (tests/e2e,
// bench/e2e), so that a look afterwards finds them.
std::string fresh_database(const std::string& server_url, const std::string& name);

// A database created for this run and dropped at its end (unless kept for a look).
class ScratchDatabase {
 public:
  ScratchDatabase(std::string server_url, bool keep);
  ~ScratchDatabase();
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  const std::string& url() const { return url_; }

 private:
  std::string server_url_;
  bool keep_;
  std::string name_;
  std::string url_;
};

}  // namespace clearing::support
