#pragma once
// Parking: input the adapter cannot use is kept with a typed reason, never dropped.

#include <cstdint>
#include <optional>
#include <string>

#include "clearing/eventstore/types.hpp"

namespace clearing::adapter {

struct ParkedMessage {
  std::string source;       // "kafka", "clearing-feed"
  std::string reason_code;  // stable snake_case: "not_json", "missing_field", ...
  std::string reason;       // for people; no account numbers
  std::string raw;          // the message as received
  std::optional<std::string> topic;
  std::optional<std::int32_t> partition;
  std::optional<std::int64_t> offset;
  std::optional<std::string> correlation_id;
};

// Inside the caller's transaction, so the parking commits with the consumer's progress.
void park(eventstore::Transaction& tx, const ParkedMessage& message);

}  // namespace clearing::adapter
