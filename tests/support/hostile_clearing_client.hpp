#pragma once
// A clearing client pointed at a HostileHttpServer: the one set-up of the tests that script a
// hostile clearing (clearing_client/tests/hostile_server_test.cpp, adapter/tests/saga/
// hostile_clearing_pgtest.cpp and incoming_feed_pgtest.cpp), so that they meet the same
// client. Fails the calling test (doctest REQUIRE) when the client does not start.

#include <doctest/doctest.h>

#include <memory>

#include "clearing/clearing_client/client.hpp"
#include "hostile_http_server.hpp"

namespace clearing::testing {

enum class HostileConnections {
  // Each call on a connection of its own (the client's default).
  own_per_call,
  // One connection for every call, kept alive and reused (off by default), so that a second
  // call would read on the first one's connection: the defences of a reused connection are
  // under test.
  one_reused,
};

inline std::unique_ptr<clearing_client::ClearingClient> start_hostile_client(
    const HostileHttpServer& server, HostileConnections connections) {
  clearing_client::ClientOptions options;
  options.base_url = server.base_url();
  options.bearer_token = "hostile-token";
  options.request_timeout_ms = 3'000;
  options.connect_timeout_ms = 1'000;
  if (connections == HostileConnections::one_reused) {
    options.in_flight_max = 1;
    options.pool_connections_max = 1;
    options.reuse_connections = true;
  }
  auto client = clearing_client::ClearingClient::start(options);
  REQUIRE_MESSAGE(client.has_value(), (client ? "" : client.error().message));
  return std::move(*client);
}

}  // namespace clearing::testing
