#pragma once
// What the adapter does with personal data beyond sealing it (privacy/vault.hpp): erasure of
// one subject on a person's request, retention by age, and rewrapping after a KEK rotation.
// Each is recorded as an event (nothing happens without an event that says why), in the
// stream "privacy-<subject ref>" (SubjectErased) or "privacy-keys" (DataKeysExpired,
// DataKeysRewrapped). Events name a subject only by its reference (Vault::subject_ref).

#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/event_store.hpp"
#include "clearing/http/server.hpp"
#include "clearing/privacy/vault.hpp"

namespace clearing::adapter {

inline constexpr std::string_view kSubjectErasedType = "SubjectErased";
inline constexpr std::string_view kDataKeysExpiredType = "DataKeysExpired";
inline constexpr std::string_view kDataKeysRewrappedType = "DataKeysRewrapped";
// The streams they are in: "privacy-<subject ref>" and "privacy-keys".
inline constexpr std::string_view kPrivacyStreamPrefix = "privacy-";

// Why this build cannot read an event of a privacy stream (unknown type, a field missing or
// of the wrong kind); nothing when it reads. For `clearing-adapter events check`.
std::optional<std::string> privacy_event_failure(const eventstore::RecordedEvent& event);

enum class ErasureErrc {
  invalid,         // no subject, or no reason, or one too long (the message says which)
  open_transfers,  // the subject has transfers not yet finished: their submission needs the data
  store,           // the database: retry
};

struct ErasureError {
  ErasureErrc code;
  std::string message;
};

struct Erasure {
  std::string subject_ref;
  int keys_destroyed = 0;  // 0: nothing of the subject was stored, or it was erased before
  std::string event_id;    // the SubjectErased event
};

inline constexpr std::size_t kErasureSubjectBytesMax = 200;
inline constexpr std::size_t kErasureReasonBytesMax = 1000;

// Destroys every data key of `subject` and appends SubjectErased {subject_ref,
// keys_destroyed, reason, operator} in one transaction. `operator_name`: who asked (the
// operator token's name).
tl::expected<Erasure, ErasureError> erase_subject(eventstore::EventStore& store,
                                                  const privacy::Vault& vault,
                                                  std::string_view subject,
                                                  std::string_view operator_name,
                                                  std::string_view reason);

// POST /subjects/erase (role operator): body {"subject": ID, "reason": TEXT}; the operator is
// the token's name, never text from the body. 200 {"subject_ref", "keys_destroyed",
// "event_id", "operator"}; 400 a bad body (unknown field, missing or bad subject or reason);
// 409 unfinished transfers; 503 the database. A refused request changes nothing.
void add_erasure_route(http::HttpServer& server, eventstore::EventStore& store,
                       const privacy::Vault& vault);

// Destroys the data keys of years before current_year - retention_years (personal data is
// kept the whole year it was written in and retention_years after it) and appends
// DataKeysExpired when any were; the number destroyed.
eventstore::StoreResult<int> apply_retention(eventstore::EventStore& store,
                                             const privacy::Vault& vault, int retention_years,
                                             int current_year);

// Rewraps every data key under the active KEK, in batches, and appends DataKeysRewrapped when
// any were; the number rewrapped.
eventstore::StoreResult<int> rewrap_data_keys(eventstore::EventStore& store,
                                              const privacy::Vault& vault);

}  // namespace clearing::adapter
