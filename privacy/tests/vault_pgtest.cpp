// The vault against a real PostgreSQL: sealing at rest, erasure, retention, KEK rotation,
// and the event store sealing and opening through its pool's protector.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/privacy/vault.hpp"
#include "test_database.hpp"

using namespace clearing;
using namespace clearing::privacy;
using eventstore::Transaction;

namespace {

std::string base64_key(const Key& key) {
  return to_base64(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

nlohmann::json transfer(const std::string& account_id, const std::string& name) {
  return {
      {"transfer_id", base::new_uuid()},
      {"account_id", account_id},
      {"amount", {{"minor_units", 100}, {"currency", "DKK"}}},
      {"debtor", {{"name", name}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Charles Babbage"},
        {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
      {"remittance_info", "Invoice 42"}};
}

struct VaultFixture {
  testing::TestDatabase database;
  eventstore::DatabaseOptions options;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  Key kek = random_key();

  VaultFixture() {
    options.url = database.url();
    options.notify_after_commit = false;
    pool = std::make_unique<eventstore::ConnectionPool>(options);
    for (const auto* migrations : {&eventstore::eventstore_migrations(), &privacy_migrations()})
      REQUIRE(eventstore::apply_migrations(*pool, *migrations));
  }

  std::shared_ptr<Vault> vault(KeyRing ring, std::chrono::seconds ttl = std::chrono::seconds(60)) {
    auto made = Vault::create({.database = options, .keys = ring, .cache_ttl = ttl});
    REQUIRE_MESSAGE(made, (made ? "" : made.error().message));
    return *made;
  }
  std::shared_ptr<Vault> vault() { return vault(KeyRing{kek, {}}); }

  template <class F>
  auto in_tx(F&& fn) {
    auto result = pool->transact([&](Transaction& tx) { return fn(tx); });
    REQUIRE_MESSAGE(result, (result ? "" : result.error().message));
    return *result;
  }
};

using Json = eventstore::StoreResult<nlohmann::json>;

nlohmann::json sealed(VaultFixture& f, const Vault& vault, nlohmann::json document) {
  return f.in_tx([&](Transaction& tx) -> Json {
    if (auto done = vault.seal(tx, document); !done) return tl::unexpected(done.error());
    return document;
  });
}

nlohmann::json opened(VaultFixture& f, const Vault& vault, nlohmann::json document) {
  return f.in_tx([&](Transaction& tx) -> Json {
    if (auto done = vault.open(tx, document); !done) return tl::unexpected(done.error());
    return document;
  });
}

}  // namespace

TEST_CASE("sealed fields carry no clear text and open to what was sealed") {
  VaultFixture f;
  auto vault = f.vault();
  const auto original = transfer("acc-1", "Ada Lovelace");
  const auto stored = sealed(f, *vault, original);
  const auto text = stored.dump();
  for (const char* clear : {"Ada Lovelace", "5301-0001234567", "Charles", "DK50004004", "Invoice"})
    CHECK(text.find(clear) == std::string::npos);
  CHECK(stored["debtor"]["name"].get<std::string>().starts_with(kSealedPrefix));
  CHECK(stored["account_id"] == "acc-1");  // the subject's pseudonymous id stays readable
  CHECK(stored["amount"] == original["amount"]);
  CHECK(opened(f, *vault, stored) == original);
  // One key per subject and year; the table names the subject only by its reference.
  CHECK(f.database.query_value("select count(*) from privacy_data_keys") == "1");
  CHECK(f.database.query_value("select subject_ref from privacy_data_keys") ==
        vault->subject_ref("acc-1"));
  sealed(f, *vault, transfer("acc-1", "Ada Lovelace"));
  sealed(f, *vault, transfer("acc-2", "Grace Hopper"));
  CHECK(f.database.query_value("select count(*) from privacy_data_keys") == "2");
  // Not sealed (written before the vault was on): left as it is.
  CHECK(opened(f, *vault, original) == original);
}

TEST_CASE("erasing a subject makes its fields read [erased], and no one else's") {
  VaultFixture f;
  auto vault = f.vault();
  const auto ada = sealed(f, *vault, transfer("acc-1", "Ada Lovelace"));
  const auto grace = sealed(f, *vault, transfer("acc-2", "Grace Hopper"));
  CHECK(f.in_tx([&](Transaction& tx) { return vault->erase_subject(tx, "acc-1", "asked"); }) == 1);
  const auto erased = opened(f, *vault, ada);
  CHECK(erased["debtor"]["name"] == "[erased]");
  CHECK(erased["creditor"]["account"]["id"] == "[erased]");
  CHECK(erased["remittance_info"] == "[erased]");
  CHECK(erased["transfer_id"] == ada["transfer_id"]);
  CHECK(opened(f, *vault, grace)["debtor"]["name"] == "Grace Hopper");
  CHECK(f.database.query_value(
            "select erased_reason from privacy_data_keys where wrapped_key is null") == "asked");
  // Erased twice: nothing more to destroy.
  CHECK(f.in_tx([&](Transaction& tx) { return vault->erase_subject(tx, "acc-1", "again"); }) == 0);
  // New data of an erased subject gets a new key: readable.
  const auto later = sealed(f, *vault, transfer("acc-1", "Ada Lovelace"));
  CHECK(opened(f, *vault, later)["debtor"]["name"] == "Ada Lovelace");
}

TEST_CASE("another process sees an erasure once its cache has aged") {
  VaultFixture f;
  auto here = f.vault(KeyRing{f.kek, {}}, std::chrono::seconds(0));
  auto there = f.vault(KeyRing{f.kek, {}}, std::chrono::seconds(0));
  const auto ada = sealed(f, *here, transfer("acc-1", "Ada Lovelace"));
  CHECK(opened(f, *there, ada)["debtor"]["name"] == "Ada Lovelace");
  f.in_tx([&](Transaction& tx) { return here->erase_subject(tx, "acc-1", "asked"); });
  CHECK(opened(f, *there, ada)["debtor"]["name"] == "[erased]");
}

TEST_CASE("bytes seal whole, and an unattributed subject is one key") {
  VaultFixture f;
  auto vault = f.vault();
  const std::string raw("{\"debtor_name\": \"Ada\x00\xff", 22);
  const auto stored = f.in_tx([&](Transaction& tx) { return vault->seal_bytes(tx, raw, ""); });
  CHECK(stored.find("debtor_name") == std::string::npos);  // "_": never in base64
  CHECK(f.in_tx([&](Transaction& tx) { return vault->open_bytes(tx, stored); }) == raw);
  CHECK(f.in_tx([&](Transaction& tx) { return vault->open_bytes(tx, "plain"); }) == "plain");
  CHECK(f.database.query_value("select subject_ref from privacy_data_keys") ==
        vault->subject_ref(kUnattributedSubject));
  // Sealed text that is damaged is corrupt data, never silently clear or erased.
  auto damaged = stored;
  damaged.back() = damaged.back() == 'A' ? 'B' : 'A';
  auto result = f.pool->transact([&](Transaction& tx) { return vault->open_bytes(tx, damaged); });
  REQUIRE_FALSE(result);
  CHECK(result.error().code == eventstore::StoreErrc::corrupt_data);
}

TEST_CASE("retention destroys the keys of years before the first kept one") {
  VaultFixture f;
  auto vault = f.vault();
  const auto ada = sealed(f, *vault, transfer("acc-1", "Ada Lovelace"));
  const int year = std::stoi(f.database.query_value("select period from privacy_data_keys"));
  CHECK(f.in_tx([&](Transaction& tx) { return vault->expire_before(tx, year); }) == 0);
  CHECK(opened(f, *vault, ada)["debtor"]["name"] == "Ada Lovelace");
  CHECK(f.in_tx([&](Transaction& tx) { return vault->expire_before(tx, year + 1); }) == 1);
  CHECK(opened(f, *vault, ada)["debtor"]["name"] == "[erased]");
  CHECK(f.database.query_value("select erased_reason from privacy_data_keys") == "retention");
}

TEST_CASE("rotation rewraps the keys under the new KEK; the events are not touched") {
  VaultFixture f;
  const auto old_kek = f.kek;
  const auto ada = sealed(f, *f.vault(), transfer("acc-1", "Ada Lovelace"));
  const auto new_kek = random_key();
  // Without the old KEK the vault does not start, and says which KEK it needs.
  auto refused = Vault::create({.database = f.options, .keys = KeyRing{new_kek, {}}});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find(key_fingerprint(old_kek)) != std::string::npos);
  // With it as a previous KEK: opens, and rewraps.
  auto rotating = f.vault(*KeyRing::parse(base64_key(new_kek), base64_key(old_kek)));
  CHECK(opened(f, *rotating, ada)["debtor"]["name"] == "Ada Lovelace");
  CHECK(f.in_tx([&](Transaction& tx) { return rotating->rewrap(tx, 100); }) == 2);  // key, pepper
  CHECK(f.in_tx([&](Transaction& tx) { return rotating->rewrap(tx, 100); }) == 0);
  // The old KEK can go now.
  auto rotated = f.vault(KeyRing{new_kek, {}});
  CHECK(opened(f, *rotated, ada)["debtor"]["name"] == "Ada Lovelace");
  CHECK(rotated->subject_ref("acc-1") == rotating->subject_ref("acc-1"));
}

TEST_CASE("the event store seals on append and opens on every read through the pool") {
  VaultFixture f;
  f.pool->set_protector(f.vault());
  eventstore::EventStore store(*f.pool);
  const eventstore::StreamId stream{"transfer-" + base::new_uuid()};
  const auto data = transfer("acc-1", "Ada Lovelace");
  eventstore::EventData event{eventstore::EventId{base::new_uuid()},
                              "TransferInitiated",
                              data,
                              {},
                              eventstore::kFirstSchemaVersion};
  REQUIRE(store.append(stream, eventstore::ExpectedVersion::no_stream(), std::span(&event, 1)));
  CHECK(f.database.query_value(
            "select count(*) from events where data::text like '%Ada Lovelace%'") == "0");
  auto read = store.read_stream(stream, eventstore::StreamVersion{0}, 10);
  REQUIRE(read);
  REQUIRE(read->size() == 1);
  CHECK(read->front().data == data);
  auto all = store.read_all_after({}, 10);
  REQUIRE(all);
  CHECK(all->back().data == data);
  // An idempotent retry (same event id, sealed afresh) is still a duplicate.
  auto again = store.append(stream, eventstore::ExpectedVersion::no_stream(), std::span(&event, 1));
  REQUIRE(again);
  CHECK(again->already_appended);
}
