// The catch-up API's route and its HTTP fetcher (catch_up_api.hpp).

#include "clearing/external_streams/catch_up_api.hpp"

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

#include "clearing/base/assert.hpp"
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
    if (!parsed || *parsed < 1)
      return HttpResponse::error(400, "bad_from", "from must be an integer >= 1");
    from = *parsed;
  }
  if (auto it = request.query.find("limit"); it != request.query.end()) {
    auto parsed = parse_integer(it->second);
    if (!parsed || *parsed < 1 || *parsed > kCatchUpLimitMax)
      return HttpResponse::error(
          400, "bad_limit",
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
      return HttpResponse::error(
          404, "unknown_stream",
          "no stream " + stream + " partition " + std::to_string(*partition));
    return HttpResponse::error(503, "unavailable", "the event store is unavailable");
  }
  nlohmann::json events = nlohmann::json::array();
  for (const auto& m : page->events) events.push_back(m.to_json());
  return HttpResponse::json(
      200, nlohmann::json{{"events", std::move(events)}, {"head", page->head}}.dump());
}

// The client's failure, by whether another try can help.
FetchError failure_of(const http::ClientError& error, const CatchUpClientOptions& options) {
  switch (error.code) {
    case http::ClientErrc::timeout:
      return {FetchErrc::timeout, "catch-up API: " + error.message};
    case http::ClientErrc::too_large:
      return {FetchErrc::bad_answer,
              "catch-up API answered a page over the client's limit (" + error.message + ")"};
    case http::ClientErrc::bad_url:
    case http::ClientErrc::unsupported:
      return {FetchErrc::misconfigured,
              "catch-up API: " + error.message + ": check " + options.url_setting};
    case http::ClientErrc::resolve:
    case http::ClientErrc::connect:
    case http::ClientErrc::write:
    case http::ClientErrc::read:
      break;
  }
  CLEARING_ASSERT(error.is_retryable());
  return {FetchErrc::unreachable, "catch-up API: " + error.message};
}

// An answer other than 200: what it means for the next try, and what to fix when retrying
// cannot help.
FetchError failure_of_status(int status, const std::string& stream, std::int32_t partition,
                             const CatchUpClientOptions& options) {
  const auto answered = "catch-up API answered HTTP " + std::to_string(status);
  if (status == 401 || status == 403)
    return {FetchErrc::unauthorized,
            answered + ": it refused our token: check " + options.token_setting};
  if (status == 404)
    return {FetchErrc::not_found, answered + ": no stream " + stream + " partition " +
                                      std::to_string(partition) + " there: check " +
                                      options.url_setting + " and the stream's name"};
  if (status == 408) return {FetchErrc::timeout, answered};
  if (status >= 500 || status == 429) return {FetchErrc::server_error, answered};
  return {FetchErrc::bad_answer,
          answered + ", which the catch-up contract does not have (docs/streams.md): check " +
              options.url_setting};
}

// A 200's body: a page, or bad_answer.
tl::expected<FetchedPage, FetchError> page_of(const std::string& text) {
  const auto body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("events") ||
      !body["events"].is_array())
    return tl::unexpected(
        FetchError{FetchErrc::bad_answer, "catch-up API answered a body without an events array"});
  const auto head = body.find("head");
  if (head == body.end() || !head->is_number_integer() || head->get<std::int64_t>() < 0)
    return tl::unexpected(
        FetchError{FetchErrc::bad_answer, "catch-up API answered a body without a head"});
  FetchedPage page;
  page.head = head->get<std::int64_t>();
  // A bad element is handed on with its reason, not refused with the page: the consumer
  // parks it in its place, so one bad message cannot keep a gap open for ever.
  for (const auto& element : body["events"])
    page.messages.push_back({element.dump(), parse_message(element)});
  return page;
}

}  // namespace

void add_catch_up_routes(http::HttpServer& server, eventstore::ConnectionPool& pool) {
  server.route("GET", "/streams/{stream}/partitions/{partition}/events",
               [&pool](const HttpRequest& request) { return serve_page(pool, request); });
}

CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options) {
  return [options](const std::string& stream, std::int32_t partition, std::int64_t from,
                   std::int64_t limit) -> tl::expected<FetchedPage, FetchError> {
    const auto url = options.base_url + "/streams/" + stream + "/partitions/" +
                     std::to_string(partition) + "/events?from=" + std::to_string(from) +
                     "&limit=" + std::to_string(limit);
    auto got = http::get(url, options.bearer_token, options.timeout_ms);
    if (!got) return tl::unexpected(failure_of(got.error(), options));
    if (got->status != 200)
      return tl::unexpected(failure_of_status(got->status, stream, partition, options));
    return page_of(got->body);
  };
}

}  // namespace clearing::external_streams
