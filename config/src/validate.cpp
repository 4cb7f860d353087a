// validate(): ranges, formats and cross-field rules on a typed AdapterConfig. Each check
// names the key and, for a range, the allowed interval and the value found.

#include <algorithm>
#include <array>
#include <set>

#include "clearing/base/clock.hpp"
#include "clearing/config/loader.hpp"
#include "json_reader.hpp"

namespace clearing::config {

namespace {

using detail::quote_text;

class Checker {
 public:
  Checker(std::string file, std::vector<ConfigError>& errors)
      : file_(std::move(file)), errors_(errors) {}

  void fail(std::string key, std::string message) {
    errors_.push_back(ConfigError{file_, std::move(key), std::move(message)});
  }

  // `why` (optional) explains a bound that comes from another key.
  void range(std::string key, std::int64_t value, std::int64_t low, std::int64_t high,
             std::string_view why = {}) {
    if (value >= low && value <= high) return;
    std::string message = "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "]";
    if (!why.empty()) message += " (" + std::string(why) + ")";
    fail(std::move(key), message + ", got " + std::to_string(value));
  }

 private:
  std::string file_;
  std::vector<ConfigError>& errors_;
};

// nothing when `url` is an acceptable http(s) base URL, else why not.
std::optional<std::string> http_url_problem(std::string_view url) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return "must start with http:// or https://";
  }
  const std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string_view::npos) {
    return "must not carry credentials (user:password@): tokens come only from the environment";
  }
  if (rest.find_first_of("?# \t\r\n") != std::string_view::npos) {
    return "must not carry a query, a fragment or white space";
  }
  if (authority.empty()) return "has no host";
  // With an explicit port it must be a valid host:port; without, a bare host.
  const bool has_port = authority.starts_with('[') ? authority.find("]:") != std::string_view::npos
                                                   : authority.find(':') != std::string_view::npos;
  if (has_port && !parse_host_port(authority)) return "has a bad host or port (1..65535)";
  return std::nullopt;
}

void check_dates(Checker& check, const std::string& key,
                 const std::vector<std::chrono::year_month_day>& dates) {
  if (dates.size() > kHolidaysMax) {
    check.fail(key, "must list at most " + std::to_string(kHolidaysMax) + " dates, got " +
                        std::to_string(dates.size()));
  }
  for (std::size_t i = 0; i < dates.size(); ++i) {
    const int year = static_cast<int>(dates[i].year());
    if (!dates[i].ok() || year < kCalendarYearMin || year > kCalendarYearMax) {
      check.fail(key, "dates must lie in the years " + std::to_string(kCalendarYearMin) + ".." +
                          std::to_string(kCalendarYearMax) + ", got " + format_date(dates[i]));
    }
    if (i == 0) continue;
    if (dates[i] == dates[i - 1]) {
      check.fail(key, "lists " + format_date(dates[i]) + " twice");
    } else if (dates[i] < dates[i - 1]) {
      check.fail(key, "must be sorted ascending (" + format_date(dates[i]) + " after " +
                          format_date(dates[i - 1]) + ")");
    }
  }
}

void check_country(Checker& check, const CountryConfig& country, bool country_known) {
  const auto expected_currency = country_currency(country.code);
  if (country_known && country.currency != expected_currency) {
    check.fail("country.currency", "must be " + std::string(expected_currency) + " for country " +
                                       std::string(country_code_upper(country.code)) + ", got " +
                                       quote_text(country.currency));
  }
  check.range("country.amount_limit_minor", country.amount_limit_minor, 1, kAmountLimitMinorMax);
  check.range("country.cutoff_utc", country.cutoff_utc.count(), 0, 24 * 60 - 1,
              "minutes after 00:00 UTC");
  const auto& days = country.business_days;
  const std::set<unsigned> weekend_days = [&] {
    std::set<unsigned> out;
    for (const auto day : days.weekend) out.insert(day.c_encoding());
    return out;
  }();
  if (weekend_days.size() != days.weekend.size()) {
    check.fail("country.business_days.weekend", "lists a day twice");
  }
  if (weekend_days.size() >= 7) {
    check.fail("country.business_days.weekend", "must leave at least one business weekday");
  }
  check_dates(check, "country.business_days.holidays", days.holidays);
  check_dates(check, "country.business_days.bank_closing_days", days.bank_closing_days);
  for (const auto date : days.bank_closing_days) {
    if (std::binary_search(days.holidays.begin(), days.holidays.end(), date)) {
      check.fail("country.business_days.bank_closing_days",
                 format_date(date) + " is already a holiday; list it once");
    }
  }
}

// Countries as data (issue 23): the currency's minor units, and the account schemes in use,
// each with a rule in sagas' account-rule registry.
void check_country_data(Checker& check, const CountryConfig& country, bool country_known) {
  if (!country_known) return;
  const int minor_units = base::country_currency_minor_units(country.code);
  if (country.currency_minor_units != minor_units) {
    check.fail("country.currency_minor_units",
               "must be " + std::to_string(minor_units) + " (ISO 4217's for " +
                   std::string(country_currency(country.code)) + "), got " +
                   std::to_string(country.currency_minor_units));
  }
  const auto& schemes = country.account_schemes;
  if (schemes.empty()) {
    check.fail("country.account_schemes", "must list at least one scheme (\"IBAN\", \"BBAN\")");
  }
  for (std::size_t i = 0; i < schemes.size(); ++i) {
    const std::string key = "country.account_schemes[" + std::to_string(i) + "]";
    const std::string name(sagas::scheme_name(schemes[i]));
    if (std::find(schemes.begin(), schemes.begin() + static_cast<std::ptrdiff_t>(i), schemes[i]) !=
        schemes.begin() + static_cast<std::ptrdiff_t>(i)) {
      check.fail(key, "lists " + name + " twice");
    } else if (!sagas::has_account_rule(country.code, schemes[i])) {
      check.fail(key, "no " + name + " account rule for " +
                          std::string(country_code_upper(country.code)) +
                          " in the account-rule registry (sagas/src/account.cpp): remove " + name +
                          " or add its rule");
    }
  }
}

// Messages about a secret give its rules, never its value or its length.
void check_secret(Checker& check, const char* key, const Secret& secret, const char* variable,
                  std::size_t length_min, std::string_view length_hint, LoadOptions options) {
  if (!secret.is_set()) {
    if (!options.allow_missing_secrets) {
      check.fail(key, std::string("not set: set ") + variable + " (or " + variable +
                          kSecretFileSuffix +
                          ", a file holding it) in the environment (only the embedded demo, "
                          "with allow_missing_secrets, may run without it)");
    }
    return;
  }
  const auto& value = secret.reveal();
  // It travels in an HTTP header: printable ASCII only.
  const bool printable = std::all_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!printable) {
    check.fail(key, std::string("must not contain white space, control characters or "
                                "non-ASCII bytes (from ") +
                        variable + " or " + variable + kSecretFileSuffix +
                        "; the value is not shown)");
  } else if (value.size() < length_min || value.size() > kTokenLengthMax) {
    check.fail(key, "must be " + std::to_string(length_min) + " to " +
                        std::to_string(kTokenLengthMax) + " characters long (from " + variable +
                        " or " + variable + kSecretFileSuffix +
                        "; the value is not shown): " + std::string(length_hint));
  }
}

bool request_timeout_valid(const ClearingConfig& clearing) {
  return clearing.request_timeout_ms >= 1 && clearing.request_timeout_ms <= kTimeoutMsMax;
}

bool tls_unverified(const ClearingConfig& clearing) {
  return !clearing.verify_tls && clearing.base_url.starts_with("https://");
}

// An unchecked certificate lets anyone on the path answer as the clearing: money would move
// on answers it never gave. Refused unless acknowledged; a stale acknowledgement is refused
// too, so that it cannot wave through a later verify_tls: false unnoticed.
void check_unverified_tls(Checker& check, const ClearingConfig& clearing) {
  if (tls_unverified(clearing) && !clearing.unverified_tls_acknowledged) {
    check.fail("clearing.verify_tls",
               "false turns off the check of the clearing's certificate: anyone on the network "
               "path could answer as the clearing. Trust a private CA with clearing.ca_file "
               "instead, or set clearing.unverified_tls_acknowledged: true to run so anyway "
               "(a warning at every start)");
  }
  if (clearing.verify_tls && clearing.unverified_tls_acknowledged) {
    check.fail("clearing.unverified_tls_acknowledged",
               "is only for verify_tls: false; remove it while the certificate is checked");
  }
}

// clearing.maintenance_windows: each window ends after it starts (config.hpp).
void check_maintenance_windows(Checker& check, const MaintenanceWindowsConfig& windows) {
  const auto key = [](std::size_t index) {
    return detail::element_path("clearing.maintenance_windows", index) + ".end";
  };
  if (windows.size() > kMaintenanceWindowsMax)
    check.fail("clearing.maintenance_windows",
               "must hold at most " + std::to_string(kMaintenanceWindowsMax) + " windows");
  for (const auto& [index, w] : windows.weekly) {
    if (w.end > w.start && w.end <= std::chrono::minutes{24 * 60} && w.start.count() >= 0) continue;
    check.fail(key(index), "must be after start (" + format_time_of_day(w.start) + "), at most " +
                               "24:00, got " + format_time_of_day(w.end) +
                               " (a weekly window lies within its day, UTC)");
  }
  for (const auto& [index, w] : windows.dated) {
    if (w.end > w.start) continue;
    check.fail(key(index), "must be after start (" + base::format_timestamp(w.start) + "), got " +
                               base::format_timestamp(w.end));
  }
}

void check_clearing(Checker& check, const ClearingConfig& clearing, LoadOptions options) {
  if (const auto problem = http_url_problem(clearing.base_url)) {
    check.fail("clearing.base_url",
               *problem + ", got " + quote_text(redact_http_url(clearing.base_url)));
  }
  check_secret(check, "clearing.token", clearing.token, kEnvClearingToken, kClearingTokenLengthMin,
               "set the whole token the clearing issued", options);
  check.range("clearing.request_timeout_ms", clearing.request_timeout_ms, 1, kTimeoutMsMax);
  // A bound taken from another key applies only when that key is valid itself; otherwise
  // its own error says what to fix, and a derived one would only confuse.
  if (request_timeout_valid(clearing)) {
    check.range("clearing.connect_timeout_ms", clearing.connect_timeout_ms, 1,
                clearing.request_timeout_ms, "at most clearing.request_timeout_ms");
  } else {
    check.range("clearing.connect_timeout_ms", clearing.connect_timeout_ms, 1, kTimeoutMsMax);
  }
  check.range("clearing.in_flight_max", clearing.in_flight_max, 1, kClearingInFlightMax);
  if (clearing.concurrency_mode == ConcurrencyMode::adaptive && clearing.in_flight_max >= 1 &&
      clearing.in_flight_max <= kClearingInFlightMax) {
    check.range("clearing.concurrency_min", clearing.concurrency_min, 1, clearing.in_flight_max,
                "at most clearing.in_flight_max");
    if (clearing.concurrency_min >= 1 && clearing.concurrency_min <= clearing.in_flight_max) {
      check.range("clearing.concurrency_initial", clearing.concurrency_initial,
                  clearing.concurrency_min, clearing.in_flight_max,
                  "within [clearing.concurrency_min, clearing.in_flight_max]");
    }
  }
  check.range("clearing.pool_connections_max", clearing.pool_connections_max, 0,
              kClearingPoolConnectionsMax);
  check_unverified_tls(check, clearing);
  check_maintenance_windows(check, clearing.maintenance_windows);
  if (clearing.ca_file && clearing.ca_file->empty()) {
    check.fail("clearing.ca_file", "must not be empty (leave the key out for the system CAs)");
  }
}

void check_retry(Checker& check, const RetryConfig& retry) {
  check.range("retry.backoff_initial_ms", retry.backoff_initial_ms, 1, kBackoffMsMax);
  if (retry.backoff_initial_ms >= 1 && retry.backoff_initial_ms <= kBackoffMsMax) {
    check.range("retry.backoff_max_ms", retry.backoff_max_ms, retry.backoff_initial_ms,
                kBackoffMsMax, "at least retry.backoff_initial_ms");
  } else {
    check.range("retry.backoff_max_ms", retry.backoff_max_ms, 1, kBackoffMsMax);
  }
  check.range("retry.backoff_multiplier", retry.backoff_multiplier, 1, kBackoffMultiplierMax);
  check.range("retry.unknown_outcomes_before_inquiry", retry.unknown_outcomes_before_inquiry, 1,
              kUnknownOutcomesBeforeInquiryMax);
  check.range("retry.pending_inquiry_interval_ms", retry.pending_inquiry_interval_ms,
              kInquiryIntervalMsMin, kInquiryIntervalMsMax);
  check.range("retry.investigation_inquiry_interval_ms", retry.investigation_inquiry_interval_ms,
              kInquiryIntervalMsMin, kInquiryIntervalMsMax);
  check.range("retry.deadline_ms", retry.deadline_ms, kDeadlineMsMin, kDeadlineMsMax);
}

void check_dispatcher(Checker& check, const DispatcherConfig& dispatcher,
                      const ClearingConfig& clearing) {
  check.range("dispatcher.in_flight_max", dispatcher.in_flight_max, 1, kDispatcherInFlightMax);
  check.range("dispatcher.claim_batch_max", dispatcher.claim_batch_max, 1, kClaimBatchMax);
  // A lease no longer than one call would let a second instance claim a submission while the
  // first one's call is still in flight: two calls for one transfer.
  if (request_timeout_valid(clearing) && dispatcher.lease_ms <= clearing.request_timeout_ms) {
    check.fail("dispatcher.lease_ms",
               "must exceed clearing.request_timeout_ms (" +
                   std::to_string(clearing.request_timeout_ms) +
                   "), so that a lease outlives the clearing call it covers, got " +
                   std::to_string(dispatcher.lease_ms));
  } else {
    check.range("dispatcher.lease_ms", dispatcher.lease_ms, 1, kLeaseMsMax);
  }
  check.range("dispatcher.idle_poll_ms", dispatcher.idle_poll_ms, 1, kIdlePollMsMax);
  check.range("dispatcher.stop_grace_ms", dispatcher.stop_grace_ms, 0, kStopGraceMsMax);
}

void check_incoming(Checker& check, const IncomingConfig& incoming) {
  check.range("incoming.poll_interval_ms", incoming.poll_interval_ms, kPollIntervalMsMin,
              kPollIntervalMsMax);
  check.range("incoming.page_limit", incoming.page_limit, 1, kPageLimitMax);
}

// The first problem with a stream name, or nothing.
std::optional<std::string> stream_name_problem(const std::string& name, std::string_view owner,
                                               Country country, bool country_known) {
  if (!is_valid_stream_name(name)) {
    return "must match " + stream_name_pattern() + ", got " + quote_text(name);
  }
  if (!name.starts_with(std::string(owner) + ".")) {
    return "must be a stream of the " + std::string(owner) + " (" + std::string(owner) +
           ".<cc>....), got " + quote_text(name);
  }
  const std::string cc(country_code_lower(country));
  if (country_known && name.substr(owner.size() + 1, 3) != cc + ".") {
    return "must carry the adapter's country code " + cc + ", got " + quote_text(name);
  }
  return std::nullopt;
}

// streams.deprecated: each entry names an outbound stream, once; a sunset that has passed
// needs "retired" (the operator says the stream may stop), and a stream is not retired
// before its sunset (its consumers were promised it until then).
void check_deprecated(Checker& check, const StreamsConfig& streams,
                      std::chrono::year_month_day today) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < streams.deprecated.size(); ++i) {
    const auto& entry = streams.deprecated[i];
    const std::string key = "streams.deprecated[" + std::to_string(i) + "]";
    const bool known = std::any_of(streams.outbound.begin(), streams.outbound.end(),
                                   [&](const auto& out) { return out.name == entry.stream; });
    if (!known) {
      check.fail(key + ".stream",
                 quote_text(entry.stream) + " is not a stream of streams.outbound");
    } else if (!seen.insert(entry.stream).second) {
      check.fail(key + ".stream", quote_text(entry.stream) + " is listed twice");
    }
    if (!entry.retired && entry.sunset < today) {
      check.fail(key + ".sunset",
                 "the sunset " + format_date(entry.sunset) + " of " + entry.stream +
                     " has passed: set \"retired\": true to stop deriving it (its history "
                     "stays readable), or move the sunset");
    } else if (entry.retired && entry.sunset > today) {
      check.fail(key + ".retired", entry.stream + " cannot be retired before its sunset " +
                                       format_date(entry.sunset) +
                                       ": its consumers were promised it until then");
    }
  }
}

void check_streams(Checker& check, const StreamsConfig& streams, Country country,
                   bool country_known, std::chrono::year_month_day today) {
  if (const auto problem =
          stream_name_problem(streams.inbound.name, "core", country, country_known)) {
    check.fail("streams.inbound.name", *problem);
  }
  check.range("streams.inbound.partitions", streams.inbound.partitions, 1, kPartitionsMax);
  if (streams.outbound.empty() || streams.outbound.size() > kOutboundStreamsMax) {
    check.fail("streams.outbound", "must list 1 to " + std::to_string(kOutboundStreamsMax) +
                                       " streams, got " + std::to_string(streams.outbound.size()));
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < streams.outbound.size(); ++i) {
    const auto& stream = streams.outbound[i];
    const std::string key = "streams.outbound[" + std::to_string(i) + "]";
    const std::string derived = "adapter." + std::string(country_code_lower(country)) + "." +
                                std::string(derivation_name(stream.derivation));
    if (const auto problem = stream_name_problem(stream.name, "adapter", country, country_known)) {
      check.fail(key + ".name", *problem);
    } else if (country_known && stream.name != derived) {
      check.fail(key + ".name", "must be " + derived + " for derivation " +
                                    std::string(derivation_name(stream.derivation)) + ", got " +
                                    quote_text(stream.name));
    } else if (!names.insert(stream.name).second) {
      check.fail(key + ".name", quote_text(stream.name) + " is listed twice");
    }
    check.range(key + ".partitions", stream.partitions, 1, kPartitionsMax);
  }
  check_deprecated(check, streams, today);
  check.range("streams.tail_check_interval_ms", streams.tail_check_interval_ms, 0,
              kTailCheckIntervalMsMax);
  if (const auto problem = http_url_problem(streams.core_catchup_url)) {
    check.fail("streams.core_catchup_url",
               *problem + ", got " + quote_text(redact_http_url(streams.core_catchup_url)));
  }
}

// TLS files (config.hpp, "TLS files"): none given empty; a certificate with its key. Whether
// each can be read is the loader's (check_tls_files).
void check_tls_path(Checker& check, const char* key, const std::optional<std::string>& path) {
  if (path && path->empty()) check.fail(key, "must not be empty (leave the key out for none)");
}

void check_tls_pair(Checker& check, const char* cert_key, const std::optional<std::string>& cert,
                    const char* key_key, const std::optional<std::string>& key) {
  check_tls_path(check, cert_key, cert);
  check_tls_path(check, key_key, key);
  if (cert.has_value() == key.has_value()) return;
  const char* missing = cert ? key_key : cert_key;
  const char* given = cert ? cert_key : key_key;
  check.fail(missing, std::string("missing: ") + given + " is set, and a certificate needs both " +
                          cert_key + " and " + key_key);
}

void check_tls_files(Checker& check, const AdapterConfig& config) {
  check_tls_pair(check, "clearing.client_cert_file", config.clearing.client_cert_file,
                 "clearing.client_key_file", config.clearing.client_key_file);
  check_tls_path(check, "streams.core_catchup_ca_file", config.streams.core_catchup_ca_file);
  check_tls_pair(
      check, "streams.core_catchup_client_cert_file", config.streams.core_catchup_client_cert_file,
      "streams.core_catchup_client_key_file", config.streams.core_catchup_client_key_file);
  const auto& http = config.http;
  check_tls_pair(check, "http.tls_cert_file", http.tls_cert_file, "http.tls_key_file",
                 http.tls_key_file);
  check_tls_path(check, "http.tls_client_ca_file", http.tls_client_ca_file);
  if (http.tls_client_ca_file && !http.tls_cert_file && !http.tls_key_file) {
    check.fail("http.tls_client_ca_file",
               "needs http.tls_cert_file and http.tls_key_file: client certificates are asked "
               "for only over TLS");
  }
}

void check_database(Checker& check, const DatabaseConfig& database) {
  if (!database.url.starts_with("postgresql://") && !database.url.starts_with("postgres://")) {
    check.fail("database.url", "must be a libpq URI (postgresql://user@host:port/dbname), got " +
                                   quote_text(redact_database_url(database.url)));
  }
  check.range("database.connections_max", database.connections_max, 1, kDatabaseConnectionsMax);
  check.range("database.statement_timeout_ms", database.statement_timeout_ms, 1, kTimeoutMsMax);
}

bool is_kafka_id(const std::string& id) {
  return !id.empty() && id.size() <= kKafkaIdLengthMax &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

bool is_broker_list(std::string_view brokers) {
  if (brokers.empty()) return false;
  constexpr std::size_t kBrokersMax = 100;
  for (std::size_t count = 0; count < kBrokersMax; ++count) {
    const auto comma = brokers.find(',');
    if (!parse_host_port(brokers.substr(0, comma))) return false;
    if (comma == std::string_view::npos) return true;
    brokers.remove_prefix(comma + 1);
  }
  return false;
}

void check_kafka(Checker& check, const KafkaConfig& kafka) {
  if (!kafka.embedded() && !is_broker_list(kafka.brokers)) {
    check.fail("kafka.brokers", "must be \"embedded\" or host:port[,host:port...], got " +
                                    quote_text(kafka.brokers));
  }
  const std::string id_rule =
      "must be 1.." + std::to_string(kKafkaIdLengthMax) + " characters of [A-Za-z0-9._-], got ";
  if (!is_kafka_id(kafka.group_id))
    check.fail("kafka.group_id", id_rule + quote_text(kafka.group_id));
  if (!is_kafka_id(kafka.client_id)) {
    check.fail("kafka.client_id", id_rule + quote_text(kafka.client_id));
  }
  check.range("kafka.produce_timeout_ms", kafka.produce_timeout_ms, 1, kTimeoutMsMax);
  check.range("kafka.session_timeout_ms", kafka.session_timeout_ms, kSessionTimeoutMsMin,
              kSessionTimeoutMsMax);
  check.range("kafka.relay_batch_max", kafka.relay_batch_max, 1, kKafkaBatchMax);
  check.range("kafka.consumer_batch_max", kafka.consumer_batch_max, 1, kKafkaBatchMax);
  check.range("kafka.fetch_wait_max_ms", kafka.fetch_wait_max_ms, 1, kFetchWaitMsMax);
  check.range("kafka.relay_round_interval_min_ms", kafka.relay_round_interval_min_ms, 0,
              kRelayRoundIntervalMsMax);
}

// kafka.security: what the protocol needs, and nothing it would ignore (a CA file with
// PLAINTEXT, a password without SASL), so that a setting the clients would not use stops the
// start instead of leaving the link less protected than the file reads.
std::string kafka_secret_variables(const char* variable) {
  return std::string(variable) + " (or " + variable + kSecretFileSuffix + ", a file holding it)";
}

void check_kafka_sasl(Checker& check, const KafkaSecurityConfig& security,
                      const std::string& protocol) {
  if (security.uses_sasl()) {
    const std::string needs = "required with protocol " + protocol + ": ";
    if (!security.sasl_mechanism) {
      check.fail("kafka.security.sasl_mechanism",
                 needs + "one of \"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\"");
    }
    if (security.sasl_username.empty()) {
      check.fail("kafka.security.sasl_username",
                 needs + "the user the brokers know this adapter as");
    }
    if (!security.sasl_password.is_set()) {
      check.fail("kafka.security.sasl_password",
                 "not set: protocol " + protocol + " needs " +
                     kafka_secret_variables(kOptionalEnvKafkaSaslPassword) + " in the environment");
    }
    return;
  }
  const std::string unused = "is only for protocol SASL_PLAINTEXT or SASL_SSL, not " + protocol +
                             ": remove it, or set kafka.security.protocol";
  if (security.sasl_mechanism) check.fail("kafka.security.sasl_mechanism", unused);
  if (!security.sasl_username.empty()) check.fail("kafka.security.sasl_username", unused);
  if (security.sasl_password.is_set()) {
    check.fail("kafka.security.sasl_password",
               "is set, but protocol " + protocol + " does not use it: unset " +
                   kafka_secret_variables(kOptionalEnvKafkaSaslPassword) +
                   ", or set kafka.security.protocol");
  }
}

void check_kafka_ssl(Checker& check, const KafkaSecurityConfig& security,
                     const std::string& protocol) {
  const std::array<std::pair<const char*, const std::optional<std::string>*>, 3> locations{{
      {"kafka.security.ssl_ca_location", &security.ssl_ca_location},
      {"kafka.security.ssl_certificate_location", &security.ssl_certificate_location},
      {"kafka.security.ssl_key_location", &security.ssl_key_location},
  }};
  if (!security.uses_ssl()) {
    const std::string unused = "is only for protocol SSL or SASL_SSL, not " + protocol +
                               ": the connection would not use it; remove it, or set "
                               "kafka.security.protocol";
    for (const auto& [key, location] : locations) {
      if (*location) check.fail(key, unused);
    }
    if (security.endpoint_identification == KafkaEndpointIdentification::none) {
      check.fail("kafka.security.ssl_endpoint_identification_algorithm", unused);
    }
    if (security.ssl_key_password.is_set()) {
      check.fail("kafka.security.ssl_key_password",
                 "is set, but protocol " + protocol + " does not use TLS: unset " +
                     kafka_secret_variables(kOptionalEnvKafkaSslKeyPassword) +
                     ", or set kafka.security.protocol");
    }
    if (security.unverified_tls_acknowledged) {
      check.fail("kafka.security.unverified_tls_acknowledged", unused);
    }
    return;
  }
  for (const auto& [key, location] : locations) {
    if (*location && (*location)->empty()) {
      check.fail(key, "must not be empty (leave the key out)");
    }
  }
  const bool certificate = security.ssl_certificate_location.has_value();
  const bool key = security.ssl_key_location.has_value();
  if (certificate && !key) {
    check.fail("kafka.security.ssl_key_location",
               "required with kafka.security.ssl_certificate_location: the client certificate's "
               "private key (PEM)");
  } else if (key && !certificate) {
    check.fail("kafka.security.ssl_certificate_location",
               "required with kafka.security.ssl_key_location: the client certificate (PEM) of "
               "that key");
  }
  if (!key && security.ssl_key_password.is_set()) {
    check.fail("kafka.security.ssl_key_password",
               "is set, but kafka.security.ssl_key_location is not: unset " +
                   kafka_secret_variables(kOptionalEnvKafkaSslKeyPassword) +
                   ", or name the encrypted key");
  }
  const bool unverified = security.endpoint_identification == KafkaEndpointIdentification::none;
  if (unverified && !security.unverified_tls_acknowledged) {
    check.fail("kafka.security.ssl_endpoint_identification_algorithm",
               "\"none\" turns off the check that a broker's certificate names the broker: "
               "anyone holding a certificate from a trusted CA could pose as a broker. Set "
               "kafka.security.unverified_tls_acknowledged: true to run so anyway (a warning "
               "at every start)");
  }
  if (!unverified && security.unverified_tls_acknowledged) {
    check.fail("kafka.security.unverified_tls_acknowledged",
               "is only for ssl_endpoint_identification_algorithm \"none\"; remove it while "
               "host names are checked");
  }
}

void check_kafka_security(Checker& check, const KafkaConfig& kafka) {
  const auto& security = kafka.security;
  const std::string protocol(kafka_security_protocol_name(security.protocol));
  if (kafka.embedded() && security.protocol != KafkaSecurityProtocol::plaintext) {
    check.fail("kafka.security.protocol",
               "must be \"PLAINTEXT\" with kafka.brokers \"embedded\": the embedded cluster "
               "(librdkafka's mock cluster) speaks PLAINTEXT only, no TLS and no SASL; name "
               "the real brokers to use " +
                   protocol + ", got " + quote_text(protocol));
  }
  check_kafka_sasl(check, security, protocol);
  check_kafka_ssl(check, security, protocol);
}

void kafka_security_warnings(const AdapterConfig& config, std::vector<ConfigError>& warnings) {
  const auto& security = config.kafka.security;
  if (security.uses_ssl() &&
      security.endpoint_identification == KafkaEndpointIdentification::none &&
      security.unverified_tls_acknowledged) {
    warnings.push_back(ConfigError{
        config.source_file, "kafka.security.ssl_endpoint_identification_algorithm",
        "none (acknowledged): the brokers' host names are not checked against their "
        "certificates; anyone holding a certificate from a trusted CA can pose as a broker"});
  }
  if (security.protocol == KafkaSecurityProtocol::sasl_plaintext &&
      security.sasl_mechanism == SaslMechanism::plain) {
    warnings.push_back(ConfigError{
        config.source_file, "kafka.security.sasl_mechanism",
        "PLAIN over SASL_PLAINTEXT: the Kafka password and every message cross the network in "
        "clear; use SASL_SSL (or a SCRAM mechanism, which at least keeps the password)"});
  }
}

// The adapter's credential toward the core: its own, never the one that opens its API.
void check_core_credential(Checker& check, const Secret& core_token, const Secret& api_token,
                           LoadOptions options) {
  check_secret(check, "streams.core_catchup_token", core_token, kEnvCoreCatchupToken,
               kClearingTokenLengthMin, "set the whole token the core issued to the adapter",
               options);
  if (core_token.is_set() && api_token.is_set() && core_token.reveal() == api_token.reveal()) {
    check.fail("streams.core_catchup_token",
               std::string("must differ from ") + kEnvApiToken +
                   ": the core's side would hold a token that opens the adapter's API "
                   "(/transfers, /parked); give the adapter its own credential for the core");
  }
}

// The KEK's shape only (44 characters of base64); the vault decodes it and says more.
void check_privacy(Checker& check, const PrivacyConfig& privacy, LoadOptions options) {
  check_secret(check, "privacy.data_kek", privacy.data_kek, kEnvDataKek, kDataKekLength,
               "base64 of 32 random bytes, e.g. openssl rand -base64 32", options);
  const auto kek_length = privacy.data_kek.is_set() ? privacy.data_kek.reveal().size() : 0;
  if (kek_length > kDataKekLength && kek_length <= kTokenLengthMax) {  // shorter: check_secret said
    check.fail("privacy.data_kek", std::string("must be base64 of 32 bytes: ") +
                                       std::to_string(kDataKekLength) + " characters (from " +
                                       kEnvDataKek + "; the value is not shown)");
  }
  check.range("privacy.retention_years", privacy.retention_years, 1, kRetentionYearsMax);
}

// The API's optional tokens by role: each checked like the API token, and each its own, so a
// token names one holder and opens what its role allows, no more.
void check_role_tokens(Checker& check, const AdapterConfig& config) {
  struct Named {
    const char* key;
    const char* variable;
    const Secret* secret;
  };
  const Named tokens[] = {
      {"http.api_token", kEnvApiToken, &config.http.api_token},
      {"http.metrics_token", kEnvMetricsToken, &config.http.metrics_token},
      {"http.operator_token", kEnvOperatorToken, &config.http.operator_token},
      {"streams.core_catchup_token", kEnvCoreCatchupToken, &config.streams.core_catchup_token},
  };
  for (std::size_t i = 1; i < 3; ++i) {
    const auto& one = tokens[i];
    if (!one.secret->is_set()) continue;
    check_secret(check, one.key, *one.secret, one.variable, kApiTokenLengthMin,
                 "generate one, e.g. openssl rand -hex 16", LoadOptions{});
    for (std::size_t j = 0; j < std::size(tokens); ++j) {
      const auto& other = tokens[j];
      if (j == i || !other.secret->is_set() || other.secret->reveal() != one.secret->reveal()) {
        continue;
      }
      check.fail(one.key, std::string("must differ from ") + other.variable +
                              ": each token opens its own role's routes and names its holder");
      break;
    }
  }
}

void check_http(Checker& check, const HttpConfig& http, LoadOptions options) {
  if (!parse_host_port(http.address)) {
    check.fail("http.address", "must be host:port (port 1..65535; [v6]:port for IPv6), got " +
                                   quote_text(http.address));
  }
  check_secret(check, "http.api_token", http.api_token, kEnvApiToken, kApiTokenLengthMin,
               "generate one, e.g. openssl rand -hex 16", options);
  check.range("http.connections_max", http.connections_max, 1, kHttpConnectionsMax);
  if (http.connections_max >= 1 && http.connections_max <= kHttpConnectionsMax) {
    check.range("http.connections_per_client_max", http.connections_per_client_max, 1,
                http.connections_max, "at most http.connections_max");
  } else {
    check.range("http.connections_per_client_max", http.connections_per_client_max, 1,
                kHttpConnectionsMax);
  }
  check.range("http.idle_timeout_ms", http.idle_timeout_ms, kHttpIdleTimeoutMsMin,
              kHttpIdleTimeoutMsMax);
}

// streams.core_story_url: optional; when set, an http(s) base URL like core_catchup_url.
void check_core_story(Checker& check, const StreamsConfig& streams) {
  if (streams.core_story_url.empty()) return;
  if (const auto problem = http_url_problem(streams.core_story_url))
    check.fail("streams.core_story_url",
               *problem + ", got " + quote_text(redact_http_url(streams.core_story_url)));
}

}  // namespace

std::optional<std::string> core_story_url_problem(std::string_view url) {
  return http_url_problem(url);
}

namespace detail {

std::vector<ConfigError> validate_impl(const AdapterConfig& config, LoadOptions options,
                                       bool country_known) {
  std::vector<ConfigError> errors;
  Checker check(config.source_file, errors);
  check_country(check, config.country, country_known);
  check_country_data(check, config.country, country_known);
  check_clearing(check, config.clearing, options);
  check_retry(check, config.retry);
  check_dispatcher(check, config.dispatcher, config.clearing);
  check_incoming(check, config.incoming);
  const auto today = options.today.value_or(std::chrono::year_month_day{
      std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now())});
  check_streams(check, config.streams, config.country.code, country_known, today);
  check_database(check, config.database);
  check_kafka(check, config.kafka);
  check_kafka_security(check, config.kafka);
  check_http(check, config.http, options);
  check_privacy(check, config.privacy, options);
  check_core_credential(check, config.streams.core_catchup_token, config.http.api_token, options);
  check_role_tokens(check, config);
  check_tls_files(check, config);
  check_core_story(check, config.streams);
  return errors;
}

}  // namespace detail

std::vector<ConfigError> validate(const AdapterConfig& config, LoadOptions options) {
  return detail::validate_impl(config, options, /*country_known=*/true);
}

std::vector<ConfigError> config_warnings(const AdapterConfig& config) {
  std::vector<ConfigError> warnings;
  if (tls_unverified(config.clearing) && config.clearing.unverified_tls_acknowledged) {
    warnings.push_back(ConfigError{
        config.source_file, "clearing.verify_tls",
        "false (acknowledged): the clearing's certificate is not checked; anyone on the network "
        "path can answer as the clearing"});
  }
  kafka_security_warnings(config, warnings);
  return warnings;
}

}  // namespace clearing::config
