#pragma once
// ClientOptions::base_url as the client uses it (private to the client), parsed with
// http/'s URL parser: no query or fragment, the path a prefix without a trailing slash.

#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/clearing_client/client.hpp"

namespace clearing::clearing_client {

struct BaseUrl {
  bool tls = false;
  std::string host;
  std::string port;    // always set: 80 / 443 when the URL has none
  std::string prefix;  // path prefix without a trailing slash, "" for none
};

// The error's field is "base_url".
tl::expected<BaseUrl, OptionsError> parse_base_url(std::string_view url);

}  // namespace clearing::clearing_client
