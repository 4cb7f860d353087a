// The catch-up API's route and its HTTP fetcher (catch_up_api.hpp).

#include "clearing/external_streams/catch_up_api.hpp"

#include <charconv>
#include <optional>

#include <nlohmann/json.hpp>

#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"

namespace clearing::external_streams {
namespace {

using http::HttpRequest;
using http::HttpResponse;

std::optional<std::int64_t> parse_integer(const std::string& text) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || text.empty()) return std::nullopt;
  return value;
}

HttpResponse serve_page(eventstore::ConnectionPool& pool, const HttpRequest& request) {
  const auto& stream = request.params.at("stream");
  const auto partition = parse_integer(request.params.at("partition"));
  if (!partition || *partition < 0 || *partition >= kPartitionsMax)
    return HttpResponse::error(400, "bad_partition", "partition must be an integer in [0, 255]");
  std::int64_t from = 1, limit = kCatchUpLimitDefault;
  if (auto it = request.query.find("from"); it != request.query.end()) {
    auto parsed = parse_integer(it->second);
    if (!parsed || *parsed < 1) return HttpResponse::error(400, "bad_from", "from must be an integer >= 1");
    from = *parsed;
  }
  if (auto it = request.query.find("limit"); it != request.query.end()) {
    auto parsed = parse_integer(it->second);
    if (!parsed || *parsed < 1 || *parsed > kCatchUpLimitMax)
      return HttpResponse::error(400, "bad_limit",
                                 "limit must be an integer in [1, " + std::to_string(kCatchUpLimitMax) + "]");
    limit = *parsed;
  }
  for (const auto& [key, value] : request.query)
    if (key != "from" && key != "limit")
      return HttpResponse::error(400, "unknown_parameter", "unknown query parameter '" + key + "'");
  auto page = pool.transact([&](eventstore::Transaction& tx) {
    return read_catch_up(tx, stream, static_cast<std::int32_t>(*partition), from, limit);
  });
  if (!page) {
    if (page.error().code == eventstore::StoreErrc::invalid_argument)
      return HttpResponse::error(404, "unknown_stream", "no stream " + stream + " partition " +
                                                            std::to_string(*partition));
    return HttpResponse::error(503, "unavailable", "the event store is unavailable");
  }
  nlohmann::json events = nlohmann::json::array();
  for (const auto& m : page->events) events.push_back(m.to_json());
  return HttpResponse::json(200, nlohmann::json{{"events", std::move(events)}, {"head", page->head}}.dump());
}

}  // namespace

void add_catch_up_routes(http::HttpServer& server, eventstore::ConnectionPool& pool) {
  server.route("GET", "/streams/{stream}/partitions/{partition}/events",
               [&pool](const HttpRequest& request) { return serve_page(pool, request); });
}

CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options) {
  return [options](const std::string& stream, std::int32_t partition, std::int64_t from, std::int64_t limit)
             -> tl::expected<FetchedPage, std::string> {
    const auto url = options.base_url + "/streams/" + stream + "/partitions/" + std::to_string(partition) +
                     "/events?from=" + std::to_string(from) + "&limit=" + std::to_string(limit);
    auto got = http::get(url, options.bearer_token, options.timeout_ms);
    if (!got) return tl::unexpected(got.error().message);
    if (got->status != 200) return tl::unexpected("catch-up API answered HTTP " + std::to_string(got->status));
    const auto body = nlohmann::json::parse(got->body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("events") || !body["events"].is_array())
      return tl::unexpected(std::string("catch-up API answered a body without an events array"));
    const auto head = body.find("head");
    if (head == body.end() || !head->is_number_integer() || head->get<std::int64_t>() < 0)
      return tl::unexpected(std::string("catch-up API answered a body without a head"));
    FetchedPage page;
    page.head = head->get<std::int64_t>();
    // A bad element is handed on with its reason, not refused with the page: the consumer
    // parks it in its place, so one bad message cannot keep a gap open for ever.
    for (const auto& element : body["events"])
      page.messages.push_back({element.dump(), parse_message(element)});
    return page;
  };
}

}  // namespace clearing::external_streams
