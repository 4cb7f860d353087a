#include "clearing/privacy/vault.hpp"

#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <utility>

#include "clearing/base/uuid.hpp"
#include "clearing/privacy/personal_fields.hpp"

namespace clearing::privacy {

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;

namespace {

constexpr const char* kSchema = R"sql(
create table privacy_data_keys (
  key_id        uuid primary key,
  subject_ref   text not null,     -- hex HMAC-SHA-256 of the subject under the pepper
  period        int not null,      -- the UTC year of the data it seals
  wrapped_key   text,              -- base64 AES-256-GCM under the KEK; null once destroyed
  kek_id        text,              -- fingerprint of the KEK that wraps it
  created_at    timestamptz not null default now(),
  erased_at     timestamptz,
  erased_reason text,
  check ((wrapped_key is null) = (erased_at is not null))
);
-- One live key per subject and year; destroyed ones stay, so that their fields read erased.
create unique index privacy_data_keys_live on privacy_data_keys (subject_ref, period)
  where wrapped_key is not null;
create index privacy_data_keys_subject on privacy_data_keys (subject_ref);
create table privacy_settings (
  name    text primary key,
  wrapped text not null,
  kek_id  text not null
);
)sql";

constexpr std::string_view kPepperName = "subject_pepper";
constexpr std::size_t kKeyIdChars = 36;
constexpr std::size_t kCacheEntriesMax = 100'000;

StoreError error(StoreErrc code, std::string message) {
  return StoreError{code, std::move(message)};
}

int current_year() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  return utc.tm_year + 1900;
}

// The wrapped form of a key: base64 of AES-256-GCM under the KEK, the key's id as aad.
std::string wrap(const Key& kek, const Key& key, std::string_view key_id) {
  return to_base64(aead_seal(
      kek, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), key_id));
}

std::optional<Key> unwrap(const Key& kek, std::string_view wrapped, std::string_view key_id) {
  const auto raw = from_base64(wrapped);
  if (!raw) return std::nullopt;
  const auto plain = aead_open(kek, *raw, key_id);
  if (!plain || plain->size() != kKeyBytes) return std::nullopt;
  Key key{};
  std::copy(plain->begin(), plain->end(), key.begin());
  return key;
}

}  // namespace

tl::expected<KeyRing, std::string> KeyRing::parse(std::string_view active,
                                                  std::string_view previous) {
  KeyRing ring;
  auto key = key_from_base64(active);
  if (!key) return tl::unexpected(std::string("the data KEK is not 32 bytes in base64"));
  ring.active = *key;
  std::size_t index = 0;
  while (!previous.empty()) {
    const auto comma = previous.find(',');
    const auto item = previous.substr(0, comma);
    ++index;
    auto old = key_from_base64(item);
    if (!old)
      return tl::unexpected("previous data KEK " + std::to_string(index) +
                            " is not 32 bytes in base64");
    if (*old == ring.active)
      return tl::unexpected("previous data KEK " + std::to_string(index) + " is the active one");
    ring.previous.push_back(*old);
    previous = comma == std::string_view::npos ? std::string_view{} : previous.substr(comma + 1);
  }
  return ring;
}

const std::vector<eventstore::Migration>& privacy_migrations() {
  static const std::vector<eventstore::Migration> migrations{{"privacy/0001_data_keys", kSchema}};
  return migrations;
}

struct Vault::Impl {
  VaultOptions options;
  std::string active_id;
  std::map<std::string, Key, std::less<>> keks;  // fingerprint -> KEK
  Key pepper{};
  std::unique_ptr<eventstore::ConnectionPool> pool;  // key making, committed at once

  struct SealKey {
    std::string key_id;
    Key key{};
    std::chrono::steady_clock::time_point fetched;
  };
  struct OpenKey {
    std::optional<Key> key;  // nullopt: destroyed (for ever)
    std::chrono::steady_clock::time_point fetched;
  };
  mutable std::mutex mutex;
  mutable std::map<std::pair<std::string, int>, SealKey> seal_keys;  // (subject_ref, year)
  mutable std::map<std::string, OpenKey, std::less<>> open_keys;     // key id

  bool fresh(std::chrono::steady_clock::time_point fetched) const {
    return std::chrono::steady_clock::now() - fetched < options.cache_ttl;
  }

  const Key* kek(std::string_view id) const {
    auto it = keks.find(id);
    return it == keks.end() ? nullptr : &it->second;
  }

  std::string ref(std::string_view subject) const { return to_hex(hmac_sha256(pepper, subject)); }

  // The live data key of (subject, this year), made in the vault's own transaction.
  StoreResult<SealKey> seal_key(std::string_view subject) const {
    const auto subject_ref = ref(subject);
    const int year = current_year();
    {
      std::lock_guard lock(mutex);
      auto it = seal_keys.find({subject_ref, year});
      if (it != seal_keys.end() && fresh(it->second.fetched)) return it->second;
    }
    const auto key = random_key();
    const auto key_id = base::new_uuid();
    auto made = pool->transact([&](Transaction& tx) -> StoreResult<SealKey> {
      tx.exec_params(
          "insert into privacy_data_keys (key_id, subject_ref, period, wrapped_key, kek_id)"
          " values ($1, $2, $3, $4, $5) on conflict (subject_ref, period)"
          " where wrapped_key is not null do nothing",
          key_id, subject_ref, year, wrap(options.keys.active, key, key_id), active_id);
      const auto rows = tx.exec_params(
          "select key_id::text, wrapped_key, kek_id from privacy_data_keys"
          " where subject_ref = $1 and period = $2 and wrapped_key is not null",
          subject_ref, year);
      if (rows.empty())
        return tl::unexpected(error(StoreErrc::transient, "data key erased while being made"));
      const auto id = rows[0][0].as<std::string>();
      const auto* wrapping = kek(rows[0][2].as<std::string>());
      if (wrapping == nullptr)
        return tl::unexpected(error(
            StoreErrc::internal, "data key " + id + " is wrapped under KEK " +
                                     rows[0][2].as<std::string>() + ", which the key ring lacks"));
      auto unwrapped = unwrap(*wrapping, rows[0][1].as<std::string>(), id);
      if (!unwrapped)
        return tl::unexpected(
            error(StoreErrc::corrupt_data, "data key " + id + " does not unwrap"));
      return SealKey{id, *unwrapped, std::chrono::steady_clock::now()};
    });
    if (!made) return made;
    std::lock_guard lock(mutex);
    if (seal_keys.size() >= kCacheEntriesMax) seal_keys.clear();
    seal_keys[{subject_ref, year}] = *made;
    return made;
  }

  // The data key of `key_id` (nullopt: destroyed), read in the caller's transaction.
  StoreResult<std::optional<Key>> open_key(Transaction& tx, std::string_view key_id) const {
    {
      std::lock_guard lock(mutex);
      auto it = open_keys.find(key_id);
      if (it != open_keys.end() && (!it->second.key || fresh(it->second.fetched)))
        return it->second.key;
    }
    const auto rows =
        tx.exec_params("select wrapped_key, kek_id from privacy_data_keys where key_id = $1::uuid",
                       std::string(key_id));
    std::optional<Key> key;
    if (!rows.empty() && !rows[0][0].is_null()) {
      const auto* wrapping = kek(rows[0][1].as<std::string>());
      if (wrapping == nullptr)
        return tl::unexpected(error(
            StoreErrc::internal, "data key " + std::string(key_id) + " is wrapped under KEK " +
                                     rows[0][1].as<std::string>() + ", which the key ring lacks"));
      key = unwrap(*wrapping, rows[0][0].as<std::string>(), key_id);
      if (!key)
        return tl::unexpected(
            error(StoreErrc::corrupt_data, "data key " + std::string(key_id) + " does not unwrap"));
    }
    std::lock_guard lock(mutex);
    if (open_keys.size() >= kCacheEntriesMax) open_keys.clear();
    open_keys[std::string(key_id)] = OpenKey{key, std::chrono::steady_clock::now()};
    return key;
  }

  std::string seal_text(const SealKey& key, std::string_view text) const {
    std::string out(kSealedPrefix);
    out += key.key_id;
    out += ':';
    out += to_base64(aead_seal(key.key, text, key.key_id));
    return out;
  }

  // The text of sealed text; kErased when its key is destroyed; the input when not sealed.
  StoreResult<std::string> open_text(Transaction& tx, std::string_view stored) const {
    if (!stored.starts_with(kSealedPrefix)) return std::string(stored);
    const auto rest = stored.substr(kSealedPrefix.size());
    if (rest.size() < kKeyIdChars + 1 || rest[kKeyIdChars] != ':' ||
        !base::is_uuid(rest.substr(0, kKeyIdChars)))
      return tl::unexpected(error(StoreErrc::corrupt_data, "sealed text without a key id"));
    const auto key_id = rest.substr(0, kKeyIdChars);
    auto key = open_key(tx, key_id);
    if (!key) return tl::unexpected(key.error());
    if (!*key) return std::string(eventstore::kErased);
    const auto raw = from_base64(rest.substr(kKeyIdChars + 1));
    std::optional<std::string> plain;
    if (raw) plain = aead_open(**key, *raw, key_id);
    if (!plain)
      return tl::unexpected(
          error(StoreErrc::corrupt_data,
                "sealed text under key " + std::string(key_id) + " does not open"));
    return std::move(*plain);
  }

  void forget_keys() const {
    std::lock_guard lock(mutex);
    seal_keys.clear();
    open_keys.clear();
  }
};

Vault::Vault(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vault::~Vault() = default;

StoreResult<std::shared_ptr<Vault>> Vault::create(VaultOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->active_id = key_fingerprint(impl->options.keys.active);
  impl->keks.emplace(impl->active_id, impl->options.keys.active);
  for (const auto& old : impl->options.keys.previous) impl->keks.emplace(key_fingerprint(old), old);
  auto database = impl->options.database;
  database.connections_max = 2;
  database.notify_after_commit = false;
  database.application_name += "-vault";
  impl->pool = std::make_unique<eventstore::ConnectionPool>(database);
  auto pepper = impl->pool->transact([&](Transaction& tx) -> StoreResult<Key> {
    const auto fresh = random_key();
    tx.exec_params(
        "insert into privacy_settings (name, wrapped, kek_id) values ($1, $2, $3)"
        " on conflict (name) do nothing",
        std::string(kPepperName), wrap(impl->options.keys.active, fresh, kPepperName),
        impl->active_id);
    const auto rows = tx.exec_params("select wrapped, kek_id from privacy_settings where name = $1",
                                     std::string(kPepperName));
    const auto kek_id = rows[0][1].as<std::string>();
    const auto* wrapping = impl->kek(kek_id);
    if (wrapping == nullptr)
      return tl::unexpected(error(StoreErrc::invalid_argument,
                                  "the data keys are wrapped under KEK " + kek_id +
                                      ", which the key ring lacks (active " + impl->active_id +
                                      "): give that KEK as the active or a previous one"));
    auto key = unwrap(*wrapping, rows[0][0].as<std::string>(), kPepperName);
    if (!key)
      return tl::unexpected(error(StoreErrc::corrupt_data, "the subject pepper does not unwrap"));
    return *key;
  });
  if (!pepper) return tl::unexpected(pepper.error());
  impl->pepper = *pepper;
  return std::shared_ptr<Vault>(new Vault(std::move(impl)));
}

StoreResult<void> Vault::seal(Transaction&, nlohmann::json& document,
                              std::string_view subject) const {
  bool personal = false;
  for_each_personal_field(document, [&](std::string&) { personal = true; });
  if (!personal) return {};
  std::string found;
  if (subject.empty()) {
    found = find_subject(document).value_or(std::string(kUnattributedSubject));
    subject = found;
  }
  auto key = impl_->seal_key(subject);
  if (!key) return tl::unexpected(key.error());
  for_each_personal_field(document,
                          [&](std::string& value) { value = impl_->seal_text(*key, value); });
  return {};
}

StoreResult<void> Vault::open(Transaction& tx, nlohmann::json& document) const {
  std::optional<StoreError> failed;
  for_each_personal_field(document, [&](std::string& value) {
    if (failed || !value.starts_with(kSealedPrefix)) return;
    auto text = impl_->open_text(tx, value);
    if (!text) {
      failed = text.error();
      return;
    }
    value = std::move(*text);
  });
  if (failed) return tl::unexpected(*failed);
  return {};
}

StoreResult<std::string> Vault::seal_bytes(Transaction&, std::string_view bytes,
                                           std::string_view subject) const {
  if (subject.empty()) subject = kUnattributedSubject;
  auto key = impl_->seal_key(subject);
  if (!key) return tl::unexpected(key.error());
  return impl_->seal_text(*key, bytes);
}

StoreResult<std::string> Vault::open_bytes(Transaction& tx, std::string_view stored) const {
  return impl_->open_text(tx, stored);
}

StoreResult<int> Vault::erase_subject(Transaction& tx, std::string_view subject,
                                      std::string_view reason) const {
  const auto rows = tx.exec_params(
      "update privacy_data_keys set wrapped_key = null, erased_at = now(), erased_reason = $2"
      " where subject_ref = $1 and wrapped_key is not null returning key_id",
      impl_->ref(subject), std::string(reason));
  impl_->forget_keys();
  return static_cast<int>(rows.size());
}

StoreResult<int> Vault::expire_before(Transaction& tx, int first_kept_year) const {
  const auto rows = tx.exec_params(
      "update privacy_data_keys set wrapped_key = null, erased_at = now(),"
      " erased_reason = 'retention' where period < $1 and wrapped_key is not null returning key_id",
      first_kept_year);
  if (!rows.empty()) impl_->forget_keys();
  return static_cast<int>(rows.size());
}

StoreResult<int> Vault::rewrap(Transaction& tx, int limit) const {
  int done = 0;
  const auto& active = impl_->options.keys.active;
  const auto pepper = tx.exec_params(
      "select wrapped, kek_id from privacy_settings where name = $1 and kek_id <> $2 for update",
      std::string(kPepperName), impl_->active_id);
  if (!pepper.empty()) {
    const auto* old = impl_->kek(pepper[0][1].as<std::string>());
    auto key = old ? unwrap(*old, pepper[0][0].as<std::string>(), kPepperName) : std::nullopt;
    if (!key)
      return tl::unexpected(error(StoreErrc::corrupt_data, "the subject pepper does not unwrap"));
    tx.exec_params("update privacy_settings set wrapped = $2, kek_id = $3 where name = $1",
                   std::string(kPepperName), wrap(active, *key, kPepperName), impl_->active_id);
    ++done;
  }
  const auto rows = tx.exec_params(
      "select key_id::text, wrapped_key, kek_id from privacy_data_keys"
      " where wrapped_key is not null and kek_id <> $1 order by key_id limit $2 for update",
      impl_->active_id, limit);
  for (const auto& row : rows) {
    const auto key_id = row[0].as<std::string>();
    const auto* old = impl_->kek(row[2].as<std::string>());
    if (old == nullptr)
      return tl::unexpected(error(StoreErrc::invalid_argument,
                                  "data key " + key_id + " is wrapped under KEK " +
                                      row[2].as<std::string>() + ", which the key ring lacks"));
    auto key = unwrap(*old, row[1].as<std::string>(), key_id);
    if (!key)
      return tl::unexpected(
          error(StoreErrc::corrupt_data, "data key " + key_id + " does not unwrap"));
    tx.exec_params(
        "update privacy_data_keys set wrapped_key = $2, kek_id = $3 where key_id = $1::uuid",
        key_id, wrap(active, *key, key_id), impl_->active_id);
    ++done;
  }
  return done;
}

std::string Vault::subject_ref(std::string_view subject) const { return impl_->ref(subject); }
std::string Vault::kek_id() const { return impl_->active_id; }

}  // namespace clearing::privacy
