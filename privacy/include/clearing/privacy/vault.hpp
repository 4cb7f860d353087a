#pragma once
// Crypto-shredding: personal data sealed under a data key per data subject and year, the
// data keys wrapped by a key-encryption key (KEK) that never reaches the database. Erasing a
// subject destroys its data keys: its events still load and fold, and every personal field
// reads kErased ("[erased]"). Retention destroys the keys of years long past the same way.
// The rules for which fields and whose: personal_fields.hpp. Why and what stays outside:
// docs/personal-data.md.
//
// Contract:
// - Tables (privacy_migrations(), applied by the adapter at start): privacy_data_keys (one
//   row per subject and year: the wrapped key, the KEK's fingerprint, erased_at and why once
//   destroyed) and privacy_settings (the wrapped pepper of subject references).
// - A subject is never stored: rows name it by subject_ref, HMAC-SHA-256 of the subject
//   under a random pepper that is itself wrapped by the KEK.
// - Sealed text: "enc:v1:<key id>:<base64 of AES-256-GCM nonce|ciphertext|tag>", the key id
//   bound as associated data. A field's key is the one of its subject for the year it was
//   sealed in (UTC).
// - Data keys are made in the vault's own connection and committed before they are used, so
//   a rolled-back caller never leaves data sealed under a key that does not exist.
// - Caches: data keys are kept in memory for `cache_ttl`; an erasure in another process is
//   therefore seen here within cache_ttl (until then this process can still open and seal
//   with the destroyed key; nothing it seals in that time can be opened afterwards).
// - Rotation: the ring's first KEK wraps new keys; older ones only unwrap. rewrap() moves
//   keys wrapped under an older KEK to the active one (the events are not touched).
// - Thread safe.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/eventstore/protector.hpp"
#include "clearing/privacy/aead.hpp"

namespace clearing::privacy {

inline constexpr std::string_view kSealedPrefix = "enc:v1:";
// Documents with personal fields but no subject (a parked message that is not JSON): one
// key per year for them all, destroyed only by retention.
inline constexpr std::string_view kUnattributedSubject = "unattributed";

struct KeyRing {
  Key active{};
  std::vector<Key> previous;  // unwrap only
  // "KEK" (base64 of 32 bytes) and a comma-separated list of previous ones ("" for none).
  // Error: which one is not 32 bytes of base64, or a previous one equal to the active.
  static tl::expected<KeyRing, std::string> parse(std::string_view active,
                                                  std::string_view previous);
};

struct VaultOptions {
  eventstore::DatabaseOptions database;  // the vault's own connections (key making)
  KeyRing keys;
  std::chrono::seconds cache_ttl{60};
};

const std::vector<eventstore::Migration>& privacy_migrations();

class Vault final : public eventstore::DataProtector {
 public:
  // Opens its connections and reads (or, the first time, makes) the pepper. Error: the
  // database cannot be reached, the migrations have not run, or the pepper is wrapped under a
  // KEK the ring does not hold (the message says which fingerprint is needed).
  static eventstore::StoreResult<std::shared_ptr<Vault>> create(VaultOptions options);
  ~Vault() override;

  eventstore::StoreResult<void> seal(eventstore::Transaction& tx, nlohmann::json& document,
                                     std::string_view subject = {}) const override;
  eventstore::StoreResult<void> open(eventstore::Transaction& tx,
                                     nlohmann::json& document) const override;
  eventstore::StoreResult<std::string> seal_bytes(eventstore::Transaction& tx,
                                                  std::string_view bytes,
                                                  std::string_view subject) const override;
  eventstore::StoreResult<std::string> open_bytes(eventstore::Transaction& tx,
                                                  std::string_view stored) const override;

  // Destroys every data key of `subject` in `tx`; the number destroyed (0: none was made,
  // or all were destroyed already).
  eventstore::StoreResult<int> erase_subject(eventstore::Transaction& tx, std::string_view subject,
                                             std::string_view reason) const;
  // Retention: destroys the data keys of years before `first_kept_year`.
  eventstore::StoreResult<int> expire_before(eventstore::Transaction& tx,
                                             int first_kept_year) const;
  // Rewraps at most `limit` data keys (and the pepper) wrapped under an older KEK of the
  // ring; the number rewrapped (0: all are under the active KEK).
  eventstore::StoreResult<int> rewrap(eventstore::Transaction& tx, int limit) const;

  // The subject's reference (hex): what events and logs may name instead of the subject.
  std::string subject_ref(std::string_view subject) const;
  // The active KEK's fingerprint.
  std::string kek_id() const;

  struct Impl;

 private:
  explicit Vault(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::privacy
