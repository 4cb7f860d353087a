#pragma once
// The one URL parser: absolute http:// and https:// URLs as our configs and callers write
// them ("http://127.0.0.1:8080", "https://clearing.example.dk/api", "http://[::1]:9/x?a=1").
// Pure and std only; used by the HTTP client, the clearing client and the benchmark.
//
// Contract:
// - scheme: "http" or "https" (lower case), followed by "//".
// - authority: a host and an optional ":port". The host is a name or IPv4 address (letters,
//   digits, '-', '.', '_') or an IPv6 literal in brackets ("[::1]"; hex digits, ':' and '.').
//   Credentials ("user@host") are refused: tokens go in headers. The port is 1..65535;
//   without one it is 80 (http) or 443 (https).
// - path: as written (percent-encoding kept), "" when the URL has none; then an optional
//   "?query" and "#fragment", kept apart.
// - Nothing is resolved here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace clearing::http {

struct Url {
  bool tls = false;                     // https
  std::string host;                     // without the brackets of an IPv6 literal
  std::uint16_t port = 0;               // always set: 80 / 443 when the URL has none
  std::string path;                     // "" or starting with '/'
  std::optional<std::string> query;     // after '?', without it
  std::optional<std::string> fragment;  // after '#', without it

  bool is_ipv6() const { return host.find(':') != std::string::npos; }
  // The request target: the path ("/" when empty) and "?query" if any.
  std::string target() const;
  // The host as a Host header or an authority writes it: "[::1]" for an IPv6 literal.
  std::string host_for_header() const;
};

enum class UrlError {
  bad_scheme,         // not http:// or https://
  credentials,        // "user@" before the host
  unterminated_ipv6,  // "[" without "]"
  no_host,            // empty host
  bad_host,           // a character a host cannot have (a bare IPv6 literal, a space, ...)
  bad_port,           // not a number in 1..65535
};
std::string_view to_string(UrlError error);

tl::expected<Url, UrlError> parse_url(std::string_view text);

// Percent-encodes everything but RFC 3986 unreserved characters: for path segments and
// query values built from references and cursors.
std::string percent_encode(std::string_view text);

}  // namespace clearing::http
