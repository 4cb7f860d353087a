#pragma once
// The external message of docs/streams.md: what travels on Kafka and what the catch-up
// API serves. Fixed by contract: other teams' code reads these fields.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>

namespace clearing::external_streams {

struct ExternalMessage {
  std::string stream;  // = Kafka topic
  std::int32_t partition = 0;
  std::int64_t seq = 0;  // from 1, gapless per (stream, partition)
  std::string event_id;
  std::string type;
  std::string occurred_at;  // RFC 3339
  std::string correlation_id;
  std::string source_event_id;  // the producer's internal event
  nlohmann::json data = nlohmann::json::object();
  std::string key;  // Kafka key: the entity id (transfer_id / payment_id)
  // The W3C trace context it travels with (Kafka headers `traceparent` / `tracestate`, not
  // part of the value): the consumer copies the received headers here; the relay sends the
  // source event's. Empty when none.
  std::string traceparent;
  std::string tracestate;

  nlohmann::json to_json() const;  // the Kafka value, exactly as streams.md shows
};

// Why a received message cannot be used. Stable names: they are parking reasons.
enum class MessageErrc {
  not_json,         // the value does not parse as JSON (or is not an object)
  missing_field,    // a required envelope field is absent or of the wrong type
  bad_seq,          // seq is not a positive integer
  wrong_stream,     // the envelope names another stream/partition than it came on
  unknown_type,     // an event type the consumer does not know
  invalid_data,     // the data does not fit the type (missing field, bad amount...)
  bad_field,        // an envelope field is not what it must be (characters, length)
  too_large,        // the value is larger than kMessageBytesMax
  seq_beyond_head,  // a seq the producer never issued (beyond its head in the catch-up API)
  unstorable,       // the database refused the message's effects: kept for people
};
const char* to_string(MessageErrc code) noexcept;

struct MessageError {
  MessageErrc code;
  std::string message;  // names fields and limits, never the values (they may be personal data)
  // The position the envelope claims, when its stream, partition and seq were readable and
  // valid although something else was not: such a message takes its seq (it is parked
  // and the seq counts as consumed), so gap repair never asks for it again.
  std::optional<std::int64_t> seq;
  std::string stream;
  std::int32_t partition = -1;
};

// What an envelope may carry (docs/streams.md, "Bad input"): limits checked before anything
// is written, so no single message can fail a database statement.
inline constexpr std::size_t kMessageBytesMax = 1 << 20;  // a Kafka value or catch-up element
inline constexpr std::size_t kIdentifierBytesMax = 200;   // stream, event ids, correlation id
inline constexpr std::size_t kTypeBytesMax = 100;
inline constexpr std::size_t kOccurredAtBytesMax = 64;
inline constexpr std::int32_t kEnvelopePartitionMax = 255;  // = kPartitionsMax - 1 of stream_store

// Parses a Kafka value (or a catch-up API element). Never throws.
tl::expected<ExternalMessage, MessageError> parse_message(std::string_view value);
tl::expected<ExternalMessage, MessageError> parse_message(const nlohmann::json& value);

// Stable partition of an entity: FNV-1a (32 bit) of the id, modulo the partition count.
// Fixed for ever: changing it would reorder entities across partitions.
std::int32_t partition_for(std::string_view entity_id, std::int32_t partitions) noexcept;

}  // namespace clearing::external_streams
