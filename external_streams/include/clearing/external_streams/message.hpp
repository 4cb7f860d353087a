#pragma once
// The external message of docs/streams.md: what travels on Kafka and what the catch-up
// API serves. Fixed by contract: other teams' code reads these fields.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace clearing::external_streams {

struct ExternalMessage {
  std::string stream;     // = Kafka topic
  std::int32_t partition = 0;
  std::int64_t seq = 0;   // from 1, gapless per (stream, partition)
  std::string event_id;
  std::string type;
  std::string occurred_at;      // RFC 3339
  std::string correlation_id;
  std::string source_event_id;  // the producer's internal event
  nlohmann::json data = nlohmann::json::object();
  std::string key;  // Kafka key: the entity id (transfer_id / payment_id)

  nlohmann::json to_json() const;  // the Kafka value, exactly as streams.md shows
};

// Why a received message cannot be used. Stable names: they are parking reasons.
enum class MessageErrc {
  not_json,          // the value does not parse as JSON (or is not an object)
  missing_field,     // a required envelope field is absent or of the wrong type
  bad_seq,           // seq is not a positive integer
  wrong_stream,      // the envelope names another stream/partition than it came on
  unknown_type,      // an event type the consumer does not know
  invalid_data,      // the data does not fit the type (missing field, bad amount...)
};
const char* to_string(MessageErrc code) noexcept;

struct MessageError {
  MessageErrc code;
  std::string message;
};

// Parses a Kafka value (or a catch-up API element). Never throws.
tl::expected<ExternalMessage, MessageError> parse_message(std::string_view value);
tl::expected<ExternalMessage, MessageError> parse_message(const nlohmann::json& value);

// Stable partition of an entity: FNV-1a (32 bit) of the id, modulo the partition count.
// Fixed for ever: changing it would reorder entities across partitions.
std::int32_t partition_for(std::string_view entity_id, std::int32_t partitions) noexcept;

}  // namespace clearing::external_streams
