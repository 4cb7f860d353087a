// The blocking HTTP client: one exchange on its own small io_context, bounded by one
// deadline. Kept in its own unit so Beast is compiled once for it.

#include "clearing/http/client.hpp"

#include <algorithm>
#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <optional>
#include <utility>

#include "clearing/base/asio.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/http/tls_asio.hpp"
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

// A step's failure: the deadline and the limits are their own classes whatever step hit them,
// anything else is the step's.
ClientError failure_of(ClientErrc step, std::string_view step_name, const beast::error_code& ec) {
  auto code = step;
  if (ec == beast::error::timeout) {
    code = ClientErrc::timeout;
  } else if (ec == beast_http::error::body_limit || ec == beast_http::error::header_limit ||
             ec == beast_http::error::buffer_overflow) {
    code = ClientErrc::too_large;
  }
  return {code, std::string(step_name) + ": " + ec.message()};
}

}  // namespace

namespace {

// One row per code: its name and whether another try can help (client.hpp says which).
struct ClientErrcRow {
  std::string_view name;
  bool retryable;
};
constexpr std::array<std::pair<ClientErrc, ClientErrcRow>, 9> kClientErrcs{{
    {ClientErrc::bad_url, {"bad_url", false}},
    {ClientErrc::unsupported, {"unsupported", false}},
    {ClientErrc::resolve, {"resolve", true}},
    {ClientErrc::connect, {"connect", true}},
    {ClientErrc::timeout, {"timeout", true}},
    {ClientErrc::write, {"write", true}},
    {ClientErrc::read, {"read", true}},
    {ClientErrc::too_large, {"too_large", false}},
    {ClientErrc::tls, {"tls", false}},
}};

constexpr std::optional<ClientErrcRow> row_of(ClientErrc code) {
  for (const auto& [candidate, row] : kClientErrcs)
    if (candidate == code) return row;
  return std::nullopt;
}

constexpr bool lists_every_code() {
  for (std::size_t i = 0; i < kClientErrcs.size(); ++i)
    if (static_cast<std::size_t>(kClientErrcs[i].first) != i) return false;
  return kClientErrcs.back().first == ClientErrc::tls;
}
static_assert(lists_every_code());

}  // namespace

std::string_view to_string(ClientErrc code) noexcept {
  const auto row = row_of(code);
  return row ? row->name : "unknown";
}

bool is_retryable(ClientErrc code) noexcept {
  const auto row = row_of(code);
  return row && row->retryable;
}

ClientResult<ClientResponse> send(const ClientRequest& request) {
  CLEARING_ASSERT(request.timeout_ms > 0 && request.timeout_ms <= kTimeoutMsMax);
  const auto url = parse_url(request.url);
  if (!url)
    return tl::unexpected(ClientError{
        ClientErrc::bad_url,
        "not an http:// URL (" + std::string(to_string(url.error())) + "): " + request.url});
  const auto verb = verb_of(request.method);
  if (!verb)
    return tl::unexpected(
        ClientError{ClientErrc::unsupported, "unknown HTTP method: " + request.method});

  std::optional<asio::ssl::context> tls_context;
  if (url->tls) {
    auto made = make_client_context(request.tls);
    if (!made) return tl::unexpected(ClientError{ClientErrc::tls, "tls: " + made.error().message});
    tls_context.emplace(std::move(*made));
  }

  asio::io_context io;
  beast::tcp_stream stream(io);
  // Over `stream` when the URL is https (a reference: deadlines stay the TCP stream's).
  std::optional<asio::ssl::stream<beast::tcp_stream&>> tls;
  if (tls_context) {
    tls.emplace(stream, *tls_context);
    if (!prepare_client_session(tls->native_handle(), url->host, request.tls.verify))
      return tl::unexpected(
          ClientError{ClientErrc::tls, "tls: cannot set the host name " + url->host});
  }
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
  std::optional<ClientError> failure;
  const auto timeout = std::chrono::milliseconds(request.timeout_ms);
  stream.expires_after(timeout);

  // Write the request, read the answer: on the TCP stream or the TLS one over it.
  const auto exchange = [&](auto& on) {
    beast_http::async_write(on, message, [&](beast::error_code ec, std::size_t) {
      if (ec) {
        failure = failure_of(ClientErrc::write, "write", ec);
        return;
      }
      beast_http::async_read(on, buffer, parser, [&](beast::error_code ec, std::size_t) {
        if (ec) failure = failure_of(ClientErrc::read, "read", ec);
      });
    });
  };
  const auto port = std::to_string(url->port);
  resolver.async_resolve(
      url->host, port, [&](beast::error_code ec, tcp::resolver::results_type results) {
        if (ec) {
          failure = failure_of(ClientErrc::resolve, "resolve", ec);
          return;
        }
        stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) {
            failure = failure_of(ClientErrc::connect, "connect", ec);
            return;
          }
          if (!tls) {
            exchange(stream);
            return;
          }
          tls->async_handshake(asio::ssl::stream_base::client, [&](beast::error_code ec) {
            if (ec == beast::error::timeout) {
              failure = failure_of(ClientErrc::timeout, "handshake", ec);
            } else if (ec) {
              failure = ClientError{ClientErrc::tls,
                                    "handshake: " + handshake_failure(tls->native_handle(), ec)};
            } else {
              exchange(*tls);
            }
          });
        });
      });
  io.run_for(timeout + kResolveGrace);
  if (!io.stopped() && !failure) failure = ClientError{ClientErrc::timeout, "resolve: timed out"};
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (failure) return tl::unexpected(std::move(*failure));
  if (!parser.is_done()) return tl::unexpected(ClientError{ClientErrc::read, "incomplete answer"});
  ClientResponse answer{static_cast<int>(parser.get().result_int()), parser.get().body(), {}};
  for (const auto& field : parser.get()) {
    auto name = std::string(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto [it, inserted] = answer.headers.emplace(std::move(name), field.value());
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  return answer;
}

ClientResult<ClientResponse> get(const std::string& url, const std::string& bearer_token,
                                 int timeout_ms, const TlsClientOptions& tls) {
  return send({.method = "GET",
               .url = url,
               .bearer_token = bearer_token,
               .timeout_ms = timeout_ms,
               .tls = tls});
}

}  // namespace clearing::http
