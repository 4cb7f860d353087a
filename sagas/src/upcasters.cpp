#include "clearing/sagas/upcasters.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include "clearing/base/assert.hpp"

namespace clearing::sagas {

tl::expected<nlohmann::json, eventstore::DecodeError> upcast_to_current(
    std::span<const Upcaster> upcasters, std::string_view type, SchemaVersion from,
    const nlohmann::json& data) {
  using eventstore::DecodeErrc;
  using eventstore::DecodeError;
  const std::string name(type);
  const auto current = current_version(upcasters, type);
  if (from < eventstore::kFirstSchemaVersion || from > current)
    return tl::unexpected(
        DecodeError{DecodeErrc::unknown_version, "",
                    name + ": unknown schema version " + std::to_string(from.value()) +
                        ", this build reads 1 to " + std::to_string(current.value())});
  if (!data.is_object())
    return tl::unexpected(
        DecodeError{DecodeErrc::not_an_object, "", name + ": data is not an object"});
  nlohmann::json out = data;
  try {
    // Bounded: one step per version between `from` and the current one.
    for (auto at = from; at < current; at = SchemaVersion{at.value() + 1}) {
      UpcastFn step = nullptr;
      for (const auto& candidate : upcasters)
        if (candidate.type == type && candidate.from == at) step = candidate.upcast;
      CLEARING_ASSERT_MSG(step != nullptr, "upcaster chain with a gap (chains_are_complete)");
      out = step(std::move(out));
      if (!out.is_object())
        return tl::unexpected(
            DecodeError{DecodeErrc::not_an_object, "", name + ": upcast data is not an object"});
    }
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(DecodeError{DecodeErrc::invalid_field, "", name + ": " + e.what()});
  }
  return out;
}

}  // namespace clearing::sagas
