#pragma once
// The clearing mock's HTTP/1.1 server (Beast, C++20 coroutines, one strand per connection),
// behind a pimpl so that tests include no Asio. Endpoints (all behind the bearer token):
//   POST /v1/transfers, GET /v1/transfers/{reference}, GET /v1/incoming?after=&limit=
//   GET /admin/ledger, GET /admin/stats, GET|PUT /admin/faults, POST /admin/incoming
// See mock_state.hpp for the deterministic rules.

#include <cstdint>
#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "clearing/clearing_mock/mock_state.hpp"

namespace clearing::clearing_mock {

class MockServer {
 public:
  // Binds, listens and starts the server threads; the error says what failed (bad options,
  // port in use).
  static tl::expected<std::unique_ptr<MockServer>, std::string> start(MockOptions options);
  ~MockServer();  // stop()
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  std::uint16_t port() const;
  std::string base_url() const;  // http://host:port, https:// when serving TLS
  MockState& state();

  // Stops accepting, closes every connection (held faults included), joins the threads.
  // Idempotent.
  void stop();
  // Blocks until SIGINT or SIGTERM, then stop().
  void run_until_signal();

  struct Impl;

 private:
  explicit MockServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::clearing_mock
