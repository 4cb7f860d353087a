// The HTTP client (client.hpp) against the HTTP server (server.hpp) over real sockets.

#include "clearing/http/client.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "clearing/http/server.hpp"

using namespace clearing::http;

namespace {

constexpr const char* kToken = "client-test-token";

std::unique_ptr<HttpServer> started_server() {
  auto server = HttpServer::create({.bearer_token = kToken});
  REQUIRE(server.has_value());
  (*server)->route("GET", "/echo/{word}", [](const HttpRequest& request) {
    std::string query;
    for (const auto& [key, value] : request.query) query += key + "=" + value + ";";
    return HttpResponse::json(200, request.params.at("word") + "|" + query);
  });
  (*server)->route(
      "GET", "/open", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); }, false);
  (*server)->route("POST", "/post", [](const HttpRequest& request) {
    return HttpResponse::json(201, request.headers.at("content-type") + "|" + request.body);
  });
  (*server)->route("GET", "/slow", [](const HttpRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    return HttpResponse::json(200, "late");
  });
  (*server)->route("GET", "/headers", [](const HttpRequest&) {
    auto response = HttpResponse::json(200, "{}");
    response.headers = {{"Sunset", "Wed, 30 Jun 2027 00:00:00 GMT"}, {"X-Trace", "a"}};
    return response;
  });
  (*server)->route("GET", "/big", [](const HttpRequest&) {
    return HttpResponse::json(200, std::string(4096, 'x'));
  });
  REQUIRE((*server)->start().has_value());
  return std::move(*server);
}

std::string base(const HttpServer& server) {
  return "http://127.0.0.1:" + std::to_string(server.port());
}

}  // namespace

TEST_CASE("get: the status and body, with the bearer token and the query") {
  const auto server = started_server();
  const auto answer = get(base(*server) + "/echo/hello?from=1&limit=2", kToken, 2000);
  REQUIRE(answer.has_value());
  CHECK(answer->status == 200);
  CHECK(answer->body == "hello|from=1;limit=2;");
  const auto open = get(base(*server) + "/open", "", 2000);
  REQUIRE(open.has_value());
  CHECK(open->status == 200);
}

TEST_CASE("any HTTP status is an answer, not an error") {
  const auto server = started_server();
  const auto unauthorised = get(base(*server) + "/echo/x", "wrong", 2000);
  REQUIRE(unauthorised.has_value());
  CHECK(unauthorised->status == 401);
  const auto unknown = get(base(*server) + "/nothing", kToken, 2000);
  REQUIRE(unknown.has_value());
  CHECK(unknown->status == 404);
}

TEST_CASE("the answer's headers, their names in lower case") {
  const auto server = started_server();
  const auto answer = get(base(*server) + "/headers", kToken, 2000);
  REQUIRE(answer.has_value());
  CHECK(answer->headers.at("sunset") == "Wed, 30 Jun 2027 00:00:00 GMT");
  CHECK(answer->headers.at("x-trace") == "a");
  CHECK(answer->headers.at("content-type") == "application/json");
  CHECK_FALSE(answer->headers.contains("Sunset"));
}

TEST_CASE("send: a POST with headers and a body") {
  const auto server = started_server();
  const auto answer = send({.method = "POST",
                            .url = base(*server) + "/post",
                            .bearer_token = kToken,
                            .headers = {{"Content-Type", "text/plain"}},
                            .body = "payload",
                            .timeout_ms = 2000});
  REQUIRE(answer.has_value());
  CHECK(answer->status == 201);
  CHECK(answer->body == "text/plain|payload");
}

TEST_CASE("the IPv6 loopback") {
  auto server = HttpServer::create({.host = "::1"});
  REQUIRE(server.has_value());
  (*server)->route("GET", "/v6", [](const HttpRequest&) { return HttpResponse::json(200, "six"); });
  if (!(*server)->start()) {
    MESSAGE("no IPv6 loopback on this machine: skipped");
    return;
  }
  const auto answer = get("http://[::1]:" + std::to_string((*server)->port()) + "/v6", "", 2000);
  REQUIRE(answer.has_value());
  CHECK(answer->status == 200);
  CHECK(answer->body == "six");
}

TEST_CASE("errors name the step that failed") {
  const auto server = started_server();
  const auto slow = get(base(*server) + "/slow", kToken, 200);
  REQUIRE_FALSE(slow.has_value());
  CHECK(slow.error().message.rfind("read: ", 0) == 0);
  CHECK(slow.error().code == ClientErrc::timeout);
  CHECK(slow.error().is_retryable());

  const auto too_big = send({.url = base(*server) + "/big",
                             .bearer_token = kToken,
                             .timeout_ms = 2000,
                             .body_bytes_max = 1024});
  REQUIRE_FALSE(too_big.has_value());
  CHECK(too_big.error().message.rfind("read: ", 0) == 0);
  CHECK(too_big.error().code == ClientErrc::too_large);
  CHECK_FALSE(too_big.error().is_retryable());

  // A port nobody listens on (the server's, once stopped).
  const auto port = server->port();
  server->stop();
  const auto refused = get("http://127.0.0.1:" + std::to_string(port) + "/x", "", 2000);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message.rfind("connect: ", 0) == 0);
  CHECK(refused.error().code == ClientErrc::connect);
  CHECK(refused.error().is_retryable());
}

TEST_CASE("bad URLs are refused before any I/O; https is tried (tls_test.cpp)") {
  const auto bad = get("ftp://host/x", "", 1000);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message.rfind("not an http:// URL", 0) == 0);
  CHECK(bad.error().code == ClientErrc::bad_url);
  CHECK_FALSE(bad.error().is_retryable());
  CHECK_FALSE(get("http://[::1/x", "", 1000).has_value());
  const auto secure = get("https://127.0.0.1:1/x", "", 1000);
  REQUIRE_FALSE(secure.has_value());
  CHECK(secure.error().message.rfind("connect: ", 0) == 0);
  CHECK(secure.error().code == ClientErrc::connect);
  CHECK_FALSE(
      send({.method = "BREW", .url = "http://127.0.0.1:1/", .timeout_ms = 1000}).has_value());
  CHECK(send({.method = "BREW", .url = "http://127.0.0.1:1/", .timeout_ms = 1000}).error().code ==
        ClientErrc::unsupported);
}

TEST_CASE(
    "is_retryable: the network and the deadline may mend, a bad request or a limit will not") {
  for (const auto code : {ClientErrc::resolve, ClientErrc::connect, ClientErrc::timeout,
                          ClientErrc::write, ClientErrc::read}) {
    CHECK(is_retryable(code));
  }
  for (const auto code :
       {ClientErrc::bad_url, ClientErrc::unsupported, ClientErrc::too_large, ClientErrc::tls}) {
    CHECK_FALSE(is_retryable(code));
  }
  CHECK(std::string(to_string(ClientErrc::too_large)) == "too_large");
}
