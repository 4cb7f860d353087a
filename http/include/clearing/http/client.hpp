#pragma once
// The one HTTP client for plain request-response calls (the streams catch-up fetcher, the
// tests' and benchmarks' probes of /readyz, /metrics and the mock's /admin pages): one
// blocking HTTP/1.1 exchange on a connection of its own, bounded by one deadline. Beast and
// Asio stay in client.cpp; this header is std only.
//
// Contract:
// - Thread safe: every call has its own small io_context and connection ("Connection: close").
// - Deadline: `timeout_ms` bounds the whole call (resolve, connect, write, read).
// - Errors: a ClientError, its code the class of the failure (ClientErrc, with
//   is_retryable) and its message naming the step that failed ("resolve: ...",
//   "connect: ...", "write: ...", "read: ...", "incomplete answer") or the bad URL. Any HTTP
//   status is an answer, not an error: the caller decides what a 401 or a 503 means.
// - Limits: an answer body over `body_bytes_max` is an error (too_large,
//   "read: body limit exceeded").
// - https:// with `tls` (tls.hpp): the server's chain and host name verified, TLS 1.2 at
//   least, a client certificate when given. A context is built per call (files read each
//   time): fine for the rare calls this client makes. A handshake refused (an untrusted,
//   expired or wrong-host certificate; no client certificate where one is required) is a
//   `tls` error naming OpenSSL's verdict; so is a TLS option that does not load.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "clearing/http/tls.hpp"

namespace clearing::http {

inline constexpr std::size_t kClientBodyBytesMaxDefault = 64 * 1024 * 1024;

struct ClientRequest {
  std::string method = "GET";
  std::string url;           // http(s)://host[:port][/path][?query] (url.hpp)
  std::string bearer_token;  // "" for no Authorization header
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;  // sent with a Content-Length when not empty
  int timeout_ms = 5'000;
  std::size_t body_bytes_max = kClientBodyBytesMaxDefault;
  TlsClientOptions tls;  // https only
};

struct ClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names; repeats joined by ", "
};

// Why an exchange had no answer. Retryable: another try may succeed (the network or the
// server away, slow or cut off); whether the request is safe to send twice (a POST) is the
// caller's to know. Not retryable: the same request fails the same way until someone
// changes it or the configuration.
enum class ClientErrc {
  bad_url,      // not an absolute http:// or https:// URL (url.hpp)
  unsupported,  // a method HTTP does not know
  resolve,      // the host name did not resolve
  connect,      // no connection (refused, unreachable)
  timeout,      // the deadline passed, whatever step was running
  write,        // the connection broke while sending
  read,         // the connection broke while receiving, or the answer was not HTTP
  too_large,    // the answer's body or headers beyond the limit
  tls,          // https: the TLS options do not load, or the handshake was refused
};
std::string_view to_string(ClientErrc code) noexcept;
bool is_retryable(ClientErrc code) noexcept;

struct ClientError {
  ClientErrc code;
  std::string message;  // the step and the library's words; never the request's token
  bool is_retryable() const noexcept { return http::is_retryable(code); }
};

template <class T>
using ClientResult = tl::expected<T, ClientError>;

ClientResult<ClientResponse> send(const ClientRequest& request);

// A GET: the status and body, or why it failed.
ClientResult<ClientResponse> get(const std::string& url, const std::string& bearer_token,
                                 int timeout_ms, const TlsClientOptions& tls = {});

}  // namespace clearing::http
