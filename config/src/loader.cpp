// load_config: file -> JSON -> AdapterConfig (types, unknown and missing keys) -> environment
// overrides -> validate() (ranges, formats, cross-field rules). Every step collects problems
// instead of stopping at the first.

#include "clearing/config/loader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <type_traits>

#include "clearing/base/clock.hpp"
#include "clearing/base/country.hpp"
#include "fields.hpp"
#include "json_reader.hpp"

namespace clearing::config {

using detail::Json;
using detail::Problems;
using detail::Section;

// ---------------------------------------------------------------------------------------
// Environment and errors.

namespace {

class ProcessEnvironment final : public Environment {
 public:
  std::optional<std::string> get(const std::string& name) const override {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  }
};

}  // namespace

const Environment& Environment::process() {
  static const ProcessEnvironment instance;
  return instance;
}

std::optional<std::string> MapEnvironment::get(const std::string& name) const {
  const auto found = values_.find(name);
  if (found == values_.end() || found->second.empty()) return std::nullopt;
  return found->second;
}

std::string ConfigError::to_string() const {
  std::string out = file.empty() ? std::string("<config>") : file;
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::string ConfigErrors::to_string() const {
  std::string out;
  for (const auto& error : errors) {
    if (!out.empty()) out += '\n';
    out += error.to_string();
  }
  return out;
}

const ConfigError* ConfigErrors::find(std::string_view key) const {
  for (const auto& error : errors) {
    if (error.key == key) return &error;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Reading the sections.

namespace {

std::string secret_in_file_message(const char* variable) {
  return std::string("secrets are never read from the file: remove this key and set ") + variable +
         " in the environment";
}

std::string env_hint(const char* variable) {
  return std::string("set it in the file or in ") + variable;
}

// Strict "HH:MM", 00:00..23:59.
std::optional<std::chrono::minutes> parse_time_of_day(std::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  for (const std::size_t i : {0u, 1u, 3u, 4u}) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  }
  const int hours = (text[0] - '0') * 10 + (text[1] - '0');
  const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (hours > 23 || minutes > 59) return std::nullopt;
  return std::chrono::minutes{hours * 60 + minutes};
}

std::vector<std::chrono::year_month_day> read_dates(const Json* list, const std::string& path,
                                                    Problems& problems) {
  std::vector<std::chrono::year_month_day> dates;
  if (list == nullptr) return dates;
  if (!list->is_array()) {
    problems.add(path, "must be an array of \"YYYY-MM-DD\" dates, got " + detail::describe(*list));
    return dates;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string element = detail::element_path(path, i);
    const auto text = detail::read_string((*list)[i], element, problems);
    if (!text) continue;
    if (const auto date = base::parse_date(*text)) {
      dates.push_back(*date);
    } else {
      problems.add(element, "must be a date \"YYYY-MM-DD\", got " + detail::quote_text(*text));
    }
  }
  // Sorted for binary search; validate() reports duplicates.
  std::sort(dates.begin(), dates.end());
  return dates;
}

void read_weekend(Section& section, BusinessDays& out, Problems& problems) {
  const Json* list = section.require("weekend");
  if (list == nullptr) return;
  const std::string path = section.path_of("weekend");
  if (!list->is_array()) {
    problems.add(
        path, "must be an array of day names (\"Sat\", \"Sun\"), got " + detail::describe(*list));
    return;
  }
  out.weekend.clear();
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string element = detail::element_path(path, i);
    const auto text = detail::read_string((*list)[i], element, problems);
    if (!text) continue;
    unsigned encoding = 0;
    while (encoding < 7 && weekday_name(std::chrono::weekday{encoding}) != *text) ++encoding;
    if (encoding == 7) {
      problems.add(element, "must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got " +
                                detail::quote_text(*text));
      continue;
    }
    out.weekend.emplace_back(encoding);
  }
}

// "\"DK\", \"SE\", \"NO\", \"FI\"": every country base's table knows, for messages.
std::string known_country_codes() {
  std::string out;
  for (const auto country : base::kCountries) {
    out += (out.empty() ? "\"" : ", \"") + std::string(country_code_upper(country)) + "\"";
  }
  return out;
}

// country.currency_minor_units and country.account_schemes, both optional (issue 23). Without
// account_schemes, every scheme the registry has a rule for in the country (when it is known).
void read_country_data(Section& section, CountryConfig& out, bool code_known, Problems& problems) {
  section.integer("currency_minor_units", out.currency_minor_units);
  const Json* list = section.find("account_schemes");
  if (list == nullptr) {
    if (!code_known) return;
    out.account_schemes.clear();
    for (const auto scheme : {sagas::AccountScheme::iban, sagas::AccountScheme::bban}) {
      if (sagas::has_account_rule(out.code, scheme)) out.account_schemes.push_back(scheme);
    }
    return;
  }
  const std::string path = section.path_of("account_schemes");
  if (!list->is_array()) {
    problems.add(
        path, "must be an array of schemes (\"IBAN\", \"BBAN\"), got " + detail::describe(*list));
    return;
  }
  out.account_schemes.clear();
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string element = detail::element_path(path, i);
    const auto text = detail::read_string((*list)[i], element, problems);
    if (!text) continue;
    if (*text != "IBAN" && *text != "BBAN") {
      problems.add(element, "must be \"IBAN\" or \"BBAN\", got " + detail::quote_text(*text));
      continue;
    }
    out.account_schemes.push_back(*sagas::parse_scheme(*text));
  }
}

// Returns whether the country code was read (stream and Kafka defaults depend on it).
bool read_country(Section section, CountryConfig& out, Problems& problems) {
  bool code_known = false;
  if (const auto code = section.string("code", true)) {
    // The file carries the upper-case code only; base::parse_country also takes "dk".
    const auto country = base::parse_country(*code);
    code_known = country.has_value() && country_code_upper(*country) == *code;
    if (code_known) {
      out.code = *country;
    } else {
      problems.add(section.path_of("code"), "must be one of " + known_country_codes() + ", got " +
                                                detail::quote_text(*code));
    }
  }
  if (const auto currency = section.string("currency", true)) out.currency = *currency;
  section.integer("amount_limit_minor", out.amount_limit_minor, true);
  if (const auto cutoff = section.string("cutoff_utc", true)) {
    if (const auto minutes = parse_time_of_day(*cutoff)) {
      out.cutoff_utc = *minutes;
    } else {
      problems.add(
          section.path_of("cutoff_utc"),
          "must be a time \"HH:MM\" in 00:00..23:59 (UTC), got " + detail::quote_text(*cutoff));
    }
  }
  if (section.require("business_days") != nullptr) {
    Section days = section.section("business_days");
    read_weekend(days, out.business_days, problems);
    out.business_days.holidays =
        read_dates(days.require("holidays"), days.path_of("holidays"), problems);
    // Required even when empty ([]): a file that forgot them would settle on 24 December.
    out.business_days.bank_closing_days =
        read_dates(days.require("bank_closing_days"), days.path_of("bank_closing_days"), problems);
    days.finish();
  }
  read_country_data(section, out, code_known, problems);
  section.finish();
  return code_known;
}

// An optional key whose value names one of two choices; anything else is refused with both.
template <class Choice>
void read_choice(Section& section, std::string_view key, Choice& out, Choice first, Choice second,
                 std::string_view (*name)(Choice) noexcept) {
  const auto text = section.string(key);
  if (!text) return;
  for (const Choice choice : {first, second}) {
    if (*text == name(choice)) {
      out = choice;
      return;
    }
  }
  section.invalid(key, "must be \"" + std::string(name(first)) + "\" or \"" +
                           std::string(name(second)) + "\", got " + detail::quote_text(*text));
}

// clearing.maintenance_windows (config.hpp): the form of each window here, the order of its
// times in validate(). Weekday names as in country.business_days.weekend ("Sun"), or lower case.
std::optional<std::chrono::weekday> maintenance_weekday(std::string_view text) {
  for (unsigned encoding = 0; encoding < 7; ++encoding) {
    const auto name = weekday_name(std::chrono::weekday{encoding});
    std::string lower(name);
    lower[0] = static_cast<char>(lower[0] - 'A' + 'a');
    if (text == name || text == lower) return std::chrono::weekday{encoding};
  }
  return std::nullopt;
}

// "HH:MM" in 00:00..23:59, or "24:00" where a window may end at midnight.
std::optional<std::chrono::minutes> maintenance_time(std::string_view text, bool end) {
  if (end && text == "24:00") return std::chrono::minutes{24 * 60};
  return parse_time_of_day(text);
}

// A window's required "start" and "end": `parse(text, is_end)` gives the time or nothing, and
// `form(is_end)` says what was expected. True when both were read.
template <class Time, class Parse, class Form>
bool read_window_bounds(Section& window, Time& start, Time& end, Parse parse, Form form) {
  bool ok = true;
  for (const bool is_end : {false, true}) {
    const char* key = is_end ? "end" : "start";
    const auto text = window.string(key, true);
    const auto time = text ? parse(*text, is_end) : std::nullopt;
    if (text && !time)
      window.invalid(key, "must be " + form(is_end) + ", got " + detail::quote_text(*text));
    if (time) (is_end ? end : start) = *time;
    ok = ok && time.has_value();
  }
  return ok;
}

void read_weekly_window(Section& window, std::size_t index, const std::string& weekday,
                        MaintenanceWindowsConfig& out) {
  base::WeeklyMaintenanceWindow weekly;
  const auto day = maintenance_weekday(weekday);
  if (day) {
    weekly.weekday = *day;
  } else {
    window.invalid("weekday", "must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got " +
                                  detail::quote_text(weekday));
  }
  const bool bounds =
      read_window_bounds(window, weekly.start, weekly.end, maintenance_time, [](bool is_end) {
        return std::string("a time \"HH:MM\" in 00:00..") + (is_end ? "24:00" : "23:59") + " (UTC)";
      });
  if (day && bounds) out.weekly.emplace_back(index, weekly);
}

void read_dated_window(Section& window, std::size_t index, MaintenanceWindowsConfig& out) {
  base::DatedMaintenanceWindow dated;
  const auto parse = [](const std::string& text, bool) -> std::optional<base::Timestamp> {
    base::Timestamp at;
    if (!base::parse_timestamp(text, at)) return std::nullopt;
    return at;
  };
  if (read_window_bounds(window, dated.start, dated.end, parse,
                         [](bool) { return std::string("a UTC time \"YYYY-MM-DDTHH:MM:SSZ\""); }))
    out.dated.emplace_back(index, dated);
}

void read_maintenance_windows(Section& clearing, MaintenanceWindowsConfig& out) {
  const Json* list = clearing.find("maintenance_windows");
  if (list == nullptr) return;
  if (!list->is_array() || list->size() > kMaintenanceWindowsMax) {
    clearing.invalid("maintenance_windows",
                     "must be an array of at most " + std::to_string(kMaintenanceWindowsMax) +
                         " windows ({\"weekday\", \"start\", \"end\"} or {\"start\", "
                         "\"end\"}), got " +
                         detail::describe(*list));
    return;
  }
  const std::string path = clearing.path_of("maintenance_windows");
  for (std::size_t i = 0; i < list->size(); ++i) {
    Section window(&(*list)[i], detail::element_path(path, i), clearing.problems());
    if (const auto weekday = window.string("weekday")) {
      read_weekly_window(window, i, *weekday, out);
    } else if ((*list)[i].is_object() && !(*list)[i].contains("weekday")) {
      read_dated_window(window, i, out);
    }
    window.finish();
  }
}

// Required keys: what the clearing agreed to (its timeouts, how many calls and connections
// at once). verify_tls (default true) and ca_file (default: the system's CAs) default to
// the safe side.
void read_clearing(Section section, ClearingConfig& out) {
  if (const auto url = section.string("base_url")) out.base_url = *url;
  section.forbid("token", secret_in_file_message(kEnvClearingToken));
  section.integer("request_timeout_ms", out.request_timeout_ms, true);
  section.integer("connect_timeout_ms", out.connect_timeout_ms, true);
  section.integer("in_flight_max", out.in_flight_max, true);
  read_choice(section, "concurrency_mode", out.concurrency_mode, ConcurrencyMode::adaptive,
              ConcurrencyMode::fixed, &concurrency_mode_name);
  section.integer("concurrency_initial", out.concurrency_initial, false);
  section.integer("concurrency_min", out.concurrency_min, false);
  section.boolean("reuse_connections", out.reuse_connections);
  section.integer("pool_connections_max", out.pool_connections_max, true);
  section.boolean("verify_tls", out.verify_tls);
  section.boolean("unverified_tls_acknowledged", out.unverified_tls_acknowledged);
  if (const auto ca_file = section.string("ca_file")) out.ca_file = *ca_file;
  if (const auto file = section.string("client_cert_file")) out.client_cert_file = *file;
  if (const auto file = section.string("client_key_file")) out.client_key_file = *file;
  read_maintenance_windows(section, out.maintenance_windows);
  section.finish();
}

constexpr bool kRequired = true;
constexpr bool kOptional = false;

// Reads the settings of a field list (fields.hpp) from `section`: integers and booleans (a
// boolean is never required: each has its default).
auto reader(Section& section, bool required) {
  return [&section, required]<class Value>(std::string_view key, Value& value) {
    if constexpr (std::is_same_v<Value, bool>) {
      section.boolean(key, value);
    } else {
      section.integer(key, value, required);
    }
  };
}

// All required: how often the clearing is called again and asked, and when a transfer goes
// under investigation, are the bank's policy with the clearing, not ours to guess.
void read_retry(Section section, RetryConfig& out) {
  fields::retry(out, reader(section, kRequired));
  section.finish();
}

// Optional, with the defaults of DispatcherConfig (README lists them): this process's own
// pace, bounded by the required clearing.in_flight_max; lease_ms is checked against
// clearing.request_timeout_ms whatever its source.
void read_dispatcher(Section section, DispatcherConfig& out) {
  fields::dispatcher(out, reader(section, kOptional));
  section.finish();
}

// Required: how often and how much the clearing's feed is read is load on the clearing.
void read_incoming(Section section, IncomingConfig& out) {
  fields::incoming(out, reader(section, kRequired));
  section.finish();
}

void read_outbound_stream(Section section, OutboundStreamConfig& out, Problems& problems) {
  if (const auto name = section.string("name", true)) out.name = *name;
  section.integer("partitions", out.partitions, true);
  if (const auto derivation = section.string("derivation", true)) {
    const auto found = std::find_if(kDerivations.begin(), kDerivations.end(), [&](Derivation d) {
      return derivation_name(d) == *derivation;
    });
    if (found == kDerivations.end()) {
      std::string known;
      for (const auto d : kDerivations)
        known += (known.empty() ? "\"" : ", \"") + std::string(derivation_name(d)) + "\"";
      problems.add(section.path_of("derivation"),
                   "must be one of " + known + ", got " + detail::quote_text(*derivation));
    } else {
      out.derivation = *found;
    }
  }
  if (const auto from = section.string("backfill_from")) {
    base::Timestamp parsed{};
    if (base::parse_timestamp(*from, parsed))
      out.backfill_from = *from;
    else
      problems.add(
          section.path_of("backfill_from"),
          "must be an RFC 3339 time (2026-01-01T00:00:00Z), got " + detail::quote_text(*from));
  }
  section.finish();
}

void read_deprecated_stream(Section section, DeprecatedStreamConfig& out, Problems& problems) {
  if (const auto stream = section.string("stream", true)) out.stream = *stream;
  if (const auto sunset = section.string("sunset", true)) {
    if (const auto date = base::parse_date(*sunset))
      out.sunset = *date;
    else
      problems.add(section.path_of("sunset"),
                   "must be a date YYYY-MM-DD, got " + detail::quote_text(*sunset));
  }
  section.boolean("retired", out.retired);
  section.finish();
}

template <class Item, class Read>
void read_list(Section& section, const char* key, bool required, const char* shape,
               std::vector<Item>& out, Problems& problems, Read read) {
  const Json* list = required ? section.require(key) : section.find(key);
  if (list == nullptr) return;
  const std::string path = section.path_of(key);
  if (!list->is_array()) {
    problems.add(path,
                 std::string("must be an array of ") + shape + ", got " + detail::describe(*list));
    return;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    Item item;
    read(Section(&(*list)[i], detail::element_path(path, i), problems), item, problems);
    out.push_back(std::move(item));
  }
}

// streams.core_story_url (config.hpp, "The core's story"): optional.
void read_core_story(Section& section, StreamsConfig& out) {
  if (const auto url = section.string("core_story_url")) out.core_story_url = *url;
}

void read_streams(Section section, StreamsConfig& out, Country country, Problems& problems) {
  Section inbound = section.section("inbound");
  out.inbound.name = "core." + std::string(country_code_lower(country)) + ".payments.v1";
  if (const auto name = inbound.string("name")) out.inbound.name = *name;
  inbound.integer("partitions", out.inbound.partitions, true);
  inbound.finish();

  read_list(section, "outbound", true, "{name, partitions, derivation}", out.outbound, problems,
            read_outbound_stream);
  read_list(section, "deprecated", false, "{stream, sunset, retired}", out.deprecated, problems,
            read_deprecated_stream);
  if (const auto url = section.string("core_catchup_url")) out.core_catchup_url = *url;
  if (const auto file = section.string("core_catchup_ca_file")) out.core_catchup_ca_file = *file;
  if (const auto file = section.string("core_catchup_client_cert_file"))
    out.core_catchup_client_cert_file = *file;
  if (const auto file = section.string("core_catchup_client_key_file"))
    out.core_catchup_client_key_file = *file;
  section.forbid("core_catchup_token", secret_in_file_message(kEnvCoreCatchupToken));
  section.integer("tail_check_interval_ms", out.tail_check_interval_ms);
  read_core_story(section, out);
  section.finish();
}

void read_database(Section section, DatabaseConfig& out) {
  if (const auto url = section.string("url")) out.url = *url;
  section.integer("connections_max", out.connections_max);
  section.integer("statement_timeout_ms", out.statement_timeout_ms);
  section.finish();
}

// A key naming one of `choices` (an enumeration's words in the file); anything else is refused
// with the whole list.
template <class Choice, std::size_t N>
std::optional<Choice> read_one_of(Section& section, std::string_view key,
                                  const std::array<Choice, N>& choices,
                                  std::string_view (*name)(Choice) noexcept) {
  const auto text = section.string(key);
  if (!text) return std::nullopt;
  std::string known;
  for (const Choice choice : choices) {
    if (*text == name(choice)) return choice;
    known += (known.empty() ? "\"" : ", \"") + std::string(name(choice)) + "\"";
  }
  section.invalid(key, "must be one of " + known + ", got " + detail::quote_text(*text));
  return std::nullopt;
}

// kafka.security: all optional (PLAINTEXT, no SASL, no files). The passwords are secrets: only
// from the environment. An unknown protocol leaves the rest unchecked (every rule depends on
// it): the section is marked failed.
void read_kafka_security(Section section, KafkaSecurityConfig& out, Problems& problems) {
  const bool protocol_given = section.find("protocol") != nullptr;
  if (const auto protocol = read_one_of(section, "protocol", kKafkaSecurityProtocols,
                                        &kafka_security_protocol_name)) {
    out.protocol = *protocol;
  } else if (protocol_given) {
    problems.failed_keys.insert(section.path());
  }
  out.sasl_mechanism =
      read_one_of(section, "sasl_mechanism", kSaslMechanisms, &sasl_mechanism_name);
  if (const auto username = section.string("sasl_username")) out.sasl_username = *username;
  section.forbid("sasl_password", secret_in_file_message(kOptionalEnvKafkaSaslPassword));
  if (const auto path = section.string("ssl_ca_location")) out.ssl_ca_location = *path;
  if (const auto path = section.string("ssl_certificate_location")) {
    out.ssl_certificate_location = *path;
  }
  if (const auto path = section.string("ssl_key_location")) out.ssl_key_location = *path;
  section.forbid("ssl_key_password", secret_in_file_message(kOptionalEnvKafkaSslKeyPassword));
  read_choice(section, "ssl_endpoint_identification_algorithm", out.endpoint_identification,
              KafkaEndpointIdentification::https, KafkaEndpointIdentification::none,
              &kafka_endpoint_identification_name);
  section.boolean("unverified_tls_acknowledged", out.unverified_tls_acknowledged);
  section.finish();
}

void read_kafka(Section section, KafkaConfig& out, Country country, Problems& problems) {
  const std::string default_id = "clearing-adapter-" + std::string(country_code_lower(country));
  out.group_id = default_id;
  out.client_id = default_id;
  if (const auto brokers = section.string("brokers")) out.brokers = *brokers;
  if (const auto group_id = section.string("group_id")) out.group_id = *group_id;
  if (const auto client_id = section.string("client_id")) out.client_id = *client_id;
  fields::kafka_numbers(out, reader(section, kOptional));
  read_choice(section, "partition_assignment", out.partition_assignment,
              PartitionAssignment::database, PartitionAssignment::group,
              &partition_assignment_name);
  read_kafka_security(section.section("security"), out.security, problems);
  section.finish();
}

// The connection limits are optional: their defaults are the safe side for one service.
void read_privacy(Section section, PrivacyConfig& out) {
  section.forbid("data_kek", secret_in_file_message(kEnvDataKek));
  section.forbid("data_kek_previous", secret_in_file_message(kOptionalEnvDataKekPrevious));
  section.integer("retention_years", out.retention_years);
  section.finish();
}

void read_http(Section section, HttpConfig& out) {
  if (const auto address = section.string("address")) out.address = *address;
  section.forbid("api_token", secret_in_file_message(kEnvApiToken));
  section.forbid("metrics_token", secret_in_file_message(kEnvMetricsToken));
  section.forbid("operator_token", secret_in_file_message(kEnvOperatorToken));
  section.integer("connections_max", out.connections_max);
  const bool per_client_given = section.find("connections_per_client_max") != nullptr;
  section.integer("connections_per_client_max", out.connections_per_client_max);
  // Left out, it follows a lowered total rather than fail for a value nobody wrote.
  if (!per_client_given) {
    out.connections_per_client_max =
        std::min(out.connections_per_client_max, std::max(1, out.connections_max));
  }
  section.integer("idle_timeout_ms", out.idle_timeout_ms);
  if (const auto file = section.string("tls_cert_file")) out.tls_cert_file = *file;
  if (const auto file = section.string("tls_key_file")) out.tls_key_file = *file;
  if (const auto file = section.string("tls_client_ca_file")) out.tls_client_ca_file = *file;
  section.finish();
}

void read_log_level(Section& root, LogLevel& out, Problems& problems) {
  const auto text = root.string("log_level");
  if (!text) return;
  constexpr std::array kLevels{LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn,
                               LogLevel::error};
  const auto found = std::find_if(kLevels.begin(), kLevels.end(),
                                  [&](LogLevel level) { return log_level_name(level) == *text; });
  if (found == kLevels.end()) {
    problems.add("log_level",
                 "must be one of \"trace\", \"debug\", \"info\", \"warn\", "
                 "\"error\", got " +
                     detail::quote_text(*text));
    return;
  }
  out = *found;
}

// "log_format": "text" or "json" (base::parse_log_format); CLEARING_ADAPTER_LOG_FORMAT
// overrides the file's.
void read_log_format(Section& root, base::LogFormat& out, Problems& problems) {
  const auto text = root.string("log_format");
  if (!text) return;
  if (const auto format = base::parse_log_format(*text)) {
    out = *format;
    return;
  }
  problems.add("log_format", "must be \"text\" or \"json\", got " + detail::quote_text(*text));
}

void apply_log_format_env(base::LogFormat& out, const Environment& env, Problems& problems) {
  const auto text = env.get(kOptionalEnvLogFormat);
  if (!text) return;
  if (const auto format = base::parse_log_format(*text)) {
    out = *format;
    return;
  }
  problems.add("log_format", std::string("from ") + kOptionalEnvLogFormat +
                                 ": must be \"text\" or \"json\", got " +
                                 detail::quote_text(*text));
}

// ---------------------------------------------------------------------------------------
// Environment overrides.

// The content of a secret's file (the `_FILE` form of its variable: a mounted secret), or
// why it cannot be used. Never quotes the content. One trailing line break is not part of
// the secret (`echo token > file`).
// Why the file at `path` cannot hold a secret or a private key, by its status: it cannot be
// stat'ed, is not a regular file, or (`private_file`) others may read or write it.
std::optional<std::string> file_status_problem(const std::string& path, bool private_file,
                                               struct stat& status) {
  const std::string named = detail::quote_text(path);
  if (::stat(path.c_str(), &status) != 0)
    return "cannot read " + named + ": " + std::strerror(errno);
  if (!S_ISREG(status.st_mode)) return named + " is not a regular file";
  if (private_file && (status.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(status.st_mode & 07777));
    return named + " is readable or writable by others (mode " + mode +
           "): chmod o-rwx it (Kubernetes: defaultMode 0440 or 0400; compose: the secret's mode)";
  }
  return std::nullopt;
}

tl::expected<std::string, std::string> read_secret_file(const std::string& path) {
  const std::string named = detail::quote_text(path);
  struct stat status {};
  if (auto problem = file_status_problem(path, true, status)) return tl::unexpected(*problem);
  if (static_cast<std::uintmax_t>(status.st_size) > kSecretFileBytesMax) {
    return tl::unexpected(named + " is larger than " + std::to_string(kSecretFileBytesMax) +
                          " bytes: not a secret");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected("cannot read " + named + ": " + std::strerror(errno));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (content.size() > kSecretFileBytesMax) {
    return tl::unexpected(named + " is larger than " + std::to_string(kSecretFileBytesMax) +
                          " bytes: not a secret");
  }
  if (content.ends_with('\n')) content.pop_back();
  if (content.ends_with('\r')) content.pop_back();
  if (content.empty()) return tl::unexpected(named + " is empty");
  return content;
}

// A secret's value from its variable or from the file its `_FILE` variable names (never
// both); nullopt when neither is set or on a problem (added under `key`). `source` names
// where it came from.
std::optional<std::string> secret_from(const Environment& env, const char* variable,
                                       const char* key, Problems& problems, std::string& source) {
  const std::string file_variable = std::string(variable) + kSecretFileSuffix;
  auto direct = env.get(variable);
  const auto path = env.get(file_variable);
  if (direct && path) {
    problems.add(key,
                 std::string("set either ") + variable + " or " + file_variable + ", not both");
    return std::nullopt;
  }
  if (!path) {
    source = variable;
    return direct;
  }
  auto read = read_secret_file(*path);
  if (!read) {
    problems.add(key, "from " + file_variable + ": " + read.error());
    return std::nullopt;
  }
  source = file_variable;
  return std::move(*read);
}

// The Kafka credentials, read whatever the protocol: validate() refuses one the protocol does
// not use, so that a stale password cannot wait unnoticed for a later change of protocol.
void apply_kafka_secrets(KafkaSecurityConfig& security, const Environment& env,
                         Problems& problems) {
  std::string source;
  if (auto password = secret_from(env, kOptionalEnvKafkaSaslPassword,
                                  "kafka.security.sasl_password", problems, source)) {
    security.sasl_password = Secret(std::move(*password));
  }
  if (auto password = secret_from(env, kOptionalEnvKafkaSslKeyPassword,
                                  "kafka.security.ssl_key_password", problems, source)) {
    security.ssl_key_password = Secret(std::move(*password));
  }
}

// Applies the overrides; returns key -> variable for the values that came from the
// environment, so that their errors say so.
std::map<std::string, std::string> apply_overrides(AdapterConfig& config, const Environment& env,
                                                   Problems& problems) {
  std::map<std::string, std::string> sources;
  const auto take = [&](const char* variable, const char* key, std::string& target) {
    if (auto value = env.get(variable)) {
      target = std::move(*value);
      sources[key] = variable;
    }
  };
  std::string source;
  // The database URL may carry a password: a secret, with its _FILE form too.
  if (auto url = secret_from(env, kEnvDatabaseUrl, "database.url", problems, source)) {
    config.database.url = std::move(*url);
    sources["database.url"] = source;
  }
  take(kEnvKafkaBrokers, "kafka.brokers", config.kafka.brokers);
  take(kEnvClearingUrl, "clearing.base_url", config.clearing.base_url);
  take(kEnvCoreCatchupUrl, "streams.core_catchup_url", config.streams.core_catchup_url);
  take(kEnvHttpAddress, "http.address", config.http.address);
  if (auto token = secret_from(env, kEnvClearingToken, "clearing.token", problems, source)) {
    config.clearing.token = Secret(std::move(*token));
  }
  if (auto token = secret_from(env, kEnvApiToken, "http.api_token", problems, source)) {
    config.http.api_token = Secret(std::move(*token));
  }
  if (auto token =
          secret_from(env, kEnvCoreCatchupToken, "streams.core_catchup_token", problems, source)) {
    config.streams.core_catchup_token = Secret(std::move(*token));
  }
  if (auto kek = secret_from(env, kEnvDataKek, "privacy.data_kek", problems, source)) {
    config.privacy.data_kek = Secret(std::move(*kek));
  }
  if (auto keks = secret_from(env, kOptionalEnvDataKekPrevious, "privacy.data_kek_previous",
                              problems, source)) {
    config.privacy.data_kek_previous = Secret(std::move(*keks));
  }
  apply_kafka_secrets(config.kafka.security, env, problems);
  if (auto token = secret_from(env, kEnvMetricsToken, "http.metrics_token", problems, source)) {
    config.http.metrics_token = Secret(std::move(*token));
  }
  if (auto token = secret_from(env, kEnvOperatorToken, "http.operator_token", problems, source)) {
    config.http.operator_token = Secret(std::move(*token));
  }
  return sources;
}

// The TLS files (config.hpp, "TLS files"): each one given must be a readable regular file,
// and a private key one that others may neither read nor write. Problems under the file's key.
void check_tls_files(const AdapterConfig& config, Problems& problems) {
  struct TlsFile {
    const char* key;
    const std::optional<std::string>& path;
    bool private_key;
  };
  const TlsFile files[] = {
      {"clearing.ca_file", config.clearing.ca_file, false},
      {"clearing.client_cert_file", config.clearing.client_cert_file, false},
      {"clearing.client_key_file", config.clearing.client_key_file, true},
      {"streams.core_catchup_ca_file", config.streams.core_catchup_ca_file, false},
      {"streams.core_catchup_client_cert_file", config.streams.core_catchup_client_cert_file,
       false},
      {"streams.core_catchup_client_key_file", config.streams.core_catchup_client_key_file, true},
      {"http.tls_cert_file", config.http.tls_cert_file, false},
      {"http.tls_key_file", config.http.tls_key_file, true},
      {"http.tls_client_ca_file", config.http.tls_client_ca_file, false},
  };
  for (const auto& file : files) {
    if (!file.path || file.path->empty()) continue;  // validate() refuses an empty one
    struct stat status {};
    auto problem = file_status_problem(*file.path, file.private_key, status);
    if (!problem && !std::ifstream(*file.path, std::ios::binary)) {
      problem = "cannot read " + detail::quote_text(*file.path) + ": " + std::strerror(errno);
    }
    if (problem) problems.add(file.key, *problem);
  }
}

// True when `key` is `failed` or lies inside it ("retry" covers "retry.deadline_ms").
bool covered_by(const std::string& key, const std::string& failed) {
  if (!key.starts_with(failed)) return false;
  return key.size() == failed.size() || failed.empty() || key[failed.size()] == '.' ||
         key[failed.size()] == '[';
}

bool already_failed(const Problems& problems, const std::string& key) {
  return std::any_of(problems.failed_keys.begin(), problems.failed_keys.end(),
                     [&](const std::string& failed) { return covered_by(key, failed); });
}

// A value that may come from the environment is required from one of the two.
void require_file_or_env(const std::string& value, const char* key, const char* variable,
                         Problems& problems) {
  if (!value.empty() || already_failed(problems, key)) return;
  problems.add(key, "missing required key (" + env_hint(variable) + ")");
}

// Why the file at `path` cannot be opened for reading, if it cannot.
std::optional<std::string> readable_file_problem(const std::string& path) {
  const std::string named = detail::quote_text(path);
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    return "cannot read " + named + ": " + std::strerror(errno);
  }
  if (!S_ISREG(status.st_mode)) return named + " is not a regular file";
  if (!std::ifstream(path, std::ios::binary)) {
    return "cannot read " + named + ": " + std::strerror(errno);
  }
  return std::nullopt;
}

// kafka.security's files, checked as the clients will open them at start, so that a wrong
// path stops the start with the key's name rather than as librdkafka's words at the first
// connection. The key is a secret: read like the secrets' _FILE forms (not readable or
// writable by others), and it must be encrypted exactly when a key password is given. Only
// for a protocol that uses them, and for keys without an error yet.
void check_kafka_security_files(const KafkaSecurityConfig& security, Problems& problems) {
  if (!security.uses_ssl()) return;
  const auto has_error = [&](const std::string& key) {
    return already_failed(problems, key) ||
           std::any_of(problems.errors.begin(), problems.errors.end(),
                       [&](const ConfigError& error) { return error.key == key; });
  };
  const auto check_readable = [&](const std::string& key, const std::optional<std::string>& path) {
    if (!path || has_error(key)) return;
    if (const auto problem = readable_file_problem(*path)) problems.add(key, *problem);
  };
  check_readable("kafka.security.ssl_ca_location", security.ssl_ca_location);
  check_readable("kafka.security.ssl_certificate_location", security.ssl_certificate_location);
  const std::string key_location = "kafka.security.ssl_key_location";
  if (!security.ssl_key_location || has_error(key_location)) return;
  const auto key = read_secret_file(*security.ssl_key_location);
  if (!key) {
    problems.add(key_location, key.error());
    return;
  }
  const std::string named = detail::quote_text(*security.ssl_key_location);
  if (key->find("-----BEGIN") == std::string::npos ||
      key->find("PRIVATE KEY-----") == std::string::npos) {
    problems.add(key_location,
                 named + " holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)");
    return;
  }
  // "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or "Proc-Type: 4,ENCRYPTED" (OpenSSL's older form).
  const bool encrypted = key->find("ENCRYPTED") != std::string::npos;
  const std::string password_key = "kafka.security.ssl_key_password";
  const std::string password_variables = std::string(kOptionalEnvKafkaSslKeyPassword) + " (or " +
                                         kOptionalEnvKafkaSslKeyPassword + kSecretFileSuffix +
                                         ", a file holding it)";
  if (has_error(password_key)) return;
  if (encrypted && !security.ssl_key_password.is_set()) {
    problems.add(password_key, "not set: " + named +
                                   " (kafka.security.ssl_key_location) holds an "
                                   "encrypted key; set its password in " +
                                   password_variables);
  } else if (!encrypted && security.ssl_key_password.is_set()) {
    problems.add(password_key, "is set, but " + named +
                                   " (kafka.security.ssl_key_location) holds "
                                   "a key that is not encrypted: unset " +
                                   password_variables + ", or name the encrypted key");
  }
}

}  // namespace

namespace detail {
std::vector<ConfigError> validate_impl(const AdapterConfig& config, LoadOptions options,
                                       bool country_known);
}  // namespace detail

tl::expected<AdapterConfig, ConfigErrors> parse_config(std::string_view text,
                                                       const std::string& file,
                                                       const Environment& env,
                                                       LoadOptions options) {
  Problems problems;
  problems.file = file;
  const auto json = detail::parse_json(text, problems);
  if (!json) return tl::unexpected(ConfigErrors{std::move(problems.errors)});

  AdapterConfig config;
  config.source_file = file;
  Section root(&*json, "", problems);
  const bool country_known = read_country(root.section("country"), config.country, problems);
  read_clearing(root.section("clearing"), config.clearing);
  read_retry(root.section("retry"), config.retry);
  read_dispatcher(root.section("dispatcher"), config.dispatcher);
  read_incoming(root.section("incoming"), config.incoming);
  read_streams(root.section("streams"), config.streams, config.country.code, problems);
  read_database(root.section("database"), config.database);
  read_kafka(root.section("kafka"), config.kafka, config.country.code, problems);
  read_http(root.section("http"), config.http);
  read_privacy(root.section("privacy"), config.privacy);
  read_log_level(root, config.log_level, problems);
  read_log_format(root, config.log_format, problems);
  root.finish();

  const auto sources = apply_overrides(config, env, problems);
  apply_log_format_env(config.log_format, env, problems);
  check_tls_files(config, problems);
  require_file_or_env(config.clearing.base_url, "clearing.base_url", kEnvClearingUrl, problems);
  require_file_or_env(config.streams.core_catchup_url, "streams.core_catchup_url",
                      kEnvCoreCatchupUrl, problems);
  require_file_or_env(config.database.url, "database.url", kEnvDatabaseUrl, problems);
  require_file_or_env(config.kafka.brokers, "kafka.brokers", kEnvKafkaBrokers, problems);
  require_file_or_env(config.http.address, "http.address", kEnvHttpAddress, problems);

  for (auto& error : detail::validate_impl(config, options, country_known)) {
    if (already_failed(problems, error.key)) continue;
    if (const auto source = sources.find(error.key); source != sources.end()) {
      error.message = "from " + source->second + ": " + error.message;
    }
    problems.errors.push_back(std::move(error));
  }
  check_kafka_security_files(config.kafka.security, problems);
  if (!problems.errors.empty()) return tl::unexpected(ConfigErrors{std::move(problems.errors)});
  return config;
}

tl::expected<AdapterConfig, ConfigErrors> load_config(const std::string& path,
                                                      const Environment& env, LoadOptions options) {
  const auto fail = [&](std::string message) {
    return tl::unexpected(ConfigErrors{{ConfigError{path, "", std::move(message)}}});
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::string("cannot open the file: ") + std::strerror(errno));
  std::string text;
  std::array<char, 4096> buffer{};
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
    text.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kConfigFileBytesMax) {
      return fail("the file is larger than " + std::to_string(kConfigFileBytesMax) + " bytes");
    }
  }
  if (in.bad()) return fail(std::string("cannot read the file: ") + std::strerror(errno));
  return parse_config(text, path, env, options);
}

}  // namespace clearing::config
