// The HTTP server: the only translation unit of the server with Beast. Each
// connection is one coroutine on its own strand (the pattern of the clearing mock's server);
// handlers run on a bounded worker pool and their answers are posted back to the strand.

#include "clearing/http/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "clearing/base/asio.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/base/text.hpp"
#include "clearing/http/tls_asio.hpp"

namespace clearing::http {
namespace {

namespace beast = boost::beast;
namespace beast_http = beast::http;
using tcp = asio::ip::tcp;
// g++ 12 destroys some temporaries of a co_await full-expression twice (seen here as a
// use-after-free under TSan and a SIGILL: a lambda capturing a shared_ptr, a strand made in
// the argument list). So every co_await in this file takes named lvalues or trivially
// destructible values, and results are taken apart with std::get.
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// A connection serves at most this many requests, then closes (clients reconnect).
constexpr int kRequestsPerConnectionMax = 100'000;
// After an error answer, the rest of the request is read and dropped (so the client sees the
// answer rather than a reset), up to this much and this long.
constexpr std::size_t kLingerBytesMax = 1 << 20;
constexpr int kLingerMs = 1000;
// A failing accept (e.g. out of file descriptors) is retried after this pause.
constexpr int kAcceptRetryMs = 50;
// Connections refused by a limit: the log says so once per this many (a flood is one line
// per kRefusalsLoggedEvery, not one per connection).
constexpr std::uint64_t kRefusalsLoggedEvery = 1000;
constexpr std::size_t kRoutesMax = 256;

using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

// --- Pure helpers ------------------------------------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Strict: a '%' must be followed by two hex digits; "%00" is refused (no NUL in names).
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// "/a/b" -> {"a", "b"}; "/" -> {""}. The caller checked the leading '/'.
std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

// Nullopt on bad encoding, or a decoded segment that is not printable UTF-8 (a handler, a
// database query or a log line would get bytes it cannot store or show).
std::optional<std::vector<std::string>> decode_segments(std::string_view path) {
  std::vector<std::string> decoded;
  for (const auto segment : split_segments(path)) {
    auto one = percent_decode(segment, false);
    if (!one || !base::is_printable_utf8(*one)) return std::nullopt;
    decoded.push_back(std::move(*one));
  }
  return decoded;
}

// "a=1&b=x%20y" -> {a:1, b:"x y"}; nullopt on bad encoding or a repeated key (ambiguous).
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    auto key = percent_decode(pair.substr(0, equals), true);
    auto value = percent_decode(
        equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1), true);
    if (!key || !value || key->empty()) return std::nullopt;
    if (!base::is_printable_utf8(*key) || !base::is_printable_utf8(*value)) return std::nullopt;
    if (!out.emplace(std::move(*key), std::move(*value)).second) return std::nullopt;
  }
  return out;
}

// Time depends on the configured token's length only, not on where the first difference is.
bool tokens_equal(std::string_view given, std::string_view expected) {
  std::size_t difference = given.size() ^ expected.size();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    difference |= static_cast<std::size_t>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return difference == 0;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool has_line_break(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

// --- Routes ------------------------------------------------------------------------------

struct Segment {
  bool is_param = false;
  std::string text;  // literal text, or the parameter's name
};

struct Route {
  std::string method;
  std::string pattern;
  std::vector<Segment> segments;
  int literal_count = 0;
  HttpHandler handler;
  bool requires_auth = true;
  bool on_io_thread = false;
  std::string role;  // RouteOptions::role
};

bool is_param_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Nullopt for a bad pattern: not starting with '/', a brace inside a literal, a bad name.
std::optional<std::vector<Segment>> parse_pattern(std::string_view pattern) {
  if (!pattern.starts_with('/')) return std::nullopt;
  std::vector<Segment> segments;
  for (const auto text : split_segments(pattern)) {
    if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
      const auto name = text.substr(1, text.size() - 2);
      if (!is_param_name(name)) return std::nullopt;
      segments.push_back({true, std::string(name)});
    } else if (text.find_first_of("{}%?#") != std::string_view::npos) {
      return std::nullopt;
    } else {
      segments.push_back({false, std::string(text)});
    }
  }
  return segments;
}

bool matches(const Route& route, const std::vector<std::string>& segments,
             std::map<std::string, std::string>& params) {
  if (route.segments.size() != segments.size()) return false;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& want = route.segments[i];
    if (want.is_param ? segments[i].empty() : want.text != segments[i]) return false;
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (route.segments[i].is_param) params[route.segments[i].text] = segments[i];
  }
  return true;
}

struct Routed {
  const Route* route = nullptr;  // the route for this method and path
  bool path_known = false;       // some route has this path
  bool any_requires_auth = false;
  std::string allow;  // methods of the routes with this path, ", "-separated
  std::map<std::string, std::string> params;
};

Routed find_route(const std::vector<Route>& routes, std::string_view method,
                  const std::vector<std::string>& segments) {
  Routed routed;
  std::vector<std::string> methods;
  for (const auto& route : routes) {
    std::map<std::string, std::string> params;
    if (!matches(route, segments, params)) continue;
    routed.path_known = true;
    routed.any_requires_auth = routed.any_requires_auth || route.requires_auth;
    if (std::find(methods.begin(), methods.end(), route.method) == methods.end()) {
      methods.push_back(route.method);
    }
    if (route.method != method) continue;
    if (routed.route == nullptr || route.literal_count > routed.route->literal_count) {
      routed.route = &route;
      routed.params = std::move(params);
    }
  }
  std::sort(methods.begin(), methods.end());
  for (const auto& one : methods) routed.allow += (routed.allow.empty() ? "" : ", ") + one;
  return routed;
}

// --- Worker pool -------------------------------------------------------------------------

// A fixed set of threads and a bounded queue. A job is called once: with true on a worker
// thread, or with false (abandoned) from stop() if it never started.
class WorkerPool {
 public:
  using Job = std::function<void(bool run)>;

  WorkerPool(int threads, std::size_t queue_max) : threads_count_(threads), queue_max_(queue_max) {}
  ~WorkerPool() { stop(); }

  void start() {
    for (int i = 0; i < threads_count_; ++i) threads_.emplace_back([this] { work(); });
  }

  // False when the queue is full or the pool is stopping; the job was not taken.
  bool try_submit(Job& job) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || queue_.size() >= queue_max_) return false;
      queue_.push_back(std::move(job));
    }
    wake_.notify_one();
    return true;
  }

  // Abandons the queued jobs, waits for the running ones, joins. Idempotent.
  void stop() {
    std::deque<Job> abandoned;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      abandoned.swap(queue_);
    }
    wake_.notify_all();
    for (auto& job : abandoned) job(false);
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

 private:
  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job(true);
    }
  }

  const int threads_count_;
  const std::size_t queue_max_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;  // under mutex_
  bool stopping_ = false;  // under mutex_
  std::vector<std::thread> threads_;
};

// One handler call handed to the pool: the work, and the answers when it cannot run.
struct PoolCall {
  std::function<HttpResponse()> work;
  HttpResponse refused;    // the queue is full
  HttpResponse abandoned;  // the pool stopped before the call started
};

// Runs `call.work` on the pool and completes, on the awaiting coroutine's executor (its
// strand), with the response. `call` is copied at initiation; taking it by reference keeps
// temporaries with destructors out of the caller's co_await expression (see kUseTuple).
template <class CompletionToken>
auto async_run_on_pool(WorkerPool& pool, const PoolCall& call, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(HttpResponse)>(
      [&pool, &call](auto handler) {
        // std::function needs a copyable callable: share the move-only handler.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto complete = [shared](HttpResponse response) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor, [shared, response = std::move(response)]() mutable {
            std::move (*shared)(std::move(response));
          });
        };
        WorkerPool::Job job = [work = call.work, abandoned = call.abandoned, complete](bool run) {
          complete(run ? work() : abandoned);
        };
        if (!pool.try_submit(job)) complete(call.refused);
      },
      token);
}

// --- Server ------------------------------------------------------------------------------

using SteadyClock = std::chrono::steady_clock;

struct Session {
  // `tls`: the server's context when it serves TLS, else null.
  Session(tcp::socket socket, std::string remote, asio::ssl::context* tls)
      : stream(std::move(socket), tls), remote(std::move(remote)) {}
  ServerStream stream;  // TCP, or TLS over it (tls_asio.hpp)
  std::string remote;
  // A request is being read or handled: false while waiting for a header, and from the
  // moment a keep-alive answer starts to be written (so that a client that has its answer
  // finds the connection idle). Written on the strand; read by stop() and the accept loop,
  // which act on it on the strand again, with `writing`.
  std::atomic<bool> busy{false};
  bool writing = false;  // an answer is being written; on the strand only
  // Chosen to make room at connections_max: closes now if idle, else after its request.
  std::atomic<bool> evicted{false};
  // When it last began to wait for a request header: the one idle longest makes room.
  std::atomic<SteadyClock::rep> idle_since{SteadyClock::now().time_since_epoch().count()};
};

// The key of the per-client limit: the peer's address, an IPv4-mapped IPv6 one as IPv4.
std::string client_key(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

bool is_http_error(const beast::error_code& error) {
  return error.category() ==
         beast_http::make_error_code(beast_http::error::end_of_stream).category();
}

constexpr base::NameTable<ServerErrc, 3> kServerErrcNames{{
    {ServerErrc::invalid_option, "invalid_option"},
    {ServerErrc::already_started, "already_started"},
    {ServerErrc::cannot_listen, "cannot_listen"},
}};
static_assert(base::lists_every_enumerator(kServerErrcNames, ServerErrc::cannot_listen));

bool is_token_text(std::string_view token) {
  return std::none_of(token.begin(), token.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

// HttpServerOptions::tokens, and bearer_token beside them. The messages name the entry by its
// place and name, never by its token.
std::optional<std::string> validate_tokens(const HttpServerOptions& o) {
  constexpr std::size_t kRolesMax = 16;
  std::vector<std::string_view> names, tokens;
  if (!o.bearer_token.empty()) {
    names.push_back(o.bearer_token_name);
    tokens.push_back(o.bearer_token);
  }
  for (std::size_t i = 0; i < o.tokens.size(); ++i) {
    const auto& entry = o.tokens[i];
    const auto which = "http option tokens[" + std::to_string(i) + "]";
    if (!base::is_identifier(entry.name, 64)) {
      return which + " name must be 1..64 of [A-Za-z0-9] - _ . :";
    }
    const auto named = which + " (" + entry.name + ")";
    if (entry.token.empty() || !is_token_text(entry.token)) {
      return named + " token is empty or contains spaces or control characters";
    }
    if (entry.roles.empty() || entry.roles.size() > kRolesMax) {
      return named + " roles: 1.." + std::to_string(kRolesMax) + " roles";
    }
    for (const auto& role : entry.roles) {
      if (!base::is_identifier(role, 64)) {
        return named + " roles: a role must be 1..64 of [A-Za-z0-9] - _ . :";
      }
    }
    if (std::find(names.begin(), names.end(), entry.name) != names.end()) {
      return named + " name is another token's";
    }
    if (std::find(tokens.begin(), tokens.end(), entry.token) != tokens.end()) {
      return named + " token is another token's (each name has its own token)";
    }
    names.push_back(entry.name);
    tokens.push_back(entry.token);
  }
  return std::nullopt;
}

std::optional<std::string> validate(const HttpServerOptions& o) {
  const auto out_of = [](const char* name, auto low, auto high) {
    return std::string("http option ") + name + " out of range " + std::to_string(low) + ".." +
           std::to_string(high);
  };
  if (o.host.empty()) return "http option host is empty";
  if (o.port < 0 || o.port > 65535) return out_of("port", 0, 65535);
  if (o.io_threads < 1 || o.io_threads > 64) return out_of("io_threads", 1, 64);
  if (o.worker_threads < 1 || o.worker_threads > 256) return out_of("worker_threads", 1, 256);
  if (o.worker_queue_max < 1 || o.worker_queue_max > 100'000) {
    return out_of("worker_queue_max", 1, 100'000);
  }
  if (o.body_bytes_max < 1 || o.body_bytes_max > (std::size_t{64} << 20)) {
    return out_of("body_bytes_max", 1, std::size_t{64} << 20);
  }
  if (o.header_bytes_max < 1024 || o.header_bytes_max > (std::size_t{1} << 20)) {
    return out_of("header_bytes_max", 1024, std::size_t{1} << 20);
  }
  if (o.request_timeout_ms < 1 || o.request_timeout_ms > 600'000) {
    return out_of("request_timeout_ms", 1, 600'000);
  }
  if (o.idle_timeout_ms < 1 || o.idle_timeout_ms > 600'000) {
    return out_of("idle_timeout_ms", 1, 600'000);
  }
  if (o.connections_max < 1 || o.connections_max > 100'000) {
    return out_of("connections_max", 1, 100'000);
  }
  // Above connections_max it is connections_max: a deployment that lowers the total need
  // not lower this too.
  if (o.connections_per_client_max < 1 || o.connections_per_client_max > 100'000) {
    return out_of("connections_per_client_max", 1, 100'000);
  }
  if (o.stop_grace_ms < 0 || o.stop_grace_ms > 600'000) return out_of("stop_grace_ms", 0, 600'000);
  if (o.retry_after_s < 0 || o.retry_after_s > 3600) return out_of("retry_after_s", 0, 3600);
  if (!is_token_text(o.bearer_token)) {
    return "http option bearer_token contains spaces or control characters";
  }
  if (!base::is_identifier(o.bearer_token_name, 64)) {
    return "http option bearer_token_name must be 1..64 of [A-Za-z0-9] - _ . :";
  }
  return validate_tokens(o);
}

}  // namespace

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse HttpResponse::error(int status, std::string code, std::string message) {
  std::string body = R"({"error":{"code":)";
  base::append_json_string(body, code);
  body += R"(,"message":)";
  base::append_json_string(body, message);
  body += "}}";
  return json(status, std::move(body));
}

// A token the server knows: one of HttpServerOptions::tokens, or bearer_token (every role).
struct KnownToken {
  std::string name;
  std::string token;
  std::vector<std::string> roles;
  bool every_role = false;

  bool holds(std::string_view role) const {
    return every_role || role.empty() || std::find(roles.begin(), roles.end(), role) != roles.end();
  }
};

std::vector<KnownToken> known_tokens(const HttpServerOptions& options) {
  std::vector<KnownToken> known;
  if (!options.bearer_token.empty()) {
    known.push_back({options.bearer_token_name, options.bearer_token, {}, true});
  }
  for (const auto& entry : options.tokens) {
    known.push_back({entry.name, entry.token, entry.roles, false});
  }
  return known;
}

struct HttpServer::Impl {
  Impl(HttpServerOptions options_in, std::optional<asio::ssl::context> tls_context_in)
      : options(std::move(options_in)),
        known(known_tokens(options)),
        tls_context(std::move(tls_context_in)),
        logger(base::module_logger("http")),
        io(options.io_threads),
        work(asio::make_work_guard(io)),
        acceptor(asio::make_strand(io)),
        retry_timer(acceptor.get_executor()),
        pool(options.worker_threads, static_cast<std::size_t>(options.worker_queue_max)) {}

  const HttpServerOptions options;
  const std::vector<KnownToken> known;            // empty: authentication disabled
  std::optional<asio::ssl::context> tls_context;  // options.tls
  std::shared_ptr<spdlog::logger> logger;
  std::vector<Route> routes;  // fixed once started

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;          // on its own strand, with retry_timer
  asio::steady_timer retry_timer;  // the pause after a failed accept
  WorkerPool pool;
  std::vector<std::thread> io_threads;
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<bool> stopping{false};

  struct SessionEntry {
    std::weak_ptr<Session> session;
    std::string client;    // client_key of the peer
    bool evicted = false;  // chosen to make room; still counted until it finishes
  };
  std::mutex sessions_mutex;
  std::condition_variable sessions_changed;
  std::uint64_t next_session_id = 0;               // under sessions_mutex
  std::map<std::uint64_t, SessionEntry> sessions;  // under sessions_mutex
  std::map<std::string, int> sessions_per_client;  // under sessions_mutex; no zero counts
  std::size_t sessions_evicted = 0;                // under sessions_mutex
  std::atomic<std::uint64_t> connections_refused{0};

  std::mutex lifecycle_mutex;
  bool started = false;  // under lifecycle_mutex
  bool stopped = false;  // under lifecycle_mutex

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(options.request_timeout_ms);
  }
  std::chrono::milliseconds idle_timeout() const {
    return std::chrono::milliseconds(options.idle_timeout_ms);
  }

  std::size_t session_count() {
    std::lock_guard lock(sessions_mutex);
    return sessions.size();
  }

  HttpResponse busy_response(std::string code, std::string message) const {
    auto response = HttpResponse::error(503, std::move(code), std::move(message));
    response.headers.emplace_back("Retry-After", std::to_string(options.retry_after_s));
    return response;
  }

  // The known token the request carries; null when authentication is disabled; none when it
  // carries no token the server knows. Every known token is compared, whichever matches: the
  // time depends on the configured tokens, not on the one given.
  std::optional<const KnownToken*> caller_of(const Request& request) const {
    if (known.empty()) return nullptr;
    const auto field = request.find(beast_http::field::authorization);
    if (field == request.end()) return std::nullopt;
    const std::string_view value = field->value();
    constexpr std::string_view kScheme = "bearer ";
    if (value.size() < kScheme.size() || !iequals(value.substr(0, kScheme.size()), kScheme)) {
      return std::nullopt;
    }
    const auto given = value.substr(kScheme.size());
    const KnownToken* found = nullptr;
    for (const auto& one : known) {
      const bool equal = tokens_equal(given, one.token);
      found = equal ? &one : found;
    }
    if (found == nullptr) return std::nullopt;
    return found;
  }

  HttpRequest to_request(const Request& request, const Session& session, std::string path,
                         std::map<std::string, std::string> query,
                         std::map<std::string, std::string> params, std::string principal) const {
    HttpRequest out;
    out.method = std::string(request.method_string());
    out.path = std::move(path);
    out.query = std::move(query);
    out.params = std::move(params);
    for (const auto& field : request) {
      auto [it, inserted] = out.headers.emplace(lower(field.name_string()), field.value());
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    out.body = request.body();
    out.remote = session.remote;
    out.principal = std::move(principal);
    return out;
  }

  HttpResponse call_handler(const Route& route, const HttpRequest& request) const {
    try {
      auto response = route.handler(request);
      if (response.status < 200 || response.status > 599) {
        logger->error("handler answered an invalid status method={} route={} status={}",
                      route.method, route.pattern, response.status);
        return HttpResponse::error(500, "INTERNAL", "internal error");
      }
      return response;
    } catch (const std::exception& error) {
      logger->error("handler failed method={} route={} error={}", route.method, route.pattern,
                    error.what());
    } catch (...) {
      logger->error("handler failed method={} route={} error=unknown", route.method, route.pattern);
    }
    return HttpResponse::error(500, "INTERNAL", "internal error");
  }

  // What the request header alone decides, before any body is read or handler called.
  struct Checked {
    std::optional<HttpResponse> refusal;  // answer this instead
    const Route* route = nullptr;
    std::string path;
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> params;
    std::string principal;  // HttpRequest::principal
  };

  static bool takes_body(beast_http::verb method) {
    return method == beast_http::verb::post || method == beast_http::verb::put ||
           method == beast_http::verb::patch;
  }

  // Cheap (no I/O): runs on the I/O thread. The order matters: the target's syntax (which
  // says nothing about the routes), then the token, and only then anything that depends on
  // the routes or would need the body.
  Checked check_header(const Request& request, bool has_body) const {
    Checked checked;
    if (request.version() >= 11 && request.find(beast_http::field::host) == request.end()) {
      checked.refusal = HttpResponse::error(400, "BAD_REQUEST", "missing Host header");
      return checked;
    }
    const std::string_view target = request.target();
    if (!target.starts_with('/')) {
      checked.refusal = HttpResponse::error(400, "BAD_REQUEST", "the target must be a path");
      return checked;
    }
    const auto question = target.find('?');
    const auto raw_path = target.substr(0, question);
    auto segments = decode_segments(raw_path);
    auto path = percent_decode(raw_path, false);
    if (!segments || !path) {
      checked.refusal = HttpResponse::error(
          400, "BAD_PATH", "bad percent-encoding, or not printable UTF-8 once decoded");
      return checked;
    }
    auto query = parse_query(question == std::string_view::npos ? std::string_view()
                                                                : target.substr(question + 1));
    if (!query) {
      checked.refusal = HttpResponse::error(
          400, "BAD_QUERY",
          "bad percent-encoding, not printable UTF-8, or a repeated query parameter");
      return checked;
    }
    auto routed = find_route(routes, request.method_string(), *segments);
    if (routed.route == nullptr && request.method() == beast_http::verb::head) {
      auto as_get = find_route(routes, "GET", *segments);
      routed.route = as_get.route;
      routed.params = std::move(as_get.params);
    }
    // Without the token an unknown path answers like a known one: only the paths of routes
    // without auth tell more.
    const bool needs_auth = routed.route != nullptr
                                ? routed.route->requires_auth
                                : !routed.path_known || routed.any_requires_auth;
    auto caller = needs_auth ? caller_of(request) : std::optional<const KnownToken*>(nullptr);
    if (!caller) {
      checked.refusal = HttpResponse::error(401, "UNAUTHORIZED", "missing or wrong bearer token");
      checked.refusal->headers.emplace_back("WWW-Authenticate", "Bearer");
      return checked;
    }
    if (has_body && !takes_body(request.method())) {
      checked.refusal =
          HttpResponse::error(400, "BODY_NOT_ALLOWED", "this method takes no request body");
      return checked;
    }
    if (!routed.path_known) {
      checked.refusal = HttpResponse::error(404, "NOT_FOUND", "no such path");
      return checked;
    }
    if (routed.route == nullptr) {
      checked.refusal = HttpResponse::error(405, "METHOD_NOT_ALLOWED", "method not allowed");
      checked.refusal->headers.emplace_back("Allow", routed.allow);
      return checked;
    }
    if (*caller != nullptr && !(*caller)->holds(routed.route->role)) {
      checked.refusal = HttpResponse::error(
          403, "FORBIDDEN", "this route needs a token with the role " + routed.route->role);
      return checked;
    }
    checked.route = routed.route;
    checked.path = std::move(*path);
    checked.query = std::move(*query);
    checked.params = std::move(routed.params);
    checked.principal = *caller != nullptr ? (*caller)->name : std::string();
    return checked;
  }

  // Calls the route's handler: on this I/O thread for an on_io_thread route, else on the pool.
  asio::awaitable<HttpResponse> call_route(const Session& session, const Request& request,
                                           Checked& checked) {
    const Route* route = checked.route;
    auto http_request = std::make_shared<HttpRequest>(
        to_request(request, session, std::move(checked.path), std::move(checked.query),
                   std::move(checked.params), std::move(checked.principal)));
    if (route->on_io_thread) co_return call_handler(*route, *http_request);
    PoolCall call;
    call.work = [this, route, http_request] { return call_handler(*route, *http_request); };
    call.refused = busy_response("OVERLOADED", "too many requests in progress");
    call.abandoned = busy_response("STOPPING", "the server is stopping");
    HttpResponse response = co_await async_run_on_pool(pool, call, asio::use_awaitable);
    co_return response;
  }

  // `to_head`: the answer to a HEAD request: the header GET would have had, no body.
  Response to_response(HttpResponse answer, unsigned version, bool keep_alive, bool to_head) const {
    for (const auto& [name, value] : answer.headers) {
      if (name.empty() || has_line_break(name) || has_line_break(value)) {
        logger->error("handler answered a header with a line break or no name");
        answer = HttpResponse::error(500, "INTERNAL", "internal error");
        break;
      }
    }
    if (has_line_break(answer.content_type)) {
      answer = HttpResponse::error(500, "INTERNAL", "internal error");
    }
    Response response{static_cast<beast_http::status>(answer.status), version};
    response.set(beast_http::field::server, "clearing-adapter");
    response.set(beast_http::field::content_type, answer.content_type);
    for (const auto& [name, value] : answer.headers) response.set(name, value);
    response.keep_alive(keep_alive);
    if (answer.status != 204 && answer.status != 304) response.body() = std::move(answer.body);
    response.prepare_payload();
    // Content-Length stays; the serializer writes the body it holds, now none.
    if (to_head) response.body().clear();
    return response;
  }

  // Reads and drops what the client still sends (bounded), so that it sees our answer
  // instead of a reset caused by closing with unread data.
  asio::awaitable<void> lingering_close(Session& session) {
    auto& stream = session.stream;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(std::chrono::milliseconds(kLingerMs));
    std::array<char, 8192> sink;
    for (std::size_t drained = 0; drained < kLingerBytesMax;) {
      auto error_result = co_await stream.async_read_some(asio::buffer(sink), kUseTuple);
      if (std::get<0>(error_result)) break;
      drained += std::get<1>(error_result);
    }
  }

  // A read failed: answer what deserves an answer (limits, bad syntax); close silently on a
  // closed connection or a timeout.
  asio::awaitable<void> answer_read_error(Session& session, const beast::error_code& error,
                                          unsigned version) {
    if (!is_http_error(error) || error == beast_http::error::end_of_stream ||
        error == beast_http::error::partial_message) {
      co_return;
    }
    session.busy.store(true);  // answering, then closing: not a connection to make room with
    HttpResponse answer;
    if (error == beast_http::error::body_limit) {
      answer = HttpResponse::error(
          413, "BODY_TOO_LARGE", "body over " + std::to_string(options.body_bytes_max) + " bytes");
    } else if (error == beast_http::error::header_limit) {
      answer = HttpResponse::error(431, "HEADERS_TOO_LARGE", "headers too large");
    } else {
      answer = HttpResponse::error(400, "BAD_REQUEST", "malformed HTTP request");
    }
    logger->debug("bad request remote={} status={} error={}", session.remote, answer.status,
                  error.message());
    auto response = to_response(std::move(answer), version == 10 ? 10 : 11, false, false);
    session.stream.expires_after(timeout());
    auto write_error_result = co_await beast_http::async_write(session.stream, response, kUseTuple);
    auto write_error = std::get<0>(write_error_result);
    if (!write_error) co_await lingering_close(session);
  }

  static bool expects_continue(const Request& request) {
    const auto field = request.find(beast_http::field::expect);
    return field != request.end() && iequals(field->value(), "100-continue");
  }

  // Writes the answer to `request` and logs it. True when written.
  asio::awaitable<bool> write_answer(Session& session, HttpResponse& answer, const Request& request,
                                     bool keep_alive, const Route* route,
                                     SteadyClock::time_point started) {
    const bool to_head = request.method() == beast_http::verb::head;
    auto response = to_response(std::move(answer), request.version(), keep_alive, to_head);
    if (keep_alive) {
      session.busy.store(false);
      session.idle_since.store(SteadyClock::now().time_since_epoch().count());
    }
    session.stream.expires_after(timeout());
    session.writing = true;
    auto write_error_result = co_await beast_http::async_write(session.stream, response, kUseTuple);
    session.writing = false;
    auto write_error = std::get<0>(write_error_result);
    const auto elapsed_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started).count();
    // The route pattern, not the path: paths carry ids; never the body.
    logger->debug("request method={} route={} status={} duration_ms={} remote={}",
                  std::string_view(request.method_string()), route ? route->pattern : "-",
                  response.result_int(), elapsed_ms, session.remote);
    co_return !write_error;
  }

  // One request: read the header, check it, read the body only if the route takes one and
  // the caller is authenticated, answer, write. False: close the connection.
  asio::awaitable<bool> serve_one(Session& session, beast::flat_buffer& buffer) {
    auto& stream = session.stream;
    beast_http::request_parser<beast_http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.header_bytes_max));
    parser.body_limit(options.body_bytes_max);
    session.busy.store(false);
    session.idle_since.store(SteadyClock::now().time_since_epoch().count());
    // The wait for a request and its header share one short deadline: an idle or trickling
    // connection must not hold its slot.
    stream.expires_after(idle_timeout());
    auto header_error_result =
        co_await beast_http::async_read_header(stream, buffer, parser, kUseTuple);
    auto header_error = std::get<0>(header_error_result);
    if (header_error) {
      co_await answer_read_error(session, header_error, 11);
      co_return false;
    }
    session.busy.store(true);  // from here on, stop() lets this request be answered
    const auto started = SteadyClock::now();
    const bool has_body = !parser.is_done();  // a Content-Length > 0, or chunked
    Checked checked = check_header(parser.get(), has_body);
    if (checked.refusal) {
      // The body, if any, stays unread: the connection closes after the answer.
      const bool keep_alive =
          !has_body && parser.get().keep_alive() && !stopping.load() && !session.evicted.load();
      const bool written = co_await write_answer(session, *checked.refusal, parser.get(),
                                                 keep_alive, nullptr, started);
      if (written && has_body) co_await lingering_close(session);
      co_return written&& keep_alive;
    }
    if (has_body && expects_continue(parser.get())) {
      beast_http::response<beast_http::empty_body> proceed{beast_http::status::continue_,
                                                           parser.get().version()};
      stream.expires_after(timeout());
      auto error_result = co_await beast_http::async_write(stream, proceed, kUseTuple);
      auto error = std::get<0>(error_result);
      if (error) co_return false;
    }
    if (has_body) {
      stream.expires_after(timeout());
      auto body_error_result = co_await beast_http::async_read(stream, buffer, parser, kUseTuple);
      auto body_error = std::get<0>(body_error_result);
      if (body_error) {
        co_await answer_read_error(session, body_error, parser.get().version());
        co_return false;
      }
    }
    Request request = parser.release();
    stream.expires_never();  // the handler's time is bounded by its own deadlines
    HttpResponse answer = co_await call_route(session, request, checked);
    const bool keep_alive = request.keep_alive() && !stopping.load() && !session.evicted.load();
    const bool written =
        co_await write_answer(session, answer, request, keep_alive, checked.route, started);
    co_return written&& keep_alive;
  }

  // TLS: the handshake, under the deadline of a request header (a client that never
  // finishes it holds its slot no longer than an idle one). False: close the connection.
  asio::awaitable<bool> handshake(Session& session) {
    if (!session.stream.is_tls()) co_return true;
    session.stream.expires_after(idle_timeout());
    constexpr auto kServer = asio::ssl::stream_base::server;
    auto result = co_await session.stream.tls().async_handshake(kServer, kUseTuple);
    const auto error = std::get<0>(result);
    if (error) {
      logger->debug("tls handshake failed remote={} error={}", session.remote,
                    handshake_failure(session.stream.tls().native_handle(), error));
    }
    co_return !error;
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> session) {
    beast::flat_buffer buffer;
    if (!co_await handshake(*session)) {
      close_socket(*session);
      co_return;
    }
    for (int served = 0;
         served < kRequestsPerConnectionMax && !stopping.load() && !session->evicted.load();
         ++served) {
      const bool keep_open = co_await serve_one(*session, buffer);
      if (!keep_open) break;
    }
    close_socket(*session);
  }

  void finish_session(std::uint64_t id) {
    {
      std::lock_guard lock(sessions_mutex);
      const auto found = sessions.find(id);
      if (found != sessions.end()) {
        if (found->second.evicted) --sessions_evicted;
        const auto count = sessions_per_client.find(found->second.client);
        if (count != sessions_per_client.end() && --count->second <= 0) {
          sessions_per_client.erase(count);
        }
        sessions.erase(found);
      }
    }
    sessions_changed.notify_all();
  }

  enum class Admission { admitted, client_full, server_full, stopping };

  // Under sessions_mutex, at connections_max: marks the connection idle longest (waiting for
  // a request header) to make room. False when every one is in a request. `to_close` is
  // null when the one chosen is already leaving.
  bool make_room(std::shared_ptr<Session>& to_close) {
    SessionEntry* chosen = nullptr;
    SteadyClock::rep oldest = 0;
    for (auto& [id, entry] : sessions) {
      if (entry.evicted) continue;
      auto session = entry.session.lock();
      if (!session) {  // its coroutine is over; finish_session comes next
        chosen = &entry;
        to_close.reset();
        break;
      }
      if (session->busy.load()) continue;
      const auto since = session->idle_since.load();
      if (chosen == nullptr || since < oldest) {
        chosen = &entry;
        oldest = since;
        to_close = std::move(session);
      }
    }
    if (chosen == nullptr) return false;
    chosen->evicted = true;
    ++sessions_evicted;
    if (to_close) to_close->evicted.store(true);
    return true;
  }

  Admission admit(const std::shared_ptr<Session>& session, const std::string& client,
                  std::uint64_t& id, std::shared_ptr<Session>& to_close) {
    std::lock_guard lock(sessions_mutex);
    if (stopping.load()) return Admission::stopping;
    const int per_client_max =
        std::min(options.connections_per_client_max, options.connections_max);
    const auto count = sessions_per_client.find(client);
    if (count != sessions_per_client.end() && count->second >= per_client_max) {
      return Admission::client_full;
    }
    const auto open = sessions.size() - sessions_evicted;
    if (open >= static_cast<std::size_t>(options.connections_max) && !make_room(to_close)) {
      return Admission::server_full;
    }
    id = next_session_id++;
    sessions.emplace(id, SessionEntry{session, client, false});
    ++sessions_per_client[client];
    return Admission::admitted;
  }

  // Answers 503 and closes, without reading anything and without waiting: the send buffer
  // of a new connection is empty, so the answer goes in one non-blocking write.
  void refuse(Session& session, Admission admission) {
    const bool per_client = admission == Admission::client_full;
    auto answer =
        busy_response("TOO_MANY_CONNECTIONS", per_client ? "too many connections from this address"
                                                         : "too many connections in progress");
    auto response = to_response(std::move(answer), 11, false, false);
    std::ostringstream text;
    text << response;
    const auto bytes = text.str();
    beast::error_code ignored;
    auto& socket = session.stream.socket();
    socket.non_blocking(true, ignored);
    // Over TLS the answer would need a handshake first: the connection just closes.
    if (!session.stream.is_tls()) socket.write_some(asio::buffer(bytes), ignored);
    close_socket(session);
    const auto refused = connections_refused.fetch_add(1) + 1;
    if (refused == 1 || refused % kRefusalsLoggedEvery == 0) {
      logger->warn("connection refused limit={} remote={} refused_total={}",
                   per_client ? "connections_per_client_max" : "connections_max", session.remote,
                   refused);
    }
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      if (stopping.load()) co_return;
      auto connection_strand = asio::make_strand(io);
      auto accepted = co_await acceptor.async_accept(connection_strand, kUseTuple);
      const auto error = std::get<0>(accepted);
      tcp::socket socket = std::get<1>(std::move(accepted));
      if (error) {
        if (stopping.load() || !acceptor.is_open()) co_return;
        logger->warn("accept failed error={}", error.message());
        retry_timer.expires_after(std::chrono::milliseconds(kAcceptRetryMs));
        co_await retry_timer.async_wait(kUseTuple);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const auto peer = socket.remote_endpoint(ignored);
      auto* tls = tls_context ? &*tls_context : nullptr;
      auto session = std::make_shared<Session>(std::move(socket), endpoint_text(peer), tls);
      std::uint64_t id = 0;
      std::shared_ptr<Session> to_close;
      const auto admission = admit(session, client_key(peer), id, to_close);
      if (admission == Admission::stopping) co_return;  // the socket closes with `session`
      if (admission != Admission::admitted) {
        refuse(*session, admission);
        continue;
      }
      if (to_close) {
        // On its strand: if it began a request meanwhile, or is writing an answer, it closes
        // once that answer is written.
        asio::post(to_close->stream.get_executor(), [to_close] { close_if_idle(*to_close); });
      }
      asio::co_spawn(session->stream.get_executor(), serve(session),
                     [this, id](std::exception_ptr failure) {
                       if (failure) logger->error("connection failed unexpectedly");
                       finish_session(id);
                     });
    }
  }

  // Posts `action` to the strand of every open connection.
  template <class Action>
  void for_each_session(Action action) {
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(sessions_mutex);
      for (auto& [id, entry] : sessions) {
        if (auto session = entry.session.lock()) open.push_back(std::move(session));
      }
    }
    for (auto& session : open) {
      asio::post(session->stream.get_executor(), [session, action] { action(*session); });
    }
  }

  static void close_socket(Session& session) {
    beast::error_code ignored;
    session.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    session.stream.socket().close(ignored);
  }

  // On the session's strand. One that is not closed here closes after its answer (it sees
  // `stopping` or `evicted`).
  static void close_if_idle(Session& session) {
    if (!session.busy.load() && !session.writing) close_socket(session);
  }

  void stop() {
    {
      std::lock_guard lock(lifecycle_mutex);
      if (stopped) return;
      stopped = true;
      if (!started) return;
    }
    stopping.store(true);
    asio::post(acceptor.get_executor(), [this] {
      beast::error_code ignored;
      acceptor.close(ignored);
      retry_timer.cancel();
    });
    // Idle connections (waiting for a request) close now; busy ones finish their request.
    for_each_session([](Session& session) { close_if_idle(session); });
    {
      std::unique_lock lock(sessions_mutex);
      sessions_changed.wait_for(lock, std::chrono::milliseconds(options.stop_grace_ms),
                                [this] { return sessions.empty(); });
    }
    const auto remaining = session_count();
    if (remaining > 0) {
      logger->warn("stop grace over, closing connections count={}", remaining);
      for_each_session([](Session& session) { close_socket(session); });
    }
    pool.stop();  // waits for running handlers; queued ones answer 503 to closed sockets
    work.reset();
    io.stop();
    for (auto& thread : io_threads) thread.join();
    io_threads.clear();
    logger->info("http server stopped");
  }
};

std::string_view to_string(ServerErrc code) noexcept {
  return base::name_in(kServerErrcNames, code).value_or("unknown");
}

tl::expected<std::unique_ptr<HttpServer>, ServerError> HttpServer::create(
    HttpServerOptions options) {
  if (auto problem = validate(options)) {
    return tl::unexpected(ServerError{ServerErrc::invalid_option, std::move(*problem)});
  }
  std::optional<asio::ssl::context> tls_context;
  if (options.tls) {
    auto made = make_server_context(*options.tls);
    if (!made) {
      return tl::unexpected(
          ServerError{ServerErrc::invalid_option, "http option tls: " + made.error().message});
    }
    tls_context.emplace(std::move(*made));
  }
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::make_unique<Impl>(std::move(options), std::move(tls_context))));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string method, std::string pattern, HttpHandler handler,
                       bool requires_auth) {
  RouteOptions route_options;
  route_options.requires_auth = requires_auth;
  route(std::move(method), std::move(pattern), std::move(handler), route_options);
}

void HttpServer::route(std::string method, std::string pattern, HttpHandler handler,
                       RouteOptions route_options) {
  {
    std::lock_guard lock(impl_->lifecycle_mutex);
    CLEARING_ASSERT_MSG(!impl_->started, "routes are registered before start()");
  }
  auto segments = parse_pattern(pattern);
  CLEARING_ASSERT_MSG(segments.has_value(), pattern.c_str());
  CLEARING_ASSERT(!method.empty() && handler != nullptr);
  CLEARING_ASSERT(impl_->routes.size() < kRoutesMax);
  for (const auto& route : impl_->routes) {
    CLEARING_ASSERT_MSG(route.method != method || route.pattern != pattern, pattern.c_str());
  }
  Route route;
  route.method = std::move(method);
  route.pattern = std::move(pattern);
  route.literal_count = static_cast<int>(std::count_if(
      segments->begin(), segments->end(), [](const Segment& s) { return !s.is_param; }));
  route.segments = std::move(*segments);
  route.handler = std::move(handler);
  route.requires_auth = route_options.requires_auth;
  route.on_io_thread = route_options.on_io_thread;
  CLEARING_ASSERT_MSG(route_options.requires_auth || route_options.role.empty(),
                      "a route without auth requires no role");
  route.role = std::string(route_options.role);
  impl_->routes.push_back(std::move(route));
}

tl::expected<void, ServerError> HttpServer::start() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.lifecycle_mutex);
  if (impl.started || impl.stopped) {
    return tl::unexpected(ServerError{ServerErrc::already_started, "already started"});
  }
  const auto& options = impl.options;
  try {
    tcp::resolver resolver(impl.io);
    const auto results = resolver.resolve(options.host, std::to_string(options.port),
                                          tcp::resolver::numeric_service);
    const tcp::endpoint endpoint = results.begin()->endpoint();
    impl.acceptor.open(endpoint.protocol());
    impl.acceptor.set_option(asio::socket_base::reuse_address(true));
    impl.acceptor.bind(endpoint);
    impl.acceptor.listen(asio::socket_base::max_listen_connections);
    impl.bound_port = impl.acceptor.local_endpoint().port();
  } catch (const std::exception& error) {
    return tl::unexpected(ServerError{ServerErrc::cannot_listen,
                                      "cannot listen on " + options.host + ":" +
                                          std::to_string(options.port) + ": " + error.what()});
  }
  impl.started = true;
  if (impl.known.empty()) {
    impl.logger->warn("http bearer token is empty: authentication is disabled (tests only)");
  }
  impl.pool.start();
  asio::co_spawn(impl.acceptor.get_executor(), impl.accept_loop(), asio::detached);
  for (int i = 0; i < options.io_threads; ++i) {
    impl.io_threads.emplace_back([&impl] { impl.io.run(); });
  }
  impl.logger->info("http server listening address={}:{} tls={}", options.host,
                    impl.bound_port.load(),
                    !options.tls                          ? "off"
                    : options.tls->client_ca_file.empty() ? "on"
                                                          : "mutual");
  return {};
}

void HttpServer::stop() { impl_->stop(); }

std::uint16_t HttpServer::port() const { return impl_->bound_port.load(); }

std::vector<HttpServer::RouteInfo> HttpServer::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& route : impl_->routes) {
    out.push_back({route.method, route.pattern, route.requires_auth, route.role});
  }
  return out;
}

}  // namespace clearing::http
