#include "clearing/support/bench_program.hpp"

#include <pqxx/pqxx>
#include <thread>

namespace clearing::support {

void print_server(const std::string& url, std::initializer_list<const char*> settings) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  fmt::print("server: {}\n", tx.exec("select version()")[0][0].c_str());
  std::string line;
  for (const char* name : settings)
    line += fmt::format("{}{}={}", line.empty() ? "" : " ", name,
                        tx.exec(std::string("show ") + name)[0][0].c_str());
  fmt::print("settings: {}\n", line);
}

void print_machine(const char* sharing) {
  fmt::print("machine: {} cores ({} share them)\n", std::thread::hardware_concurrency(), sharing);
}

}  // namespace clearing::support
