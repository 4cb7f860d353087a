// The catch-up fetcher over HTTPS: against http's server serving TLS (mTLS), with
// certificates made at run time. A page comes back; a refused handshake is `misconfigured`,
// naming the TLS settings to check. No database: the route answers a fixed page.

#include <doctest/doctest.h>

#include <string>

#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/http/server.hpp"
#include "clearing/http/testing/test_certs.hpp"

using namespace clearing;
using http::testing::TestCerts;

namespace {

constexpr const char* kToken = "core-catchup-token";

std::unique_ptr<http::HttpServer> core_api(const TestCerts& certs) {
  http::HttpServerOptions options;
  options.bearer_token = kToken;
  options.tls = http::TlsServerOptions{.cert_file = certs.server.cert_file,
                                       .key_file = certs.server.key_file,
                                       .client_ca_file = certs.ca_file};
  auto created = http::HttpServer::create(options);
  REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
  auto server = std::move(*created);
  server->route("GET", "/streams/{stream}/partitions/{partition}/events",
                [](const http::HttpRequest& request) {
                  CHECK(request.params.at("stream") == "core.dk.payments.v1");
                  CHECK(request.query.at("from") == "7");
                  return http::HttpResponse::json(200, R"({"events":[],"head":42})");
                });
  REQUIRE(server->start().has_value());
  return server;
}

// Page [7, 17) of partition 0, asked over HTTPS with `tls`.
tl::expected<external_streams::FetchedPage, external_streams::FetchError> fetch(
    const http::HttpServer& server, http::TlsClientOptions tls) {
  const auto fetcher = external_streams::make_http_catch_up_fetcher(
      {.base_url = "https://127.0.0.1:" + std::to_string(server.port()),
       .bearer_token = kToken,
       .timeout_ms = 5'000,
       .tls_setting = "the core's TLS keys",
       .tls = std::move(tls)});
  return fetcher("core.dk.payments.v1", 0, 7, 10);
}

// Trusting `ca_file`, presenting the client certificate the core's CA signed.
http::TlsClientOptions with_client_cert(const TestCerts& certs, std::string ca_file) {
  return {.ca_file = std::move(ca_file),
          .cert_file = certs.client.cert_file,
          .key_file = certs.client.key_file};
}

}  // namespace

TEST_CASE("the catch-up fetcher reads a page over HTTPS with a client certificate") {
  TestCerts certs;
  auto server = core_api(certs);
  auto page = fetch(*server, with_client_cert(certs, certs.ca_file));
  REQUIRE_MESSAGE(page.has_value(), (page ? "" : page.error().message));
  CHECK(page->head == 42);
  CHECK(page->messages.empty());
}

TEST_CASE("the catch-up fetcher: a refused handshake is misconfigured and names the setting") {
  TestCerts certs;
  auto server = core_api(certs);
  auto wrong_ca = fetch(*server, with_client_cert(certs, certs.other_ca_file));
  REQUIRE_FALSE(wrong_ca.has_value());
  CHECK(wrong_ca.error().code == external_streams::FetchErrc::misconfigured);
  // The core sends its chain up to its CA (in its store for client certificates): OpenSSL
  // calls that "self-signed certificate in certificate chain".
  CHECK_MESSAGE(wrong_ca.error().message.find("certificate verify failed") != std::string::npos,
                wrong_ca.error().message);
  CHECK(wrong_ca.error().message.ends_with("check the core's TLS keys"));
  // Without the client certificate the core refuses: no page.
  auto no_cert = fetch(*server, {.ca_file = certs.ca_file});
  REQUIRE_FALSE(no_cert.has_value());
  CHECK_MESSAGE(no_cert.error().message.find("alert certificate required") != std::string::npos,
                no_cert.error().message);
}
