#pragma once
// The streams catch-up API (docs/streams.md), both sides:
//   server: GET /streams/{stream}/partitions/{p}/events?from=N&limit=M on our HTTP server,
//           answering {"events": [...], "head": H} from the external_events table;
//   client: a CatchUpFetcher for the consumer, calling the producer's API over HTTP.

#include <string>

#include "clearing/adapter/http_server.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/consumer.hpp"

namespace clearing::adapter {

inline constexpr std::int64_t kCatchUpLimitDefault = 100;

void add_catch_up_routes(HttpServer& server, eventstore::ConnectionPool& pool);

struct CatchUpClientOptions {
  std::string base_url;  // http://host:port
  std::string bearer_token;
  int timeout_ms = 5'000;
};

external_streams::CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options);

// A blocking HTTP/1.1 GET with one deadline; the status and body, or why it failed.
struct HttpGetResult {
  int status = 0;
  std::string body;
};
tl::expected<HttpGetResult, std::string> http_get(const std::string& url, const std::string& bearer_token,
                                                  int timeout_ms);

}  // namespace clearing::adapter
