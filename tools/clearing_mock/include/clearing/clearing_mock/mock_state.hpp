#pragma once
// The clearing mock's behaviour without the network: idempotency store, ledger, validation,
// cut-off, incoming feed, and the seeded fault schedule. The server (mock_server.hpp) turns
// HTTP requests into calls here and carries out the faults this class plans.
//
// Thread safety: every member is thread safe (one mutex); the server runs several strands.
//
// Deterministic rules (documented for tests and scripts):
//  - Validation of POST /v1/transfers, in this order:
//      400 (malformed, never stored): body not a JSON object, a field missing or of the wrong
//          type, amount_minor <= 0, Idempotency-Key missing or different from `reference`;
//      200 RJCT AC01: debtor or creditor account invalid for the country
//          (clearing::sagas::parse_account_text);
//      200 RJCT AM03: currency is not the country's (DKK, SEK, NOK, EUR);
//      200 RJCT AM02: amount_minor above MockOptions::amount_minor_max;
//      200 RJCT AC04: creditor account text ends in "0004" (closed account);
//      200 RJCT AC06: creditor account text ends in "0006" (blocked account);
//      200 RJCT AB05 or AB06 (SEPA Instant's timeouts at the creditor's bank or at the
//          instructed agent; the transfer is not executed), with probability `scheme_timeout`
//          for a Euro country's clearing (FI), drawn from its own RNG stream (seed + 5) only
//          while it is on, AB05 and AB06 by turns: the other faults' schedule stays as it was;
//      otherwise executed: 201 ACSC (settlement date = today, UTC), or 202 PDNG after the
//      cut-off (settlement date = the next business day of `business_days`: weekends,
//      holidays and bank closing days skipped; by default Saturday and Sunday only).
//  - Idempotency: the first answer is stored under the key and replayed for the same key and
//    the same body (compared as canonical JSON: key order and spacing do not matter); 422
//    IDEMPOTENCY_KEY_REUSED for another body; 409 IN_PROGRESS while the first request is still
//    being processed (during an injected delay). A request that a fault stopped before it
//    executed leaves no trace: the next request with the key is a first request again.
//  - Cut-off: after `cutoff_minute_utc` (UTC minutes since midnight) or always when
//    `always_after_cutoff`, accepted transfers answer 202 PDNG. A PDNG transfer settles on
//    its `settle_after_inquiries`-th status inquiry (default 2: the first inquiry still says
//    PDNG, the second says ACSC); from then on every inquiry says ACSC.
//  - Faults: every authorized /v1 request draws, in the fixed order of FaultClass, one
//    uniform number per class from one RNG seeded with `seed`; the first class whose draw is
//    below its probability is the request's fault. `delay` is drawn separately (then a delay
//    uniformly in [delay_ms_min, delay_ms_max]). So one seed gives one fault schedule per
//    request sequence. Faults that act before execution (nothing executed, nothing stored):
//    reset_before_execute, timeout_before_execute, http_500, http_502, error_body_200,
//    maintenance_503. Faults that act after execution (executed and stored; the answer is
//    lost or damaged): timeout_after_execute, close_after_execute, http_504, malformed_json.
//    For inquiries and the feed, "execute" means computing the answer.
//  - Hostile answers (issue 16: a clearing, or a proxy in front of it, that sends bytes
//    nobody asked for), on submits and inquiries, off by default. They are drawn from their
//    own RNG stream (seed + 3), one draw per HostileFault class in its order plus three for
//    the stray's shape, whatever the probabilities: turning them on changes nothing in the
//    schedule of the faults above. They never touch the store or the ledger: a transfer
//    the mock executed stays executed once, replays and inquiries answer the truth.
//      stray_response: after the answer (a fault answer too, e.g. a 503), a second,
//        unrequested complete response on the same connection: `201 ACSC` with a
//        made-up clearing reference, or `200 RJCT AC04`. Half the time in the same write,
//        without a `reference`; otherwise 1..stray_delay_ms_max ms later, naming a made-up
//        `reference` (the only way a client can tell it from the next request's answer);
//      duplicate_response: the answer written twice, in one write;
//      nul_field: the real answer with a NUL in clearing_reference (ACSC, PDNG) or in reason
//        (RJCT);
//      oversize_field: the same with a 1 MB clearing_reference or reason.
//    nul_field and oversize_field apply to transfer answers only (a body with `status`);
//    stray and duplicate on any connection, also one the request asked to close (written
//    before the close: a client reading one answer per connection never sees them). Each is
//    counted in MockStats::faults under its name when it is carried out, not when it is drawn.
//  - Capacity model (a mainframe that slows down before it fails), off while `capacity` is 0
//    (the default: every request executes at once). Every authorized submit and inquiry (not
//    the feed, not /admin) first asks for one of `capacity` executors, before its idempotency
//    key is looked at and before its fault plan is drawn. A free executor is taken at once
//    when nobody waits; otherwise the request joins a FIFO queue (it waits without holding a
//    thread). When `queue_max` requests already wait, it is refused: 503 OVERLOADED with
//    Retry-After (`retry_after_s`), nothing executed, nothing stored, no fault or hostile
//    draw, counted in MockStats::overloaded_answers. A request holding an executor keeps it
//    for its execution time, then gives it to the first in the queue and goes on through the
//    fault path above (delays, latency_ms, faults) as before. Execution time:
//      service_ms * (1 + thrash_permille/1000 * queued/capacity) * (1 + jitter)
//    where queued = the requests waiting when it starts, and jitter is uniform in
//    [-service_jitter_permille/1000, +service_jitter_permille/1000], drawn from its own RNG
//    stream (seed + 4) so that the fault schedule of a seed does not change; capped at
//    kFaultMsMax. With capacity 0, service_ms still applies (without thrash): a fixed
//    execution time per request, however many run at once.
//  - Incoming feed: `incoming_generated` payments generated from the seed (cursors
//    000000000001...), plus those posted to /admin/incoming. With probability
//    `incoming_resend_probability` (its own RNG stream, seed + 1), a page after cursor c first
//    re-sends the payment with cursor c (same clearing reference), on top of `limit`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "clearing/config/config.hpp"
#include "clearing/sagas/account.hpp"

namespace clearing::clearing_mock {

// The order is the draw order of the fault schedule: never reorder (it changes schedules).
enum class FaultClass {
  none,
  timeout_before_execute,
  timeout_after_execute,
  close_after_execute,
  reset_before_execute,
  http_500,
  http_502,
  http_504,
  error_body_200,
  malformed_json,
  maintenance_503,
};
inline constexpr int kFaultClassCount = 11;  // including none
std::string_view to_string(FaultClass fault) noexcept;
bool acts_before_execute(FaultClass fault) noexcept;

// The order is the draw order of the hostile stream: never reorder.
enum class HostileFault { none, stray_response, duplicate_response, nul_field, oversize_field };
inline constexpr int kHostileFaultCount = 5;  // including none
std::string_view to_string(HostileFault fault) noexcept;

// The oversize_field fault's field, and the longest delay of a late stray (a named bound).
inline constexpr std::size_t kOversizeFieldBytes = 1'000'000;
inline constexpr int kStrayDelayMsMax = 10'000;

struct FaultSettings {
  // Probabilities in [0, 1].
  double delay = 0;
  double timeout_before_execute = 0;
  double timeout_after_execute = 0;
  double close_after_execute = 0;
  double reset_before_execute = 0;
  double http_500 = 0;
  double http_502 = 0;
  double http_504 = 0;
  double error_body_200 = 0;
  double malformed_json = 0;
  double maintenance_503 = 0;
  double stray_response = 0;  // hostile answers: see the rules above
  double duplicate_response = 0;
  double nul_field = 0;
  double oversize_field = 0;
  // SEPA Instant (FI): the scheme rejects an otherwise valid transfer, RJCT AB05 or AB06.
  double scheme_timeout = 0;
  int delay_ms_min = 0;
  int delay_ms_max = 0;
  int latency_ms = 0;           // added to every /v1 answer
  int hold_ms = 5'000;          // timeout_* faults hold the connection this long, then close it
  int retry_after_s = 1;        // Retry-After of maintenance_503
  int stray_delay_ms_max = 20;  // a late stray comes 1..this many ms after the answer
  // The capacity model (see the rules above).
  int capacity = 0;  // executors; 0 = unlimited
  int service_ms = 0;
  int queue_max = 10'000;
  int thrash_permille = 0;
  int service_jitter_permille = 100;  // +-10% of the execution time
};

inline constexpr int kFaultMsMax = 600'000;

// Every setting of FaultSettings by its name: the key of apply_faults_json and
// faults_to_json, and the command-line flag (--fault-<name> for a probability, --<name> for
// the others, '-' for '_'), with what it does. One table, so that a new fault is named once.
struct FaultProbabilityField {
  const char* name;
  double FaultSettings::*member;
  const char* help;
};
struct FaultIntegerField {
  const char* name;
  int FaultSettings::*member;
  int max;
  const char* help;
};
std::span<const FaultProbabilityField> fault_probability_fields() noexcept;
std::span<const FaultIntegerField> fault_integer_fields() noexcept;

// Applies a partial update in JSON (the field names above); unknown keys, wrong types and
// out-of-range values are rejected with a message, leaving `settings` unchanged.
tl::expected<void, std::string> apply_faults_json(FaultSettings& settings, std::string_view json);
std::string faults_to_json(const FaultSettings& settings);

struct MockOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port
  std::string bearer_token = "mock-token";
  sagas::Country country = sagas::Country::dk;
  std::uint64_t seed = 1;
  std::int64_t amount_minor_max = 1'000'000'000;  // above: RJCT AM02
  std::optional<int> cutoff_minute_utc;           // e.g. 14:30 -> 870
  bool always_after_cutoff = false;
  // The country's calendar (config country.business_days; clearing-mock --country-config):
  // a PDNG answer settles on its next business day.
  config::BusinessDays business_days;
  int settle_after_inquiries = 2;
  int incoming_generated = 20;
  double incoming_resend_probability = 0.0;
  int threads = 1;
  std::size_t request_body_bytes_max = 64 * 1024;
  int idle_timeout_ms = 60'000;  // keep-alive idle and slow-request read deadline
  int write_timeout_ms = 10'000;
  // TLS (PEM files): with a certificate and key the mock serves https only; with a client CA
  // too, every client must present a certificate that CA signed (mTLS). A handshake must
  // finish within idle_timeout_ms.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  FaultSettings faults;
  // Time source for cut-off, dates and executed_at; tests may fix it.
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

inline constexpr int kIncomingLimitMax = 1'000;
inline constexpr int kIncomingPaymentsMax = 1'000'000;

tl::expected<void, std::string> validate_options(const MockOptions& options);

struct HttpAnswer {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct FaultPlan {
  FaultClass fault = FaultClass::none;
  int delay_ms = 0;  // injected delay plus the fixed latency
  int hold_ms = 0;
};

enum class Endpoint { submit, inquire, incoming };

// The hostile part of one request's plan (drawn apart from FaultPlan, see above).
struct HostilePlan {
  HostileFault fault = HostileFault::none;
  int stray_delay_ms = 0;      // stray_response: 0 = in the answer's own write
  bool stray_rejects = false;  // stray_response: `200 RJCT AC04` instead of `201 ACSC`
};

struct LedgerEntry {
  std::string reference;
  std::string clearing_reference;
  std::int64_t amount_minor = 0;
  std::string currency;
  std::string executed_at;  // "" when never executed (RJCT)
  std::string status;       // ACSC, PDNG, RJCT
  std::string reason_code;  // RJCT only
  int execution_count = 0;  // times money moved for this reference: must never exceed 1
  int inquiries = 0;
};

// The ledger as GET /admin/ledger gives it (MockState::ledger_json), read back: throws
// nlohmann::json's exceptions on a body of another shape.
std::vector<LedgerEntry> ledger_from_json(std::string_view text);

struct MockStats {
  std::int64_t requests_total = 0;
  std::map<std::string, std::int64_t> requests;  // submit, inquire, incoming, admin
  std::map<std::string, std::int64_t> faults;    // per FaultClass name, plus "delay"
  std::int64_t executions_total = 0;
  std::int64_t replays = 0;
  std::int64_t in_progress_answers = 0;
  std::int64_t key_reused_answers = 0;
  std::int64_t unauthorized = 0;
  std::int64_t connections_accepted = 0;
  std::int64_t in_flight_now = 0;
  std::int64_t in_flight_peak = 0;
  std::int64_t incoming_resends = 0;
  // Requests whose connection already held more bytes from the client when their answer
  // was about to be written: the client sent on a connection before it had the answer to its
  // last request there (pipelining, or one connection used by two calls at once).
  std::int64_t requests_before_answer = 0;
  // The capacity model: submits and inquiries holding an executor, waiting for one, and
  // refused because the queue was full (503 OVERLOADED).
  std::int64_t executing_now = 0;
  std::int64_t executing_peak = 0;
  std::int64_t queued_now = 0;
  std::int64_t queued_peak = 0;
  std::int64_t overloaded_answers = 0;
};

// What the capacity model does with a request asking for an executor.
struct Admission {
  enum class Kind { execute, wait, overloaded };
  Kind kind = Kind::execute;
  std::uint64_t ticket = 0;  // wait: names the request in the queue (leave_queue)
};

class MockState {
 public:
  explicit MockState(MockOptions options);
  ~MockState();
  MockState(const MockState&) = delete;
  MockState& operator=(const MockState&) = delete;

  const MockOptions& options() const { return options_; }

  // Draws the fault schedule entry of one /v1 request and counts it.
  FaultPlan plan_faults(Endpoint endpoint);
  // The answer a fault replaces the real one with (5xx, 200 error body, 503), or a damaged
  // copy of `real` for malformed_json.
  HttpAnswer fault_answer(FaultClass fault, const HttpAnswer& real) const;

  // Draws the hostile part of one request's plan (submits and inquiries only; the feed
  // draws nothing). Counts nothing: see note_hostile.
  HostilePlan plan_hostile(Endpoint endpoint);
  // The real answer damaged by nul_field or oversize_field; nullopt when `real` is not a
  // transfer answer (no `status`) or the fault is another. Counts it when it applies.
  std::optional<HttpAnswer> hostile_answer(HostileFault fault, const HttpAnswer& real);
  // The unrequested answer of a stray_response (a fresh made-up clearing reference each
  // time; with a made-up `reference` when it comes late).
  HttpAnswer stray_answer(const HostilePlan& plan);
  // Counts a stray or duplicate response the server wrote.
  void note_hostile(HostileFault fault);

  // POST /v1/transfers, in two steps so that an injected delay falls while the key is in
  // progress. begin: either an immediate answer (400, replay, 409, 422) or nullopt, and then
  // the caller must call exactly one of execute_submit / abandon_submit with the same key.
  std::optional<HttpAnswer> begin_submit(std::string_view idempotency_key, std::string_view body);
  HttpAnswer execute_submit(const std::string& key);
  void abandon_submit(const std::string& key);

  // The capacity model (see the rules). admit: execute (the request holds an executor now),
  // wait (queued; `wake` is called once, outside the lock and on whichever thread gives an
  // executor back, when it holds one), or overloaded (answer overloaded_answer()).
  Admission admit(std::function<void()> wake);
  // The execution time of a request that holds an executor now; draws the jitter.
  int execution_ms();
  // Gives an executor back; the first waiters that fit now hold one and are woken.
  void finish_execution();
  // A waiting request that gives up (the server stops): true when it left the queue; false
  // when it holds an executor already (then it must call finish_execution).
  bool leave_queue(std::uint64_t ticket);
  // 503 OVERLOADED with Retry-After.
  HttpAnswer overloaded_answer() const;

  HttpAnswer inquire(std::string_view reference);
  // `query` is the raw query string (after '?').
  HttpAnswer incoming(std::string_view query);

  // Admin.
  HttpAnswer add_incoming(std::string_view body);
  std::vector<LedgerEntry> ledger() const;
  std::string ledger_json() const;
  MockStats stats() const;
  std::string stats_json() const;
  FaultSettings faults() const;
  void set_faults(const FaultSettings& settings);
  HttpAnswer put_faults(std::string_view body);
  std::size_t in_progress_count() const;

  // Server bookkeeping for stats.
  void note_connection();
  void note_request(std::string_view endpoint_name);
  void note_unauthorized();
  void note_request_before_answer();
  void request_started();
  void request_finished();

  struct Data;

 private:
  bool scheme_rejects(sagas::Country country);

  MockOptions options_;
  std::unique_ptr<Data> data_;
};

}  // namespace clearing::clearing_mock
