#pragma once
// core-sim: a small event-sourced banking core that drives one country's clearing adapter
// (DESIGN.md section 6). In-process API, used by the `core-sim` executable, the demo and
// the tests.
//
// What it does, once start() returned:
// - Accounts are AccountDecider aggregates in the core's own PostgreSQL database (never
//   the adapter's); commands start from a cache of committed states and fold only the
//   stream's tail, so a long run does not slow down as account streams grow. Account
//   work is set-wise (account_commands.hpp, outcome_applier.hpp): a publish batch or a
//   consumer batch costs a handful of statements however many transfers it holds.
//   For each transfer of the source, ONE transaction reserves the funds
//   (FundsReserved on the account) and appends TransferRequested to core.<cc>.payments.v1
//   (key = transfer id, a fresh correlation id, source_event_id = the FundsReserved
//   event's id). Transfers are appended in batches of `publish_batch_max` per
//   transaction, paced by `rate_per_s`. A transfer the core refuses itself (insufficient
//   funds, currency of another account, ...) is recorded and never published.
// - A Relay publishes core.<cc>.payments.v1 to Kafka; the core's catch-up API
//   (GET /streams/{stream}/partitions/{p}/events, bearer `api_token`) serves it for the
//   adapter's gap repair.
// - A StreamConsumer applies adapter.<cc>.payments.v1 (gaps fetched from the adapter's
//   catch-up API): TransferSucceeded completes the reservation, TransferRejected releases
//   it (reason code kept), TransferPending / TransferUnderInvestigation are recorded,
//   IncomingPaymentReceived is counted. An outcome that cannot be applied (unknown
//   transfer, already resolved) is recorded as a violation, never applied twice. A
//   TransferRejected with DUPL is about a second request with the same id, which this
//   core never sends: it is recorded and releases nothing. Unusable messages are parked.
//   With outcomes_version "v2" it consumes adapter.<cc>.payments.v2 instead, the same
//   way: each TransferStatusChanged stands for the v1 outcome outcome_of() names.
// - Switching versions: stop, then start over the same database with the other
//   outcomes_version. Each of the adapter's internal events is applied once whichever
//   version brought it (its source_event_id is kept), so every transfer gets exactly one
//   outcome across the switch (outcome_applier.hpp, "Switching from v1 to v2").
// - Latency: the instant each TransferRequested committed and the instant its terminal
//   outcome was applied are stored with the transfer, so figures survive a restart.
// - Restart: the same source (same JSONL, or same --transfers/--seed) republishes nothing
//   already requested: transfer ids are stable and checked against the database.
//
// Kafka topics are not created here: they must exist (or the broker auto-creates them).
//
// Thread safety: create/start/stop from one thread; progress(), report(),
// wait_until_done() and catch_up_port() from any thread. The destructor calls stop().
// Logs: base::module_logger("core_sim"), transfer and correlation ids only: never account
// numbers or names.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

namespace clearing::core_sim {

inline constexpr int kPublishBatchMax = 1000;  // transfers per transaction, upper bound

// The relay's pacing under load unless set, and the most that may be set: copies of
// external_streams' kRoundIntervalMinDefault and kRoundIntervalMinMax (checked in core_sim.cpp).
inline constexpr int kRelayRoundIntervalMsDefault = 50;
inline constexpr int kRelayRoundIntervalMsMax = 1'000;

struct CoreSimOptions {
  std::string country = "dk";   // dk | se | no
  std::string database_url;     // libpq URI of the core's own database
  std::string kafka_bootstrap;  // bootstrap servers
  int core_partitions = 4;      // partitions of core.<cc>.payments.v1 (1..256)
  int adapter_partitions = 4;   // of adapter.<cc>.payments.<v> (1..256): validated, and
                                // the topic's size under `core-sim --kafka embedded`; the
                                // consumer itself follows Kafka's assignment
  // Which version of the adapter's stream to consume: "v1" (adapter.<cc>.payments.v1) or
  // "v2" (adapter.<cc>.payments.v2). Changed between two runs over one database: the switch.
  std::string outcomes_version = "v1";
  std::string adapter_catch_up_url;     // http://host:port of the adapter's catch-up API;
                                        // empty: a gap stalls its partition (no repair)
  std::string adapter_api_token;        // bearer token for it: a token of the role reader
  std::string http_host = "127.0.0.1";  // the core's catch-up API
  int http_port = 0;                    // 0: a free port, see catch_up_port()
  std::string api_token;  // required on the core's catch-up API; empty: no auth (tests)
  // TLS on the core's catch-up API (PEM files): with a certificate and key it serves https
  // only; with a client CA too, the adapter must present a certificate that CA signed.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::optional<std::string> jsonl_path;  // source: JSONL file; wins over `transfers`
  int transfers = 0;                      // source: the seeded generator, this many (0: none)
  std::uint64_t seed = 1;
  double invalid_share = 0.05;  // 0..1: share of invalid generated requests
  double rate_per_s = 0;        // transfers per second; 0 = as fast as possible
  int accounts = 100;           // generator: accounts in the country's currency
  std::int64_t opening_balance_minor = 1'000'000'000'000;  // of every account the core opens
  std::int64_t amount_limit_minor = 1'000'000'000;  // generator: over-limit requests exceed it
  int publish_batch_max = 100;  // transfers per transaction (1..kPublishBatchMax)
  std::string consumer_group;   // empty: "core-sim-<cc>"
  std::string kafka_client_id = "core-sim";
  int fetch_wait_max_ms = 50;  // the consumer's fetch.wait.max.ms (1..5000)
  int relay_round_interval_min_ms =
      kRelayRoundIntervalMsDefault;  // the relay's pacing under load (0: none)
  int database_connections_max = 8;
};

// Cheap enough to poll for a progress bar (one grouped count).
struct Progress {
  std::int64_t total_planned = 0;  // transfers of the source (usable JSONL lines, or N)
  std::int64_t processed = 0;      // of them, handled by the publisher (requested or refused)
  std::int64_t requested = 0;      // published TransferRequested (all runs)
  std::int64_t refused = 0;        // refused by the core itself, never published
  std::int64_t succeeded = 0;
  std::int64_t rejected = 0;
  std::int64_t open = 0;  // requested, no terminal outcome yet
  bool publishing_done = false;
};

struct LatencySummary {
  std::int64_t count = 0;  // transfers with a terminal outcome
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
};

struct ViolationCounts {
  std::int64_t double_completion = 0;
  std::int64_t completion_after_release = 0;
  std::int64_t release_after_completion = 0;
  std::int64_t double_release = 0;
  std::int64_t unknown_transfer = 0;
  std::int64_t total() const {
    return double_completion + completion_after_release + release_after_completion +
           double_release + unknown_transfer;
  }
};

struct Report {
  std::string country;
  std::int64_t planned = 0;
  std::int64_t requested = 0;
  std::int64_t succeeded = 0;
  std::int64_t rejected = 0;
  std::map<std::string, std::int64_t> rejected_by_reason;  // ISO 20022 code -> count
  std::int64_t pending_seen = 0;                           // transfers that saw TransferPending
  std::int64_t under_investigation_seen = 0;  // transfers that saw TransferUnderInvestigation
  std::int64_t still_open = 0;
  std::int64_t refused = 0;                               // by the core itself
  std::map<std::string, std::int64_t> refused_by_reason;  // AccountRejectionCode names
  std::int64_t source_lines_skipped = 0;                  // JSONL lines that were not usable
  std::int64_t duplicate_requests_reported = 0;  // DUPL rejections (recorded, nothing released)
  std::int64_t incoming_payments = 0;
  std::int64_t parked_messages = 0;
  ViolationCounts violations;
  // From the account events themselves: transfers with more than one resolution event
  // (must be 0 whatever arrives; the decider refuses a second one).
  std::int64_t resolved_twice_in_ledger = 0;
  // Generator only: terminal outcomes other than the request kind predicts (informative:
  // a fault profile may legitimately change them).
  std::int64_t expectation_mismatches = 0;
  // Every requested transfer has exactly one applied outcome, and no violation occurred.
  bool resolved_exactly_once = false;
  LatencySummary latency;  // TransferRequested commit -> terminal outcome applied
  double elapsed_s = 0;    // first request commit -> last outcome applied (or now)
  double requested_per_s = 0;
  double resolved_per_s = 0;
};

std::string to_text(const Report& report);
nlohmann::json to_json(const Report& report);

// The q-quantile (0..1) of sorted values, nearest rank; 0 for none. Pure, for tests.
double percentile(const std::vector<double>& sorted, double q);

class CoreSim {
 public:
  // Validates the options (the error names the bad one); connects to nothing yet.
  static tl::expected<std::unique_ptr<CoreSim>, std::string> create(CoreSimOptions options);
  ~CoreSim();
  CoreSim(const CoreSim&) = delete;
  CoreSim& operator=(const CoreSim&) = delete;

  // Migrations (eventstore, external_streams, core_sim), the stream's partitions, the
  // source (a JSONL file that cannot be opened is an error; bad lines are skipped and
  // counted), the accounts, then the catch-up API, relay, consumer and publisher thread.
  tl::expected<void, std::string> start();
  // Graceful and idempotent: publisher, consumer, relay, HTTP server, in that order.
  void stop();

  std::uint16_t catch_up_port() const;
  Progress progress() const;
  Report report() const;
  // True once the publisher is done and no requested transfer is open; false on timeout.
  bool wait_until_done(std::chrono::milliseconds timeout);

  struct Impl;

 private:
  explicit CoreSim(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::core_sim
