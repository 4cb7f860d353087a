// The HTTP server, driven over real sockets by a minimal blocking client (POSIX),
// so the bytes on the wire are what is tested.

#include "clearing/http/server.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

using namespace clearing::http;

namespace {

constexpr const char* kToken = "s3cret-token";

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    const auto found = headers.find(name);
    return found == headers.end() ? std::string() : found->second;
  }
};

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// One TCP connection; reads responses framed by Content-Length. `source` binds the local
// address: any 127.x.y.z is this host on Linux, and a different one is another client for
// the server's per-client limit.
class Client {
 public:
  explicit Client(std::uint16_t port, int timeout_ms = 5000, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    set_timeout_ms(timeout_ms);
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &local.sin_addr);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  void set_timeout_ms(int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  void send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server closed: the read that follows tells the story
      sent += static_cast<std::size_t>(n);
    }
  }

  // Nullopt when the connection closed (or timed out) before a whole response, or when
  // what came is not a response (e.g. the body of an earlier one that should have had none).
  // `to_head`: the answer to a HEAD request, which has no body whatever its Content-Length.
  std::optional<RawResponse> read_response(bool to_head = false) {
    std::size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    RawResponse response;
    const std::string head = buffer_.substr(0, header_end);
    buffer_.erase(0, header_end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) return std::nullopt;
    response.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const auto next = head.find("\r\n", line_end + 2);
      const auto line = head.substr(
          line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        response.headers[lower(line.substr(0, colon))] = value;
      }
      line_end = next;
    }
    const auto length_field = response.headers.find("content-length");
    const std::size_t length =
        length_field == response.headers.end() || to_head ? 0 : std::stoul(length_field->second);
    while (buffer_.size() < length) {
      if (!fill()) return std::nullopt;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True when the server closed the connection (EOF or reset) with nothing more to read.
  bool closed_by_server() {
    if (!buffer_.empty()) return false;
    char byte;
    const auto n = ::recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool fill() {
    char chunk[4096];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

std::string authorized_get(const std::string& target) {
  return get(target, std::string("Authorization: Bearer ") + kToken + "\r\n");
}

std::optional<RawResponse> roundtrip(std::uint16_t port, const std::string& request) {
  Client client(port);
  REQUIRE(client.connected());
  client.send(request);
  return client.read_response();
}

HttpServerOptions test_options() {
  HttpServerOptions options;
  options.bearer_token = kToken;
  options.request_timeout_ms = 3000;
  return options;
}

std::unique_ptr<HttpServer> make_server(HttpServerOptions options) {
  auto server = HttpServer::create(std::move(options));
  REQUIRE(server.has_value());
  return std::move(*server);
}

// Echoes what the server parsed, one `key=value` per line, sorted (maps).
HttpResponse echo(const HttpRequest& request) {
  std::string body = "method=" + request.method + "\npath=" + request.path + "\n";
  for (const auto& [k, v] : request.params) body += "param." + k + "=" + v + "\n";
  for (const auto& [k, v] : request.query) body += "query." + k + "=" + v + "\n";
  body += "body=" + request.body + "\n";
  HttpResponse response;
  response.content_type = "text/plain";
  response.body = std::move(body);
  return response;
}

void start(HttpServer& server) {
  const auto started = server.start();
  REQUIRE(started.has_value());
  REQUIRE(server.port() != 0);
}

// A latch a handler waits on, released by the test.
struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  int entered = 0;
  bool open = false;

  void pass() {
    std::unique_lock lock(mutex);
    ++entered;
    changed.notify_all();
    changed.wait(lock, [this] { return open; });
  }
  void wait_entered(int count) {
    std::unique_lock lock(mutex);
    REQUIRE(changed.wait_for(lock, std::chrono::seconds(5), [&] { return entered >= count; }));
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    changed.notify_all();
  }
};

// A handler that waits at `gate`, then answers 200 {}.
HttpHandler gated(Gate& gate) {
  return [&gate](const HttpRequest&) {
    gate.pass();
    return HttpResponse::json(200, "{}");
  };
}

// A started server with the one route `method pattern`.
std::unique_ptr<HttpServer> serving(HttpServerOptions options, std::string method,
                                    std::string pattern, HttpHandler handler,
                                    bool requires_auth = true) {
  auto server = make_server(std::move(options));
  server->route(std::move(method), std::move(pattern), std::move(handler), requires_auth);
  start(*server);
  return server;
}

}  // namespace

TEST_CASE("routing fills params and query, with percent-decoding") {
  auto server = make_server(test_options());
  server->route("GET", "/streams/{stream}/partitions/{partition}/events", echo);
  server->route("GET", "/healthz", echo, false);
  start(*server);

  const auto response = roundtrip(
      server->port(),
      authorized_get("/streams/core.dk%2Epayments.v1/partitions/3/events?from=10&limit=5"));
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->header("content-type") == "text/plain");
  CHECK(response->body ==
        "method=GET\npath=/streams/core.dk.payments.v1/partitions/3/events\n"
        "param.partition=3\nparam.stream=core.dk.payments.v1\n"
        "query.from=10\nquery.limit=5\nbody=\n");

  SUBCASE("an encoded slash stays inside its segment; '+' and %20 in the query are spaces") {
    const auto decoded =
        roundtrip(server->port(), authorized_get("/streams/a%2Fb/partitions/x%20y/events"
                                                 "?q=one+two%20three&flag&e=%C3%A9"));
    REQUIRE(decoded);
    CHECK(decoded->status == 200);
    CHECK(decoded->body.find("param.stream=a/b\n") != std::string::npos);
    CHECK(decoded->body.find("param.partition=x y\n") != std::string::npos);
    CHECK(decoded->body.find("query.q=one two three\n") != std::string::npos);
    CHECK(decoded->body.find("query.flag=\n") != std::string::npos);
    CHECK(decoded->body.find("query.e=\xC3\xA9\n") != std::string::npos);
  }
  SUBCASE("bad percent-encoding, NUL, and a repeated query key are 400") {
    for (const char* target :
         {"/streams/a%zz/partitions/1/events", "/streams/a%2/partitions/1/events",
          "/streams/a%00/partitions/1/events", "/streams/a/partitions/1/events?from=1&from=2",
          "/streams/a/partitions/1/events?x=%G1"}) {
      const auto bad = roundtrip(server->port(), authorized_get(target));
      REQUIRE(bad);
      CHECK_MESSAGE(bad->status == 400, target);
      CHECK(bad->body.starts_with(R"({"error":{"code":"BAD_)"));
    }
  }
  SUBCASE("an empty parameter segment does not match") {
    const auto empty = roundtrip(server->port(), authorized_get("/streams//partitions/1/events"));
    REQUIRE(empty);
    CHECK(empty->status == 404);
  }
  SUBCASE("a route without auth needs no token") {
    const auto health = roundtrip(server->port(), get("/healthz"));
    REQUIRE(health);
    CHECK(health->status == 200);
  }
}

TEST_CASE("a literal segment wins over a parameter") {
  auto server = make_server(test_options());
  server->route("GET", "/transfers/{id}", [](const HttpRequest& r) {
    return HttpResponse::json(200, "\"id " + r.params.at("id") + "\"");
  });
  server->route("GET", "/transfers/stats",
                [](const HttpRequest&) { return HttpResponse::json(200, "\"stats\""); });
  start(*server);
  CHECK(roundtrip(server->port(), authorized_get("/transfers/stats")).value().body == "\"stats\"");
  CHECK(roundtrip(server->port(), authorized_get("/transfers/t-1")).value().body == "\"id t-1\"");
}

TEST_CASE("bearer token: 401 without or with a wrong token, 200 with the right one") {
  auto server = serving(test_options(), "GET", "/transfers/{id}", echo);
  for (const std::string& header :
       {std::string(), std::string("Authorization: Bearer wrong-token\r\n"),
        std::string("Authorization: Bearer s3cret-token-longer\r\n"),
        std::string("Authorization: Bearer s3cret-toke\r\n"),
        std::string("Authorization: Basic czNjcmV0LXRva2Vu\r\n"),
        std::string("Authorization: s3cret-token\r\n")}) {
    const auto response = roundtrip(server->port(), get("/transfers/1", header));
    REQUIRE(response);
    CHECK_MESSAGE(response->status == 401, header);
    CHECK(response->header("www-authenticate") == "Bearer");
    CHECK(response->header("content-type") == "application/json");
    CHECK(response->body ==
          R"({"error":{"code":"UNAUTHORIZED","message":"missing or wrong bearer token"}})");
  }
  CHECK(roundtrip(server->port(), authorized_get("/transfers/1")).value().status == 200);
  // The scheme is case-insensitive.
  CHECK(roundtrip(server->port(), get("/transfers/1", "Authorization: bearer s3cret-token\r\n"))
            .value()
            .status == 200);
}

TEST_CASE(
    "a handler learns the name of the token that authenticated the request, none without auth") {
  auto options = test_options();
  options.bearer_token_name = "treasury";
  auto server = make_server(options);
  const auto principal = [](const HttpRequest& request) {
    HttpResponse response;
    response.content_type = "text/plain";
    response.body = "principal=" + request.principal;
    return response;
  };
  server->route("GET", "/private", principal);
  server->route("GET", "/public", principal, false);
  start(*server);
  CHECK(roundtrip(server->port(), authorized_get("/private")).value().body == "principal=treasury");
  // A route without auth names nobody, token or not.
  CHECK(roundtrip(server->port(), authorized_get("/public")).value().body == "principal=");
  CHECK(roundtrip(server->port(), get("/public")).value().body == "principal=");
  // The default name, and none when authentication is disabled.
  auto unnamed = serving(test_options(), "GET", "/private", principal);
  CHECK(roundtrip(unnamed->port(), authorized_get("/private")).value().body == "principal=api");
  auto open_options = test_options();
  open_options.bearer_token.clear();
  auto open = serving(open_options, "GET", "/private", principal);
  CHECK(roundtrip(open->port(), get("/private")).value().body == "principal=");
}

// --- Issue 21: named tokens with roles --------------------------------------------------

namespace {

constexpr const char* kReaderToken = "reader-token-1";
constexpr const char* kMetricsToken = "metrics-token-2";
constexpr const char* kOperatorToken = "operator-token-3";

// The adapter's three kinds of token, each with one role.
HttpServerOptions role_options() {
  auto options = test_options();
  options.bearer_token.clear();
  options.tokens = {{"core", kReaderToken, {"reader"}},
                    {"prometheus", kMetricsToken, {"metrics"}},
                    {"alice", kOperatorToken, {"operator"}}};
  return options;
}

std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

std::string post(const std::string& target, const std::string& body, const std::string& token) {
  return "POST " + target + " HTTP/1.1\r\nHost: test\r\n" + bearer(token) +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Answers 200 "principal=<name>" and counts its calls.
HttpHandler counting(std::atomic<int>& calls) {
  return [&calls](const HttpRequest& request) {
    ++calls;
    HttpResponse response;
    response.content_type = "text/plain";
    response.body = "principal=" + request.principal;
    return response;
  };
}

}  // namespace

TEST_CASE("each token reaches the routes of its role only: 403 naming the role, 401 unknown") {
  auto server = make_server(role_options());
  std::atomic<int> calls{0};
  server->route("GET", "/transfers/{id}", counting(calls), RouteOptions{.role = kRoleReader});
  server->route("GET", "/metrics", counting(calls), RouteOptions{.role = kRoleMetrics});
  server->route("POST", "/transfers/{id}/resolve", counting(calls),
                RouteOptions{.role = kRoleOperator});
  server->route("GET", "/any", counting(calls));  // no role: any known token
  server->route(
      "GET", "/healthz", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); }, false);
  start(*server);
  const auto port = server->port();
  struct Case {
    const char* token;
    const char* name;
    bool reader, metrics, op;
  };
  const Case cases[] = {{kReaderToken, "core", true, false, false},
                        {kMetricsToken, "prometheus", false, true, false},
                        {kOperatorToken, "alice", false, false, true}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto expect = [&](const std::string& request, bool allowed, const char* role) {
      const auto answer = roundtrip(port, request).value();
      if (allowed) {
        CHECK(answer.status == 200);
        CHECK(answer.body == std::string("principal=") + c.name);
      } else {
        CHECK(answer.status == 403);
        CHECK(answer.body ==
              std::string(R"({"error":{"code":"FORBIDDEN","message":"this route needs a token )"
                          R"(with the role )") +
                  role + "\"}}");
        CHECK(answer.body.find(c.token) == std::string::npos);
      }
    };
    expect(get("/transfers/t1", bearer(c.token)), c.reader, "reader");
    // HEAD runs the GET route, with its role.
    {
      Client head(port);
      REQUIRE(head.connected());
      head.send("HEAD /transfers/t1 HTTP/1.1\r\nHost: test\r\n" + bearer(c.token) + "\r\n");
      CHECK(head.read_response(true).value().status == (c.reader ? 200 : 403));
    }
    expect(get("/metrics", bearer(c.token)), c.metrics, "metrics");
    expect(post("/transfers/t1/resolve", "{}", c.token), c.op, "operator");
    expect(get("/any", bearer(c.token)), true, "");
    // Unknown paths and methods answer as before to any known token.
    CHECK(roundtrip(port, get("/nope", bearer(c.token))).value().status == 404);
    CHECK(roundtrip(port, get("/transfers/t1/resolve", bearer(c.token))).value().status == 405);
  }
  // Handlers ran only for the allowed: the reader's GET and HEAD, the metrics', the
  // operator's, and /any for each of the three.
  CHECK(calls.load() == 2 + 1 + 1 + 3);
  // No token, an unknown one, the right one with another scheme: 401 everywhere, role or not.
  for (const auto& request :
       {get("/transfers/t1"), get("/metrics", bearer("nobody")), get("/any", bearer("x")),
        post("/transfers/t1/resolve", "{}", "operator-token-"),
        get("/transfers/t1", std::string("Authorization: Basic ") + kReaderToken + "\r\n")}) {
    const auto answer = roundtrip(port, request).value();
    CHECK(answer.status == 401);
    CHECK(answer.header("www-authenticate") == "Bearer");
  }
  CHECK(calls.load() == 7);
  // Routes without auth answer without a token.
  CHECK(roundtrip(port, get("/healthz")).value().status == 200);
}

TEST_CASE("a token without the route's role is refused before its body is read") {
  auto server = make_server(role_options());
  std::atomic<int> calls{0};
  server->route("POST", "/transfers/{id}/resolve", counting(calls),
                RouteOptions{.role = kRoleOperator});
  start(*server);
  Client client(server->port());
  REQUIRE(client.connected());
  // A header announcing a body that never comes: the 403 does not wait for it.
  client.send("POST /transfers/t1/resolve HTTP/1.1\r\nHost: test\r\n" + bearer(kReaderToken) +
              "Content-Length: 100000\r\n\r\n");
  const auto answer = client.read_response();
  REQUIRE(answer);
  CHECK(answer->status == 403);
  CHECK(calls.load() == 0);
  // The operator's token with a body is let through, its body read.
  const auto allowed =
      roundtrip(server->port(), post("/transfers/t1/resolve", R"({"a":1})", kOperatorToken));
  CHECK(allowed.value().status == 200);
  CHECK(allowed.value().body == "principal=alice");
  CHECK(calls.load() == 1);
}

TEST_CASE("bearer_token holds every role beside named tokens; a token may hold several roles") {
  auto options = role_options();
  options.bearer_token = kToken;
  options.bearer_token_name = "legacy";
  options.tokens.push_back({"ops-and-metrics", "both-token-4", {"operator", "metrics"}});
  auto server = make_server(options);
  std::atomic<int> calls{0};
  server->route("GET", "/transfers/{id}", counting(calls), RouteOptions{.role = kRoleReader});
  server->route("GET", "/metrics", counting(calls), RouteOptions{.role = kRoleMetrics});
  server->route("POST", "/transfers/{id}/resolve", counting(calls),
                RouteOptions{.role = kRoleOperator});
  start(*server);
  const auto port = server->port();
  CHECK(roundtrip(port, authorized_get("/transfers/t1")).value().body == "principal=legacy");
  CHECK(roundtrip(port, authorized_get("/metrics")).value().body == "principal=legacy");
  CHECK(roundtrip(port, post("/transfers/t1/resolve", "{}", kToken)).value().body ==
        "principal=legacy");
  CHECK(roundtrip(port, get("/transfers/t1", bearer("both-token-4"))).value().status == 403);
  CHECK(roundtrip(port, get("/metrics", bearer("both-token-4"))).value().status == 200);
  CHECK(roundtrip(port, post("/transfers/t1/resolve", "{}", "both-token-4")).value().body ==
        "principal=ops-and-metrics");
  // The named tokens still reach their own routes only.
  CHECK(roundtrip(port, get("/metrics", bearer(kReaderToken))).value().status == 403);
  CHECK(roundtrip(port, get("/transfers/t1", bearer(kReaderToken))).value().status == 200);
}

TEST_CASE("create() rejects bad named tokens, naming the entry and never its token") {
  const std::pair<const char*, std::function<void(HttpServerOptions&)>> cases[] = {
      {"tokens[1] name must be", [](auto& o) { o.tokens[1].name = "a b"; }},
      {"tokens[0] (core) token is empty", [](auto& o) { o.tokens[0].token.clear(); }},
      {"tokens[2] (alice) token is empty",
       [](auto& o) { o.tokens[2].token = "secret with space"; }},
      {"tokens[1] (prometheus) roles: 1..16", [](auto& o) { o.tokens[1].roles.clear(); }},
      {"tokens[1] (prometheus) roles: a role", [](auto& o) { o.tokens[1].roles = {"met rics"}; }},
      {"tokens[2] (core) name is another", [](auto& o) { o.tokens[2].name = "core"; }},
      {"tokens[2] (alice) token is another token's",
       [](auto& o) { o.tokens[2].token = kReaderToken; }},
      // bearer_token counts as a token named bearer_token_name.
      {"tokens[0] (core) token is another token's", [](auto& o) { o.bearer_token = kReaderToken; }},
      {"tokens[0] (api) name is another",
       [](auto& o) {
         o.bearer_token = kToken;
         o.tokens[0].name = "api";
       }},
  };
  for (const auto& [message, change] : cases) {
    CAPTURE(message);
    auto options = role_options();
    change(options);
    auto server = HttpServer::create(options);
    REQUIRE_FALSE(server.has_value());
    CHECK(server.error().code == ServerErrc::invalid_option);
    CHECK(server.error().message.starts_with(std::string("http option ") + message));
    for (const auto* token : {kReaderToken, kMetricsToken, kOperatorToken, "secret"}) {
      CHECK(server.error().message.find(token) == std::string::npos);
    }
  }
  CHECK(HttpServer::create(role_options()).has_value());
}

TEST_CASE("404 for an unknown path, 405 with Allow for a known path and another method") {
  auto server = make_server(test_options());
  server->route("GET", "/parked", echo);
  server->route("POST", "/parked", echo);
  start(*server);
  const auto missing = roundtrip(server->port(), authorized_get("/nope"));
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->body == R"({"error":{"code":"NOT_FOUND","message":"no such path"}})");
  CHECK(roundtrip(server->port(), authorized_get("/parked/")).value().status == 404);

  const auto wrong_method = roundtrip(
      server->port(), std::string("DELETE /parked HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ") +
                          kToken + "\r\n\r\n");
  REQUIRE(wrong_method);
  CHECK(wrong_method->status == 405);
  CHECK(wrong_method->header("allow") == "GET, POST");
  CHECK(wrong_method->body.find("METHOD_NOT_ALLOWED") != std::string::npos);
}

TEST_CASE("malformed requests are 400 and the connection closes") {
  auto server = serving(test_options(), "GET", "/healthz", echo, false);
  for (const std::string& garbage :
       {std::string("GARBAGE\r\n\r\n"), std::string("GET /healthz HTTP/9.9\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("GET healthz HTTP/1.1\r\nHost: t\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\n\r\n")}) {  // HTTP/1.1 without Host
    Client client(server->port());
    client.send(garbage);
    const auto response = client.read_response();
    REQUIRE_MESSAGE(response, garbage);
    CHECK_MESSAGE(response->status == 400, garbage);
    CHECK(response->body.starts_with(R"({"error":{"code":"BAD_)"));
  }
}

TEST_CASE("request body limit: 413") {
  auto options = test_options();
  options.body_bytes_max = 1024;
  auto server = serving(options, "POST", "/echo", echo);
  const std::string head =
      std::string("POST /echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ") + kToken + "\r\n";

  SUBCASE("a body at the limit is accepted") {
    const auto ok =
        roundtrip(server->port(), head + "Content-Length: 1024\r\n\r\n" + std::string(1024, 'x'));
    REQUIRE(ok);
    CHECK(ok->status == 200);
    CHECK(ok->body.find("body=" + std::string(1024, 'x')) != std::string::npos);
  }
  SUBCASE("a Content-Length over the limit is refused before the body is read") {
    const auto refused = roundtrip(server->port(), head + "Content-Length: 5000000\r\n\r\n");
    REQUIRE(refused);
    CHECK(refused->status == 413);
    CHECK(refused->body.find("BODY_TOO_LARGE") != std::string::npos);
    CHECK(refused->header("connection") == "close");
  }
  SUBCASE("a body sent in full over the limit still gets the 413 (not a reset)") {
    Client client(server->port());
    client.send(head + "Content-Length: 65536\r\n\r\n" + std::string(65536, 'y'));
    const auto refused = client.read_response();
    REQUIRE(refused);
    CHECK(refused->status == 413);
  }
  SUBCASE("a chunked body over the limit") {
    const auto refused =
        roundtrip(server->port(), head + "Transfer-Encoding: chunked\r\n\r\n800\r\n" +
                                      std::string(2048, 'z') + "\r\n0\r\n\r\n");
    REQUIRE(refused);
    CHECK(refused->status == 413);
  }
  SUBCASE("Expect: 100-continue gets the interim answer, then the final one") {
    Client client(server->port());
    client.send(head + "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    const auto proceed = client.read_response();
    REQUIRE(proceed);
    CHECK(proceed->status == 100);
    client.send("abc");
    const auto done = client.read_response();
    REQUIRE(done);
    CHECK(done->status == 200);
    CHECK(done->body.find("body=abc\n") != std::string::npos);
  }
}

TEST_CASE("header limit: 431") {
  auto options = test_options();
  options.header_bytes_max = 2048;
  auto server = serving(options, "GET", "/healthz", echo, false);
  const auto response =
      roundtrip(server->port(), get("/healthz", "X-Big: " + std::string(4096, 'h') + "\r\n"));
  REQUIRE(response);
  CHECK(response->status == 431);
}

TEST_CASE("keep-alive: two requests on one connection; Connection: close is honoured") {
  auto server = serving(test_options(), "POST", "/echo", echo);
  Client client(server->port());
  REQUIRE(client.connected());
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  client.send("POST /echo?n=1 HTTP/1.1\r\nHost: t\r\n" + auth + "Content-Length: 5\r\n\r\nfirst");
  const auto first = client.read_response();
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK(first->body.find("query.n=1\nbody=first\n") != std::string::npos);
  CHECK(first->headers.count("connection") == 0);
  // Two pipelined requests, the second asking to close.
  client.send("POST /echo?n=2 HTTP/1.1\r\nHost: t\r\n" + auth + "Content-Length: 6\r\n\r\nsecond" +
              "POST /echo?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth +
              "Content-Length: 5\r\n\r\nthird");
  const auto second = client.read_response();
  REQUIRE(second);
  CHECK(second->body.find("query.n=2\nbody=second\n") != std::string::npos);
  const auto third = client.read_response();
  REQUIRE(third);
  CHECK(third->body.find("query.n=3\nbody=third\n") != std::string::npos);
  CHECK(third->header("connection") == "close");
  CHECK(client.closed_by_server());
}

TEST_CASE("handlers see lower-case header names and the peer; response headers are sent") {
  auto server = make_server(test_options());
  server->route("GET", "/whoami", [](const HttpRequest& r) {
    auto response = HttpResponse::json(
        201, r.headers.at("x-correlation-id") + "|" + r.headers.at("x-multi") + "|" + r.remote);
    response.headers.emplace_back("X-Answer", "42");
    return response;
  });
  start(*server);
  const auto response =
      roundtrip(server->port(),
                get("/whoami", std::string("Authorization: Bearer ") + kToken +
                                   "\r\nX-Correlation-ID: c-1\r\nX-Multi: a\r\nx-multi: b\r\n"));
  REQUIRE(response);
  CHECK(response->status == 201);
  CHECK(response->header("x-answer") == "42");
  CHECK(response->body.starts_with("c-1|a, b|127.0.0.1:"));
}

TEST_CASE("a handler that throws gives 500 with a JSON error; an invalid status too") {
  auto server = make_server(test_options());
  server->route("GET", "/throws", [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("database unavailable");
  });
  server->route("GET", "/throws-int", [](const HttpRequest&) -> HttpResponse { throw 7; });
  server->route("GET", "/bad-status",
                [](const HttpRequest&) { return HttpResponse::json(42, ""); });
  server->route("GET", "/bad-header", [](const HttpRequest&) {
    auto response = HttpResponse::json(200, "{}");
    response.headers.emplace_back("X-Injected", "a\r\nSet-Cookie: x");
    return response;
  });
  start(*server);
  for (const char* target : {"/throws", "/throws-int", "/bad-status", "/bad-header"}) {
    const auto response = roundtrip(server->port(), authorized_get(target));
    REQUIRE(response);
    CHECK_MESSAGE(response->status == 500, target);
    CHECK(response->body == R"({"error":{"code":"INTERNAL","message":"internal error"}})");
    CHECK(response->headers.count("set-cookie") == 0);
  }
  // The server keeps serving.
  CHECK(roundtrip(server->port(), authorized_get("/throws")).value().status == 500);
}

TEST_CASE("a full worker queue answers 503 with Retry-After") {
  auto options = test_options();
  options.worker_threads = 1;
  options.worker_queue_max = 1;
  options.retry_after_s = 2;
  Gate gate;
  auto server = serving(options, "GET", "/slow", gated(gate));
  Client running(server->port());
  running.send(authorized_get("/slow"));
  gate.wait_entered(1);  // the only worker is busy
  Client queued(server->port());
  queued.send(authorized_get("/slow"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it reach the queue
  const auto refused = roundtrip(server->port(), authorized_get("/slow"));
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->header("retry-after") == "2");
  CHECK(refused->body.find("OVERLOADED") != std::string::npos);
  gate.release();
  const auto first = running.read_response();
  const auto second = queued.read_response();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->status == 200);
  CHECK(second->status == 200);
}

TEST_CASE("graceful stop: a slow request in flight is answered, idle connections close") {
  auto options = test_options();
  options.stop_grace_ms = 5000;
  auto server = make_server(options);
  Gate gate;
  server->route("GET", "/slow", [&gate](const HttpRequest&) {
    gate.pass();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return HttpResponse::json(200, R"({"done":true})");
  });
  start(*server);
  const auto port = server->port();
  gate.release();  // the handler only signals that it started, then sleeps
  Client in_flight(port);
  in_flight.send(authorized_get("/slow"));
  Client idle(port);
  REQUIRE(idle.connected());
  gate.wait_entered(1);

  const auto before = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&server] { server->stop(); });
  const auto response = in_flight.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == R"({"done":true})");
  CHECK(response->header("connection") == "close");
  CHECK(in_flight.closed_by_server());
  CHECK(idle.closed_by_server());
  stopped.get();
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(3));
  Client late(port);
  CHECK_FALSE(late.connected());
  server->stop();  // idempotent
}

TEST_CASE("stop after the grace closes what is still running") {
  auto options = test_options();
  options.stop_grace_ms = 100;
  Gate gate;
  auto server = serving(options, "GET", "/slow", gated(gate));
  Client in_flight(server->port());
  in_flight.send(authorized_get("/slow"));
  gate.wait_entered(1);
  auto stopped = std::async(std::launch::async, [&server] { server->stop(); });
  CHECK_FALSE(in_flight.read_response());  // closed after the grace, without an answer
  gate.release();                          // stop() waits for the running handler
  stopped.get();
}

TEST_CASE("port 0 picks a free port; a port in use is an error from start()") {
  auto first = make_server(test_options());
  auto second = make_server(test_options());
  CHECK(first->port() == 0);
  start(*first);
  start(*second);
  CHECK(first->port() != second->port());
  auto options = test_options();
  options.port = first->port();
  auto clash = make_server(options);
  const auto started = clash->start();
  REQUIRE_FALSE(started.has_value());
  CHECK(started.error().message.find("cannot listen on 127.0.0.1:") == 0);
  CHECK(started.error().code == ServerErrc::cannot_listen);
  CHECK(started.error().is_retryable());
  const auto again = first->start();
  REQUIRE_FALSE(again.has_value());  // already started
  CHECK(again.error().code == ServerErrc::already_started);
  CHECK_FALSE(again.error().is_retryable());
  CHECK(to_string(ServerErrc::already_started) == "already_started");
  CHECK(again.error().message == "already started");
}

TEST_CASE("connections_max: a further connection takes the slot of an idle one") {
  auto options = test_options();
  options.connections_max = 1;
  auto server = serving(options, "GET", "/healthz", echo, false);
  Client first(server->port());
  first.send(get("/healthz"));
  REQUIRE(first.read_response());  // served, and kept alive: it holds the only slot
  Client second(server->port(), 5000, "127.0.0.2");  // another client (one per client here)
  second.send(get("/healthz"));
  // It used to wait in the listen backlog until the first one left (or timed out).
  const auto response = second.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(first.closed_by_server());  // the idle one made room
}

TEST_CASE("create() rejects bad options, naming them") {
  const std::pair<const char*, std::function<void(HttpServerOptions&)>> cases[] = {
      {"port", [](auto& o) { o.port = 70000; }},
      {"io_threads", [](auto& o) { o.io_threads = 0; }},
      {"worker_threads", [](auto& o) { o.worker_threads = 0; }},
      {"body_bytes_max", [](auto& o) { o.body_bytes_max = 0; }},
      {"connections_max", [](auto& o) { o.connections_max = 0; }},
      {"connections_per_client_max", [](auto& o) { o.connections_per_client_max = 0; }},
      {"idle_timeout_ms", [](auto& o) { o.idle_timeout_ms = 0; }},
      {"bearer_token", [](auto& o) { o.bearer_token = "a b"; }},
      {"bearer_token_name", [](auto& o) { o.bearer_token_name = "a b"; }},
      {"bearer_token_name", [](auto& o) { o.bearer_token_name.clear(); }},
  };
  for (const auto& [name, change] : cases) {
    CAPTURE(name);
    HttpServerOptions options;
    change(options);
    auto server = HttpServer::create(options);
    REQUIRE_FALSE(server.has_value());
    CHECK(server.error().message.find(name) != std::string::npos);
    CHECK(server.error().code == ServerErrc::invalid_option);
    CHECK_FALSE(server.error().is_retryable());
  }
}

TEST_CASE("HttpResponse::error escapes its strings as JSON") {
  const auto response = HttpResponse::error(400, "BAD", "quote \" backslash \\ nl \n ctl \x01");
  CHECK(response.status == 400);
  CHECK(response.content_type == "application/json");
  CHECK(response.body ==
        R"({"error":{"code":"BAD","message":"quote \" backslash \\ nl \n ctl \u0001"}})");
}

TEST_CASE("several I/O threads and workers serve concurrent keep-alive clients") {
  auto options = test_options();
  options.io_threads = 3;
  options.worker_threads = 4;
  auto server = make_server(options);
  std::atomic<int> calls{0};
  server->route("GET", "/count/{n}", [&calls](const HttpRequest& r) {
    ++calls;
    return HttpResponse::json(200, r.params.at("n"));
  });
  start(*server);
  constexpr int kClients = 8;
  constexpr int kRequestsEach = 25;
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      Client client(server->port());
      for (int i = 0; i < kRequestsEach; ++i) {
        const auto n = std::to_string(c * 1000 + i);
        client.send(authorized_get("/count/" + n));
        const auto response = client.read_response();
        if (response && response->status == 200 && response->body == n) ++answered;
      }
    });
  }
  for (auto& thread : clients) thread.join();
  CHECK(answered.load() == kClients * kRequestsEach);
  CHECK(calls.load() == kClients * kRequestsEach);
}

// --- Issue 16: hostile clients ------------------------------------------------------------

namespace {

HttpResponse health(const HttpRequest&) { return HttpResponse::json(200, R"({"status":"ok"})"); }

constexpr RouteOptions kHealthRoute{.requires_auth = false, .on_io_thread = true};

// Bounded waits that prove an answer did not wait for an old deadline (60 s), never how fast
// it came.
constexpr int kAnswerWaitMs = 10000;

}  // namespace

TEST_CASE("/healthz answers on the I/O thread while every worker is busy (item 5)") {
  auto options = test_options();
  options.worker_threads = 1;
  options.worker_queue_max = 1;
  auto server = make_server(options);
  Gate gate;
  server->route("GET", "/readyz", gated(gate), false);
  server->route("GET", "/healthz", health, kHealthRoute);
  start(*server);
  Client running(server->port());
  running.send(get("/readyz"));
  gate.wait_entered(1);  // the only worker is held
  // A flood of /readyz: one waits in the queue, the rest are refused.
  std::vector<std::unique_ptr<Client>> flood;
  for (int i = 0; i < 3; ++i) {
    flood.push_back(std::make_unique<Client>(server->port()));
    flood.back()->send(get("/readyz"));
  }
  Client checker(server->port(), kAnswerWaitMs);
  checker.send(get("/healthz"));
  const auto answer = checker.read_response();
  gate.release();
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(answer->body == R"({"status":"ok"})");
  for (auto& client : flood) {
    const auto response = client->read_response();
    REQUIRE(response);
    CHECK((response->status == 200 || response->status == 503));
  }
}

TEST_CASE("idle connections at connections_max do not starve /healthz (item 5)") {
  auto options = test_options();
  options.connections_max = 4;
  options.connections_per_client_max = 4;
  // Long, so that nothing but the limit's eviction can free a slot within the test's wait.
  options.idle_timeout_ms = 120'000;
  options.request_timeout_ms = 120'000;
  auto server = make_server(options);
  server->route("GET", "/healthz", health, kHealthRoute);
  start(*server);
  // Four connections from one client fill the server: each was served once (so it is
  // surely accepted) and then idles, the oldest one trickling a header that never ends.
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<Client>(server->port(), kAnswerWaitMs));
    idle.back()->send(get("/healthz"));
    REQUIRE(idle.back()->read_response());
  }
  idle[0]->send("GET /healthz HTTP/1.1\r\nHo");
  Client checker(server->port(), kAnswerWaitMs, "127.0.0.2");
  REQUIRE(checker.connected());
  checker.send(get("/healthz"));
  const auto answer = checker.read_response();
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(idle[0]->closed_by_server());  // the one idle longest made room
  idle[1]->send(get("/healthz"));      // the others still serve
  const auto still = idle[1]->read_response();
  REQUIRE(still);
  CHECK(still->status == 200);
}

TEST_CASE("at connections_max with every connection in a request, a new one gets 503 at once") {
  auto options = test_options();
  options.connections_max = 2;
  options.worker_threads = 2;
  options.request_timeout_ms = 120'000;
  Gate gate;
  auto server = serving(options, "GET", "/slow", gated(gate));
  Client first(server->port());
  Client second(server->port(), 5000, "127.0.0.2");
  first.send(authorized_get("/slow"));
  second.send(authorized_get("/slow"));
  gate.wait_entered(2);
  Client third(server->port(), kAnswerWaitMs, "127.0.0.3");
  const auto refused = third.read_response();
  const bool closed = third.closed_by_server();
  gate.release();
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->header("connection") == "close");
  CHECK(refused->header("retry-after") == "1");
  CHECK(refused->body.find("TOO_MANY_CONNECTIONS") != std::string::npos);
  CHECK(closed);
  CHECK(first.read_response().value().status == 200);
  CHECK(second.read_response().value().status == 200);
}

TEST_CASE("connections_per_client_max: one address cannot take more (item 5)") {
  auto options = test_options();
  options.connections_max = 16;
  options.connections_per_client_max = 2;
  auto server = make_server(options);
  server->route("GET", "/healthz", health, kHealthRoute);
  start(*server);
  auto first = std::make_unique<Client>(server->port());
  Client second(server->port());
  for (Client* client : {first.get(), &second}) {
    client->send(get("/healthz"));
    REQUIRE(client->read_response());  // accepted, kept alive
  }
  Client third(server->port(), kAnswerWaitMs);
  const auto refused = third.read_response();
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->body.find("TOO_MANY_CONNECTIONS") != std::string::npos);
  CHECK(third.closed_by_server());
  // Another address is not affected.
  Client other(server->port(), kAnswerWaitMs, "127.0.0.2");
  other.send(get("/healthz"));
  CHECK(other.read_response().value().status == 200);
  // A connection that leaves gives its slot back to its address.
  first.reset();
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    Client again(server->port());
    again.send(get("/healthz"));
    const auto response = again.read_response();
    served = response && response->status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(served);
}

TEST_CASE("idle_timeout_ms closes idle and trickling connections, not slow requests (item 5)") {
  auto options = test_options();
  options.idle_timeout_ms = 300;
  options.request_timeout_ms = 120'000;
  auto server = make_server(options);
  server->route("GET", "/healthz", health, kHealthRoute);
  server->route("GET", "/slow", [](const HttpRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(900));  // 3 idle timeouts
    return HttpResponse::json(200, "{}");
  });
  server->route("POST", "/echo", echo);
  start(*server);

  SUBCASE("a connection that never sends anything") {
    Client silent(server->port(), kAnswerWaitMs);
    CHECK(silent.closed_by_server());
  }
  SUBCASE("a header that never ends") {
    Client trickling(server->port(), kAnswerWaitMs);
    trickling.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: a");
    CHECK(trickling.closed_by_server());
  }
  SUBCASE("a kept-alive connection after its request") {
    Client kept(server->port(), kAnswerWaitMs);
    kept.send(get("/healthz"));
    REQUIRE(kept.read_response());
    CHECK(kept.closed_by_server());
  }
  SUBCASE("a handler and a body may take longer than the idle timeout") {
    Client slow(server->port(), kAnswerWaitMs);
    slow.send(authorized_get("/slow"));
    CHECK(slow.read_response().value().status == 200);
    Client body(server->port(), kAnswerWaitMs);
    body.send(std::string("POST /echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ") + kToken +
              "\r\nContent-Length: 4\r\n\r\nab");
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    body.send("cd");
    const auto echoed = body.read_response();
    REQUIRE(echoed);
    CHECK(echoed->body.find("body=abcd\n") != std::string::npos);
  }
}

TEST_CASE("a body is refused before it is read: on methods without one, and before auth") {
  auto options = test_options();
  options.body_bytes_max = 32 << 20;  // 10 MB is within the limit: not what refuses it
  options.request_timeout_ms = 120'000;
  auto server = make_server(options);
  std::atomic<int> calls{0};
  const auto counted = [&calls](const HttpRequest& request) {
    ++calls;
    return echo(request);
  };
  server->route("GET", "/healthz", health, kHealthRoute);
  server->route("GET", "/transfers/{id}", counted);
  server->route("DELETE", "/transfers/{id}", counted);
  server->route("POST", "/echo", counted);
  start(*server);
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  const std::string big = "Content-Length: 10000000\r\n";
  struct Case {
    std::string request;
    int status;
  };
  for (const auto& [request, status] : {
           Case{"GET /healthz HTTP/1.1\r\nHost: t\r\n" + big + "\r\n", 400},
           Case{"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
           Case{"GET /transfers/1 HTTP/1.1\r\nHost: t\r\n" + auth + big + "\r\n", 400},
           Case{"DELETE /transfers/1 HTTP/1.1\r\nHost: t\r\n" + auth + big + "\r\n", 400},
           Case{"GET /transfers/1 HTTP/1.1\r\nHost: t\r\n" + big + "\r\n", 401},
           Case{"POST /echo HTTP/1.1\r\nHost: t\r\n" + big + "\r\n", 401},
           Case{"POST /echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer wrong\r\n" + big + "\r\n",
                401},
           Case{"POST /nope HTTP/1.1\r\nHost: t\r\n" + auth + big + "\r\n", 404},
           Case{"POST /transfers/1 HTTP/1.1\r\nHost: t\r\n" + auth + big + "\r\n", 405},
       }) {
    Client client(server->port(), kAnswerWaitMs);
    client.send(request);  // and never the body
    const auto answer = client.read_response();
    REQUIRE_MESSAGE(answer, request);
    CHECK_MESSAGE(answer->status == status, request);
    CHECK(answer->header("connection") == "close");
    if (status == 400) CHECK(answer->body.find("BODY_NOT_ALLOWED") != std::string::npos);
    CHECK(client.closed_by_server());
  }
  SUBCASE("no 100 Continue without the token") {
    Client client(server->port(), kAnswerWaitMs);
    client.send(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    const auto answer = client.read_response();
    REQUIRE(answer);
    CHECK(answer->status == 401);
  }
  SUBCASE("a GET with Content-Length: 0 is fine") {
    const auto answer = roundtrip(server->port(), get("/healthz", "Content-Length: 0\r\n"));
    REQUIRE(answer);
    CHECK(answer->status == 200);
  }
  CHECK(calls.load() == 0);
}

TEST_CASE("without the token every path answers the same 401: routes cannot be found (item 9)") {
  auto server = make_server(test_options());
  server->route("GET", "/transfers/{id}", echo);
  server->route("GET", "/healthz", health, kHealthRoute);
  start(*server);
  const auto known = roundtrip(server->port(), get("/transfers/1"));
  REQUIRE(known);
  CHECK(known->status == 401);
  for (const std::string& request : {get("/nope"), get("/transfers"), get("/transfers/1/more"),
                                     std::string("POST /nope HTTP/1.1\r\nHost: t\r\n\r\n"),
                                     std::string("DELETE /transfers/1 HTTP/1.1\r\nHost: t\r\n\r\n"),
                                     get("/nope", "Authorization: Bearer wrong\r\n")}) {
    const auto answer = roundtrip(server->port(), request);
    REQUIRE_MESSAGE(answer, request);
    CHECK_MESSAGE(answer->status == 401, request);
    CHECK(answer->body == known->body);
    CHECK(answer->header("www-authenticate") == "Bearer");
  }
  // With the token, or on a path without auth, the truth.
  CHECK(roundtrip(server->port(), authorized_get("/nope")).value().status == 404);
  CHECK(roundtrip(server->port(), std::string("POST /healthz HTTP/1.1\r\nHost: t\r\n\r\n"))
            .value()
            .status == 405);
  CHECK(roundtrip(server->port(), get("/healthz")).value().status == 200);
}

TEST_CASE("a path or query that is not printable UTF-8 is 400 before any handler (item 9)") {
  auto server = make_server(test_options());
  std::atomic<int> calls{0};
  server->route("GET", "/transfers/{id}", [&calls](const HttpRequest& request) {
    ++calls;
    return echo(request);
  });
  start(*server);
  for (const char* target :
       {"/transfers/%ff", "/transfers/%c3", "/transfers/a%c3b", "/transfers/%c0%af",
        "/transfers/%ed%a0%80", "/transfers/%f4%90%80%80", "/transfers/a%0ab", "/transfers/a%09b",
        "/transfers/a%7f", "/transfers/%c2%85", "/transfers/%ff/../x"}) {
    const auto answer = roundtrip(server->port(), authorized_get(target));
    REQUIRE_MESSAGE(answer, target);
    CHECK_MESSAGE(answer->status == 400, target);
    CHECK(answer->body.find("BAD_PATH") != std::string::npos);
  }
  for (const char* target : {"/transfers/x?q=%ff", "/transfers/x?q=a%0db", "/transfers/x?%ff=1"}) {
    const auto answer = roundtrip(server->port(), authorized_get(target));
    REQUIRE_MESSAGE(answer, target);
    CHECK_MESSAGE(answer->status == 400, target);
    CHECK(answer->body.find("BAD_QUERY") != std::string::npos);
  }
  CHECK(calls.load() == 0);
  const auto accented = roundtrip(server->port(), authorized_get("/transfers/%c3%a9t%C3%A9"));
  REQUIRE(accented);
  CHECK(accented->status == 200);
  CHECK(accented->body.find("param.id=\xC3\xA9t\xC3\xA9\n") != std::string::npos);
}

TEST_CASE("HEAD answers like GET without a body; no answer to HEAD has one (item 9)") {
  auto server = make_server(test_options());
  server->route("GET", "/healthz", health, kHealthRoute);
  server->route("GET", "/transfers/{id}", echo);
  server->route("POST", "/parked", echo);
  start(*server);
  const auto head = [](const std::string& target, const std::string& extra = "") {
    return "HEAD " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
  };
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  struct Case {
    std::string request;
    int status;
  };
  for (const auto& [request, status] : {
           Case{head("/healthz"), 200},
           Case{head("/transfers/7", auth), 200},
           Case{head("/transfers/7"), 401},
           Case{head("/nope"), 401},
           Case{head("/nope", auth), 404},
           Case{head("/parked", auth), 405},
           Case{head("/transfers/%ff", auth), 400},
       }) {
    // A GET follows on the same connection: a body after the HEAD's header would be read as
    // the start of the next answer, which then is not a response.
    Client client(server->port());
    client.send(request + get("/healthz"));
    const auto answer = client.read_response(true);
    REQUIRE_MESSAGE(answer, request);
    CHECK_MESSAGE(answer->status == status, request);
    const auto next = client.read_response();
    REQUIRE_MESSAGE(next, request);
    CHECK(next->status == 200);
    CHECK(next->body == R"({"status":"ok"})");
    if (status == 200 && request.find("healthz") != std::string::npos) {
      // The Content-Length GET would have had.
      CHECK(answer->header("content-length") == std::to_string(next->body.size()));
    }
  }
}
