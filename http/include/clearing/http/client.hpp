#pragma once
// The one HTTP client for plain request-response calls (the streams catch-up fetcher, the
// tests' and benchmarks' probes of /readyz, /metrics and the mock's /admin pages): one
// blocking HTTP/1.1 exchange on a connection of its own, bounded by one deadline. Beast and
// Asio stay in client.cpp; this header is std only.
//
// Contract:
// - Thread safe: every call has its own small io_context and connection ("Connection: close").
// - Deadline: `timeout_ms` bounds the whole call (resolve, connect, write, read).
// - Errors: a string naming the step that failed ("resolve: ...", "connect: ...",
//   "write: ...", "read: ...", "incomplete answer") or the bad URL. Any HTTP status is an
//   answer, not an error: the caller decides what a 401 or a 503 means.
// - Limits: an answer body over `body_bytes_max` is an error ("read: body limit exceeded").
// - https:// is refused until the client speaks TLS (the clearing client has its own TLS).

#include <cstddef>
#include <string>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

namespace clearing::http {

inline constexpr std::size_t kClientBodyBytesMaxDefault = 64 * 1024 * 1024;

struct ClientRequest {
  std::string method = "GET";
  std::string url;           // http://host[:port][/path][?query] (url.hpp)
  std::string bearer_token;  // "" for no Authorization header
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;          // sent with a Content-Length when not empty
  int timeout_ms = 5'000;
  std::size_t body_bytes_max = kClientBodyBytesMaxDefault;
};

struct ClientResponse {
  int status = 0;
  std::string body;
};

tl::expected<ClientResponse, std::string> send(const ClientRequest& request);

// A GET: the status and body, or why it failed.
tl::expected<ClientResponse, std::string> get(const std::string& url, const std::string& bearer_token,
                                              int timeout_ms);

}  // namespace clearing::http
