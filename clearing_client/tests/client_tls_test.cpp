// The clearing client against the clearing mock serving TLS, with certificates made at run
// time (http/testing/test_certs.hpp): mTLS answered; each refusal (another CA, an expired
// certificate, another host name, no client certificate) sends nothing the mock executes.

#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "clearing/clearing_client/client.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/http/testing/test_certs.hpp"
#include "client_test_support.hpp"

using namespace clearing::clearing_client;
using namespace clearing::clearing_mock;
using clearing::clearing_client::testing::get;
using clearing::clearing_client::testing::transfer;
using clearing::http::testing::CertAndKey;
using clearing::http::testing::TestCerts;

namespace {

std::unique_ptr<MockServer> tls_mock(const CertAndKey& server, std::string client_ca_file = "") {
  MockOptions options;
  options.tls_cert_file = server.cert_file;
  options.tls_key_file = server.key_file;
  options.tls_client_ca_file = std::move(client_ca_file);
  auto mock = MockServer::start(options);
  REQUIRE_MESSAGE(mock.has_value(), (mock ? "" : mock.error()));
  return std::move(*mock);
}

std::unique_ptr<ClearingClient> client_for(const MockServer& mock,
                                           const std::function<void(ClientOptions&)>& adjust,
                                           const std::string& host = "127.0.0.1") {
  ClientOptions options;
  options.base_url = "https://" + host + ":" + std::to_string(mock.port());
  options.bearer_token = "mock-token";
  options.request_timeout_ms = 5'000;
  options.connect_timeout_ms = 3'000;
  adjust(options);
  auto client = ClearingClient::start(options);
  REQUIRE_MESSAGE(client.has_value(), (client ? "" : client.error().message));
  return std::move(*client);
}

// Refused before anything was sent: connect_failed, OpenSSL's verdict in the detail, and the
// mock executed nothing.
void check_refused(MockServer& mock, const ClearingAnswer& answer, const std::string& verdict) {
  INFO("answer=", to_string(answer.answer_class), " cause=", to_string(answer.cause),
       " detail=", answer.detail);
  CHECK(answer.answer_class == AnswerClass::unknown);
  CHECK(answer.cause == UnknownCause::connect_failed);
  CHECK(answer.detail.find("TLS handshake failed") != std::string::npos);
  CHECK(answer.detail.find(verdict) != std::string::npos);
  CHECK(mock.state().ledger().empty());
}

}  // namespace

TEST_CASE("mTLS: the client presents its certificate, verifies the mock's, and a submit settles") {
  TestCerts certs;
  auto mock = tls_mock(certs.server, certs.ca_file);
  CHECK(mock->base_url().starts_with("https://"));
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    auto client = client_for(
        *mock,
        [&](ClientOptions& o) {
          o.ca_file = certs.ca_file;
          o.client_cert_file = certs.client.cert_file;
          o.client_key_file = certs.client.key_file;
        },
        host);
    const auto reference = "t-mtls-" + host;
    const auto answer = get(client->submit(transfer(reference)));
    INFO("cause=", to_string(answer.cause), " detail=", answer.detail);
    CHECK(answer.answer_class == AnswerClass::settled);
    CHECK(answer.http_status == 201);
    CHECK_FALSE(answer.clearing_reference.empty());
  }
  CHECK(mock->state().ledger().size() == 2);
}

TEST_CASE("refused: a CA that did not sign the mock's certificate") {
  TestCerts certs;
  auto mock = tls_mock(certs.server);
  auto client = client_for(*mock, [&](ClientOptions& o) { o.ca_file = certs.other_ca_file; });
  check_refused(*mock, get(client->submit(transfer("t-ca"))),
                "unable to get local issuer certificate");
}

TEST_CASE("refused: an expired certificate") {
  TestCerts certs;
  auto mock = tls_mock(certs.expired);
  auto client = client_for(*mock, [&](ClientOptions& o) { o.ca_file = certs.ca_file; });
  check_refused(*mock, get(client->submit(transfer("t-expired"))), "certificate has expired");
}

TEST_CASE("refused: a certificate for another host name") {
  TestCerts certs;
  auto mock = tls_mock(certs.wrong_host);
  auto by_ip = client_for(*mock, [&](ClientOptions& o) { o.ca_file = certs.ca_file; });
  check_refused(*mock, get(by_ip->submit(transfer("t-host-ip"))), "IP address mismatch");
  auto by_name = client_for(
      *mock, [&](ClientOptions& o) { o.ca_file = certs.ca_file; }, "localhost");
  check_refused(*mock, get(by_name->submit(transfer("t-host-name"))), "hostname mismatch");
}

TEST_CASE("refused: no client certificate where the mock requires one") {
  TestCerts certs;
  auto mock = tls_mock(certs.server, certs.ca_file);
  for (const bool other_ca : {false, true}) {
    auto client = client_for(*mock, [&](ClientOptions& o) {
      o.ca_file = certs.ca_file;
      if (other_ca) {
        o.client_cert_file = certs.other_client.cert_file;
        o.client_key_file = certs.other_client.key_file;
      }
    });
    const auto answer = get(client->submit(transfer(other_ca ? "t-other" : "t-none")));
    INFO("other_ca=", other_ca, " cause=", to_string(answer.cause), " detail=", answer.detail);
    // TLS 1.3 ends the client's handshake before the server has checked its certificate: the
    // refusal then arrives as the answer's read failing. Either way no HTTP answer came.
    CHECK(answer.answer_class == AnswerClass::unknown);
    CHECK(answer.http_status == 0);
    CHECK(answer.detail.find(other_ca ? "alert unknown ca" : "alert certificate required") !=
          std::string::npos);
  }
  CHECK(mock->state().ledger().empty());
}

TEST_CASE("client certificate options: both or neither, and files that load") {
  TestCerts certs;
  ClientOptions options;
  options.base_url = "https://127.0.0.1:1";
  options.bearer_token = "t";
  options.client_cert_file = certs.client.cert_file;
  auto half = ClearingClient::start(options);
  REQUIRE_FALSE(half);
  CHECK(half.error().field == "client_key_file");
  CHECK(half.error().message ==
        "clearing client option client_key_file is missing: a client certificate needs both "
        "client_cert_file and client_key_file");

  options.client_key_file = certs.dir() + "/none.key";
  auto missing = ClearingClient::start(options);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().field == "client_key_file");
  CHECK(missing.error().message.starts_with("clearing client TLS setup failed: TLS key_file '" +
                                            certs.dir() + "/none.key' does not load"));

  options.client_key_file = certs.server.key_file;  // not the certificate's key
  auto mismatched = ClearingClient::start(options);
  REQUIRE_FALSE(mismatched);
  CHECK(mismatched.error().field == "client_key_file");
}
