#pragma once
// Kafka plumbing shared by the relay and the consumer: explicit client configuration,
// and the embedded cluster (librdkafka's in-process mock cluster: a real Kafka-protocol
// broker on loopback) used by tests and the demo.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "clearing/external_streams/errors.hpp"

namespace clearing::external_streams {

// How every client authenticates to the brokers and protects the link, in librdkafka's words
// (security.protocol, sasl.*, ssl.*). Checked before (config::KafkaSecurityConfig); here only
// passed on. The passwords are secrets: the settings maps below carry them, so never log one.
struct KafkaSecurity {
  std::string protocol = "PLAINTEXT";  // PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
  // SASL_* only.
  std::string sasl_mechanism;  // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
  std::string sasl_username;
  std::string sasl_password;
  // SSL and SASL_SSL only; an empty path is not set (the system's CAs; no client certificate).
  std::string ssl_ca_location;
  std::string ssl_certificate_location;
  std::string ssl_key_location;
  std::string ssl_key_password;                                 // for an encrypted key
  std::string ssl_endpoint_identification_algorithm = "https";  // https | none
};

// Every option the clients depend on is set explicitly (STYLE.md): nothing is left to
// librdkafka's defaults by accident. Extra entries override.
struct KafkaClientOptions {
  std::string bootstrap_servers;
  std::string client_id = "clearing-adapter";
  int socket_timeout_ms = 10'000;
  int message_timeout_ms = 30'000;  // producer: delivery deadline per message
  int session_timeout_ms = 10'000;  // consumer group
  int max_poll_interval_ms = 300'000;
  // How long a fetch may wait for data. librdkafka's 500 ms default put up to half a
  // second into every hop on the mock cluster (bench/streams: p50 269 ms -> 13 ms at 10).
  int fetch_wait_max_ms = 50;
  KafkaSecurity security;
  std::map<std::string, std::string> extra;
};

// The librdkafka configuration as key/value pairs (for logs and tests).
std::map<std::string, std::string> producer_settings(const KafkaClientOptions& options);
std::map<std::string, std::string> consumer_settings(const KafkaClientOptions& options,
                                                     const std::string& group_id);

// What librdkafka holds once `settings` are applied (rd_kafka_conf_dump): every property,
// its defaults included, in its own spelling ("sasl_ssl"). For tests and diagnostics; it
// carries the passwords. Errors: invalid_setting, naming the key librdkafka refused.
tl::expected<std::map<std::string, std::string>, KafkaError> librdkafka_configuration(
    const std::map<std::string, std::string>& settings);

class EmbeddedKafka {
 public:
  // Errors: invalid_setting (brokers out of 1..9), client_failed, cluster_refused; each
  // operation below: cluster_refused, with librdkafka's words.
  static tl::expected<std::unique_ptr<EmbeddedKafka>, KafkaError> start(int brokers = 1);
  ~EmbeddedKafka();
  EmbeddedKafka(const EmbeddedKafka&) = delete;
  EmbeddedKafka& operator=(const EmbeddedKafka&) = delete;

  const std::string& bootstrap_servers() const { return bootstraps_; }
  tl::expected<void, KafkaError> create_topic(const std::string& name, int partitions);
  // Broker ids start at 1.
  tl::expected<void, KafkaError> set_broker_down(int broker_id);
  tl::expected<void, KafkaError> set_broker_up(int broker_id);
  // The broker that leads a partition from now on (clients learn it at their next metadata
  // refresh).
  tl::expected<void, KafkaError> set_partition_leader(const std::string& topic, int partition,
                                                      int broker_id);
  int brokers() const { return brokers_; }

  struct Impl;

 private:
  EmbeddedKafka() = default;
  std::unique_ptr<Impl> impl_;
  std::string bootstraps_;
  int brokers_ = 0;
};

}  // namespace clearing::external_streams
