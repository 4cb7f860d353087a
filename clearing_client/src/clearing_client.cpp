// The clearing client's I/O: the only translation unit of this module with Beast and Asio.
//
// One io_context run by one thread owns all mutable state below (pool, waiters, in-flight
// count), so none of it needs a lock; public calls only post onto that thread. Stats are the
// exception: they are read from other threads, under stats_mutex.

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

#include "base_url.hpp"
#include "clearing/base/asio.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/text.hpp"
#include "clearing/clearing_client/classify.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/clearing_client/concurrency_limiter.hpp"
#include "clearing/http/tls_asio.hpp"
#include "clearing/http/url.hpp"

namespace clearing::clearing_client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

// g++ 12 destroys some temporaries of a co_await full-expression twice (see
// http/src/server.cpp). So every co_await here takes named lvalues or trivially
// destructible values, results are taken apart with std::get rather than structured bindings,
// and no awaitable operator (`||`, `&&`: parallel groups of deferred co_spawns built inside
// the co_await expression) is used.
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// A pooled connection idle for longer than this is closed instead of reused: servers close
// idle keep-alive connections (the mock after 60 s), and a request on a connection the server
// is closing fails ambiguously.
constexpr std::chrono::milliseconds kIdleConnectionAgeMax{20'000};
// A request that failed on a reused connection before any byte of an answer arrived is sent
// once more on a fresh connection: the classic stale keep-alive race. Safe because every
// call is idempotent (submit carries its idempotency key). Bounded, as every retry.
constexpr int kStaleConnectionRetriesMax = 1;

std::shared_ptr<spdlog::logger> module_logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("clearing_client")) return existing;
    auto created = spdlog::default_logger()->clone("clearing_client");
    try {
      spdlog::register_logger(created);
    } catch (const spdlog::spdlog_ex&) {
      // Another thread registered it first; use that one.
      if (auto existing = spdlog::get("clearing_client")) return existing;
    }
    return created;
  }();
  return logger;
}

ClearingAnswer cancelled_answer() {
  ClearingAnswer answer;
  answer.answer_class = AnswerClass::unknown;
  answer.cause = UnknownCause::connection_reset;
  answer.detail = "cancelled: client stopped";
  return answer;
}

template <class T>
T cancelled_result();
template <>
ClearingAnswer cancelled_result<ClearingAnswer>() {
  return cancelled_answer();
}
template <>
IncomingPage cancelled_result<IncomingPage>() {
  IncomingPage page;
  page.failure = cancelled_answer();
  return page;
}

// The promise of one call. Completes exactly once; if the coroutine that owns it is destroyed
// without completing (io_context torn down), the destructor completes it as cancelled, so a
// caller blocked on the future can never be left hanging or see broken_promise.
template <class T>
class Completion {
 public:
  explicit Completion(std::promise<T> promise) : promise_(std::move(promise)) {}
  Completion(Completion&& other) noexcept
      : promise_(std::move(other.promise_)), done_(std::exchange(other.done_, true)) {}
  Completion& operator=(Completion&&) = delete;
  ~Completion() {
    if (!done_) complete(cancelled_result<T>());
  }
  void complete(T value) {
    if (done_) return;
    done_ = true;
    promise_.set_value(std::move(value));
  }

 private:
  std::promise<T> promise_;
  bool done_ = false;
};

struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  SteadyTime idle_since{};

  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*tls); }

  enum class PeerState { quiet, unread, closed };

  // Without blocking: whether anything from the peer waits unread (bytes the parser read
  // past the last answer, bytes TLS holds, bytes on the socket) or the peer has closed.
  // Between two requests a well-behaved server sends nothing, so anything here is an
  // answer nobody asked for, and would be read as the next request's.
  PeerState peer_state() {
    if (buffer.size() > 0) return PeerState::unread;
    if (tls) {
      SSL* session = tls->native_handle();
      if (SSL_pending(session) > 0 || BIO_pending(SSL_get_rbio(session)) > 0) {
        return PeerState::unread;
      }
    }
    char byte = 0;
    const auto peeked =
        ::recv(lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (peeked > 0) return PeerState::unread;
    if (peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return PeerState::quiet;
    return PeerState::closed;  // end of stream, or an error: either way not reusable
  }

  void close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }
};

struct Waiter {
  explicit Waiter(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  bool granted = false;
};

// What came back from the wire: an HTTP answer, or a failure already classified.
struct RawAnswer {
  bool received = false;
  int http_status = 0;
  std::string body;
  std::optional<std::string> retry_after;
  ClearingAnswer failure;
};

struct RequestSpec {
  CallKind kind;
  http::verb method;
  std::string target;
  std::string body;
  std::string idempotency_key;  // submit only
  std::string reference;        // correlation in logs; "" for the feed
  CallTrace trace = {};         // traceparent / tracestate headers when not empty
};

enum class Phase { connect, write, read };

struct ExchangeOutcome {
  beast::error_code error;
  Phase phase = Phase::write;
  bool got_some = false;  // any byte of an answer arrived
  RawAnswer answer;
  bool keep_alive = false;
};

bool is_peer_closed(const beast::error_code& error) {
  return error == http::error::end_of_stream || error == asio::error::eof ||
         error == asio::error::connection_reset || error == asio::error::broken_pipe ||
         error == asio::error::connection_aborted;
}

}  // namespace

struct ClearingClient::Impl {
  Impl(ClientOptions options_in, BaseUrl url_in)
      : options(std::move(options_in)), url(std::move(url_in)) {
    if (options.adaptive_concurrency) {
      LimiterOptions o;
      o.min_limit = options.concurrency_min;
      o.max_limit = options.in_flight_max;
      o.initial_limit = options.concurrency_initial;
      limiter.emplace(o, std::chrono::steady_clock::now());
    }
    limit_now = current_limit();
    stats.concurrency_limit_min = limiter ? options.concurrency_min : options.in_flight_max;
    stats.concurrency_limit_max = options.in_flight_max;
    logged_limit = limit_now;
  }

  ClientOptions options;
  BaseUrl url;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::optional<ssl::context> tls_context;
  std::shared_ptr<spdlog::logger> logger = module_logger();
  std::thread thread;

  // Guards the stopped flag against calls racing stop(): no coroutine is spawned after it.
  std::mutex lifecycle_mutex;
  bool stopped = false;

  // I/O-thread state.
  bool stopping = false;
  int in_flight = 0;
  std::optional<ConcurrencyLimiter> limiter;  // adaptive_concurrency only
  int logged_limit = 0;                       // the limit last logged at info level
  std::atomic<int> limit_now{0};              // current_limit(), for other threads
  std::deque<Waiter*> waiters;
  std::vector<std::unique_ptr<Connection>> idle;
  std::set<Connection*> active;
  std::set<tcp::resolver*> resolvers;  // resolves in progress (host names only)

  mutable std::mutex stats_mutex;
  ClientStats stats;

  template <class F>
  void update_stats(F&& change) {
    std::lock_guard lock(stats_mutex);
    change(stats);
  }

  // --- in-flight slots -------------------------------------------------------------------

  asio::awaitable<std::optional<ClearingAnswer>> acquire_slot() {
    if (stopping) co_return cancelled_answer();
    if (in_flight < current_limit()) {
      ++in_flight;
      co_return std::nullopt;
    }
    if (waiters.size() >= static_cast<std::size_t>(options.waiting_max)) {
      update_stats([](ClientStats& s) { ++s.rejected_overloaded; });
      ClearingAnswer answer;
      answer.cause = UnknownCause::connect_failed;
      answer.detail = "overloaded: waiting_max calls already wait for a slot; nothing sent";
      co_return answer;
    }
    Waiter waiter(io);
    waiter.timer.expires_after(std::chrono::milliseconds(options.request_timeout_ms));
    waiters.push_back(&waiter);
    update_stats([&](ClientStats& s) {
      s.waiting_now = static_cast<std::int64_t>(waiters.size());
      s.waiting_peak = std::max(s.waiting_peak, s.waiting_now);
    });
    co_await waiter.timer.async_wait(kUseTuple);
    if (!waiter.granted) std::erase(waiters, &waiter);
    update_stats(
        [&](ClientStats& s) { s.waiting_now = static_cast<std::int64_t>(waiters.size()); });
    // The slot was handed over by release_slot(): in_flight already counts it.
    if (waiter.granted) co_return std::nullopt;
    if (stopping) co_return cancelled_answer();
    ClearingAnswer answer;
    answer.cause = UnknownCause::connect_failed;
    answer.detail = "no in-flight slot within request_timeout_ms; nothing sent";
    co_return answer;
  }

  int current_limit() const { return limiter ? limiter->limit() : options.in_flight_max; }

  // Hands the slot to the first waiter while the limit allows it (after a cut it may not).
  void release_slot() {
    CLEARING_ASSERT(in_flight > 0);
    if (!waiters.empty() && !stopping && in_flight <= current_limit()) {
      Waiter* next = waiters.front();
      waiters.pop_front();
      next->granted = true;  // hand the slot over; in_flight stays the same
      next->timer.cancel();
      return;
    }
    --in_flight;
  }

  // After the limit grew: the waiters it now lets through.
  void grant_waiters() {
    while (!waiters.empty() && !stopping && in_flight < current_limit()) {
      Waiter* next = waiters.front();
      waiters.pop_front();
      ++in_flight;
      next->granted = true;
      next->timer.cancel();
    }
  }

  // A drop, to the limiter: the clearing could not take the call (503, 429), did not answer
  // within the deadline, or refused the connection. Not our own refusals (no slot,
  // overloaded queue: those never reach here) nor a stop.
  static bool is_drop(const RawAnswer& raw) {
    if (raw.received) return raw.http_status == 503 || raw.http_status == 429;
    return raw.failure.cause == UnknownCause::timeout ||
           raw.failure.cause == UnknownCause::connect_failed;
  }

  // Feeds one answered submission or inquiry to the limiter; logs and counts a change.
  void note_answer(const RequestSpec& spec, const RawAnswer& raw,
                   std::chrono::steady_clock::time_point started, int on_wire) {
    if (!limiter || stopping || spec.kind == CallKind::incoming) return;
    const auto now = std::chrono::steady_clock::now();
    const double rtt_ms = std::chrono::duration<double, std::milli>(now - started).count();
    const int before = limiter->limit();
    const auto change = limiter->on_answer(now, rtt_ms, on_wire, is_drop(raw));
    if (change == LimitChange::none) return;
    const int after = limiter->limit();
    limit_now = after;
    // A probe's halving and restoring are neither raise nor cut: the limit learnt stays.
    const bool probe = change == LimitChange::probing || change == LimitChange::probed;
    update_stats([&](ClientStats& s) {
      if (probe || after == before) return;
      ++(after > before ? s.concurrency_limit_raises : s.concurrency_limit_cuts);
    });
    // Every change at debug level; at info when the limit learnt moved a quarter or more
    // since the last one logged there, so that a limit settling at the clearing's knee (and
    // its probes) is quiet.
    const auto& window = limiter->last_window();
    const bool notable = !probe && std::abs(after - logged_limit) >= std::max(2, logged_limit / 4);
    if (notable) logged_limit = after;
    logger->log(notable ? spdlog::level::info : spdlog::level::debug,
                "clearing_concurrency_limit from={} to={} reason={} rtt_ms={:.1f} "
                "baseline_ms={:.1f} in_flight_max={} answers={} drops={}",
                before, after, to_string(change), window.rtt_ms, window.baseline_ms,
                window.in_flight_max, window.answers, window.drops);
    if (after > before) grant_waiters();
  }

  // --- connections -------------------------------------------------------------------------

  std::unique_ptr<Connection> take_idle() {
    const auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
      auto connection = std::move(idle.back());
      idle.pop_back();
      if (now - connection->idle_since >= kIdleConnectionAgeMax) {
        connection->close();
        continue;
      }
      // Checked again right before reuse: bytes can arrive, or the peer close, while the
      // connection sits in the pool.
      if (connection->peer_state() != Connection::PeerState::quiet) {
        update_stats([](ClientStats& s) { ++s.idle_connections_discarded; });
        logger->warn("clearing_idle_connection_discarded reason=unread_or_closed");
        connection->close();
        continue;
      }
      return connection;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Connection> connection) {
    if (stopping || idle.size() >= static_cast<std::size_t>(options.pool_connections_max)) {
      connection->close();
      return;
    }
    connection->idle_since = std::chrono::steady_clock::now();
    idle.push_back(std::move(connection));
  }

  // Resolve + connect (+ TLS handshake), bounded by connect_deadline. On failure returns the
  // classified answer (connect_failed: nothing was sent).
  asio::awaitable<std::variant<std::unique_ptr<Connection>, ClearingAnswer>> open_connection(
      SteadyTime connect_deadline) {
    auto failure = [](std::string detail) {
      ClearingAnswer answer;
      answer.cause = UnknownCause::connect_failed;
      answer.detail = std::move(detail);
      return answer;
    };
    tcp::resolver::results_type endpoints;
    beast::error_code numeric_error;
    const auto address = asio::ip::make_address(url.host, numeric_error);
    unsigned port = 0;
    const auto port_end = url.port.data() + url.port.size();
    const auto parsed_port = std::from_chars(url.port.data(), port_end, port);
    if (!numeric_error && parsed_port.ec == std::errc() && parsed_port.ptr == port_end &&
        port <= 65535) {
      // A literal address (the usual case): no resolver, nothing that could outlast a deadline.
      const tcp::endpoint endpoint(address, static_cast<std::uint16_t>(port));
      endpoints = tcp::resolver::results_type::create(endpoint, url.host, url.port);
    } else {
      // A per-connection resolver, so that its watchdog cancels this resolve only. The
      // watchdog is a plain handler, not an awaitable operator: asio's resolver ignores
      // per-operation cancellation, so `resolve || timer` could never end a resolve early.
      auto resolver = std::make_shared<tcp::resolver>(io);
      resolvers.insert(resolver.get());
      struct Forget {
        Impl& impl;
        tcp::resolver* resolver;
        ~Forget() { impl.resolvers.erase(resolver); }
      } forget{*this, resolver.get()};
      asio::steady_timer watchdog(io);
      watchdog.expires_at(connect_deadline);
      bool timed_out = false;
      watchdog.async_wait([weak = std::weak_ptr<tcp::resolver>(resolver),
                           flag = &timed_out](const beast::error_code& error) {
        if (error) return;  // cancelled: the resolve finished (flag may be gone)
        if (auto alive = weak.lock()) {
          *flag = true;
          alive->cancel();
        }
      });
      auto resolved = co_await resolver->async_resolve(url.host, url.port, kUseTuple);
      watchdog.cancel();
      const beast::error_code resolve_error = std::get<0>(resolved);
      if (stopping) co_return cancelled_answer();
      if (timed_out) co_return failure("resolve timed out");
      if (resolve_error) co_return failure("resolve failed: " + resolve_error.message());
      endpoints = std::get<1>(std::move(resolved));
    }
    if (stopping) co_return cancelled_answer();

    auto connection = std::make_unique<Connection>();
    if (url.tls) {
      connection->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, *tls_context);
    } else {
      connection->plain = std::make_unique<beast::tcp_stream>(io);
    }
    active.insert(connection.get());
    struct Untrack {
      Impl& impl;
      Connection* connection;
      ~Untrack() { impl.active.erase(connection); }
    } untrack{*this, connection.get()};

    connection->lowest().expires_at(connect_deadline);
    auto connected = co_await connection->lowest().async_connect(endpoints, kUseTuple);
    const beast::error_code connect_error = std::get<0>(connected);
    if (stopping) co_return cancelled_answer();
    if (connect_error == beast::error::timeout) co_return failure("connect timed out");
    if (connect_error) co_return failure("connect failed: " + connect_error.message());
    beast::error_code ignored;
    connection->lowest().socket().set_option(tcp::no_delay(true), ignored);

    if (url.tls) {
      // SNI, and with verify_tls the host name (or IP address) the certificate must carry.
      if (!clearing::http::prepare_client_session(connection->tls->native_handle(), url.host,
                                                  options.verify_tls)) {
        co_return failure("TLS: cannot set the host name to verify");
      }
      constexpr auto kHandshakeType = ssl::stream_base::client;
      auto handshaken = co_await connection->tls->async_handshake(kHandshakeType, kUseTuple);
      const beast::error_code handshake_error = std::get<0>(handshaken);
      if (stopping) co_return cancelled_answer();
      if (handshake_error) {
        co_return failure(
            "TLS handshake failed: " +
            clearing::http::handshake_failure(connection->tls->native_handle(), handshake_error));
      }
    }
    update_stats([](ClientStats& s) { ++s.connections_opened; });
    co_return std::move(connection);
  }

  template <class Stream>
  asio::awaitable<ExchangeOutcome> exchange_on(Stream& stream, Connection& connection,
                                               const http::request<http::string_body>& request,
                                               SteadyTime deadline) {
    ExchangeOutcome outcome;
    connection.lowest().expires_at(deadline);
    auto write_result = co_await http::async_write(stream, request, kUseTuple);
    const beast::error_code write_error = std::get<0>(write_result);
    if (write_error) {
      outcome.error = write_error;
      outcome.phase = Phase::write;
      co_return outcome;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(options.response_body_bytes_max);
    auto read_result = co_await http::async_read(stream, connection.buffer, parser, kUseTuple);
    const beast::error_code read_error = std::get<0>(read_result);
    const std::size_t read = std::get<1>(read_result);
    outcome.got_some = parser.got_some() || read > 0;
    if (read_error) {
      outcome.error = read_error;
      outcome.phase = Phase::read;
      co_return outcome;
    }
    auto response = parser.release();
    outcome.answer.received = true;
    outcome.answer.http_status = static_cast<int>(response.result_int());
    if (auto it = response.find(http::field::retry_after); it != response.end()) {
      outcome.answer.retry_after = std::string(it->value());
    }
    outcome.keep_alive = response.keep_alive();
    outcome.answer.body = std::move(response.body());
    co_return outcome;
  }

  asio::awaitable<ExchangeOutcome> exchange(Connection& connection,
                                            const http::request<http::string_body>& request,
                                            SteadyTime deadline) {
    active.insert(&connection);
    struct Untrack {
      Impl& impl;
      Connection* connection;
      ~Untrack() { impl.active.erase(connection); }
    } untrack{*this, &connection};
    ExchangeOutcome outcome;
    if (connection.plain) {
      outcome = co_await exchange_on(*connection.plain, connection, request, deadline);
    } else {
      outcome = co_await exchange_on(*connection.tls, connection, request, deadline);
    }
    co_return outcome;
  }

  ClearingAnswer classify_transport_error(const ExchangeOutcome& outcome) const {
    ClearingAnswer answer;
    answer.answer_class = AnswerClass::unknown;
    const auto& error = outcome.error;
    const char* phase = outcome.phase == Phase::write ? "write" : "read";
    if (stopping) return cancelled_answer();
    if (error == beast::error::timeout) {
      answer.cause = UnknownCause::timeout;
      answer.detail = std::string("deadline passed during ") + phase;
    } else if (error == http::error::body_limit || error == http::error::header_limit ||
               error == http::error::buffer_overflow) {
      answer.cause = UnknownCause::unparsable_body;
      answer.detail = "answer larger than the limit";
    } else if (error.category() == beast::error_code(http::error::end_of_stream).category() &&
               error != http::error::end_of_stream && error != http::error::partial_message) {
      answer.cause = UnknownCause::unparsable_body;
      answer.detail = "malformed HTTP answer: " + error.message();
    } else {
      answer.cause = UnknownCause::connection_reset;
      answer.detail = std::string("connection lost during ") + phase + ": " + error.message();
    }
    return answer;
  }

  http::request<http::string_body> build_request(const RequestSpec& spec) const {
    http::request<http::string_body> request{spec.method, url.prefix + spec.target, 11};
    request.set(http::field::host, url.host);
    request.set(http::field::authorization, "Bearer " + options.bearer_token);
    request.set(http::field::accept, "application/json");
    request.set(http::field::user_agent, "clearing-adapter");
    request.keep_alive(options.reuse_connections);
    if (!spec.idempotency_key.empty()) request.set("Idempotency-Key", spec.idempotency_key);
    if (!spec.trace.traceparent.empty()) request.set("traceparent", spec.trace.traceparent);
    if (!spec.trace.tracestate.empty()) request.set("tracestate", spec.trace.tracestate);
    if (spec.method == http::verb::post) {
      request.set(http::field::content_type, "application/json");
      request.body() = spec.body;
    }
    request.prepare_payload();
    return request;
  }

  // One request under one deadline: a pooled or fresh connection, write, read.
  asio::awaitable<RawAnswer> perform(const RequestSpec& spec) {
    std::optional<ClearingAnswer> refused = co_await acquire_slot();
    if (refused) {
      RawAnswer raw;
      raw.failure = std::move(*refused);
      co_return raw;
    }
    update_stats([&](ClientStats& s) {
      ++s.requests_started;
      s.in_flight_now = in_flight;
      s.in_flight_peak = std::max(s.in_flight_peak, s.in_flight_now);
    });
    RawAnswer raw;
    const auto started = std::chrono::steady_clock::now();
    const int on_wire = in_flight;
    try {
      raw = co_await perform_with_slot(spec);
    } catch (...) {
      // The slot must come back whatever happened, or waiters would starve for ever.
      release_slot();
      update_stats([&](ClientStats& s) { s.in_flight_now = in_flight; });
      throw;
    }
    note_answer(spec, raw, started, on_wire);
    release_slot();
    update_stats([&](ClientStats& s) { s.in_flight_now = in_flight; });
    co_return raw;
  }

  asio::awaitable<RawAnswer> perform_with_slot(const RequestSpec& spec) {
    const auto now = std::chrono::steady_clock::now();
    const SteadyTime deadline = now + std::chrono::milliseconds(options.request_timeout_ms);
    const auto request = build_request(spec);
    RawAnswer raw;
    for (int attempt = 0; attempt <= kStaleConnectionRetriesMax; ++attempt) {
      if (stopping) {
        raw.failure = cancelled_answer();
        co_return raw;
      }
      auto connection = options.reuse_connections ? take_idle() : nullptr;
      const bool reused = connection != nullptr;
      if (!connection) {
        const SteadyTime connect_deadline =
            std::min(deadline, std::chrono::steady_clock::now() +
                                   std::chrono::milliseconds(options.connect_timeout_ms));
        auto opened = co_await open_connection(connect_deadline);
        if (auto* failure = std::get_if<ClearingAnswer>(&opened)) {
          raw.failure = std::move(*failure);
          co_return raw;
        }
        connection = std::move(std::get<0>(opened));
      } else {
        update_stats([](ClientStats& s) { ++s.connections_reused; });
      }
      auto outcome = co_await exchange(*connection, request, deadline);
      if (!outcome.error) {
        auto peer = outcome.keep_alive && options.reuse_connections ? connection->peer_state()
                                                                    : Connection::PeerState::closed;
        // An answer naming another reference means the connection is out of step: this
        // request's own answer may come next, and must not be read by the next request.
        if (peer == Connection::PeerState::quiet && spec.kind != CallKind::incoming &&
            names_another_reference(outcome.answer.body, spec.reference)) {
          peer = Connection::PeerState::unread;
        }
        if (peer == Connection::PeerState::quiet) {
          give_back(std::move(connection));
        } else {
          if (peer == Connection::PeerState::unread) {
            update_stats([](ClientStats& s) { ++s.connections_discarded_unread; });
            logger->warn("clearing_connection_discarded reason=unread_after_answer reference={}",
                         spec.reference);
          }
          connection->close();
        }
        co_return std::move(outcome.answer);
      }
      connection->close();
      const bool stale = reused && !outcome.got_some && is_peer_closed(outcome.error) &&
                         std::chrono::steady_clock::now() < deadline && !stopping;
      if (stale && attempt < kStaleConnectionRetriesMax) {
        update_stats([](ClientStats& s) { ++s.stale_retries; });
        logger->debug("clearing_stale_connection reference={} error={}", spec.reference,
                      outcome.error.message());
        continue;
      }
      raw.failure = classify_transport_error(outcome);
      co_return raw;
    }
    CLEARING_ASSERT_MSG(false, "stale retry loop exhausted without an answer");
    co_return raw;
  }

  void log_answer(const RequestSpec& spec, const ClearingAnswer& answer) const {
    const auto level = answer.answer_class == AnswerClass::unknown ||
                               answer.answer_class == AnswerClass::unauthorized ||
                               answer.answer_class == AnswerClass::malformed_request ||
                               answer.answer_class == AnswerClass::key_reused
                           ? spdlog::level::warn
                           : spdlog::level::info;
    // Details from the clearing may quote the request (names, accounts): log only our own
    // transport diagnostics (no HTTP answer), and codes otherwise.
    logger->log(
        level,
        "clearing_call call={} reference={} answer={} cause={} http_status={} "
        "reason_code={} latency_ms={} detail=\"{}\"",
        spec.kind == CallKind::submit    ? "submit"
        : spec.kind == CallKind::inquire ? "inquire"
                                         : "incoming",
        spec.reference, to_string(answer.answer_class), to_string(answer.cause), answer.http_status,
        answer.reason_code, answer.latency_ms,
        answer.http_status == 0 || is_own_detail(answer.cause) ? answer.detail : std::string());
  }

  // These details are written by classify from field names and limits, never from values.
  static bool is_own_detail(UnknownCause cause) {
    return cause == UnknownCause::reference_mismatch || cause == UnknownCause::contract_violation;
  }

  // The alarms of a refused answer: counted, and a reference mismatch logged at error level
  // (a stray answer or a proxy's mix-up; someone must look). Neither reference is PII.
  void count_refusal(const RequestSpec& spec, const ClearingAnswer& answer) {
    if (answer.cause == UnknownCause::reference_mismatch) {
      update_stats([](ClientStats& s) { ++s.reference_mismatches; });
      logger->error(
          "clearing_answer_reference_mismatch call={} reference={} http_status={} "
          "detail=\"the answer names another reference; not taken as this call's answer\"",
          spec.kind == CallKind::submit ? "submit" : "inquire", spec.reference, answer.http_status);
    } else if (answer.cause == UnknownCause::contract_violation) {
      update_stats([](ClientStats& s) { ++s.contract_violations; });
    }
  }

  // Performs `spec` and classifies what came back with `classify(raw)`. A transport failure
  // or an internal error becomes the answer `failed(failure)` makes of it; its detail is our
  // own text but quotes library messages: one storable line, like classify's.
  template <class T, class Classify, class Failed>
  asio::awaitable<T> perform_classified(const RequestSpec& spec, Classify classify, Failed failed) {
    ClearingAnswer failure;
    try {
      RawAnswer raw = co_await perform(spec);
      if (raw.received) co_return classify(raw);
      failure = std::move(raw.failure);
      failure.detail = base::escape_text(failure.detail, kDetailBytesMax);
    } catch (const std::exception& error) {
      failure = ClearingAnswer{};
      failure.cause = UnknownCause::connection_reset;
      failure.detail =
          base::escape_text(std::string("internal error: ") + error.what(), kDetailBytesMax);
    }
    co_return failed(std::move(failure));
  }

  static std::int64_t elapsed_ms(std::chrono::steady_clock::time_point started) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started)
        .count();
  }

  asio::awaitable<void> run_call(RequestSpec spec, Completion<ClearingAnswer> completion) {
    const auto started = std::chrono::steady_clock::now();
    ClearingAnswer answer = co_await perform_classified<ClearingAnswer>(
        spec,
        [&spec](const RawAnswer& raw) {
          return classify_answer(spec.kind, raw.http_status, raw.body, raw.retry_after,
                                 spec.reference);
        },
        [](ClearingAnswer failure) { return failure; });
    answer.latency_ms = elapsed_ms(started);
    count_refusal(spec, answer);
    log_answer(spec, answer);
    completion.complete(std::move(answer));
  }

  asio::awaitable<void> run_incoming(RequestSpec spec, Completion<IncomingPage> completion) {
    const auto started = std::chrono::steady_clock::now();
    IncomingPage page = co_await perform_classified<IncomingPage>(
        spec,
        [](const RawAnswer& raw) {
          return classify_incoming(raw.http_status, raw.body, raw.retry_after);
        },
        [](ClearingAnswer failure) {
          IncomingPage failed;
          failed.failure = std::move(failure);
          return failed;
        });
    page.latency_ms = elapsed_ms(started);
    page.failure.latency_ms = page.latency_ms;
    if (!page.ok) {
      count_refusal(spec, page.failure);
      log_answer(spec, page.failure);
    }
    completion.complete(std::move(page));
  }

  // Called on the I/O thread by stop().
  void cancel_everything() {
    stopping = true;
    for (Waiter* waiter : waiters) waiter->timer.cancel();
    waiters.clear();
    for (Connection* connection : active) connection->close();
    for (auto& connection : idle) connection->close();
    idle.clear();
    for (tcp::resolver* resolver : resolvers) resolver->cancel();
    work.reset();
  }

  template <class T, class Body>
  std::future<T> spawn(Body body) {
    std::promise<T> promise;
    auto future = promise.get_future();
    Completion<T> completion(std::move(promise));
    std::lock_guard lock(lifecycle_mutex);
    if (stopped) {
      completion.complete(cancelled_result<T>());
      return future;
    }
    asio::co_spawn(io, body(std::move(completion)), asio::detached);
    return future;
  }
};

tl::expected<std::unique_ptr<ClearingClient>, OptionsError> ClearingClient::start(
    ClientOptions options) {
  if (auto valid = validate_options(options); !valid) return tl::unexpected(valid.error());
  auto url = parse_base_url(options.base_url);
  CLEARING_ASSERT(url.has_value());
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*url));
  if (impl->url.tls) {
    // The one TLS context builder (http/tls.hpp): TLS 1.2 at least, the chain verified against
    // ca_file (or the system's CAs), the client certificate when given.
    auto made = clearing::http::make_client_context({.ca_file = impl->options.ca_file,
                                                     .verify = impl->options.verify_tls,
                                                     .cert_file = impl->options.client_cert_file,
                                                     .key_file = impl->options.client_key_file});
    if (!made) {
      const auto& option = made.error().option;
      const std::string field = option == "ca_file"     ? "ca_file"
                                : option == "cert_file" ? "client_cert_file"
                                                        : "client_key_file";
      return tl::unexpected(
          OptionsError{field, "clearing client TLS setup failed: " + made.error().message});
    }
    impl->tls_context.emplace(std::move(*made));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<ClearingClient>(new ClearingClient(std::move(impl)));
}

ClearingClient::ClearingClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClearingClient::~ClearingClient() { stop(); }

void ClearingClient::stop() {
  {
    std::lock_guard lock(impl_->lifecycle_mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl] { impl->cancel_everything(); });
  if (impl->thread.joinable()) impl->thread.join();
}

std::future<ClearingAnswer> ClearingClient::submit(SubmitRequest request, CallTrace trace) {
  RequestSpec spec{
      CallKind::submit,  http::verb::post,  "/v1/transfers", encode_submit_body(request),
      request.reference, request.reference, std::move(trace)};
  Impl* impl = impl_.get();
  return impl->spawn<ClearingAnswer>([impl, spec = std::move(spec)](auto completion) mutable {
    return impl->run_call(std::move(spec), std::move(completion));
  });
}

std::future<ClearingAnswer> ClearingClient::inquire(std::string reference, CallTrace trace) {
  RequestSpec spec{CallKind::inquire,
                   http::verb::get,
                   "/v1/transfers/" + clearing::http::percent_encode(reference),
                   "",
                   "",
                   reference,
                   std::move(trace)};
  Impl* impl = impl_.get();
  return impl->spawn<ClearingAnswer>([impl, spec = std::move(spec)](auto completion) mutable {
    return impl->run_call(std::move(spec), std::move(completion));
  });
}

std::future<IncomingPage> ClearingClient::incoming(std::optional<std::string> after_cursor,
                                                   int limit) {
  limit = std::clamp(limit, 1, impl_->options.incoming_limit_max);
  std::string target = "/v1/incoming?limit=" + std::to_string(limit);
  if (after_cursor) target += "&after=" + clearing::http::percent_encode(*after_cursor);
  RequestSpec spec{CallKind::incoming, http::verb::get, std::move(target), "", "", ""};
  Impl* impl = impl_.get();
  return impl->spawn<IncomingPage>([impl, spec = std::move(spec)](auto completion) mutable {
    return impl->run_incoming(std::move(spec), std::move(completion));
  });
}

ClientStats ClearingClient::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  ClientStats out = impl_->stats;
  out.concurrency_limit = impl_->limit_now;
  return out;
}

int ClearingClient::concurrency_limit() const noexcept { return impl_->limit_now; }

}  // namespace clearing::clearing_client
