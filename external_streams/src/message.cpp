#include "clearing/external_streams/message.hpp"

#include <limits>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/base/text.hpp"

namespace clearing::external_streams {

constexpr base::NameTable<MessageErrc, 10> kMessageErrcNames{{
    {MessageErrc::not_json, "not_json"},
    {MessageErrc::missing_field, "missing_field"},
    {MessageErrc::bad_seq, "bad_seq"},
    {MessageErrc::wrong_stream, "wrong_stream"},
    {MessageErrc::unknown_type, "unknown_type"},
    {MessageErrc::invalid_data, "invalid_data"},
    {MessageErrc::bad_field, "bad_field"},
    {MessageErrc::too_large, "too_large"},
    {MessageErrc::seq_beyond_head, "seq_beyond_head"},
    {MessageErrc::unstorable, "unstorable"},
}};
static_assert(base::lists_every_enumerator(kMessageErrcNames, MessageErrc::unstorable));

const char* to_string(MessageErrc code) noexcept {
  // The names are literals: their data() is NUL-terminated.
  return base::name_in(kMessageErrcNames, code).value_or("unknown").data();
}

nlohmann::json ExternalMessage::to_json() const {
  return {{"stream", stream},
          {"partition", partition},
          {"seq", seq},
          {"event_id", event_id},
          {"type", type},
          {"occurred_at", occurred_at},
          {"correlation_id", correlation_id},
          {"source_event_id", source_event_id},
          {"data", data}};
}

namespace {

tl::unexpected<MessageError> fail(MessageErrc code, std::string message) {
  return tl::unexpected(MessageError{code, std::move(message)});
}

bool string_field(const nlohmann::json& j, const char* name, std::string& out) {
  const auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

}  // namespace

tl::expected<ExternalMessage, MessageError> parse_message(std::string_view value) {
  if (value.size() > kMessageBytesMax)
    return fail(MessageErrc::too_large, "the message value is " + std::to_string(value.size()) +
                                            " bytes, more than " +
                                            std::to_string(kMessageBytesMax));
  auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    return fail(MessageErrc::not_json, "the message value is not JSON (or not UTF-8)");
  return parse_message(parsed);
}

namespace {

// The position fields, read on their own so that a message bad elsewhere can still take
// its seq. Partition and seq must be integers in range: 2^32 is not partition 0, and a seq
// of 2^63 or more is not a negative number.
struct Position {
  std::optional<std::string> stream;
  std::optional<std::int32_t> partition;
  std::optional<std::int64_t> seq;
};

std::optional<std::int64_t> integer_in(const nlohmann::json& j, const char* name, std::int64_t min,
                                       std::int64_t max) {
  const auto it = j.find(name);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const auto value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(max)) return std::nullopt;
    const auto signed_value = static_cast<std::int64_t>(value);
    if (signed_value < min) return std::nullopt;
    return signed_value;
  }
  if (!it->is_number_integer()) return std::nullopt;
  const auto value = it->get<std::int64_t>();
  if (value < min || value > max) return std::nullopt;
  return value;
}

Position read_position(const nlohmann::json& j) {
  Position p;
  std::string stream;
  if (string_field(j, "stream", stream) && base::is_identifier(stream, kIdentifierBytesMax))
    p.stream = stream;
  if (auto partition = integer_in(j, "partition", 0, kEnvelopePartitionMax))
    p.partition = static_cast<std::int32_t>(*partition);
  p.seq = integer_in(j, "seq", 1, std::numeric_limits<std::int64_t>::max());
  return p;
}

}  // namespace

tl::expected<ExternalMessage, MessageError> parse_message(const nlohmann::json& j) {
  if (!j.is_object()) return fail(MessageErrc::not_json, "the message value is not a JSON object");
  const Position position = read_position(j);
  // A failure keeps the position the envelope claims when all three parts were good.
  auto failed = [&](MessageErrc code, std::string message) {
    MessageError error{code, std::move(message)};
    if (position.stream && position.partition && position.seq) {
      error.seq = position.seq;
      error.stream = *position.stream;
      error.partition = *position.partition;
    }
    return tl::unexpected(std::move(error));
  };
  ExternalMessage m;
  if (!j.contains("seq")) return fail(MessageErrc::missing_field, "field 'seq' is missing");
  if (!position.seq) return fail(MessageErrc::bad_seq, "seq must be an integer in [1, 2^63-1]");
  m.seq = *position.seq;
  if (!j.contains("partition") || !position.partition)
    return fail(MessageErrc::missing_field,
                "field 'partition' is missing or not an integer in [0, " +
                    std::to_string(kEnvelopePartitionMax) + "]");
  m.partition = *position.partition;
  struct Text {
    const char* name;
    std::string* out;
    std::size_t bytes_max;
    bool identifier;
  };
  const Text texts[] = {
      {"stream", &m.stream, kIdentifierBytesMax, true},
      {"event_id", &m.event_id, kIdentifierBytesMax, true},
      {"type", &m.type, kTypeBytesMax, true},
      {"occurred_at", &m.occurred_at, kOccurredAtBytesMax, false},
      {"correlation_id", &m.correlation_id, kIdentifierBytesMax, true},
      {"source_event_id", &m.source_event_id, kIdentifierBytesMax, true},
  };
  for (const auto& text : texts) {
    if (!string_field(j, text.name, *text.out) || text.out->empty())
      return failed(MessageErrc::missing_field,
                    std::string("field '") + text.name + "' is missing or not a string");
    const bool good =
        text.identifier ? base::is_identifier(*text.out, text.bytes_max)
                        : text.out->size() <= text.bytes_max && base::is_printable_utf8(*text.out);
    if (!good)
      return failed(
          MessageErrc::bad_field,
          std::string("field '") + text.name + "' must be " +
              (text.identifier ? "an identifier ([A-Za-z0-9._:-]) of " : "printable text of ") +
              "at most " + std::to_string(text.bytes_max) + " bytes");
  }
  const auto data = j.find("data");
  if (data == j.end() || !data->is_object())
    return failed(MessageErrc::missing_field, "field 'data' is missing or not an object");
  m.data = *data;
  return m;
}

std::int32_t partition_for(std::string_view entity_id, std::int32_t partitions) noexcept {
  CLEARING_ASSERT(partitions > 0);
  std::uint32_t h = 2166136261u;
  for (unsigned char c : entity_id) {
    h ^= c;
    h *= 16777619u;
  }
  return static_cast<std::int32_t>(h % static_cast<std::uint32_t>(partitions));
}

}  // namespace clearing::external_streams
