#pragma once
// UUIDs as canonical lower-case text (8-4-4-4-12). Random v4 for new ids; name-based
// v5-style (deterministic) ids for events derived from other events, so that a retried
// derivation produces the same event id and the store's idempotent append absorbs it.

#include <string>
#include <string_view>

namespace clearing::base {

// A fresh random (version 4) UUID. Thread safe.
std::string new_uuid();

// A deterministic UUID (version 8 layout, RFC 9562) from a namespace UUID and a name:
// the same inputs always give the same id. Not cryptographic; used only to make ids of
// derived events stable across retries.
std::string derived_uuid(std::string_view namespace_uuid, std::string_view name);

// True for the canonical 36-character form (hex digits, hyphens at 8, 13, 18, 23).
bool is_uuid(std::string_view text) noexcept;

}  // namespace clearing::base
