#pragma once
// Private to core-sim: the core's stream (core.<cc>.payments.v1) as the adapter reads it.
// The Relay publishes it to Kafka; the catch-up API (GET
// /streams/{stream}/partitions/{p}/events, bearer CoreSimOptions::api_token) serves it
// over HTTP for the adapter's gap repair. The same server, behind the same token, serves
// the story of a transfer (GET /transfers/{transfer_id}/story, transfer_story.hpp).
//
// Thread safety: open/start_relay/stop from the owner's thread; port() from any thread
// once open() returned.

#include <cstdint>
#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "clearing/core_sim/core_sim.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/relay.hpp"

namespace clearing::http {
class HttpServer;  // Beast stays out of this header
}

namespace clearing::core_sim {

class CoreStreamServing {
 public:
  CoreStreamServing();
  ~CoreStreamServing();
  CoreStreamServing(const CoreStreamServing&) = delete;
  CoreStreamServing& operator=(const CoreStreamServing&) = delete;

  // The catch-up API, listening on options.http_host:http_port, then the relay (created,
  // not started); the error names the one that failed.
  tl::expected<void, std::string> open(eventstore::ConnectionPool& pool,
                                       const CoreSimOptions& options,
                                       const external_streams::KafkaClientOptions& kafka);
  void start_relay();
  // The relay, then the HTTP server; whatever open() made. Idempotent.
  void stop();
  std::uint16_t port() const;  // the catch-up API's; 0 before open()

 private:
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<external_streams::Relay> relay_;
};

}  // namespace clearing::core_sim
