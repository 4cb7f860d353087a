// TLS on both ends of the http module, with certificates made at run time (test_certs.hpp):
// the client verifies chain and host name and presents a certificate for mTLS; the server
// requires one when given a client CA. Each refusal is asserted with OpenSSL's verdict.

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "clearing/http/testing/test_certs.hpp"

using namespace clearing::http;
using clearing::http::testing::CertAndKey;
using clearing::http::testing::TestCerts;

namespace {

constexpr const char* kToken = "tls-test-token";

std::unique_ptr<HttpServer> serve(std::optional<TlsServerOptions> tls) {
  HttpServerOptions options;
  options.bearer_token = kToken;
  options.tls = std::move(tls);
  auto created = HttpServer::create(options);
  REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
  auto server = std::move(*created);
  server->route("GET", "/hello",
                [](const HttpRequest&) { return HttpResponse::json(200, R"({"hello":"tls"})"); });
  REQUIRE(server->start().has_value());
  return server;
}

TlsServerOptions server_tls(const CertAndKey& pair, std::string client_ca_file = "") {
  return {.cert_file = pair.cert_file,
          .key_file = pair.key_file,
          .client_ca_file = std::move(client_ca_file)};
}

ClientResult<ClientResponse> hello(const HttpServer& server, const TlsClientOptions& tls,
                                   const std::string& host = "127.0.0.1") {
  return get("https://" + host + ":" + std::to_string(server.port()) + "/hello", kToken, 5000, tls);
}

void check_refused(const ClientResult<ClientResponse>& got, const std::string& reason) {
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == ClientErrc::tls);
  CHECK_FALSE(got.error().is_retryable());
  CHECK_MESSAGE(got.error().message.find(reason) != std::string::npos, got.error().message);
}

}  // namespace

TEST_CASE("https: the server's chain and host name verified against the CA, then answered") {
  TestCerts certs;
  auto server = serve(server_tls(certs.server));
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    auto got = hello(*server, {.ca_file = certs.ca_file}, host);
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message));
    CHECK(got->status == 200);
    CHECK(got->body == R"({"hello":"tls"})");
  }
}

TEST_CASE("https refusals: another CA, the system's store, expired, another host name") {
  TestCerts certs;
  SUBCASE("a CA that did not sign the server's certificate") {
    auto server = serve(server_tls(certs.server));
    check_refused(hello(*server, {.ca_file = certs.other_ca_file}),
                  "unable to get local issuer certificate");
  }
  SUBCASE("the system's trust store does not know the test CA") {
    auto server = serve(server_tls(certs.server));
    check_refused(hello(*server, {}), "certificate verify failed");
  }
  SUBCASE("an expired certificate") {
    auto server = serve(server_tls(certs.expired));
    check_refused(hello(*server, {.ca_file = certs.ca_file}), "certificate has expired");
  }
  SUBCASE("a certificate for another host name, by IP and by name") {
    auto server = serve(server_tls(certs.wrong_host));
    check_refused(hello(*server, {.ca_file = certs.ca_file}), "IP address mismatch");
    check_refused(hello(*server, {.ca_file = certs.ca_file}, "localhost"), "hostname mismatch");
    // verify: false (tests only) takes it.
    auto unverified = hello(*server, {.verify = false});
    REQUIRE(unverified.has_value());
    CHECK(unverified->status == 200);
  }
}

TEST_CASE("mTLS: a server with a client CA answers only a client with a certificate it signed") {
  TestCerts certs;
  auto server = serve(server_tls(certs.server, certs.ca_file));
  const TlsClientOptions with_cert{.ca_file = certs.ca_file,
                                   .cert_file = certs.client.cert_file,
                                   .key_file = certs.client.key_file};
  auto got = hello(*server, with_cert);
  REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message));
  CHECK(got->status == 200);

  SUBCASE("no client certificate") {
    auto refused = hello(*server, {.ca_file = certs.ca_file});
    REQUIRE_FALSE(refused.has_value());
    // TLS 1.3: the client learns it at its first read; 1.2: during the handshake.
    CHECK((refused.error().code == ClientErrc::tls || refused.error().code == ClientErrc::read));
    CHECK_MESSAGE(refused.error().message.find("alert certificate required") != std::string::npos,
                  refused.error().message);
  }
  SUBCASE("a client certificate from another CA") {
    auto refused = hello(*server, {.ca_file = certs.ca_file,
                                   .cert_file = certs.other_client.cert_file,
                                   .key_file = certs.other_client.key_file});
    REQUIRE_FALSE(refused.has_value());
    CHECK((refused.error().code == ClientErrc::tls || refused.error().code == ClientErrc::read));
    CHECK_MESSAGE(refused.error().message.find("alert unknown ca") != std::string::npos,
                  refused.error().message);
  }
}

TEST_CASE("a plain HTTP request to a TLS port gets no answer; https to a plain port fails") {
  TestCerts certs;
  auto tls_server = serve(server_tls(certs.server));
  auto plain =
      get("http://127.0.0.1:" + std::to_string(tls_server->port()) + "/hello", kToken, 3000);
  REQUIRE_FALSE(plain.has_value());
  CHECK(plain.error().code == ClientErrc::read);

  auto plain_server = serve(std::nullopt);
  check_refused(hello(*plain_server, {.ca_file = certs.ca_file}), "handshake: ");
}

TEST_CASE("TLS options that do not load are refused with the option and the path") {
  TestCerts certs;
  SUBCASE("server: a missing key file") {
    HttpServerOptions options;
    options.tls = TlsServerOptions{.cert_file = certs.server.cert_file,
                                   .key_file = certs.dir() + "/none.key"};
    auto created = HttpServer::create(options);
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().code == ServerErrc::invalid_option);
    CHECK(created.error().message.starts_with("http option tls: TLS key_file '" + certs.dir() +
                                              "/none.key' does not load"));
  }
  SUBCASE("server: a key that is not the certificate's") {
    HttpServerOptions options;
    options.tls =
        TlsServerOptions{.cert_file = certs.server.cert_file, .key_file = certs.client.key_file};
    auto created = HttpServer::create(options);
    REQUIRE_FALSE(created.has_value());
    CHECK_MESSAGE(created.error().message.find("key values mismatch") != std::string::npos,
                  created.error().message);
  }
  SUBCASE("client: a certificate without its key, a CA file that is not there") {
    auto server = serve(server_tls(certs.server));
    auto half = hello(*server, {.ca_file = certs.ca_file, .cert_file = certs.client.cert_file});
    REQUIRE_FALSE(half.has_value());
    CHECK(half.error().code == ClientErrc::tls);
    CHECK(half.error().message ==
          "tls: TLS key_file is missing: a client certificate needs both cert_file and key_file");
    check_refused(hello(*server, {.ca_file = certs.dir() + "/none.crt"}),
                  "tls: TLS ca_file '" + certs.dir() + "/none.crt' does not load");
  }
}
