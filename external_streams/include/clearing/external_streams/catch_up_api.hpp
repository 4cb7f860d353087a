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
};

CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options);

}  // namespace clearing::external_streams
