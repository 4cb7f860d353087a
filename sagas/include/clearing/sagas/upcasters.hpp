#pragma once
// Reading events stored in an older shape (docs/event-versions.md).
//
// Every stored event carries the schema version of its type's JSON shape
// (eventstore::SchemaVersion, a column beside the data). A change to a type's shape that an
// old reader cannot take (a field added that decoding requires, renamed, or of another
// meaning) is a new version: the codec source lists one upcaster for it, a pure function
// from the data at the old version to the data at the next, and golden tests keep the old
// stored text loading. Upcasters run on read, in the codec's decode, chained from the stored
// version to the current one; the event store stays generic and never rewrites a row.
//
// A type's current version is 1 plus the number of its upcasters, so a new version cannot
// exist without the step that reads the one before it. Pure: no clock, no I/O.

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/decider.hpp"
#include "clearing/eventstore/types.hpp"

namespace clearing::sagas {

using eventstore::SchemaVersion;

// One step: the data of an event stored at schema version `from`, as version from + 1 stores
// it. Given a JSON object; must not throw for any object (a field it derives from that is
// missing or malformed stays missing, and decoding then names it).
using UpcastFn = nlohmann::json (*)(nlohmann::json data);

struct Upcaster {
  std::string_view type;  // the event type's persisted name (kType)
  SchemaVersion from;
  UpcastFn upcast;
};

// The current schema version of `type` under `upcasters`: 1 plus the number of its steps.
constexpr SchemaVersion current_version(std::span<const Upcaster> upcasters,
                                        std::string_view type) {
  std::int32_t version = 1;
  for (const auto& step : upcasters)
    if (step.type == type) ++version;
  return SchemaVersion{version};
}

// True when each type's steps are listed in order from version 1, one per version, none
// without a function: what the chain in upcast_to_current walks. Checked at compile time
// by each codec source.
constexpr bool chains_are_complete(std::span<const Upcaster> upcasters) {
  for (std::size_t i = 0; i < upcasters.size(); ++i) {
    std::int32_t expected_from = 1;
    for (std::size_t j = 0; j < i; ++j)
      if (upcasters[j].type == upcasters[i].type) ++expected_from;
    if (upcasters[i].from != SchemaVersion{expected_from} || upcasters[i].upcast == nullptr)
      return false;
  }
  return true;
}

// `data`, stored as `type` at version `from`, as the current version stores it: each step
// from `from` up, in order. Errors: unknown_version when `from` is below 1 or above the
// current version (written by a later release: this one cannot know its shape);
// not_an_object; invalid_field if a step threw (none should). Never throws.
tl::expected<nlohmann::json, eventstore::DecodeError> upcast_to_current(
    std::span<const Upcaster> upcasters, std::string_view type, SchemaVersion from,
    const nlohmann::json& data);

}  // namespace clearing::sagas
