#pragma once
// The clearing adapter for one country, wired from its configuration: inbound consumer,
// dispatcher, incoming feed poller, derivations, relay and HTTP API, all on one
// PostgreSQL database. main() only parses arguments and calls this.
//
// Start order: database (migrations, streams), clearing client, then the workers, HTTP
// last (so /readyz is true only when all is up). Stop order is the reverse of the work
// flow: stop taking new input first (consumer, feed), let the dispatcher record the
// answers in flight, then derivations and the relay drain, then HTTP.

#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "clearing/config/config.hpp"
#include "clearing/http/server.hpp"

namespace clearing::adapter {

struct ServiceStatus {
  bool database = false;
  bool kafka = false;
  bool subscriptions = false;
  std::string detail;  // why not ready
};

// Why the service did not start. A database or broker that is not up yet can go away by
// waiting (retryable); a configuration the stored state refuses (a stream's partition
// count changed, an unknown derivation) cannot: the caller gives up at once.
struct StartError {
  std::string message;
  bool retryable = true;
};

class Service {
 public:
  // kafka_bootstrap: the resolved bootstrap servers (the caller starts an embedded
  // cluster when the config says "embedded"). The log format is the process's, not the
  // service's: the caller sets config.log_format (base::set_log_format) before, as
  // `clearing-adapter run` does right after loading the config; create leaves it alone.
  static tl::expected<std::unique_ptr<Service>, std::string> create(config::AdapterConfig config,
                                                                    std::string kafka_bootstrap);
  ~Service();

  tl::expected<void, StartError> start();
  void stop();

  std::uint16_t http_port() const;
  // The HTTP API's routes and the role each requires (after start): tests walk them by role.
  std::vector<http::HttpServer::RouteInfo> api_routes() const;
  ServiceStatus status() const;
  std::string metrics_text() const;

  struct Impl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Creates the topics of the configured streams on an embedded cluster (tests, demo).
std::vector<std::pair<std::string, int>> configured_topics(const config::AdapterConfig& config);

}  // namespace clearing::adapter
