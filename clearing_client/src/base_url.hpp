#pragma once
// Parsing of ClientOptions::base_url (private to the client).

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace clearing::clearing_client {

struct BaseUrl {
  bool tls = false;
  std::string host;
  std::string port;    // always set: 80 / 443 when the URL has none
  std::string prefix;  // path prefix without a trailing slash, "" for none
};

tl::expected<BaseUrl, std::string> parse_base_url(std::string_view url);

// Percent-encodes everything but RFC 3986 unreserved characters (for path segments and
// query values built from references and cursors).
std::string percent_encode(std::string_view text);

}  // namespace clearing::clearing_client
