// The clearing mock's HTTP server: the only translation unit of the mock with Beast and Asio.
// Each connection is one coroutine on its own strand; MockState does the thinking, this file
// reads requests, routes them, and carries out the planned faults on the socket.

#include "clearing/clearing_mock/mock_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "clearing/base/asio.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/http/tls_asio.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::clearing_mock {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using ServerStream = clearing::http::ServerStream;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// A connection serves at most this many requests, then closes (a named bound on the loop;
// clients reconnect transparently).
constexpr int kRequestsPerConnectionMax = 100'000;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// What to do with the connection after handling a request.
enum class Action { answer, close, reset };

struct Handled {
  Action action = Action::answer;
  HttpAnswer answer;
  HostilePlan hostile;  // stray and duplicate responses, carried out by serve()
};

// A server span under the caller's traceparent header (a new trace without one), by the
// process's tracer: off unless the executable (or a test) installed one.
tracing::Span server_span(const Request& request, std::string name, const std::string& reference) {
  std::optional<base::TraceContext> parent;
  if (const auto header = request.find("traceparent"); header != request.end()) {
    const auto state = request.find("tracestate");
    parent = base::parse_traceparent(
        std::string_view(header->value().data(), header->value().size()),
        state == request.end() ? std::string_view()
                               : std::string_view(state->value().data(), state->value().size()));
  }
  auto span = tracing::global_tracer()->start(std::move(name), parent, tracing::SpanKind::server);
  span.set("transfer.id", reference);
  return span;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int high = hex(text[i + 1]);
      const int low = hex(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

HttpAnswer json_error(int status, std::string_view code) {
  return HttpAnswer{status, std::string(R"({"error":{"code":")") + std::string(code) + "\"}}", {}};
}

struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket socket, asio::ssl::context* tls)
      : stream(std::move(socket), tls), timer(stream.get_executor()) {}
  ServerStream stream;  // TCP, or TLS over it
  asio::steady_timer timer;
};

}  // namespace

struct MockServer::Impl {
  Impl(MockOptions options, std::optional<asio::ssl::context> tls)
      : state(options), tls_context(std::move(tls)), acceptor(io) {}

  MockState state;
  std::optional<asio::ssl::context> tls_context;  // options.tls_cert_file
  asio::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;

  std::mutex sessions_mutex;
  bool stopping = false;  // under sessions_mutex
  std::uint64_t next_session_id = 0;
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions;

  std::mutex stop_mutex;
  bool stopped = false;

  const MockOptions& options() const { return state.options(); }

  bool is_stopping() {
    std::lock_guard lock(sessions_mutex);
    return stopping;
  }

  asio::awaitable<void> sleep(Session& session, int ms) {
    // A stop() that came between two sleeps must not be outwaited by the next one.
    if (ms <= 0 || is_stopping()) co_return;
    session.timer.expires_after(std::chrono::milliseconds(ms));
    co_await session.timer.async_wait(kUseTuple);
  }

  // The capacity model (mock_state.hpp): waits for an executor without holding a thread (on
  // the session's timer, which the request giving an executor back cancels through the
  // session's strand), holds it for the execution time, and gives it back. nullopt: the
  // request goes on; otherwise what replaces it (503 OVERLOADED, or a close when stopping).
  asio::awaitable<std::optional<Handled>> pass_capacity(Session& session) {
    std::weak_ptr<Session> weak = session.weak_from_this();
    const Admission admission = state.admit([weak] {
      if (auto woken = weak.lock()) {
        asio::post(woken->stream.get_executor(), [woken] { woken->timer.cancel(); });
      }
    });
    if (admission.kind == Admission::Kind::overloaded) {
      co_return Handled{Action::answer, state.overloaded_answer()};
    }
    if (admission.kind == Admission::Kind::wait) {
      // The wake-up and stop()'s cancel are posted to this strand: both come after this wait
      // has begun, or stop() is seen here first.
      if (!is_stopping()) {
        session.timer.expires_at(asio::steady_timer::time_point::max());
        co_await session.timer.async_wait(kUseTuple);
      }
      if (is_stopping() && state.leave_queue(admission.ticket)) {
        co_return Handled{Action::close, {}};
      }
    }
    co_await sleep(session, state.execution_ms());
    state.finish_execution();
    co_return std::nullopt;
  }

  // The fault-aware flow shared by the three /v1 endpoints. `execute` computes the real
  // answer (for submit: executes the transfer); `abandon` undoes the in-progress mark when a
  // fault stops the request before execution.
  template <class Execute, class Abandon>
  asio::awaitable<Handled> with_faults(Session& session, Endpoint endpoint, Execute execute,
                                       Abandon abandon) {
    const FaultPlan plan = state.plan_faults(endpoint);
    co_await sleep(session, plan.delay_ms);
    if (acts_before_execute(plan.fault)) {
      abandon();
      switch (plan.fault) {
        case FaultClass::reset_before_execute:
          co_return Handled{Action::reset, {}};
        case FaultClass::timeout_before_execute:
          co_await sleep(session, plan.hold_ms);
          co_return Handled{Action::close, {}};
        default:
          co_return Handled{Action::answer, state.fault_answer(plan.fault, HttpAnswer{})};
      }
    }
    HttpAnswer real = execute();
    switch (plan.fault) {
      case FaultClass::timeout_after_execute:
        co_await sleep(session, plan.hold_ms);
        co_return Handled{Action::close, {}};
      case FaultClass::close_after_execute:
        co_return Handled{Action::close, {}};
      case FaultClass::http_504:
      case FaultClass::malformed_json:
        co_return Handled{Action::answer, state.fault_answer(plan.fault, real)};
      default:
        co_return Handled{Action::answer, std::move(real)};
    }
  }

  // The hostile part of a submit's or an inquiry's plan: a damaged answer now, a stray or
  // duplicate response for serve() to write after it.
  Handled with_hostile(Handled handled, Endpoint endpoint) {
    handled.hostile = state.plan_hostile(endpoint);
    if (handled.action != Action::answer) return handled;
    if (auto damaged = state.hostile_answer(handled.hostile.fault, handled.answer)) {
      handled.answer = std::move(*damaged);
    }
    return handled;
  }

  asio::awaitable<Handled> handle_v1(Session& session, const Request& request,
                                     std::string_view path, std::string_view query) {
    if (path == "/v1/transfers" && request.method() == http::verb::post) {
      state.note_request("submit");
      if (auto refused = co_await pass_capacity(session)) co_return std::move(*refused);
      const auto key_field = request.find("Idempotency-Key");
      const std::string key =
          key_field == request.end() ? std::string() : std::string(key_field->value());
      auto span = server_span(request, "clearing-mock submit", key);
      auto immediate = state.begin_submit(key, request.body());
      const bool proceeds = !immediate.has_value();
      Handled handled = co_await with_faults(
          session, Endpoint::submit,
          [&] { return proceeds ? state.execute_submit(key) : *immediate; },
          [&] {
            if (proceeds) state.abandon_submit(key);
          });
      span.set("http.response.status_code", std::int64_t{handled.answer.status});
      co_return with_hostile(std::move(handled), Endpoint::submit);
    }
    if (path.starts_with("/v1/transfers/") && request.method() == http::verb::get) {
      state.note_request("inquire");
      if (auto refused = co_await pass_capacity(session)) co_return std::move(*refused);
      const std::string reference = percent_decode(path.substr(std::strlen("/v1/transfers/")));
      auto span = server_span(request, "clearing-mock inquiry", reference);
      Handled handled = co_await with_faults(
          session, Endpoint::inquire, [&] { return state.inquire(reference); }, [] {});
      span.set("http.response.status_code", std::int64_t{handled.answer.status});
      co_return with_hostile(std::move(handled), Endpoint::inquire);
    }
    if (path == "/v1/incoming" && request.method() == http::verb::get) {
      state.note_request("incoming");
      co_return co_await with_faults(
          session, Endpoint::incoming, [&] { return state.incoming(query); }, [] {});
    }
    co_return Handled{Action::answer, json_error(404, "NO_ROUTE")};
  }

  Handled handle_admin(const Request& request, std::string_view path) {
    state.note_request("admin");
    const auto method = request.method();
    if (path == "/admin/ledger" && method == http::verb::get) {
      return {Action::answer, HttpAnswer{200, state.ledger_json(), {}}};
    }
    if (path == "/admin/stats" && method == http::verb::get) {
      return {Action::answer, HttpAnswer{200, state.stats_json(), {}}};
    }
    if (path == "/admin/faults" && method == http::verb::get) {
      return {Action::answer, HttpAnswer{200, faults_to_json(state.faults()), {}}};
    }
    if (path == "/admin/faults" && method == http::verb::put) {
      return {Action::answer, state.put_faults(request.body())};
    }
    if (path == "/admin/incoming" && method == http::verb::post) {
      return {Action::answer, state.add_incoming(request.body())};
    }
    return {Action::answer, json_error(404, "NO_ROUTE")};
  }

  asio::awaitable<Handled> handle(Session& session, const Request& request) {
    const std::string_view target = request.target();
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    const auto authorization = request.find(http::field::authorization);
    if (authorization == request.end() ||
        authorization->value() != "Bearer " + options().bearer_token) {
      state.note_unauthorized();
      co_return Handled{Action::answer, json_error(401, "UNAUTHORIZED")};
    }
    if (path.starts_with("/admin/")) co_return handle_admin(request, path);
    state.request_started();
    struct Finish {
      MockState& state;
      ~Finish() { state.request_finished(); }
    } finish{state};
    co_return co_await handle_v1(session, request, path, query);
  }

  Response to_response(const Request& request, HttpAnswer answer) {
    Response response{static_cast<http::status>(answer.status), request.version()};
    response.set(http::field::server, "clearing-mock");
    response.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : answer.headers) response.set(name, value);
    response.keep_alive(request.keep_alive());
    response.body() = std::move(answer.body);
    response.prepare_payload();
    return response;
  }

  // The bytes of a whole response, so that two of them leave in one write: two writes
  // could be split by Nagle's algorithm and the client's delayed ACK.
  static std::string serialized(const Response& response) {
    std::ostringstream out;
    out << response;
    return out.str();
  }

  asio::awaitable<bool> write_bytes(Session& session, const std::string& bytes) {
    session.stream.expires_after(std::chrono::milliseconds(options().write_timeout_ms));
    auto written = co_await asio::async_write(session.stream, asio::buffer(bytes), kUseTuple);
    co_return !std::get<0>(written);
  }

  // Writes the answer and what the hostile plan adds after it (a stray or a duplicate
  // response); false when the connection failed. A late stray is written before the next
  // request is read, so it may reach a client that has already sent that request.
  asio::awaitable<bool> write_hostile(Session& session, const Request& request,
                                      const Response& response, const HostilePlan& plan) {
    std::string bytes = serialized(response);
    switch (plan.fault) {
      case HostileFault::duplicate_response:
        bytes += serialized(response);
        state.note_hostile(plan.fault);
        co_return co_await write_bytes(session, bytes);
      case HostileFault::stray_response: {
        const std::string stray = serialized(to_response(request, state.stray_answer(plan)));
        state.note_hostile(plan.fault);
        if (plan.stray_delay_ms == 0) co_return co_await write_bytes(session, bytes + stray);
        if (!co_await write_bytes(session, bytes)) co_return false;
        co_await sleep(session, plan.stray_delay_ms);
        if (is_stopping()) co_return false;
        co_return co_await write_bytes(session, stray);
      }
      default:
        co_return co_await write_bytes(session, bytes);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> session) {
    beast::flat_buffer buffer;
    auto& stream = session->stream;
    if (stream.is_tls()) {
      stream.expires_after(std::chrono::milliseconds(options().idle_timeout_ms));
      constexpr auto kServer = asio::ssl::stream_base::server;
      auto handshaken = co_await stream.tls().async_handshake(kServer, kUseTuple);
      if (std::get<0>(handshaken)) {  // not TLS, or no or an untrusted client certificate
        beast::error_code ignored;
        stream.socket().close(ignored);
        co_return;
      }
    }
    for (int served = 0; served < kRequestsPerConnectionMax; ++served) {
      // The idle keep-alive wait and a slow request share one deadline.
      stream.expires_after(std::chrono::milliseconds(options().idle_timeout_ms));
      http::request_parser<http::string_body> parser;
      parser.body_limit(options().request_body_bytes_max);
      auto read_result = co_await http::async_read(stream, buffer, parser, kUseTuple);
      const beast::error_code read_error = std::get<0>(read_result);
      if (read_error == http::error::body_limit) {
        Request head{parser.get().method(), parser.get().target(), parser.get().version()};
        auto response = to_response(head, json_error(413, "BODY_TOO_LARGE"));
        response.keep_alive(false);
        stream.expires_after(std::chrono::milliseconds(options().write_timeout_ms));
        co_await http::async_write(stream, response, kUseTuple);
        break;
      }
      if (read_error) break;  // closed, timed out, or not HTTP: nothing to answer
      Request request = parser.release();
      stream.expires_never();  // handling (and injected holds) is bounded by the fault plan
      Handled handled = co_await handle(*session, request);
      if (is_stopping()) break;
      if (handled.action == Action::reset) {
        beast::error_code ignored;
        stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
        stream.socket().close(ignored);
        co_return;
      }
      if (handled.action == Action::close) break;
      auto response = to_response(request, std::move(handled.answer));
      // Bytes from the client before it has this answer: it did not wait for it.
      beast::error_code available_error;
      if (buffer.size() > 0 || stream.socket().available(available_error) > 0)
        state.note_request_before_answer();
      if (handled.hostile.fault != HostileFault::none) {
        // On a connection the client closes too: a proxy may send its extra bytes anyway,
        // and a client that reads one answer per connection never sees them.
        if (!co_await write_hostile(*session, request, response, handled.hostile) ||
            !response.keep_alive())
          break;
        continue;
      }
      stream.expires_after(std::chrono::milliseconds(options().write_timeout_ms));
      auto write_result = co_await http::async_write(stream, response, kUseTuple);
      const beast::error_code write_error = std::get<0>(write_result);
      if (write_error || !response.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      // g++ 12 destroys some temporaries of a co_await full-expression twice (see
      // http/src/server.cpp): the strand is a named local, the result taken apart
      // with std::get.
      auto connection_strand = asio::make_strand(io);
      auto accepted = co_await acceptor.async_accept(connection_strand, kUseTuple);
      const beast::error_code error = std::get<0>(accepted);
      tcp::socket socket = std::get<1>(std::move(accepted));
      if (error) {
        if (!acceptor.is_open() || is_stopping()) co_return;
        continue;  // e.g. too many open files: keep serving the others
      }
      auto* tls = tls_context ? &*tls_context : nullptr;
      auto session = std::make_shared<Session>(std::move(socket), tls);
      std::uint64_t id = 0;
      {
        std::lock_guard lock(sessions_mutex);
        if (stopping) co_return;
        id = next_session_id++;
        sessions.emplace(id, session);
      }
      state.note_connection();
      auto executor = session->stream.get_executor();
      asio::co_spawn(executor, serve(session), [this, id](std::exception_ptr) {
        std::lock_guard lock(sessions_mutex);
        sessions.erase(id);
      });
    }
  }

  void close_everything() {
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(sessions_mutex);
      stopping = true;
      for (auto& [id, weak] : sessions) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
      }
    }
    asio::post(acceptor.get_executor(), [this] {
      beast::error_code ignored;
      acceptor.close(ignored);
    });
    for (auto& session : open) {
      // Sockets and timers are not thread safe: close them on the session's strand.
      asio::post(session->stream.get_executor(), [session] {
        beast::error_code ignored;
        session->timer.cancel();
        session->stream.socket().close(ignored);
      });
    }
  }
};

tl::expected<std::unique_ptr<MockServer>, std::string> MockServer::start(MockOptions options) {
  if (auto valid = validate_options(options); !valid) return tl::unexpected(valid.error());
  std::optional<asio::ssl::context> tls;
  if (!options.tls_cert_file.empty()) {
    auto made = clearing::http::make_server_context({.cert_file = options.tls_cert_file,
                                                     .key_file = options.tls_key_file,
                                                     .client_ca_file = options.tls_client_ca_file});
    if (!made) return tl::unexpected(made.error().message);
    tls.emplace(std::move(*made));
  }
  auto impl = std::make_unique<Impl>(options, std::move(tls));
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(options.host),
                                 static_cast<std::uint16_t>(options.port));
    impl->acceptor.open(endpoint.protocol());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl->acceptor.bind(endpoint);
    impl->acceptor.listen(asio::socket_base::max_listen_connections);
    impl->bound_port = impl->acceptor.local_endpoint().port();
  } catch (const std::exception& error) {
    return tl::unexpected("cannot listen on " + options.host + ":" + std::to_string(options.port) +
                          ": " + error.what());
  }
  Impl* raw = impl.get();
  asio::co_spawn(raw->acceptor.get_executor(), raw->accept_loop(), asio::detached);
  for (int i = 0; i < options.threads; ++i) {
    impl->threads.emplace_back([raw] { raw->io.run(); });
  }
  return std::unique_ptr<MockServer>(new MockServer(std::move(impl)));
}

MockServer::MockServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockServer::~MockServer() { stop(); }

std::uint16_t MockServer::port() const { return impl_->bound_port; }

std::string MockServer::base_url() const {
  return (impl_->tls_context ? "https://" : "http://") + impl_->options().host + ":" +
         std::to_string(impl_->bound_port);
}

MockState& MockServer::state() { return impl_->state; }

void MockServer::stop() {
  {
    std::lock_guard lock(impl_->stop_mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->close_everything();
  for (auto& thread : impl_->threads) thread.join();
}

void MockServer::run_until_signal() {
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([](const beast::error_code&, int) {});
  signals_io.run();
  stop();
}

}  // namespace clearing::clearing_mock
