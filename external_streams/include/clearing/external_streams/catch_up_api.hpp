#pragma once
// The streams catch-up API (docs/streams.md), both sides of the stream protocol:
//   server: GET /streams/{stream}/partitions/{p}/events?from=N&limit=M on an HTTP server,
//           answering {"events": [...], "head": H} from the external_events table;
//   client: a CatchUpFetcher for the consumer, calling the producer's API over HTTP.
// The HTTP server and client are http/'s; this header includes neither.

#include <cstdint>
#include <string>

#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/consumer.hpp"

namespace clearing::http {
class HttpServer;
}  // namespace clearing::http

namespace clearing::external_streams {

inline constexpr std::int64_t kCatchUpLimitDefault = 100;

// The route, with the server's bearer token. `pool` must outlive the server's handlers.
void add_catch_up_routes(http::HttpServer& server, eventstore::ConnectionPool& pool);

struct CatchUpClientOptions {
  std::string base_url;  // http://host:port
  std::string bearer_token;
  int timeout_ms = 5'000;
  // Where an operator sets the token and the URL (an environment variable, a config key, a
  // flag), named in the errors that retrying cannot mend so they say what to fix.
  std::string token_setting = "the catch-up API's bearer token";
  std::string url_setting = "the catch-up API's URL";
};

// The consumer's fetcher over http::get. Errors (FetchError), by what the client or the
// answer said: no connection, or it broke -> unreachable; the deadline -> timeout;
// 401/403 -> unauthorized; 404 -> not_found; 5xx, 429 -> server_error; any other status, a
// body that is not a page, or one over the client's limit -> bad_answer; a URL the client
// cannot use -> misconfigured. The messages never carry the token.
CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options);

}  // namespace clearing::external_streams
