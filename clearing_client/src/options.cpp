// Option validation and base URL parsing (with http/'s URL parser): pure, no Asio.

#include "base_url.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/http/url.hpp"

namespace clearing::clearing_client {

tl::expected<BaseUrl, OptionsError> parse_base_url(std::string_view text) {
  const auto url = http::parse_url(text);
  if (!url) {
    return tl::unexpected(
        OptionsError{"base_url", "base_url " + std::string(http::to_string(url.error()))});
  }
  if (url->query || url->fragment) {
    return tl::unexpected(OptionsError{"base_url", "base_url must not carry a query or fragment"});
  }
  std::string_view path = url->path;
  while (path.ends_with('/')) path.remove_suffix(1);
  return BaseUrl{.tls = url->tls,
                 .host = url->host,
                 .port = std::to_string(url->port),
                 .prefix = std::string(path)};
}

namespace {

tl::expected<void, OptionsError> in_range(const char* name, long long value, long long low,
                                          long long high) {
  if (value >= low && value <= high) return {};
  return tl::unexpected(OptionsError{
      name, "clearing client option " + std::string(name) + " must be in [" + std::to_string(low) +
                ", " + std::to_string(high) + "], got " + std::to_string(value)});
}

}  // namespace

tl::expected<void, OptionsError> validate_options(const ClientOptions& options) {
  if (auto url = parse_base_url(options.base_url); !url) {
    return tl::unexpected(OptionsError{
        "base_url",
        "clearing client option base_url ('" + options.base_url + "'): " + url.error().message});
  }
  if (options.bearer_token.empty()) {
    return tl::unexpected(
        OptionsError{"bearer_token", "clearing client option bearer_token must not be empty"});
  }
  if (options.bearer_token.find_first_of("\r\n") != std::string::npos) {
    return tl::unexpected(
        OptionsError{"bearer_token", "clearing client option bearer_token has a line break"});
  }
  if (options.client_cert_file.empty() != options.client_key_file.empty()) {
    const char* missing = options.client_cert_file.empty() ? "client_cert_file" : "client_key_file";
    return tl::unexpected(OptionsError{
        missing, std::string("clearing client option ") + missing +
                     " is missing: a client certificate needs both client_cert_file and "
                     "client_key_file"});
  }
  const tl::expected<void, OptionsError> checks[] = {
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
  if (!options.adaptive_concurrency) return {};  // the limit is in_flight_max
  if (auto check = in_range("concurrency_min", options.concurrency_min, 1, options.in_flight_max);
      !check) {
    return check;
  }
  return in_range("concurrency_initial", options.concurrency_initial, options.concurrency_min,
                  options.in_flight_max);
}

}  // namespace clearing::clearing_client
