// The adapter as a bank runs it with TLS on its HTTP links, in this process on the embedded
// Kafka, certificates made at run time: its API over TLS requiring client certificates
// (http.tls_*), and the clearing reached with mTLS (clearing.client_cert_file/_key_file) on
// a clearing mock that requires them: the incoming feed's polls are answered there.

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "clearing/adapter/service.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/testing/test_certs.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/wait.hpp"
#include "test_database.hpp"

using namespace clearing;
using clearing::testing::TestDatabase;

namespace {

constexpr const char* kApiToken = "api-token-0123456789abcdef0123456";

}  // namespace

TEST_CASE("the adapter's API over TLS with client certificates, and mTLS toward the clearing") {
  http::testing::TestCerts certs;
  clearing_mock::MockOptions mock_options;
  mock_options.bearer_token = "clearing-token-16";
  mock_options.tls_cert_file = certs.server.cert_file;
  mock_options.tls_key_file = certs.server.key_file;
  mock_options.tls_client_ca_file = certs.ca_file;
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE_MESSAGE(mock, (mock ? "" : mock.error()));

  TestDatabase database;
  const int http_port = support::free_port();
  auto kafka = external_streams::EmbeddedKafka::start();
  REQUIRE(kafka);
  config::MapEnvironment env(
      {{"CLEARING_ADAPTER_DATABASE_URL", database.url()},
       {"CLEARING_ADAPTER_KAFKA_BROKERS", (*kafka)->bootstrap_servers()},
       {"CLEARING_ADAPTER_CLEARING_URL", (*mock)->base_url()},
       {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "https://127.0.0.1:9"},
       {"CLEARING_ADAPTER_HTTP_ADDRESS", "127.0.0.1:" + std::to_string(http_port)},
       {"CLEARING_ADAPTER_API_TOKEN", kApiToken},
       {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-catchup-token-0123"},
       {"CLEARING_ADAPTER_DATA_KEK", std::string(support::kTestDataKek)}});
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  auto json = nlohmann::json::parse(in);
  json["clearing"]["ca_file"] = certs.ca_file;
  json["clearing"]["client_cert_file"] = certs.client.cert_file;
  json["clearing"]["client_key_file"] = certs.client.key_file;
  json["streams"]["core_catchup_ca_file"] = certs.ca_file;
  json["http"]["tls_cert_file"] = certs.server.cert_file;
  json["http"]["tls_key_file"] = certs.server.key_file;
  json["http"]["tls_client_ca_file"] = certs.ca_file;
  auto cfg = config::parse_config(json.dump(), "dk.json", env);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().to_string()));
  for (const auto& [topic, partitions] : adapter::configured_topics(*cfg))
    REQUIRE((*kafka)->create_topic(topic, partitions));
  auto created = adapter::Service::create(*cfg, (*kafka)->bootstrap_servers());
  REQUIRE_MESSAGE(created, (created ? "" : created.error()));
  auto& service = **created;
  const auto service_started = service.start();
  REQUIRE_MESSAGE(service_started, (service_started ? "" : service_started.error().message));
  const auto port = std::to_string(service.http_port());

  const http::TlsClientOptions with_cert{.ca_file = certs.ca_file,
                                         .cert_file = certs.client.cert_file,
                                         .key_file = certs.client.key_file};
  SUBCASE("a request with a client certificate is answered") {
    auto health = http::get("https://127.0.0.1:" + port + "/healthz", "", 5000, with_cert);
    REQUIRE_MESSAGE(health.has_value(), (health ? "" : health.error().message));
    CHECK(health->status == 200);
    auto metrics = http::get("https://localhost:" + port + "/metrics", kApiToken, 5000, with_cert);
    REQUIRE_MESSAGE(metrics.has_value(), (metrics ? "" : metrics.error().message));
    CHECK(metrics->status == 200);
  }
  SUBCASE("plain HTTP to the TLS port gets no answer") {
    auto plain = http::get("http://127.0.0.1:" + port + "/healthz", "", 3000);
    REQUIRE_FALSE(plain.has_value());
    CHECK(plain.error().code == http::ClientErrc::read);
  }
  SUBCASE("without a client certificate there is no answer") {
    auto refused =
        http::get("https://127.0.0.1:" + port + "/healthz", "", 5000, {.ca_file = certs.ca_file});
    REQUIRE_FALSE(refused.has_value());
    CHECK_MESSAGE(refused.error().message.find("alert certificate required") != std::string::npos,
                  refused.error().message);
  }
  SUBCASE("the clearing, which requires a client certificate, answers the feed's polls") {
    CHECK(support::wait_until(
        [&] {
          const auto stats = (*mock)->state().stats();
          const auto incoming = stats.requests.find("incoming");
          return incoming != stats.requests.end() && incoming->second > 0;
        },
        std::chrono::seconds(30)));
  }
  service.stop();
}
