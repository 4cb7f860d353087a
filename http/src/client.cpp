// The blocking HTTP client: one exchange on its own small io_context, bounded by one
// deadline. Kept in its own unit so Beast is compiled once for it.

#include "clearing/http/client.hpp"

#include <chrono>
#include <optional>

#include "clearing/base/asio.hpp"
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "clearing/base/assert.hpp"
#include "clearing/http/url.hpp"

namespace clearing::http {
namespace {

namespace beast = boost::beast;
namespace beast_http = beast::http;
using tcp = asio::ip::tcp;

// The resolver has no deadline of its own: the io_context runs at most this much longer than
// the request's deadline, then whatever is still pending is abandoned.
constexpr std::chrono::milliseconds kResolveGrace{100};
constexpr int kTimeoutMsMax = 3'600'000;

std::optional<beast_http::verb> verb_of(const std::string& method) {
  const auto verb = beast_http::string_to_verb(method);
  if (verb == beast_http::verb::unknown) return std::nullopt;
  return verb;
}

}  // namespace

tl::expected<ClientResponse, std::string> send(const ClientRequest& request) {
  CLEARING_ASSERT(request.timeout_ms > 0 && request.timeout_ms <= kTimeoutMsMax);
  const auto url = parse_url(request.url);
  if (!url) return tl::unexpected("not an http:// URL (" + std::string(to_string(url.error())) + "): " + request.url);
  if (url->tls) return tl::unexpected("https is not supported by this client: " + request.url);
  const auto verb = verb_of(request.method);
  if (!verb) return tl::unexpected("unknown HTTP method: " + request.method);

  asio::io_context io;
  beast::tcp_stream stream(io);
  tcp::resolver resolver(io);
  beast::flat_buffer buffer;
  beast_http::request<beast_http::string_body> message{*verb, url->target(), 11};
  message.set(beast_http::field::host, url->host_for_header());
  message.set(beast_http::field::user_agent, "clearing-adapter");
  message.set(beast_http::field::connection, "close");
  if (!request.bearer_token.empty())
    message.set(beast_http::field::authorization, "Bearer " + request.bearer_token);
  for (const auto& [name, value] : request.headers) message.set(name, value);
  if (!request.body.empty()) {
    message.body() = request.body;
    message.prepare_payload();
  }
  beast_http::response_parser<beast_http::string_body> parser;
  parser.body_limit(request.body_bytes_max);
  std::string failure;
  const auto timeout = std::chrono::milliseconds(request.timeout_ms);
  stream.expires_after(timeout);

  const auto port = std::to_string(url->port);
  resolver.async_resolve(url->host, port, [&](beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) { failure = "resolve: " + ec.message(); return; }
    stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) { failure = "connect: " + ec.message(); return; }
      beast_http::async_write(stream, message, [&](beast::error_code ec, std::size_t) {
        if (ec) { failure = "write: " + ec.message(); return; }
        beast_http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) failure = "read: " + ec.message();
        });
      });
    });
  });
  io.run_for(timeout + kResolveGrace);
  if (!io.stopped() && failure.empty()) failure = "resolve: timed out";
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (!failure.empty()) return tl::unexpected(failure);
  if (!parser.is_done()) return tl::unexpected(std::string("incomplete answer"));
  return ClientResponse{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

tl::expected<ClientResponse, std::string> get(const std::string& url, const std::string& bearer_token,
                                              int timeout_ms) {
  return send({.method = "GET", .url = url, .bearer_token = bearer_token, .timeout_ms = timeout_ms});
}

}  // namespace clearing::http
