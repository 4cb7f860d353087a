// The catch-up API's route and its HTTP fetcher (catch_up_api.hpp).

#include "clearing/external_streams/catch_up_api.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "clearing/base/assert.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/base/metrics.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "clearing/tracing/tracer.hpp"

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

// A page and what the registry says of its stream (none: not a derived stream, as the
// core's streams in core-sim's database).
struct Served {
  CatchUpPage page;
  std::optional<StreamRecord> stream;
};

// Deprecation (RFC 9745) and Sunset (RFC 8594) of a deprecated or retired stream.
void add_deprecation_headers(HttpResponse& response, const StreamRecord& stream) {
  if (stream.deprecated_at)
    response.headers.emplace_back("Deprecation", deprecation_field(*stream.deprecated_at));
  if (stream.sunset)
    if (auto sunset = sunset_field(*stream.sunset))
      response.headers.emplace_back("Sunset", std::move(*sunset));
}

HttpResponse serve_page(eventstore::ConnectionPool& pool, const HttpRequest& request,
                        base::metrics::CounterFamily* reads) {
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
  // The stream's registry row is read with the page, every page (a key look-up), so the
  // headers are never stale.
  auto served = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<Served> {
    auto page = read_catch_up(tx, stream, static_cast<std::int32_t>(*partition), from, limit,
                              pool.protector());
    if (!page) return tl::unexpected(page.error());
    auto record = read_stream(tx, stream);
    if (!record) return tl::unexpected(record.error());
    return Served{std::move(*page), std::move(*record)};
  });
  if (!served) {
    if (served.error().code == eventstore::StoreErrc::invalid_argument)
      return HttpResponse::error(
          404, "unknown_stream",
          "no stream " + stream + " partition " + std::to_string(*partition));
    return HttpResponse::error(503, "unavailable", "the event store is unavailable");
  }
  nlohmann::json events = nlohmann::json::array();
  for (const auto& m : served->page.events) events.push_back(m.to_json());
  auto response = HttpResponse::json(
      200, nlohmann::json{{"events", std::move(events)}, {"head", served->page.head}}.dump());
  if (served->stream) add_deprecation_headers(response, *served->stream);
  // Bounded labels: a stream that exists here (others are 404) and a configured token's name.
  if (reads)
    reads->with({stream, request.principal.empty() ? "anonymous" : request.principal}).inc();
  return response;
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
    case http::ClientErrc::tls:
      return {FetchErrc::misconfigured,
              "catch-up API: " + error.message + ": check " + options.tls_setting};
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

std::string deprecation_field(base::Timestamp deprecated_at) {
  return "@" +
         std::to_string(
             std::chrono::floor<std::chrono::seconds>(deprecated_at.time_since_epoch()).count());
}

std::optional<std::string> sunset_field(std::string_view sunset) {
  const auto day = base::parse_date(sunset);
  if (!day) return std::nullopt;
  const int y = static_cast<int>(day->year());
  const auto m = static_cast<unsigned>(day->month());
  const auto d = static_cast<unsigned>(day->day());
  // IMF-fixdate (RFC 9110 5.6.7): English names whatever the locale.
  static constexpr std::array<const char*, 7> kDays{"Sun", "Mon", "Tue", "Wed",
                                                    "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::chrono::weekday weekday{std::chrono::sys_days{*day}};
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02u %s %04d 00:00:00 GMT", kDays[weekday.c_encoding()], d,
                kMonths[m - 1], y);
  return std::string(text);
}

void add_catch_up_routes(http::HttpServer& server, eventstore::ConnectionPool& pool,
                         CatchUpRouteOptions options) {
  base::metrics::CounterFamily* reads =
      options.metrics == nullptr
          ? nullptr
          : &options.metrics->counter(
                "clearing_catch_up_reads_total",
                "Catch-up API pages served, by stream and by reader (the name of the token "
                "that asked)",
                {"stream", "reader"});
  server.route(
      "GET", "/streams/{stream}/partitions/{partition}/events",
      [&pool, reads](const HttpRequest& request) { return serve_page(pool, request, reads); },
      http::RouteOptions{.role = http::kRoleReader});
}

CatchUpFetcher make_http_catch_up_fetcher(CatchUpClientOptions options) {
  return [options](const std::string& stream, std::int32_t partition, std::int64_t from,
                   std::int64_t limit) -> tl::expected<FetchedPage, FetchError> {
    const auto url = options.base_url + "/streams/" + stream + "/partitions/" +
                     std::to_string(partition) + "/events?from=" + std::to_string(from) +
                     "&limit=" + std::to_string(limit);
    // A span under the message being handled (the consumer's current context), its context
    // sent as the traceparent header.
    auto span = tracing::global_tracer()->start("catch-up fetch", tracing::current_context(),
                                                tracing::SpanKind::client);
    span.set("messaging.destination.name", stream)
        .set("messaging.destination.partition.id", std::int64_t{partition})
        .set("catch_up.from", from)
        .set("catch_up.limit", limit);
    http::ClientRequest request;
    request.url = url;
    request.bearer_token = options.bearer_token;
    request.timeout_ms = options.timeout_ms;
    request.tls = options.tls;
    request.headers.emplace_back("traceparent", span.context().traceparent());
    if (!span.context().tracestate.empty())
      request.headers.emplace_back("tracestate", span.context().tracestate);
    auto got = http::send(request);
    if (!got) {
      span.set_error(std::string(http::to_string(got.error().code)));
      return tl::unexpected(failure_of(got.error(), options));
    }
    span.set("http.response.status_code", std::int64_t{got->status});
    if (got->status != 200) {
      span.set_error("status " + std::to_string(got->status));
      return tl::unexpected(failure_of_status(got->status, stream, partition, options));
    }
    return page_of(got->body);
  };
}

}  // namespace clearing::external_streams
