#pragma once
// The options of every Kafka client the adapter makes (the relay's producer, the inbound
// consumer), from its config: where the brokers are, who the adapter is, its timeouts, and
// how it authenticates and protects the link (kafka.security). The passwords pass through to
// librdkafka: never log the result.
//
// Thread safety: pure functions.

#include <string>

#include "clearing/config/config.hpp"
#include "clearing/external_streams/kafka.hpp"

namespace clearing::adapter {

// `bootstrap`: the brokers to dial, resolved by the caller (the embedded cluster's address
// when kafka.brokers is "embedded"; validation keeps that one PLAINTEXT).
external_streams::KafkaClientOptions kafka_client_options(const config::AdapterConfig& config,
                                                          const std::string& bootstrap);

// kafka.security in librdkafka's words.
external_streams::KafkaSecurity kafka_security(const config::KafkaSecurityConfig& security);

}  // namespace clearing::adapter
