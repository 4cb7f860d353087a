// A dispatcher in a process of its own, for the crash test: it works on the transfers in
// the database until SIGTERM (graceful) or SIGKILL (the test's crash).
//   saga_worker <database-url> <clearing-url> <owner>

#include <csignal>
#include <cstdio>
#include <thread>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"

namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace clearing;
  if (argc != 4) {
    std::fprintf(stderr, "usage: saga_worker <database-url> <clearing-url> <owner>\n");
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  eventstore::DatabaseOptions db_options;
  db_options.url = argv[1];
  eventstore::ConnectionPool pool(db_options);
  eventstore::EventStore store(pool);
  adapter::TransferService transfers(store);

  clearing_client::ClientOptions client_options;
  client_options.base_url = argv[2];
  client_options.bearer_token = "mock-token";
  client_options.request_timeout_ms = 250;
  client_options.connect_timeout_ms = 200;
  auto client = clearing_client::ClearingClient::start(client_options);
  if (!client) {
    std::fprintf(stderr, "saga_worker: %s\n", client.error().message.c_str());
    return 2;
  }
  base::SystemClock clock;
  adapter::DispatcherOptions options;
  options.owner = argv[3];
  options.lease = std::chrono::milliseconds(1000);
  options.policy = testing::fast_policy();
  adapter::Dispatcher dispatcher(transfers, **client, clock, options);
  dispatcher.start();
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  dispatcher.stop();
  return 0;
}
