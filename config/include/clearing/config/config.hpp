#pragma once
// The adapter's configuration: one typed struct per module, with the limits that the loader
// (clearing/config/loader.hpp) enforces as named constants, so that every module can reuse
// them instead of repeating numbers.
//
// A value of AdapterConfig that came out of load_config has passed every check below; code
// that builds one by hand (tests, the embedded demo) should run validate() on it.
//
// Secrets (the clearing token, the API token) only ever come from the environment. They are
// held in Secret, which has no formatting or streaming support on purpose: printing one by
// accident does not compile. DatabaseConfig::url may carry a password; log it only through
// redact_database_url().
//
// Thread safety: plain values; the const member functions are pure and thread safe.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clearing/base/country.hpp"
#include "clearing/base/log_format.hpp"
#include "clearing/base/maintenance_window.hpp"
#include "clearing/sagas/account.hpp"

namespace clearing::config {

// ---------------------------------------------------------------------------------------
// Secrets.

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  bool is_set() const noexcept { return !value_.empty(); }
  // The one way to read the value: to put it on the wire, never into a log.
  const std::string& reveal() const noexcept { return value_; }
  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

// The adapter's own API token guards transfer states, parked messages and the catch-up API.
// We choose it, so it can be long: 32 characters is what `openssl rand -hex 16` prints, 128
// random bits, beyond guessing at any rate of requests. A short one (a placeholder, "t")
// would let anyone who can reach the port read every transfer.
inline constexpr std::size_t kApiTokenLengthMin = 32;
// The clearing issues its token and we cannot choose its form, but none is this short:
// 16 characters still refuses a placeholder ("x", "test", "changeme") or a paste cut
// short, which would otherwise show only as a 401 at the first call.
inline constexpr std::size_t kClearingTokenLengthMin = 16;
// Either token goes into one HTTP header line; servers refuse header lines of 8 KiB or more.
inline constexpr std::size_t kTokenLengthMax = 4096;

// ---------------------------------------------------------------------------------------
// Country: currency, limits, cut-off and the business-day calendar.

// The one country type and its codes (clearing/base/country.hpp), under config's names:
// country_code_upper "DK", country_code_lower "dk" (stream names), country_currency "DKK".
// The account schemes and their rules are sagas/'s (the account-rule registry, account.hpp).
using base::Country;
using base::country_code_lower;
inline std::string_view country_code_upper(Country country) noexcept {
  return base::country_code(country);
}
inline std::string_view country_currency(Country country) noexcept {
  return base::country_currency_code(country);
}

inline constexpr std::int64_t kAmountLimitMinorMax = 1'000'000'000'000'000;  // 10^13 units
inline constexpr std::size_t kHolidaysMax = 1'000;
inline constexpr int kCalendarYearMin = 2000;
inline constexpr int kCalendarYearMax = 2100;
// next_business_day looks at most this many days ahead (a bound on the loop; a validated
// calendar always finds one within 8 + its number of closing days).
inline constexpr int kBusinessDaySearchDaysMax = 8 + 2 * static_cast<int>(kHolidaysMax);

struct BusinessDays {
  std::vector<std::chrono::weekday> weekend{std::chrono::Saturday, std::chrono::Sunday};
  // Statutory public holidays, sorted ascending, no duplicates.
  std::vector<std::chrono::year_month_day> holidays;
  // Days the clearing is closed that are not public holidays (for example Christmas Eve),
  // sorted ascending, no duplicates. Optional in the file.
  std::vector<std::chrono::year_month_day> bank_closing_days;

  // True on a day that is neither a weekend day, a holiday nor a bank closing day.
  bool is_business_day(std::chrono::year_month_day date) const;
  // The first business day strictly after `date`.
  std::chrono::year_month_day next_business_day(std::chrono::year_month_day date) const;
  // `date` itself when it is a business day, else the next one.
  std::chrono::year_month_day business_day_on_or_after(std::chrono::year_month_day date) const;
  friend bool operator==(const BusinessDays&, const BusinessDays&) = default;
};

// "2026-12-24", "13:30", "Sat": the forms used in the file.
std::string format_date(std::chrono::year_month_day date);
std::string format_time_of_day(std::chrono::minutes since_midnight);
std::string_view weekday_name(std::chrono::weekday day) noexcept;

struct CountryConfig {
  Country code = Country::dk;                // "DK" | "SE" | "NO" | "FI" in the file
  std::string currency;                      // ISO 4217; must be the country's (DKK/SEK/NOK/EUR)
  std::int64_t amount_limit_minor = 0;       // inclusive upper limit per transfer, > 0
  std::chrono::minutes cutoff_utc{13 * 60};  // minutes after 00:00 UTC; "HH:MM" in the file
  BusinessDays business_days;
  // Countries as data (issue 23): the currency's ISO 4217 minor units, the unit of every
  // amount (optional in the file; it must be the currency's, 2 for all four), and the schemes
  // the country's accounts come in, each of which needs a rule in the account-rule registry
  // (optional in the file: every scheme the registry has a rule for in the country).
  int currency_minor_units = 2;
  std::vector<sagas::AccountScheme> account_schemes{sagas::AccountScheme::iban,
                                                    sagas::AccountScheme::bban};

  bool is_business_day(std::chrono::year_month_day date) const {
    return business_days.is_business_day(date);
  }
  std::chrono::year_month_day next_business_day(std::chrono::year_month_day date) const {
    return business_days.next_business_day(date);
  }
  // The day a transfer accepted at `at` (UTC) settles: that day when it is a business day
  // and `at` is before the cut-off, else the next business day.
  std::chrono::year_month_day settlement_date(
      std::chrono::sys_time<std::chrono::milliseconds> at) const;
  friend bool operator==(const CountryConfig&, const CountryConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Clearing API client (clearing_client::ClientOptions).

inline constexpr int kTimeoutMsMax = 600'000;  // any single request or statement: 10 minutes
inline constexpr int kClearingInFlightMax = 4'096;
inline constexpr int kClearingPoolConnectionsMax = 4'096;

// How many calls the clearing is given at once (clearing_client::ClientOptions): `adaptive`
// (a limit learnt from its latency and its 503s and timeouts, within [concurrency_min,
// in_flight_max]: clearing_client/concurrency_limiter.hpp) or `fixed` (in_flight_max).
enum class ConcurrencyMode { adaptive, fixed };
std::string_view concurrency_mode_name(ConcurrencyMode mode) noexcept;

// Known maintenance windows of the clearing (clearing.maintenance_windows; issue 23, item 3),
// in UTC: a call due inside one is deferred to its end (SubmissionDeferred) instead of
// collecting 503s. Optional; none by default. In the file, one array of objects:
//   {"weekday": "Sun", "start": "01:00", "end": "03:00"}   every week (end may be "24:00")
//   {"start": "2026-12-24T20:00:00Z", "end": "2026-12-25T02:00:00Z"}   once
// A window holds [start, end); its end must be after its start.
inline constexpr std::size_t kMaintenanceWindowsMax = 1'000;

// The windows are base/'s values (base/maintenance_window.hpp), which the saga reads too.
struct MaintenanceWindowsConfig {
  // Each list in the file's order of its kind; `index` of the messages is the file's index.
  std::vector<std::pair<std::size_t, base::WeeklyMaintenanceWindow>> weekly;
  std::vector<std::pair<std::size_t, base::DatedMaintenanceWindow>> dated;
  std::size_t size() const noexcept { return weekly.size() + dated.size(); }
  // The windows without their indexes, each list in the file's order: what the dispatcher holds.
  base::MaintenanceWindows windows() const;
  friend bool operator==(const MaintenanceWindowsConfig&,
                         const MaintenanceWindowsConfig&) = default;
};

struct ClearingConfig {
  std::string base_url;            // http://host[:port][/prefix] or https://...; env may override
  Secret token;                    // CLEARING_ADAPTER_CLEARING_TOKEN only; never in the file
  int request_timeout_ms = 5'000;  // [1, kTimeoutMsMax]
  int connect_timeout_ms = 1'000;  // [1, request_timeout_ms]
  int in_flight_max = 16;          // [1, kClearingInFlightMax]
  ConcurrencyMode concurrency_mode = ConcurrencyMode::adaptive;
  int concurrency_initial = 16;   // adaptive: [concurrency_min, in_flight_max]
  int concurrency_min = 4;        // adaptive: [1, in_flight_max]
  int pool_connections_max = 16;  // [0, kClearingPoolConnectionsMax]; with reuse_connections
  // Keep-alive reuse of connections to the clearing (clearing_client::ClientOptions): off, every
  // call has a connection of its own, because the contract's answers do not echo the request's
  // reference and a late or duplicate answer on a reused connection would be read as the next
  // call's. Turn it on only against a clearing that echoes `reference` in every answer.
  bool reuse_connections = false;
  bool verify_tls = true;  // https only
  // verify_tls false with an https base_url stops the start unless this is true too: the
  // operator says in writing that anyone on the network path may answer as the clearing.
  // Then config_warnings() names it, to be logged at every start. Only with verify_tls false.
  bool unverified_tls_acknowledged = false;
  std::optional<std::string> ca_file;  // https only: extra CA bundle (PEM)
  // https only: a client certificate (PEM) and its private key, both or neither, for a
  // clearing that requires mTLS (TLS files, below).
  std::optional<std::string> client_cert_file;
  std::optional<std::string> client_key_file;
  MaintenanceWindowsConfig maintenance_windows;  // optional
  friend bool operator==(const ClearingConfig&, const ClearingConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Retry policy (sagas::RetryPolicy); defaults equal the saga's. Every key is required in the
// file: the defaults serve configs built in code (tests, the demo).

inline constexpr std::int64_t kBackoffMsMax = 7LL * 24 * 3600 * 1000;  // sagas::kBackoffCeilingMs
inline constexpr std::int64_t kBackoffMultiplierMax = 16;
inline constexpr std::int64_t kUnknownOutcomesBeforeInquiryMax = 1'000;
inline constexpr std::int64_t kInquiryIntervalMsMin = 100;
inline constexpr std::int64_t kInquiryIntervalMsMax = 24LL * 3600 * 1000;
inline constexpr std::int64_t kDeadlineMsMin = 1'000;
inline constexpr std::int64_t kDeadlineMsMax = 30LL * 24 * 3600 * 1000;

struct RetryConfig {
  std::int64_t backoff_initial_ms = 1'000;                   // [1, kBackoffMsMax]
  std::int64_t backoff_max_ms = 60'000;                      // [backoff_initial_ms, kBackoffMsMax]
  std::int64_t backoff_multiplier = 2;                       // [1, kBackoffMultiplierMax]
  std::int64_t unknown_outcomes_before_inquiry = 3;          // [1, ...Max]
  std::int64_t pending_inquiry_interval_ms = 60'000;         // [kInquiryIntervalMs*]
  std::int64_t investigation_inquiry_interval_ms = 300'000;  // [kInquiryIntervalMs*]
  std::int64_t deadline_ms = 3'600'000;                      // [kDeadlineMs*]
  friend bool operator==(const RetryConfig&, const RetryConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Dispatcher (adapter::DispatcherOptions).

inline constexpr int kDispatcherInFlightMax = 4'096;
inline constexpr int kClaimBatchMax = 10'000;
inline constexpr std::int64_t kLeaseMsMax = 3'600'000;
inline constexpr std::int64_t kIdlePollMsMax = 60'000;
inline constexpr std::int64_t kStopGraceMsMax = 600'000;

struct DispatcherConfig {
  int in_flight_max = 64;               // [1, kDispatcherInFlightMax]
  int claim_batch_max = 64;             // [1, kClaimBatchMax]
  std::int64_t lease_ms = 30'000;       // (clearing.request_timeout_ms, kLeaseMsMax]
  std::int64_t idle_poll_ms = 20;       // [1, kIdlePollMsMax]
  std::int64_t stop_grace_ms = 10'000;  // [0, kStopGraceMsMax]
  // A claimed call's lease counts only while its owner's PostgreSQL session lives, so a
  // killed adapter's calls are made again at once (adapter::DispatcherOptions). Every adapter
  // sharing the database must have the same setting.
  bool lease_by_session = true;
  friend bool operator==(const DispatcherConfig&, const DispatcherConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Incoming feed poller (adapter::IncomingPollerOptions).

inline constexpr std::int64_t kPollIntervalMsMin = 10;
inline constexpr std::int64_t kPollIntervalMsMax = 3'600'000;
inline constexpr int kPageLimitMax = 1'000;  // clearing_client's default incoming_limit_max

struct IncomingConfig {
  std::int64_t poll_interval_ms = 1'000;  // [kPollIntervalMsMin, kPollIntervalMsMax]
  int page_limit = 100;                   // [1, kPageLimitMax]
  friend bool operator==(const IncomingConfig&, const IncomingConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// External streams (contracts/streams.md).

inline constexpr int kPartitionsMax = 256;
inline constexpr std::size_t kOutboundStreamsMax = 16;

// How internal events become an outbound stream's events (docs/streams.md).
enum class Derivation { payments_v1, settlements_v1, payments_v2, positions_v1 };
inline constexpr std::array<Derivation, 4> kDerivations{
    Derivation::payments_v1, Derivation::settlements_v1, Derivation::payments_v2,
    Derivation::positions_v1};
std::string_view derivation_name(Derivation derivation) noexcept;  // "payments.v1"

struct InboundStreamConfig {
  std::string name;    // default "core.<cc>.payments.v1"
  int partitions = 0;  // [1, kPartitionsMax]; required (must match the core's topic)
  friend bool operator==(const InboundStreamConfig&, const InboundStreamConfig&) = default;
};

struct OutboundStreamConfig {
  std::string name;    // "adapter.<cc>.<derivation>", e.g. adapter.dk.payments.v1
  int partitions = 0;  // [1, kPartitionsMax]; fixed once the stream exists (a new count is a
                       // new version)
  Derivation derivation = Derivation::payments_v1;
  // A stream added to an adapter with history is backfilled from the beginning of the
  // history, or from the first event recorded at or after this RFC 3339 time. Read only
  // when the stream is registered (its first start).
  std::optional<std::string> backfill_from;
  friend bool operator==(const OutboundStreamConfig&, const OutboundStreamConfig&) = default;
};

// streams.deprecated[]: an outbound stream on its way out. Until the sunset it is derived
// and published as before, its Kafka messages carry a `deprecation` header and the
// catch-up API's answers the Deprecation and Sunset HTTP headers. After the sunset it must
// say "retired": it is no longer derived; its history stays readable.
struct DeprecatedStreamConfig {
  std::string stream;  // a name of streams.outbound
  std::chrono::year_month_day sunset{};
  bool retired = false;
  friend bool operator==(const DeprecatedStreamConfig&, const DeprecatedStreamConfig&) = default;
};

inline constexpr int kTailCheckIntervalMsDefault = 2'000;
inline constexpr int kTailCheckIntervalMsMax = 600'000;

struct StreamsConfig {
  InboundStreamConfig inbound;
  std::vector<OutboundStreamConfig> outbound;      // 1..kOutboundStreamsMax, distinct names
  std::vector<DeprecatedStreamConfig> deprecated;  // each names an outbound stream, once
  // http:// or https:// base URL of the core's catch-up API; env may override.
  std::string core_catchup_url;
  // https only: the CA bundle (PEM) the core's certificate must lead to (none: the system's
  // CAs), and a client certificate and key, both or neither, when the core requires mTLS.
  std::optional<std::string> core_catchup_ca_file;
  std::optional<std::string> core_catchup_client_cert_file;
  std::optional<std::string> core_catchup_client_key_file;
  // The adapter's own credential toward the core's catch-up API (bearer token), from
  // CLEARING_ADAPTER_CORE_CATCHUP_TOKEN only; never in the file. It must differ from
  // http.api_token: whoever runs or taps the core's side would otherwise hold a token that
  // opens the adapter's API (/transfers, /parked).
  Secret core_catchup_token;
  // How often the inbound consumer compares each partition's progress with the core's head
  // (the catch-up API's `head`): a partition behind it that has not moved since the last
  // check fetches its missing tail, so a lost last message is repaired within about twice
  // this. 0 turns the check off. [0, kTailCheckIntervalMsMax]
  int tail_check_interval_ms = kTailCheckIntervalMsDefault;
  // The core's story of a transfer (core_story_url_problem below).
  std::string core_story_url;
  friend bool operator==(const StreamsConfig&, const StreamsConfig&) = default;
};

// ---- The core's story (issue 22, item 3): streams.core_story_url ----
// `clearing-adapter trace` merges the core's story of the transfer (GET
// <url>/transfers/{id}/story, docs/core-story.md) when streams.core_story_url is set (or the
// command's --core-url): an http:// or https:// base URL, often core_catchup_url's (core-sim
// serves both on one server). It is asked with the catch-up credential
// (CLEARING_ADAPTER_CORE_CATCHUP_TOKEN) and, over https, the streams.core_catchup_* TLS files:
// the same core. Optional; absent or "": trace tells the adapter's side only, as before.
// Nothing when `url` is fit for it (no credentials, query, fragment or white space), else why not.
std::optional<std::string> core_story_url_problem(std::string_view url);

// True when `name` matches stream_name_pattern(), with a code of every known country.
bool is_valid_stream_name(std::string_view name);
// "^(core|adapter)\.(dk|se|no|fi)\.[a-z]+\.v[0-9]+$" (contracts/streams.md), from the table of
// countries (base/country.hpp).
std::string stream_name_pattern();

// ---------------------------------------------------------------------------------------
// Database (libpq).

inline constexpr int kDatabaseConnectionsMax = 1'000;

struct DatabaseConfig {
  std::string url;  // postgresql:// or postgres:// URI; may carry a password: log it redacted
  int connections_max = 16;          // [1, kDatabaseConnectionsMax]
  int statement_timeout_ms = 5'000;  // [1, kTimeoutMsMax]
  friend bool operator==(const DatabaseConfig&, const DatabaseConfig&) = default;
};

// The URL (or libpq key=value string) with its secrets replaced by "***": the password of
// user:password@, and the value of every parameter whose name, percent-decoded and in any
// case, is password, sslpassword or holds "password", "secret" or "token". The user, host,
// database and other parameters stay, for the operator.
std::string redact_database_url(std::string_view url);

// An http(s) URL fit for a message or a log: the whole user information (user:password@, or
// a token as user name) and everything from a '?' or '#' on replaced by "***".
std::string redact_http_url(std::string_view url);

// ---------------------------------------------------------------------------------------
// Kafka security (librdkafka's security.protocol, sasl.* and ssl.*): kafka.security in the
// file. The names are librdkafka's values, so that an operator finds them in its docs.

enum class KafkaSecurityProtocol { plaintext, ssl, sasl_plaintext, sasl_ssl };
inline constexpr std::array<KafkaSecurityProtocol, 4> kKafkaSecurityProtocols{
    KafkaSecurityProtocol::plaintext, KafkaSecurityProtocol::ssl,
    KafkaSecurityProtocol::sasl_plaintext, KafkaSecurityProtocol::sasl_ssl};
std::string_view kafka_security_protocol_name(KafkaSecurityProtocol protocol) noexcept;  // "SSL"

// GSSAPI (Kerberos) and OAUTHBEARER need more than a user and a password: not offered.
enum class SaslMechanism { plain, scram_sha_256, scram_sha_512 };
inline constexpr std::array<SaslMechanism, 3> kSaslMechanisms{
    SaslMechanism::plain, SaslMechanism::scram_sha_256, SaslMechanism::scram_sha_512};
std::string_view sasl_mechanism_name(SaslMechanism mechanism) noexcept;  // "SCRAM-SHA-512"

// ssl.endpoint.identification.algorithm: `https` checks that the broker's certificate names
// the host the client dialled; `none` accepts any certificate the CA signed.
enum class KafkaEndpointIdentification { https, none };
std::string_view kafka_endpoint_identification_name(KafkaEndpointIdentification value) noexcept;

struct KafkaSecurityConfig {
  KafkaSecurityProtocol protocol = KafkaSecurityProtocol::plaintext;
  // SASL_PLAINTEXT and SASL_SSL need all three; the other protocols none of them.
  std::optional<SaslMechanism> sasl_mechanism;
  std::string sasl_username;
  Secret sasl_password;  // CLEARING_ADAPTER_KAFKA_SASL_PASSWORD(_FILE) only; never in the file
  // SSL and SASL_SSL only. Without a CA bundle the system's CAs are trusted. A client
  // certificate comes with its key (mutual TLS); the key file must not be readable by others,
  // and an encrypted key needs its password.
  std::optional<std::string> ssl_ca_location;           // PEM
  std::optional<std::string> ssl_certificate_location;  // PEM
  std::optional<std::string> ssl_key_location;          // PEM
  Secret ssl_key_password;  // CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD(_FILE) only
  KafkaEndpointIdentification endpoint_identification = KafkaEndpointIdentification::https;
  // `none` above stops the start unless this is true too (like clearing.verify_tls); then
  // config_warnings() names it at every start. Only with `none`.
  bool unverified_tls_acknowledged = false;

  bool uses_sasl() const noexcept {
    return protocol == KafkaSecurityProtocol::sasl_plaintext ||
           protocol == KafkaSecurityProtocol::sasl_ssl;
  }
  bool uses_ssl() const noexcept {
    return protocol == KafkaSecurityProtocol::ssl || protocol == KafkaSecurityProtocol::sasl_ssl;
  }
  friend bool operator==(const KafkaSecurityConfig&, const KafkaSecurityConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Kafka (librdkafka).

inline constexpr std::string_view kEmbeddedBrokers = "embedded";
inline constexpr std::size_t kKafkaIdLengthMax = 249;   // Kafka's limit on names
inline constexpr int kSessionTimeoutMsMin = 6'000;      // broker group.min.session.timeout.ms
inline constexpr int kSessionTimeoutMsMax = 1'800'000;  // broker group.max.session.timeout.ms
inline constexpr int kKafkaBatchMax = 100'000;
inline constexpr int kFetchWaitMsMax = 5'000;
inline constexpr int kRelayRoundIntervalMsDefault = 50;
inline constexpr int kRelayRoundIntervalMsMax = 1'000;

// How the adapters of one country share the inbound partitions (external_streams::
// PartitionAssignment): `database` (PostgreSQL advisory locks; a killed instance's partitions
// move within a fraction of a second) or `group` (Kafka's consumer group: a dead member's
// partitions wait for session_timeout_ms).
enum class PartitionAssignment { database, group };
std::string_view partition_assignment_name(PartitionAssignment assignment) noexcept;

struct KafkaConfig {
  std::string brokers;    // "embedded" (librdkafka mock cluster) or host:port[,host:port...]
  std::string group_id;   // default "clearing-adapter-<cc>"; [A-Za-z0-9._-]{1,249}
  std::string client_id;  // default "clearing-adapter-<cc>"; same characters
  int produce_timeout_ms = 10'000;  // [1, kTimeoutMsMax] (message.timeout.ms)
  int session_timeout_ms = 45'000;  // [kSessionTimeoutMsMin, kSessionTimeoutMsMax]
  int relay_batch_max = 500;        // [1, kKafkaBatchMax]
  int consumer_batch_max = 500;     // [1, kKafkaBatchMax]
  // How long a consumer's fetch waits on the broker for data (fetch.wait.max.ms), in
  // [1, kFetchWaitMsMax]. A real broker answers as soon as data comes; librdkafka's mock
  // cluster always waits the whole time, so with `embedded` a few ms keep latency down.
  int fetch_wait_max_ms = 50;
  // Under load, the relay starts a round no sooner than this after the last one began, so
  // that each round carries a batch ([0, kRelayRoundIntervalMsMax]; 0: no pacing). Less
  // means less latency per hop and more Kafka requests and consumer transactions per
  // message (README, "Deliberate choices on the hot path").
  int relay_round_interval_min_ms = kRelayRoundIntervalMsDefault;
  // `database` by default: a killed adapter's inbound partitions move in a fraction of a
  // second (docs/streams.md, "One reader per inbound partition"); `group` keeps Kafka's group.
  PartitionAssignment partition_assignment = PartitionAssignment::database;
  // kafka.security: PLAINTEXT by default, the only protocol the embedded cluster speaks.
  KafkaSecurityConfig security;
  bool embedded() const { return brokers == kEmbeddedBrokers; }
  friend bool operator==(const KafkaConfig&, const KafkaConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// HTTP server.

// The adapter's own API (http::HttpServerOptions). Connections are held per client so
// that idle or hostile sockets cannot starve /healthz: at most connections_per_client_max
// from one address, connections_max in all, and one that sends no request within
// idle_timeout_ms is closed. Each connection is a file descriptor: keep connections_max
// well under the process's limit (ulimit -n).
inline constexpr int kHttpConnectionsMaxDefault = 256;
inline constexpr int kHttpConnectionsMax = 10'000;
// A quarter of the default total: the core's catch-up fetches, a metrics scraper and
// operators each need a few; behind a proxy or NAT every client shares one address, so
// raise it there.
inline constexpr int kHttpConnectionsPerClientMaxDefault = 64;
inline constexpr int kHttpIdleTimeoutMsDefault = 5'000;
inline constexpr int kHttpIdleTimeoutMsMin = 100;      // a request header still arrives
inline constexpr int kHttpIdleTimeoutMsMax = 120'000;  // longer holds slots for nothing

struct HttpConfig {
  std::string address;  // host:port to listen on; env may override
  Secret api_token;     // CLEARING_ADAPTER_API_TOKEN only; never in the file
  // The API's tokens by role (issue 21), each optional, each its own (it differs from every
  // other token): api_token is the token named "api" with the roles reader (catch-up API,
  // /transfers, /parked) and metrics; metrics_token ("metrics") opens /metrics only;
  // operator_token ("operator") the operator actions only (POST /transfers/{id}/resolve), and
  // its name is recorded as the operator on their events. From CLEARING_ADAPTER_METRICS_TOKEN
  // and CLEARING_ADAPTER_OPERATOR_TOKEN (or their _FILE forms) only.
  Secret metrics_token;
  Secret operator_token;
  int connections_max = kHttpConnectionsMaxDefault;  // [1, kHttpConnectionsMax]
  // [1, connections_max]
  int connections_per_client_max = kHttpConnectionsPerClientMaxDefault;
  // How long a connection may wait for (the whole header of) its next request, kept-alive
  // ones included; [kHttpIdleTimeoutMsMin, kHttpIdleTimeoutMsMax].
  int idle_timeout_ms = kHttpIdleTimeoutMsDefault;
  // TLS on the API: the certificate chain (PEM) and its key, both or neither; with
  // tls_client_ca_file too, every client must present a certificate that CA signed (mTLS).
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;
  std::optional<std::string> tls_client_ca_file;
  friend bool operator==(const HttpConfig&, const HttpConfig&) = default;
};

// ---------------------------------------------------------------------------------------
// Personal data at rest (privacy/vault.hpp, docs/personal-data.md).

inline constexpr int kRetentionYearsDefault = 5;  // anti-money-laundering records
inline constexpr int kRetentionYearsMax = 100;
// base64 of 32 bytes (openssl rand -base64 32): 44 characters.
inline constexpr std::size_t kDataKekLength = 44;

struct PrivacyConfig {
  // The key-encryption key that wraps the data keys: CLEARING_ADAPTER_DATA_KEK (or its _FILE
  // form) only; never in the file. base64 of 32 random bytes.
  Secret data_kek;
  // Earlier KEKs during a rotation, comma-separated (CLEARING_ADAPTER_DATA_KEK_PREVIOUS or its
  // _FILE form): they only unwrap; the adapter rewraps under data_kek at start.
  Secret data_kek_previous;
  // Personal data is erased (its data keys destroyed) this many whole years after the year
  // it was written in: [1, kRetentionYearsMax].
  int retention_years = kRetentionYearsDefault;
  friend bool operator==(const PrivacyConfig&, const PrivacyConfig&) = default;
};

// Splits "host:port" ("[::1]:8080" for IPv6); nothing when malformed or port not 1..65535.
struct HostPort {
  std::string host;  // without brackets
  int port = 0;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// ---------------------------------------------------------------------------------------
// TLS files (PEM): clearing.client_*, streams.core_catchup_*_file, http.tls_*. Each given
// must be a readable regular file when the config is loaded; a private key (*key_file) that
// others may read or write is refused like a secret's file. A certificate without its key
// (or the other way round) is refused. The summary shows the paths, never the contents.

// ---------------------------------------------------------------------------------------
// Logging.

enum class LogLevel { trace, debug, info, warn, error };
std::string_view log_level_name(LogLevel level) noexcept;  // "info"

// The format of the log lines is base::LogFormat (clearing/base/log_format.hpp, its names
// base::log_format_name): the top-level key "log_format", or CLEARING_ADAPTER_LOG_FORMAT,
// which overrides it.

// ---------------------------------------------------------------------------------------
// The whole file.

struct AdapterConfig {
  CountryConfig country;
  ClearingConfig clearing;
  RetryConfig retry;
  DispatcherConfig dispatcher;
  IncomingConfig incoming;
  StreamsConfig streams;
  DatabaseConfig database;
  KafkaConfig kafka;
  HttpConfig http;
  PrivacyConfig privacy;
  LogLevel log_level = LogLevel::info;
  base::LogFormat log_format = base::LogFormat::text;
  std::string source_file;  // the path it was loaded from ("" when built in code)
  friend bool operator==(const AdapterConfig&, const AdapterConfig&) = default;
};

}  // namespace clearing::config
