#pragma once
// The one HTTP/1.1 server: router, sessions, limits, bearer tokens and their roles. The adapter
// serves /healthz, /readyz, /metrics, /transfers/{id} and /parked on it, external_streams the
// catch-up API, core-sim its catch-up API. Beast and Asio stay in server.cpp: this header is
// included widely and pulls in neither.
//
// Contract:
// - Connections: one coroutine on its own strand each, keep-alive. At most
//   `connections_per_client_max` from one peer address and `connections_max` in all. A
//   connection over the per-client limit is answered 503 and closed at once (it never waits
//   in the listen backlog). At the total limit, the connection idle longest (waiting for a
//   request header) is closed to make room; when every connection is in a request, the new
//   one is answered 503 and closed. So idle sockets, however many, cannot starve /healthz.
// - Deadlines: a request header (the wait for it on a kept-alive connection included) must
//   arrive whole within `idle_timeout_ms`, or the connection closes silently; reading a
//   body and writing an answer each have `request_timeout_ms`.
// - The header is read and checked before any body: the target, authentication, the route,
//   the method and the route's role. A body is read only for an authorised request to a
//   route whose method takes one (POST, PUT, PATCH); anything else that comes with a body (a
//   Content-Length > 0 or chunked) is answered without reading it (400 BODY_NOT_ALLOWED, or
//   the 401/403/404/405 it deserves) and the connection is closed. "Expect: 100-continue" is
//   answered 100 only then.
// - Handlers may block (PostgreSQL): they run on a pool of `worker_threads` threads with a
//   queue of at most `worker_queue_max` waiting requests. A full queue answers 503 with
//   `Retry-After`. A handler is called from any worker thread, concurrently with itself: it
//   must be thread safe. A route registered with `on_io_thread` (a handler that never
//   blocks: /healthz) runs on the I/O thread instead, so it answers when every worker is
//   busy.
// - Answers the server gives by itself (all with {"error":{"code":..,"message":..}}):
//   400 malformed request (bad syntax, bad percent-encoding, a path segment or query
//   string that is not printable UTF-8 once decoded, duplicate query key, no Host, a body on
//   a method that takes none), 401 missing or unknown bearer token (with
//   `WWW-Authenticate: Bearer`) for every path but those of routes without auth, known or
//   not, so that routes cannot be discovered without a token; 404 unknown path and 405
//   known path with another method (with `Allow`), both only with a known token or on a path
//   without auth; 403 FORBIDDEN a known token without the role the route requires (the
//   message names the role, never the token; the body, if any, is not read); 413 body over
//   `body_bytes_max`, 431 headers over `header_bytes_max`, 500
//   handler threw (logged, without the body), 503 worker queue full, connection limit or
//   server stopping.
// - HEAD on a path with a GET route and no HEAD route runs the GET route; no answer to HEAD
//   carries a body (its Content-Length is the one GET would have).
// - Routes: "/a/{name}/b"; `{name}` matches one whole path segment, which is percent-decoded
//   after splitting (so "%2F" stays inside the parameter). Query values are percent-decoded
//   and '+' is a space. If several patterns match a path, the one with more literal segments
//   wins. Register every route before start().
// - TLS (HttpServerOptions::tls, tls.hpp): every connection handshakes first, within
//   `idle_timeout_ms`; one that fails the handshake (not TLS, no client certificate where
//   `client_ca_file` requires one, an untrusted one) is closed without an answer. A
//   connection refused by a limit is closed without the 503 (it would need a handshake).
// - Threads: route() before start(); start(), stop() and port() from any one thread;
//   stop() is idempotent and also called by the destructor.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "clearing/http/tls.hpp"

namespace clearing::http {

struct HttpRequest {
  std::string method;                          // as sent: "GET", "POST", ...
  std::string path;                            // percent-decoded path, without the query
  std::map<std::string, std::string> query;    // decoded keys and values
  std::map<std::string, std::string> params;   // from `{name}` in the route pattern
  std::map<std::string, std::string> headers;  // lower-case names; repeats joined by ", "
  std::string body;
  std::string remote;  // peer "address:port"
  // The name of the bearer token that authenticated the request (BearerToken::name, or
  // HttpServerOptions::bearer_token_name): who asks, for a handler that counts its readers
  // or records who acted. "" on a route without auth and when authentication is disabled.
  std::string principal;
};

struct HttpResponse {
  int status = 200;  // 200..599; anything else is answered as 500
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  static HttpResponse json(int status, std::string body);
  // {"error":{"code":"<code>","message":"<message>"}} with both strings JSON-escaped.
  static HttpResponse error(int status, std::string code, std::string message);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// The roles of the adapter's API (README, "API tokens"): what a token may do.
inline constexpr std::string_view kRoleReader = "reader";      // catch-up API, /transfers, /parked
inline constexpr std::string_view kRoleMetrics = "metrics";    // /metrics
inline constexpr std::string_view kRoleOperator = "operator";  // actions: resolve, ...

struct RouteOptions {
  bool requires_auth = true;
  // The handler never blocks (no I/O, no lock held for long): it runs on the connection's
  // I/O thread, not on the worker pool, and so answers when every worker is busy.
  bool on_io_thread = false;
  // The role a token must hold (403 otherwise); empty: any known token. Only with
  // requires_auth. The text is copied by route().
  std::string_view role;
};

// One named token and the roles it holds.
struct BearerToken {
  // HttpRequest::principal: 1..64 bytes of [A-Za-z0-9] '-' '_' '.' ':' (it ends up in
  // metrics' labels and in events); unique among the server's tokens.
  std::string name;
  std::string token;  // printable ASCII without spaces; unique among the server's tokens
  std::vector<std::string> roles;  // 1..16 role names, each of the same characters as a name
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // an IP address or a name, resolved by start()
  int port = 0;                    // 0: a free port, see HttpServer::port()
  // "Authorization: Bearer <token>" on routes that require auth must carry one of these, or
  // `bearer_token` when set. No token at all (both empty) disables the check for every
  // route: for tests only, never in a deployment (start() logs a warning).
  std::vector<BearerToken> tokens;
  // A token that holds every role, for servers with one kind of caller (core-sim's catch-up
  // API, tests); "" for none. Its name is bearer_token_name, as for `tokens`.
  std::string bearer_token;
  std::string bearer_token_name = "api";
  int io_threads = 1;
  int worker_threads = 4;
  int worker_queue_max = 64;  // requests waiting for a worker; beyond: 503
  std::size_t body_bytes_max = 1 << 20;
  std::size_t header_bytes_max = 16 * 1024;
  int request_timeout_ms = 10000;  // reading a body; writing an answer
  // A whole request header, and the wait for it on a kept-alive connection: short, so idle
  // and trickling connections do not hold slots.
  int idle_timeout_ms = 5000;
  int connections_max = 256;            // in all; 1..100,000
  int connections_per_client_max = 64;  // from one peer address; above connections_max: that
  int stop_grace_ms = 5000;  // stop(): how long requests in flight may take to be answered
  int retry_after_s = 1;     // the Retry-After of a 503
  // TLS on every connection; none: plain HTTP. create() loads its files (invalid_option,
  // naming the file, when one does not load).
  std::optional<TlsServerOptions> tls;
};

// Why the server could not be made or started. Retryable: cannot_listen (the port may be
// free later). Not retryable: a bad option, or start() called twice.
enum class ServerErrc {
  invalid_option,   // create(): an option out of its range (the message names it)
  already_started,  // start() on a started or stopped server
  cannot_listen,    // start(): the address did not resolve, or bind/listen failed (port in use)
};
std::string_view to_string(ServerErrc code) noexcept;

struct ServerError {
  ServerErrc code;
  std::string message;  // "http option port out of range 0..65535", "cannot listen on ..."
  bool is_retryable() const noexcept { return code == ServerErrc::cannot_listen; }
};

class HttpServer {
 public:
  // Validates the options; the error (invalid_option) names the bad option.
  static tl::expected<std::unique_ptr<HttpServer>, ServerError> create(HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // method: "GET", "POST", ... A bad pattern or the same (method, pattern) twice is a
  // programming error (assertion). Only before start().
  void route(std::string method, std::string pattern, HttpHandler handler,
             RouteOptions route_options);
  void route(std::string method, std::string pattern, HttpHandler handler,
             bool requires_auth = true);

  // Binds, listens and starts the I/O and worker threads. Error: cannot_listen (port in use,
  // bad address) or already_started.
  tl::expected<void, ServerError> start();

  // Graceful: stops accepting, closes idle connections, lets requests in flight finish and
  // be answered (with "Connection: close") for up to stop_grace_ms, then closes the rest and
  // joins all threads. A handler still running after the grace is waited for (handlers bound
  // their own blocking calls with deadlines); requests still queued then get no handler call.
  void stop();

  // The bound port (the real one when options.port was 0); 0 before start().
  std::uint16_t port() const;

  // The registered routes, in the order registered: for tests that walk every route by role.
  struct RouteInfo {
    std::string method;
    std::string pattern;
    bool requires_auth = true;
    std::string role;
  };
  std::vector<RouteInfo> routes() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::http
