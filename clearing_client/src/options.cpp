// Option validation and base URL parsing: pure, no Asio.

#include <charconv>

#include "base_url.hpp"
#include "clearing/clearing_client/client.hpp"

namespace clearing::clearing_client {

tl::expected<BaseUrl, std::string> parse_base_url(std::string_view url) {
  BaseUrl parsed;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    parsed.tls = true;
    rest = url.substr(8);
  } else {
    return tl::unexpected(std::string("base_url must start with http:// or https://"));
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return tl::unexpected(std::string("base_url must not carry a query or fragment"));
  }
  if (authority.find('@') != std::string_view::npos) {
    return tl::unexpected(std::string("base_url must not carry credentials; use bearer_token"));
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // [IPv6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return tl::unexpected(std::string("base_url has an unterminated IPv6 address"));
    }
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return tl::unexpected(std::string("base_url: bad port"));
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return tl::unexpected(std::string("base_url has no host"));
  if (!port.empty()) {
    int number = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (error != std::errc{} || end != port.data() + port.size() || number < 1 || number > 65535) {
      return tl::unexpected("base_url port must be 1..65535, got '" + std::string(port) + "'");
    }
  }
  parsed.host = std::string(host);
  parsed.port = port.empty() ? (parsed.tls ? "443" : "80") : std::string(port);
  parsed.prefix = std::string(path);
  return parsed;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

namespace {

tl::expected<void, std::string> in_range(const char* name, long long value, long long low,
                                         long long high) {
  if (value >= low && value <= high) return {};
  return tl::unexpected("clearing client option " + std::string(name) + " must be in [" +
                        std::to_string(low) + ", " + std::to_string(high) + "], got " +
                        std::to_string(value));
}

}  // namespace

tl::expected<void, std::string> validate_options(const ClientOptions& options) {
  if (auto url = parse_base_url(options.base_url); !url) {
    return tl::unexpected("clearing client option base_url ('" + options.base_url +
                          "'): " + url.error());
  }
  if (options.bearer_token.empty()) {
    return tl::unexpected(std::string("clearing client option bearer_token must not be empty"));
  }
  if (options.bearer_token.find_first_of("\r\n") != std::string::npos) {
    return tl::unexpected(std::string("clearing client option bearer_token has a line break"));
  }
  const tl::expected<void, std::string> checks[] = {
      in_range("request_timeout_ms", options.request_timeout_ms, 1, kRequestTimeoutMsMax),
      in_range("connect_timeout_ms", options.connect_timeout_ms, 1, options.request_timeout_ms),
      in_range("in_flight_max", options.in_flight_max, 1, kInFlightMax),
      in_range("waiting_max", options.waiting_max, 0, kWaitingMax),
      in_range("pool_connections_max", options.pool_connections_max, 0, kPoolConnectionsMax),
      in_range("response_body_bytes_max", static_cast<long long>(options.response_body_bytes_max),
               1024, static_cast<long long>(kResponseBodyBytesMax)),
      in_range("incoming_limit_max", options.incoming_limit_max, 1, 100'000),
  };
  for (const auto& check : checks) {
    if (!check) return check;
  }
  return {};
}

}  // namespace clearing::clearing_client
