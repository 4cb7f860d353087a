// A blocking HTTP GET on its own small io_context, bounded by one deadline. Kept in
// its own unit so Beast is compiled once.

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "clearing/adapter/catch_up_api.hpp"
#include "clearing/base/asio.hpp"

namespace clearing::adapter {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

struct Url {
  std::string host, port, target;
};

std::optional<Url> parse_url(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return std::nullopt;
  const auto rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  Url u;
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  u.host = colon == std::string::npos ? authority : authority.substr(0, colon);
  u.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

}  // namespace

tl::expected<HttpGetResult, std::string> http_get(const std::string& url, const std::string& bearer_token,
                                                  int timeout_ms) {
  const auto parsed = parse_url(url);
  if (!parsed) return tl::unexpected("not an http:// URL: " + url);
  asio::io_context io;
  beast::tcp_stream stream(io);
  asio::ip::tcp::resolver resolver(io);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, parsed->target, 11};
  request.set(http::field::host, parsed->host);
  request.set(http::field::user_agent, "clearing-adapter");
  if (!bearer_token.empty()) request.set(http::field::authorization, "Bearer " + bearer_token);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  std::string failure;
  stream.expires_after(std::chrono::milliseconds(timeout_ms));

  resolver.async_resolve(parsed->host, parsed->port, [&](beast::error_code ec, asio::ip::tcp::resolver::results_type results) {
    if (ec) { failure = "resolve: " + ec.message(); return; }
    stream.async_connect(results, [&](beast::error_code ec, const asio::ip::tcp::endpoint&) {
      if (ec) { failure = "connect: " + ec.message(); return; }
      http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
        if (ec) { failure = "write: " + ec.message(); return; }
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) failure = "read: " + ec.message();
        });
      });
    });
  });
  io.run();
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  if (!failure.empty()) return tl::unexpected(failure);
  if (!parser.is_done()) return tl::unexpected(std::string("incomplete answer"));
  return HttpGetResult{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

}  // namespace clearing::adapter
