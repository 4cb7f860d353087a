// The core's stream for the adapter: see core_stream_serving.hpp.

#include "core_stream_serving.hpp"

#include "clearing/base/assert.hpp"
#include "clearing/core_sim/transfer_story.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/http/server.hpp"

namespace clearing::core_sim {

CoreStreamServing::CoreStreamServing() = default;
CoreStreamServing::~CoreStreamServing() = default;

tl::expected<void, std::string> CoreStreamServing::open(
    eventstore::ConnectionPool& pool, const CoreSimOptions& options,
    const external_streams::KafkaClientOptions& kafka) {
  http::HttpServerOptions server_options{
      .host = options.http_host, .port = options.http_port, .bearer_token = options.api_token};
  if (!options.tls_cert_file.empty()) {
    server_options.tls = http::TlsServerOptions{.cert_file = options.tls_cert_file,
                                                .key_file = options.tls_key_file,
                                                .client_ca_file = options.tls_client_ca_file};
  }
  auto server = http::HttpServer::create(server_options);
  if (!server) return tl::unexpected("catch-up API: " + server.error().message);
  http_ = std::move(*server);
  external_streams::add_catch_up_routes(*http_, pool);
  add_transfer_story_route(*http_, pool);
  if (auto listening = http_->start(); !listening)
    return tl::unexpected("catch-up API: " + listening.error().message);

  auto made_relay = external_streams::Relay::create(
      pool, {.kafka = kafka,
             .round_interval_min = std::chrono::milliseconds(options.relay_round_interval_min_ms)});
  if (!made_relay)
    return tl::unexpected("relay: " + external_streams::message_of(made_relay.error()));
  relay_ = std::move(*made_relay);
  return {};
}

void CoreStreamServing::start_relay() {
  CLEARING_ASSERT(relay_ != nullptr);
  relay_->start();
}

void CoreStreamServing::stop() {
  if (relay_) relay_->stop();
  if (http_) http_->stop();
}

std::uint16_t CoreStreamServing::port() const { return http_ ? http_->port() : 0; }

}  // namespace clearing::core_sim
