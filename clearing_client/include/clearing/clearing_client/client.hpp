#pragma once
// ClearingClient: the asynchronous HTTP client of the clearing API, behind a pimpl so that
// Beast and Asio stay in one translation unit.
//
// Threading: every public member is thread safe. Calls are meant for blocking worker threads
// (the dispatcher): they return a std::future at once; the work runs on the client's own
// I/O thread as C++20 coroutines. Never call future::get() on that I/O thread (there is no way
// to get onto it from outside, so this only matters for future changes).
//
// Errors: no call throws. Every failure, including stop(), completes the future with a
// classified ClearingAnswer (AnswerClass::unknown with a cause when the outcome is unknown).
//
// Answers: every answer is checked against the contract before it is classified (classify.hpp);
// one whose `reference` is not the request's key is never taken as its answer. A keep-alive
// connection goes back to the pool only with nothing left unread, and is checked again
// (without blocking) before it is reused.
//
// Limits: at most in_flight_max requests on the wire (with adaptive_concurrency, at most the
// limit it has learnt, within [concurrency_min, in_flight_max]: concurrency_limiter.hpp);
// further calls wait in a queue of at most waiting_max entries (beyond it: unknown/connect_failed
// "overloaded", nothing sent); a wait for a slot is bounded by request_timeout_ms (then
// unknown/connect_failed, nothing sent). Each request has one deadline of request_timeout_ms for
// connect + write + read; connecting alone is bounded by connect_timeout_ms.

#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <tl/expected.hpp>

#include "clearing/clearing_client/answer.hpp"

namespace clearing::clearing_client {

struct ClientOptions {
  std::string base_url;      // http://host[:port][/prefix] or https://...
  std::string bearer_token;  // sent as Authorization: Bearer <token>; never logged
  int request_timeout_ms = 5'000;
  int connect_timeout_ms = 1'000;
  int in_flight_max = 16;
  // Off: in_flight_max calls on the wire. On: a limit learnt from the clearing's answers to
  // submissions and inquiries (latency and drops), starting at concurrency_initial, never
  // below concurrency_min nor above in_flight_max.
  bool adaptive_concurrency = false;
  int concurrency_initial = 16;
  int concurrency_min = 4;
  int waiting_max = 1'024;        // calls queued for an in-flight slot
  int pool_connections_max = 16;  // idle keep-alive connections kept for reuse
  // Off (the default): every call goes on a connection of its own (Connection: close). The
  // contract's answers do not echo the request's reference, so on a reused connection a late
  // or duplicate answer (from the clearing or a proxy) cannot be told from the request's own:
  // the chaos run's hostile clearing made chains of transfers each settled with the previous
  // one's clearing reference. A connection costs a TCP (and TLS) handshake per call; reuse
  // is safe only against a clearing that echoes `reference` in every answer.
  bool reuse_connections = false;
  std::size_t response_body_bytes_max = 1 << 20;
  bool verify_tls = true;  // https: verify the peer's chain and host name
  std::string ca_file;     // https: extra CA bundle (PEM); empty = system default
  // https: a client certificate (PEM, chain leaf first) and its key, both or neither, for a
  // clearing that requires mTLS. Read at start(); one that does not load is an OptionsError.
  std::string client_cert_file;
  std::string client_key_file;
  int incoming_limit_max = 1'000;  // upper bound on incoming(limit)
};

// Ranges enforced by validate_options (named so the dispatcher's config schema can reuse them).
inline constexpr int kRequestTimeoutMsMax = 600'000;
inline constexpr int kInFlightMax = 4'096;
inline constexpr int kWaitingMax = 1'000'000;
inline constexpr int kPoolConnectionsMax = 4'096;
inline constexpr std::size_t kResponseBodyBytesMax = 64u << 20;

// Why the options were refused, or the client could not be set up with them (the ca_file
// does not load): a setting for the operator to fix, so never retryable as it stands.
struct OptionsError {
  std::string field;    // the ClientOptions member at fault: "base_url", "in_flight_max", ...
  std::string message;  // names the option and the allowed range; never the token's value
  friend bool operator==(const OptionsError&, const OptionsError&) = default;
};

// Nothing when valid, else the first option at fault.
tl::expected<void, OptionsError> validate_options(const ClientOptions& options);

// Counters for tests and metrics; monotonic except the *_now gauges.
struct ClientStats {
  std::int64_t requests_started = 0;    // requests that got an in-flight slot
  std::int64_t connections_opened = 0;  // TCP (and TLS) connections established
  std::int64_t connections_reused = 0;  // requests sent on a pooled connection
  std::int64_t stale_retries = 0;       // resent once because a pooled connection was dead
  std::int64_t in_flight_now = 0;
  std::int64_t in_flight_peak = 0;
  std::int64_t concurrency_limit = 0;      // calls allowed on the wire now
  std::int64_t concurrency_limit_min = 0;  // its bounds (both in_flight_max when fixed)
  std::int64_t concurrency_limit_max = 0;
  std::int64_t concurrency_limit_raises = 0;  // adaptive: the limit grew
  std::int64_t concurrency_limit_cuts = 0;    // adaptive: it shrank (latency or drops)
  std::int64_t waiting_now = 0;
  std::int64_t waiting_peak = 0;
  std::int64_t rejected_overloaded = 0;
  // Hostile or broken peers. A connection with anything unread after an answer (bytes past
  // it in the buffer or on the socket) is closed, never reused: those bytes would be taken
  // as the answer to the next request, another transfer's.
  std::int64_t connections_discarded_unread = 0;
  // Pooled connections found, before reuse, with bytes nobody asked for or closed by the
  // peer: closed, and the request goes on a fresh connection.
  std::int64_t idle_connections_discarded = 0;
  // Answers whose `reference` was not the request's key (unknown/reference_mismatch): an
  // alarm, each one also logged at error level.
  std::int64_t reference_mismatches = 0;
  // Answers and feed pages that broke the contract (unknown/contract_violation).
  std::int64_t contract_violations = 0;
};

// The W3C trace context sent with a call (traceparent / tracestate headers, as
// base::TraceContext formats them); empty fields: no header.
struct CallTrace {
  std::string traceparent;
  std::string tracestate;
};

class ClearingClient {
 public:
  // Validates the options and starts the I/O thread; the error names the option at fault.
  static tl::expected<std::unique_ptr<ClearingClient>, OptionsError> start(ClientOptions options);

  ~ClearingClient();  // stop(), then joins the I/O thread
  ClearingClient(const ClearingClient&) = delete;
  ClearingClient& operator=(const ClearingClient&) = delete;

  // POST /v1/transfers with Idempotency-Key = request.reference.
  std::future<ClearingAnswer> submit(SubmitRequest request, CallTrace trace = {});
  // GET /v1/transfers/{reference}.
  std::future<ClearingAnswer> inquire(std::string reference, CallTrace trace = {});
  // GET /v1/incoming?after=&limit= ; limit is clamped to [1, incoming_limit_max].
  std::future<IncomingPage> incoming(std::optional<std::string> after_cursor, int limit);

  // Cancels everything in flight and waiting (their futures complete with
  // unknown/connection_reset, detail "cancelled"); later calls complete the same way at once.
  // Idempotent; blocks until the I/O thread has finished.
  void stop();

  ClientStats stats() const;

  // The calls allowed on the wire now (in_flight_max unless adaptive); cheap, lock free.
  int concurrency_limit() const noexcept;

  struct Impl;

 private:
  explicit ClearingClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::clearing_client
