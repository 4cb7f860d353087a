#pragma once
// The streams catch-up API (docs/streams.md), both sides of the stream protocol:
//   server: GET /streams/{stream}/partitions/{p}/events?from=N&limit=M on an HTTP server,
//           answering {"events": [...], "head": H} from the external_events table;
//   client: a CatchUpFetcher for the consumer, calling the producer's API over HTTP.
// The HTTP server and client are http/'s; this header includes only their std-only TLS
// options (clearing/http/tls.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "clearing/base/clock.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/http/tls.hpp"

namespace clearing::http {
class HttpServer;
}  // namespace clearing::http
namespace clearing::base::metrics {
class Registry;
}  // namespace clearing::base::metrics

namespace clearing::external_streams {

inline constexpr std::int64_t kCatchUpLimitDefault = 100;

struct CatchUpRouteOptions {
  // Where the served pages are counted, clearing_catch_up_reads_total{stream, reader}: one
  // per page answered 200 (so only streams that exist here), `reader` the name of the token
  // that asked (http::HttpRequest::principal; "anonymous" when authentication is disabled).
  // None: not counted. Must outlive the server's handlers.
  base::metrics::Registry* metrics = nullptr;
};

// The route, for tokens of the role `reader` (http::kRoleReader). `pool` must outlive the
// server's handlers.
// The answers for a stream the registry (stream_registry.hpp) says is deprecated or retired
// carry `Deprecation: @<unix seconds it was deprecated>` (RFC 9745) and `Sunset: <the sunset
// day, 00:00:00 GMT, as an IMF-fixdate>` (RFC 8594); a retired stream's history stays
// readable. docs/streams.md, "Catch-up API".
void add_catch_up_routes(http::HttpServer& server, eventstore::ConnectionPool& pool,
                         CatchUpRouteOptions options = {});

// The header values of a deprecated stream, by themselves for tests: `@<seconds>` of when it
// was deprecated, and the IMF-fixdate of a sunset given as YYYY-MM-DD (none if it is not a
// date), e.g. "2027-06-30" -> "Wed, 30 Jun 2027 00:00:00 GMT".
std::string deprecation_field(base::Timestamp deprecated_at);
std::optional<std::string> sunset_field(std::string_view sunset);

struct CatchUpClientOptions {
  std::string base_url;  // http://host:port or https://host:port
  std::string bearer_token;
  int timeout_ms = 5'000;
  // Where an operator sets the token and the URL (an environment variable, a config key, a
  // flag), named in the errors that retrying cannot mend so they say what to fix.
  std::string token_setting = "the catch-up API's bearer token";
  std::string url_setting = "the catch-up API's URL";
  std::string tls_setting = "the catch-up API's TLS settings";
  http::TlsClientOptions tls;  // https: what to trust and the client certificate (last: callers
                               // initialise the fields above by position)
};

// The consumer's fetcher over http::get. Errors (FetchError), by what the client or the
// answer said: no connection, or it broke -> unreachable; the deadline -> timeout;
// 401/403 -> unauthorized; 404 -> not_found; 5xx, 429 -> server_error; any other status, a
// body that is not a page, or one over the client's limit -> bad_answer; a URL the client
// cannot use, TLS options that do not load or a handshake refused -> misconfigured. The messages
// never carry the token.
CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options);

}  // namespace clearing::external_streams
