#pragma once
// Loading and validating the adapter's configuration file (config/dk.json, ...).
//
// load_config reads one JSON file, applies the environment overrides below, and checks the
// result. It reports every problem it finds, not only the first, each naming the file and
// the key as a JSON path ("clearing.request_timeout_ms"), so an operator fixes the file in one
// go:
//   config/dk.json: clearing.request_timeout_ms: must be in [1, 600000], got 0
//
// Problems reported: invalid JSON (with line and column), duplicate keys, unknown keys at any
// level, missing required keys, wrong types, out-of-range values (with the allowed range),
// malformed values (URLs, host:port, dates, stream names), cross-field rules (dispatcher
// lease vs clearing request timeout, ...), a secret written into the file, and a required
// secret missing from the environment.
//
// Environment overrides (exact names, other tools rely on them); each replaces the file's
// value. An empty variable counts as unset.
//   CLEARING_ADAPTER_DATABASE_URL      database.url (libpq URI)
//   CLEARING_ADAPTER_KAFKA_BROKERS     kafka.brokers (host:port[,host:port...] or "embedded")
//   CLEARING_ADAPTER_CLEARING_URL      clearing.base_url
//   CLEARING_ADAPTER_CLEARING_TOKEN    clearing.token (only from here)
//   CLEARING_ADAPTER_CORE_CATCHUP_URL  streams.core_catchup_url
//   CLEARING_ADAPTER_HTTP_ADDRESS      http.address (host:port)
//   CLEARING_ADAPTER_API_TOKEN         http.api_token (only from here)
// Optional secrets, read only when kafka.security asks for them (and each with its _FILE form):
//   CLEARING_ADAPTER_KAFKA_SASL_PASSWORD      kafka.security.sasl_password (SASL_* protocols)
//   CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD   kafka.security.ssl_key_password (an encrypted key)
//   CLEARING_ADAPTER_METRICS_TOKEN     http.metrics_token (only from here; optional)
//   CLEARING_ADAPTER_OPERATOR_TOKEN    http.operator_token (only from here; optional)
//   CLEARING_ADAPTER_LOG_FORMAT        log_format ("text" or "json"; optional)
//
// Errors: nothing here throws; library exceptions (file, json) are turned into ConfigError.
// Thread safety: the functions are pure apart from reading the file and the environment.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/config/config.hpp"

namespace clearing::config {

inline constexpr const char* kEnvDatabaseUrl = "CLEARING_ADAPTER_DATABASE_URL";
inline constexpr const char* kEnvKafkaBrokers = "CLEARING_ADAPTER_KAFKA_BROKERS";
inline constexpr const char* kEnvClearingUrl = "CLEARING_ADAPTER_CLEARING_URL";
inline constexpr const char* kEnvClearingToken = "CLEARING_ADAPTER_CLEARING_TOKEN";
inline constexpr const char* kEnvCoreCatchupUrl = "CLEARING_ADAPTER_CORE_CATCHUP_URL";
inline constexpr const char* kEnvHttpAddress = "CLEARING_ADAPTER_HTTP_ADDRESS";
inline constexpr const char* kEnvApiToken = "CLEARING_ADAPTER_API_TOKEN";
inline constexpr const char* kEnvCoreCatchupToken = "CLEARING_ADAPTER_CORE_CATCHUP_TOKEN";
inline constexpr const char* kEnvDataKek = "CLEARING_ADAPTER_DATA_KEK";
inline constexpr const char* kOptionalEnvDataKekPrevious = "CLEARING_ADAPTER_DATA_KEK_PREVIOUS";
// The API's tokens by role (README, "API tokens"; issue 21): CLEARING_ADAPTER_API_TOKEN is the
// `reader` and `metrics` token named "api"; these two are optional.
inline constexpr const char* kEnvMetricsToken = "CLEARING_ADAPTER_METRICS_TOKEN";
inline constexpr const char* kEnvOperatorToken = "CLEARING_ADAPTER_OPERATOR_TOKEN";
// The secrets (the two tokens and the database URL, which may carry a password) may instead be
// read from a file whose path is in the variable's `_FILE` form (CLEARING_ADAPTER_API_TOKEN_FILE,
// ...): a mounted secret. Given both ways, or in a file readable or writable by others, or
// larger than kSecretFileBytesMax, is an error naming the variable. One trailing line break
// in the file is not part of the secret.
inline constexpr const char* kSecretFileSuffix = "_FILE";
// The Kafka credentials (kafka.security): secrets like the tokens, with their _FILE forms, but
// needed only by the protocols that use them, so a deployment without them sets neither
// (scripts/check-compose requires the kEnv* variables above, not these kOptionalEnv* ones).
inline constexpr const char* kOptionalEnvKafkaSaslPassword = "CLEARING_ADAPTER_KAFKA_SASL_PASSWORD";
inline constexpr const char* kOptionalEnvKafkaSslKeyPassword =
    "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD";
inline constexpr std::size_t kSecretFileBytesMax = 64 * 1024;
// The log format ("text" or "json"), overriding the file's log_format; optional (text when
// neither sets it), so scripts/check-compose does not require it.
inline constexpr const char* kOptionalEnvLogFormat = "CLEARING_ADAPTER_LOG_FORMAT";

// A config file larger than this is refused before parsing.
inline constexpr std::size_t kConfigFileBytesMax = 1 << 20;

// Where environment variables come from: the process, or a map in tests.
class Environment {
 public:
  virtual ~Environment() = default;
  // The value, or nothing when unset or empty.
  virtual std::optional<std::string> get(const std::string& name) const = 0;
  // The real environment (std::getenv); a process-wide instance.
  static const Environment& process();
};

class MapEnvironment final : public Environment {
 public:
  MapEnvironment() = default;
  explicit MapEnvironment(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  std::optional<std::string> get(const std::string& name) const override;
  void set(const std::string& name, std::string value) { values_[name] = std::move(value); }

 private:
  std::map<std::string, std::string> values_;
};

// One problem with one key of one file.
struct ConfigError {
  std::string file;     // the path as given to load_config
  std::string key;      // JSON path: "clearing.request_timeout_ms", "streams.outbound[1].name";
                        // empty for problems with the whole file (unreadable, invalid JSON)
  std::string message;  // what is wrong and what is allowed; never a secret's value
  // "config/dk.json: clearing.request_timeout_ms: must be in [1, 600000], got 0"
  std::string to_string() const;
  friend bool operator==(const ConfigError&, const ConfigError&) = default;
};

// Every problem found: reading problems (syntax, types, unknown and missing keys) in the
// order of the schema, then range and cross-field checks. At most one error per key: a key
// that failed to read gets no derived error on top.
struct ConfigErrors {
  std::vector<ConfigError> errors;
  // One line per error, joined by '\n'.
  std::string to_string() const;
  // The first error about `key`, if any (for tests and tools).
  const ConfigError* find(std::string_view key) const;
};

struct LoadOptions {
  // The embedded demo sets its own tokens: when true, a missing clearing or API token is not
  // an error (they stay unset). A token written into the file is an error regardless.
  bool allow_missing_secrets = false;
  // The day a sunset is compared with (streams.deprecated); none: today, in UTC.
  std::optional<std::chrono::year_month_day> today;
};

tl::expected<AdapterConfig, ConfigErrors> load_config(const std::string& path,
                                                      const Environment& env,
                                                      LoadOptions options = {});

// The same from text already in memory; `file` names it in errors and becomes source_file.
tl::expected<AdapterConfig, ConfigErrors> parse_config(std::string_view text,
                                                       const std::string& file,
                                                       const Environment& env,
                                                       LoadOptions options = {});

// The range and cross-field checks alone, for a config built in code (the embedded demo,
// tests). load_config runs them too. Errors name config.source_file.
std::vector<ConfigError> validate(const AdapterConfig& config, LoadOptions options = {});

// What a valid config allows but an operator must hear about at every start (log each at
// warn): today, clearing.verify_tls false with an https base_url, acknowledged by
// clearing.unverified_tls_acknowledged; kafka.security's ssl_endpoint_identification_algorithm
// "none", acknowledged likewise; and SASL PLAIN over SASL_PLAINTEXT (the password crosses the
// network in clear). Empty for the shipped files.
std::vector<ConfigError> config_warnings(const AdapterConfig& config);

// One line of key=value fields for the start-up log: every value except secrets (tokens
// appear as "set"/"unset", the database URL with its password masked).
std::string redacted_summary(const AdapterConfig& config);

}  // namespace clearing::config
