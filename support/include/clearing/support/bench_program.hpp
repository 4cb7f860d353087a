#pragma once
// The frame every benchmark program shares (bench/, adapter/bench/): its common options
// (--database-url from CLEARING_TEST_DATABASE_URL, --keep-database, --log-level), the head of
// its report (the server, its settings, the machine), and how it ends (stdout line by line
// while it runs; an error's message on stderr, exit code 1).
//
// Thread safety: call from the program's main thread. Errors: print_server passes on pqxx's
// exceptions (a server that is not there); run_benchmark turns any exception into exit code 1.

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <string>

namespace clearing::support {

// --database-url: required, from CLEARING_TEST_DATABASE_URL unless given.
inline CLI::Option* add_database_url_option(CLI::App& app, std::string& url,
                                            const std::string& description) {
  return app.add_option("--database-url", url, description)
      ->envname("CLEARING_TEST_DATABASE_URL")
      ->required();
}

// --log-level: the level of the modules' logs on stderr.
inline CLI::Option* add_log_level_option(CLI::App& app, std::string& level) {
  return app.add_option("--log-level", level, "level of the modules' logs (stderr)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
}

// Runs a benchmark's body with stdout line by line, so that the figures show while it runs,
// even into a pipe. An exception's message goes to stderr as "<program>: <message>", and the
// exit code is then 1; else the body's.
template <class Body>
int run_benchmark(const char* program, Body&& body) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    return body();
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    return 1;
  }
}

// "server: <version()>" and "settings: <name>=<value> ..." of the server at `url` (one
// connection for all).
void print_server(const std::string& url, std::initializer_list<const char*> settings);

// "machine: <n> cores (<sharing> share them)": what competes for the cores with the figures.
void print_machine(const char* sharing);

}  // namespace clearing::support
