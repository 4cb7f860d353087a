// The URL parser (url.hpp): what every HTTP caller of the tree parses its URLs with.

#include "clearing/http/url.hpp"

#include <doctest/doctest.h>

using namespace clearing::http;

namespace {

Url ok(std::string_view text) {
  const auto parsed = parse_url(text);
  REQUIRE_MESSAGE(parsed.has_value(), text);
  return *parsed;
}

UrlError error(std::string_view text) {
  const auto parsed = parse_url(text);
  REQUIRE_MESSAGE(!parsed.has_value(), text);
  return parsed.error();
}

}  // namespace

TEST_CASE("scheme, host, port and path") {
  const auto url = ok("http://127.0.0.1:8080/streams/a/partitions/0/events");
  CHECK_FALSE(url.tls);
  CHECK(url.host == "127.0.0.1");
  CHECK(url.port == 8080);
  CHECK(url.path == "/streams/a/partitions/0/events");
  CHECK_FALSE(url.query);
  CHECK_FALSE(url.fragment);
  CHECK(url.target() == "/streams/a/partitions/0/events");
  CHECK(url.host_for_header() == "127.0.0.1");

  const auto secure = ok("https://clearing.example.dk/api");
  CHECK(secure.tls);
  CHECK(secure.host == "clearing.example.dk");
  CHECK(secure.path == "/api");
}

TEST_CASE("the port defaults by scheme; the path may be empty") {
  CHECK(ok("http://adapter-dk").port == 80);
  CHECK(ok("https://adapter-dk").port == 443);
  CHECK(ok("http://adapter_dk:1").port == 1);
  CHECK(ok("http://host:65535").port == 65535);
  CHECK(ok("http://host").path == "");
  CHECK(ok("http://host").target() == "/");
  CHECK(ok("http://host/").path == "/");
}

TEST_CASE("query and fragment are kept apart from the path") {
  const auto url = ok("http://localhost:9/a/b?from=1&limit=100#frag");
  CHECK(url.path == "/a/b");
  REQUIRE(url.query);
  CHECK(*url.query == "from=1&limit=100");
  REQUIRE(url.fragment);
  CHECK(*url.fragment == "frag");
  CHECK(url.target() == "/a/b?from=1&limit=100");
  // A query straight after the authority, and an empty one.
  CHECK(ok("http://host?x=1").target() == "/?x=1");
  CHECK(ok("http://host/p?").query == std::optional<std::string>(""));
}

TEST_CASE("IPv6 literals go in brackets") {
  const auto url = ok("http://[::1]:8080/readyz");
  CHECK(url.host == "::1");
  CHECK(url.port == 8080);
  CHECK(url.is_ipv6());
  CHECK(url.host_for_header() == "[::1]");
  CHECK(ok("https://[2001:db8::7]").port == 443);
  CHECK(ok("http://[::ffff:127.0.0.1]:9").host == "::ffff:127.0.0.1");
  CHECK(error("http://::1:8080/") == UrlError::bad_host);
  CHECK(error("http://[::1:8080/") == UrlError::unterminated_ipv6);
  CHECK(error("http://[::1]x/") == UrlError::bad_port);
  CHECK(error("http://[]:80/") == UrlError::no_host);
  CHECK(error("http://[host]:80/") == UrlError::bad_host);
}

TEST_CASE("bad input is refused with its reason") {
  CHECK(error("") == UrlError::bad_scheme);
  CHECK(error("ftp://x") == UrlError::bad_scheme);
  CHECK(error("HTTP://x") == UrlError::bad_scheme);
  CHECK(error("http:/x") == UrlError::bad_scheme);
  CHECK(error("127.0.0.1:8080") == UrlError::bad_scheme);
  CHECK(error("http://") == UrlError::no_host);
  CHECK(error("http://:8080/") == UrlError::no_host);
  CHECK(error("http:///path") == UrlError::no_host);
  CHECK(error("http://user:pw@host/") == UrlError::credentials);
  CHECK(error("http://bad host:80/") == UrlError::bad_host);
  CHECK(error("http://host\r\nX: y/") == UrlError::bad_host);
  CHECK(error("http://host:/") == UrlError::bad_port);
  CHECK(error("http://host:0/") == UrlError::bad_port);
  CHECK(error("http://host:65536/") == UrlError::bad_port);
  CHECK(error("http://host:-1/") == UrlError::bad_port);
  CHECK(error("http://host:80x/") == UrlError::bad_port);
  CHECK(error("http://host:123456/") == UrlError::bad_port);
  CHECK(to_string(UrlError::bad_port) == "has a bad port (1..65535)");
  CHECK(to_string(UrlError::bad_scheme) == "must start with http:// or https://");
}

TEST_CASE("percent_encode keeps RFC 3986 unreserved characters only") {
  CHECK(percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(percent_encode("a b/c?d") == "a%20b%2Fc%3Fd");
  CHECK(percent_encode("\xff") == "%FF");
  CHECK(percent_encode("") == "");
}
