#include "clearing/external_streams/message.hpp"

#include "clearing/base/assert.hpp"

namespace clearing::external_streams {

const char* to_string(MessageErrc code) noexcept {
  switch (code) {
    case MessageErrc::not_json: return "not_json";
    case MessageErrc::missing_field: return "missing_field";
    case MessageErrc::bad_seq: return "bad_seq";
    case MessageErrc::wrong_stream: return "wrong_stream";
    case MessageErrc::unknown_type: return "unknown_type";
    case MessageErrc::invalid_data: return "invalid_data";
  }
  return "unknown";
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
  auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return fail(MessageErrc::not_json, "the message value is not JSON");
  return parse_message(parsed);
}

tl::expected<ExternalMessage, MessageError> parse_message(const nlohmann::json& j) {
  if (!j.is_object()) return fail(MessageErrc::not_json, "the message value is not a JSON object");
  ExternalMessage m;
  const auto seq = j.find("seq");
  if (seq == j.end()) return fail(MessageErrc::missing_field, "field 'seq' is missing");
  if (!seq->is_number_integer() || seq->get<std::int64_t>() <= 0)
    return fail(MessageErrc::bad_seq, "seq must be a positive integer, got " + seq->dump());
  m.seq = seq->get<std::int64_t>();
  for (auto [name, out] : {std::pair{"stream", &m.stream}, std::pair{"event_id", &m.event_id},
                           std::pair{"type", &m.type}, std::pair{"occurred_at", &m.occurred_at},
                           std::pair{"correlation_id", &m.correlation_id},
                           std::pair{"source_event_id", &m.source_event_id}}) {
    if (!string_field(j, name, *out) || out->empty())
      return fail(MessageErrc::missing_field, std::string("field '") + name + "' is missing or not a string");
  }
  const auto partition = j.find("partition");
  if (partition == j.end() || !partition->is_number_integer() || partition->get<std::int64_t>() < 0)
    return fail(MessageErrc::missing_field, "field 'partition' is missing or not a non-negative integer");
  m.partition = partition->get<std::int32_t>();
  const auto data = j.find("data");
  if (data == j.end() || !data->is_object())
    return fail(MessageErrc::missing_field, "field 'data' is missing or not an object");
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
