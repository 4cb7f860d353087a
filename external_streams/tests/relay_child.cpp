// A relay in a process of its own, for relay_ownership_pgtest: what a SIGKILL does to the
// partitions it owns. Usage: relay_ownership_child <database url> <kafka bootstrap servers>
// Prints "started" once its relay runs; stops gracefully when its stdin closes.

#include <iostream>
#include <string>

#include "clearing/base/logging.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/relay.hpp"

int main(int argc, char** argv) {
  using namespace clearing;
  base::init_logging();
  if (argc != 3) {
    std::cerr << "usage: relay_ownership_child <database url> <kafka bootstrap servers>\n";
    return 2;
  }
  eventstore::DatabaseOptions database;
  database.url = argv[1];
  database.application_name = "relay-child";
  database.notify_after_commit = false;
  eventstore::ConnectionPool pool(database);
  external_streams::RelayOptions options;
  options.kafka.bootstrap_servers = argv[2];
  options.kafka.client_id = "relay-child";
  auto relay = external_streams::Relay::create(pool, options);
  if (!relay) {
    std::cerr << external_streams::message_of(relay.error()) << "\n";
    return 1;
  }
  (*relay)->start();
  std::cout << "started" << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
  }
  (*relay)->stop();
  return 0;
}
