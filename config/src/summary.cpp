// redacted_summary: the whole config as one log line, without secrets.

#include <type_traits>

#include "clearing/config/loader.hpp"
#include "fields.hpp"

namespace clearing::config {

namespace {

// "N (first..last)" rather than every date: the line stays readable.
std::string format_calendar(const std::vector<std::chrono::year_month_day>& dates) {
  if (dates.empty()) return "0";
  return std::to_string(dates.size()) + "(" + format_date(dates.front()) + ".." +
         format_date(dates.back()) + ")";
}

class Line {
 public:
  template <class Value>
  void add(std::string_view key, const Value& value) {
    if (!text_.empty()) text_ += ' ';
    text_ += key;
    text_ += '=';
    if constexpr (std::is_arithmetic_v<Value> && !std::is_same_v<Value, bool>) {
      text_ += std::to_string(value);
    } else if constexpr (std::is_same_v<Value, bool>) {
      text_ += value ? "true" : "false";
    } else {
      append_text(std::string_view(value));
    }
  }
  std::string take() { return std::move(text_); }

 private:
  // Values with white space or quotes are quoted so the line still splits on spaces.
  void append_text(std::string_view value) {
    if (!value.empty() && value.find_first_of(" \"\t\n") == std::string_view::npos) {
      text_ += value;
      return;
    }
    text_ += '"';
    for (const char c : value) {
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += (c == '\n' || c == '\t') ? ' ' : c;
    }
    text_ += '"';
  }
  std::string text_;
};

std::string set_or_unset(const Secret& secret) { return secret.is_set() ? "set" : "unset"; }

// Writes the settings of a field list (fields.hpp) as "<section>.<key>=<value>".
auto writer(Line& line, std::string_view section) {
  return [&line, section](std::string_view key, const auto& value) {
    line.add(std::string(section) + "." + std::string(key), value);
  };
}

// Countries as data (issue 23): the currency's minor units and the account schemes in use.
void add_country_data(Line& line, const CountryConfig& country) {
  line.add("country.currency_minor_units", country.currency_minor_units);
  std::string schemes;
  for (const auto scheme : country.account_schemes) {
    schemes += (schemes.empty() ? "" : ",") + std::string(sagas::scheme_name(scheme));
  }
  line.add("country.account_schemes", schemes);
}

void add_country(Line& line, const CountryConfig& country) {
  line.add("country.code", country_code_upper(country.code));
  line.add("country.currency", country.currency);
  line.add("country.amount_limit_minor", country.amount_limit_minor);
  line.add("country.cutoff_utc", format_time_of_day(country.cutoff_utc));
  std::string weekend;
  for (const auto day : country.business_days.weekend) {
    weekend += (weekend.empty() ? "" : ",") + std::string(weekday_name(day));
  }
  line.add("country.business_days.weekend", weekend);
  line.add("country.business_days.holidays", format_calendar(country.business_days.holidays));
  line.add("country.business_days.bank_closing_days",
           format_calendar(country.business_days.bank_closing_days));
  add_country_data(line, country);
}

void add_clearing(Line& line, const ClearingConfig& clearing) {
  // URLs go through the masking too: a URL from the environment may carry user:password@.
  line.add("clearing.base_url", redact_http_url(clearing.base_url));
  line.add("clearing.token", set_or_unset(clearing.token));
  line.add("clearing.request_timeout_ms", clearing.request_timeout_ms);
  line.add("clearing.connect_timeout_ms", clearing.connect_timeout_ms);
  line.add("clearing.in_flight_max", clearing.in_flight_max);
  line.add("clearing.concurrency_mode",
           std::string(concurrency_mode_name(clearing.concurrency_mode)));
  if (clearing.concurrency_mode == ConcurrencyMode::adaptive) {
    line.add("clearing.concurrency_initial", clearing.concurrency_initial);
    line.add("clearing.concurrency_min", clearing.concurrency_min);
  }
  line.add("clearing.pool_connections_max", clearing.pool_connections_max);
  line.add("clearing.reuse_connections", clearing.reuse_connections);
  line.add("clearing.verify_tls", clearing.verify_tls);
  line.add("clearing.unverified_tls_acknowledged", clearing.unverified_tls_acknowledged);
  line.add("clearing.ca_file", clearing.ca_file.value_or("default"));
  line.add("clearing.client_cert_file", clearing.client_cert_file.value_or("none"));
  line.add("clearing.client_key_file", clearing.client_key_file.value_or("none"));
  line.add("clearing.maintenance_windows", static_cast<int>(clearing.maintenance_windows.size()));
}

void add_streams(Line& line, const StreamsConfig& streams) {
  line.add("streams.inbound",
           streams.inbound.name + "/" + std::to_string(streams.inbound.partitions));
  std::string outbound;
  for (const auto& stream : streams.outbound) {
    outbound += (outbound.empty() ? "" : ",") + stream.name + "/" +
                std::to_string(stream.partitions) + ":" +
                std::string(derivation_name(stream.derivation));
  }
  line.add("streams.outbound", outbound);
  if (!streams.deprecated.empty()) {
    std::string deprecated;
    for (const auto& entry : streams.deprecated)
      deprecated += (deprecated.empty() ? "" : ",") + entry.stream +
                    "/sunset:" + format_date(entry.sunset) + (entry.retired ? "/retired" : "");
    line.add("streams.deprecated", deprecated);
  }
  line.add("streams.core_catchup_url", redact_http_url(streams.core_catchup_url));
  line.add("streams.core_catchup_token", set_or_unset(streams.core_catchup_token));
  if (streams.core_catchup_url.starts_with("https://")) {
    line.add("streams.core_catchup_ca_file", streams.core_catchup_ca_file.value_or("default"));
    line.add("streams.core_catchup_client_cert_file",
             streams.core_catchup_client_cert_file.value_or("none"));
    line.add("streams.core_catchup_client_key_file",
             streams.core_catchup_client_key_file.value_or("none"));
  }
}

// The protocol, then only the settings it uses; the passwords as set/unset.
void add_kafka_security(Line& line, const KafkaSecurityConfig& security) {
  line.add("kafka.security.protocol", std::string(kafka_security_protocol_name(security.protocol)));
  if (security.uses_sasl()) {
    line.add("kafka.security.sasl_mechanism",
             security.sasl_mechanism ? std::string(sasl_mechanism_name(*security.sasl_mechanism))
                                     : std::string("unset"));
    line.add("kafka.security.sasl_username", security.sasl_username);
    line.add("kafka.security.sasl_password", set_or_unset(security.sasl_password));
  }
  if (security.uses_ssl()) {
    line.add("kafka.security.ssl_ca_location", security.ssl_ca_location.value_or("default"));
    if (security.ssl_certificate_location) {
      line.add("kafka.security.ssl_certificate_location", *security.ssl_certificate_location);
    }
    if (security.ssl_key_location) {
      line.add("kafka.security.ssl_key_location", *security.ssl_key_location);
      line.add("kafka.security.ssl_key_password", set_or_unset(security.ssl_key_password));
    }
    line.add("kafka.security.ssl_endpoint_identification_algorithm",
             std::string(kafka_endpoint_identification_name(security.endpoint_identification)));
  }
}

void add_kafka(Line& line, const KafkaConfig& kafka) {
  line.add("kafka.brokers", kafka.brokers);
  line.add("kafka.group_id", kafka.group_id);
  line.add("kafka.client_id", kafka.client_id);
  fields::kafka_numbers(kafka, writer(line, "kafka"));
  line.add("kafka.partition_assignment",
           std::string(partition_assignment_name(kafka.partition_assignment)));
  add_kafka_security(line, kafka.security);
}

// Only when set: the summaries of configurations without it stay as they were.
void add_core_story(Line& line, const StreamsConfig& streams) {
  if (!streams.core_story_url.empty())
    line.add("streams.core_story_url", redact_http_url(streams.core_story_url));
}

}  // namespace

std::string redacted_summary(const AdapterConfig& config) {
  Line line;
  line.add("source_file", config.source_file);
  add_country(line, config.country);
  add_clearing(line, config.clearing);
  fields::retry(config.retry, writer(line, "retry"));
  fields::dispatcher(config.dispatcher, writer(line, "dispatcher"));
  fields::incoming(config.incoming, writer(line, "incoming"));
  add_streams(line, config.streams);
  add_core_story(line, config.streams);
  line.add("database.url", redact_database_url(config.database.url));
  line.add("database.connections_max", config.database.connections_max);
  line.add("database.statement_timeout_ms", config.database.statement_timeout_ms);
  add_kafka(line, config.kafka);
  line.add("http.address", config.http.address);
  line.add("http.api_token", set_or_unset(config.http.api_token));
  line.add("http.metrics_token", set_or_unset(config.http.metrics_token));
  line.add("http.operator_token", set_or_unset(config.http.operator_token));
  line.add("http.connections_max", config.http.connections_max);
  line.add("http.connections_per_client_max", config.http.connections_per_client_max);
  line.add("http.idle_timeout_ms", config.http.idle_timeout_ms);
  // The API's TLS: paths only, never what the files hold.
  line.add("http.tls_cert_file", config.http.tls_cert_file.value_or("none"));
  if (config.http.tls_cert_file) {
    line.add("http.tls_key_file", config.http.tls_key_file.value_or("none"));
    line.add("http.tls_client_ca_file", config.http.tls_client_ca_file.value_or("none"));
  }
  line.add("privacy.data_kek", set_or_unset(config.privacy.data_kek));
  line.add("privacy.data_kek_previous", set_or_unset(config.privacy.data_kek_previous));
  line.add("privacy.retention_years", config.privacy.retention_years);
  line.add("log_level", log_level_name(config.log_level));
  line.add("log_format", base::log_format_name(config.log_format));
  return line.take();
}

}  // namespace clearing::config
