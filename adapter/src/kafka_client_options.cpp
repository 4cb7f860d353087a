#include "clearing/adapter/kafka_client_options.hpp"

namespace clearing::adapter {

external_streams::KafkaSecurity kafka_security(const config::KafkaSecurityConfig& security) {
  external_streams::KafkaSecurity out;
  out.protocol = std::string(config::kafka_security_protocol_name(security.protocol));
  if (security.sasl_mechanism) {
    out.sasl_mechanism = std::string(config::sasl_mechanism_name(*security.sasl_mechanism));
  }
  out.sasl_username = security.sasl_username;
  out.sasl_password = security.sasl_password.reveal();
  out.ssl_ca_location = security.ssl_ca_location.value_or("");
  out.ssl_certificate_location = security.ssl_certificate_location.value_or("");
  out.ssl_key_location = security.ssl_key_location.value_or("");
  out.ssl_key_password = security.ssl_key_password.reveal();
  out.ssl_endpoint_identification_algorithm =
      std::string(config::kafka_endpoint_identification_name(security.endpoint_identification));
  return out;
}

external_streams::KafkaClientOptions kafka_client_options(const config::AdapterConfig& config,
                                                          const std::string& bootstrap) {
  external_streams::KafkaClientOptions kafka;
  kafka.bootstrap_servers = bootstrap;
  kafka.client_id = config.kafka.client_id;
  kafka.message_timeout_ms = config.kafka.produce_timeout_ms;
  kafka.session_timeout_ms = config.kafka.session_timeout_ms;
  kafka.fetch_wait_max_ms = config.kafka.fetch_wait_max_ms;
  kafka.security = kafka_security(config.kafka.security);
  return kafka;
}

}  // namespace clearing::adapter
