// kafka-mock: librdkafka's mock cluster in a process of its own, so that separate
// processes (adapter, core-sim) share one Kafka in tests, the chaos run and demos.
//   kafka-mock [--brokers N] [--topic NAME:PARTITIONS ...]
// First stdout line: "bootstrap <servers>". Then it reads commands on stdin, one per line,
// answering "ok" or "error <why>" on stdout:
//   down <broker-id>   up <broker-id>   topic <name> <partitions>   quit
// SIGTERM/SIGINT or end of input: stop, exit 0.

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "clearing/external_streams/kafka.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kafka-mock: an in-process Kafka mock cluster (librdkafka) for tests and demos"};
  int brokers = 1;
  std::vector<std::string> topics;
  app.add_option("--brokers", brokers, "number of brokers (1..9)")->check(CLI::Range(1, 9));
  app.add_option("--topic", topics, "a topic to create, NAME:PARTITIONS (repeatable)");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  auto cluster = clearing::external_streams::EmbeddedKafka::start(brokers);
  if (!cluster) {
    std::fprintf(stderr, "kafka-mock: %s\n", cluster.error().message.c_str());
    return 2;
  }
  for (const auto& spec : topics) {
    const auto colon = spec.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "kafka-mock: --topic %s is not NAME:PARTITIONS\n", spec.c_str());
      return 2;
    }
    if (auto created =
            (*cluster)->create_topic(spec.substr(0, colon), std::stoi(spec.substr(colon + 1)));
        !created) {
      std::fprintf(stderr, "kafka-mock: %s\n", created.error().message.c_str());
      return 2;
    }
  }
  std::cout << "bootstrap " << (*cluster)->bootstrap_servers() << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    std::string command;
    words >> command;
    tl::expected<void, std::string> done;
    if (command == "down" || command == "up") {
      int id = 0;
      words >> id;
      done = (command == "down" ? (*cluster)->set_broker_down(id) : (*cluster)->set_broker_up(id))
                 .map_error([](const auto& e) { return e.message; });
    } else if (command == "topic") {
      std::string name;
      int partitions = 0;
      words >> name >> partitions;
      done = (*cluster)->create_topic(name, partitions).map_error([](const auto& e) {
        return e.message;
      });
    } else if (command == "quit") {
      break;
    } else if (command.empty()) {
      continue;
    } else {
      done = tl::unexpected("unknown command " + command);
    }
    std::cout << (done ? std::string("ok") : "error " + done.error()) << std::endl;
  }
  return 0;
}
