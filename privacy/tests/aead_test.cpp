// The cryptographic pieces and the personal-field rule: pure, no database.
#include "clearing/privacy/aead.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "clearing/privacy/personal_fields.hpp"
#include "clearing/privacy/vault.hpp"

using namespace clearing::privacy;

TEST_CASE("AES-256-GCM seals with a fresh nonce and opens only with its key and aad") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, "Ada Lovelace", "key-1");
  CHECK(sealed.size() == kNonceBytes + 12 + kTagBytes);
  CHECK(sealed.find("Ada") == std::string::npos);
  CHECK(aead_seal(key, "Ada Lovelace", "key-1") != sealed);  // another nonce
  CHECK(aead_open(key, sealed, "key-1") == std::optional<std::string>("Ada Lovelace"));
  CHECK_FALSE(aead_open(random_key(), sealed, "key-1"));
  CHECK_FALSE(aead_open(key, sealed, "key-2"));
  auto altered = sealed;
  altered[kNonceBytes] ^= 1;
  CHECK_FALSE(aead_open(key, altered, "key-1"));
  CHECK_FALSE(aead_open(key, sealed.substr(0, kNonceBytes + kTagBytes - 1), "key-1"));
  CHECK(aead_open(key, aead_seal(key, "", "a"), "a") == std::optional<std::string>(""));
}

TEST_CASE("base64 is canonical both ways, and a key is exactly 32 bytes of it") {
  CHECK(to_base64("") == "");
  CHECK(to_base64("f") == "Zg==");
  CHECK(to_base64("fo") == "Zm8=");
  CHECK(to_base64("foo") == "Zm9v");
  CHECK(from_base64("Zm8=") == std::optional<std::string>("fo"));
  CHECK(from_base64("Zg==") == std::optional<std::string>("f"));
  CHECK_FALSE(from_base64("Zm8"));   // length
  CHECK_FALSE(from_base64("Zm 8"));  // whitespace
  CHECK_FALSE(from_base64("Z=m8"));  // padding inside
  CHECK_FALSE(from_base64("Zh=="));  // non-canonical bits
  const auto key = random_key();
  const auto text = to_base64(std::string_view(reinterpret_cast<const char*>(key.data()), 32));
  CHECK(key_from_base64(text) == key);
  CHECK_FALSE(key_from_base64(to_base64(std::string(31, 'k'))));
  CHECK_FALSE(key_from_base64(to_base64(std::string(33, 'k'))));
  CHECK(key_fingerprint(key).size() == 16);
  CHECK(key_fingerprint(key) != key_fingerprint(random_key()));
  CHECK(to_hex(hmac_sha256(key, "a")).size() == 64);
  CHECK(hmac_sha256(key, "a") == hmac_sha256(key, "a"));
  CHECK(hmac_sha256(key, "a") != hmac_sha256(key, "b"));
}

TEST_CASE("a key ring: the active KEK and previous ones, each 32 bytes of base64") {
  const auto one = to_base64(std::string(32, '1')), two = to_base64(std::string(32, '2'));
  auto ring = KeyRing::parse(one, two + "," + to_base64(std::string(32, '3')));
  REQUIRE(ring);
  CHECK(ring->previous.size() == 2);
  CHECK(KeyRing::parse(one, "")->previous.empty());
  CHECK(KeyRing::parse("short", "").error() == "the data KEK is not 32 bytes in base64");
  CHECK(KeyRing::parse(one, two + ",x").error() == "previous data KEK 2 is not 32 bytes in base64");
  CHECK(KeyRing::parse(one, one).error() == "previous data KEK 1 is the active one");
}

namespace {
std::multiset<std::string> personal(nlohmann::json document) {
  std::multiset<std::string> found;
  for_each_personal_field(document, [&](std::string& value) { found.insert(value); });
  return found;
}
}  // namespace

TEST_CASE("personal fields: parties, remittance text and the clearing API's flat fields") {
  // TransferInitiated / TransferRequested (docs/streams.md).
  const auto transfer = nlohmann::json::parse(R"({
    "transfer_id": "t-1", "account_id": "acc-7",
    "amount": {"minor_units": 125000, "currency": "DKK"},
    "debtor": {"name": "Ada Lovelace", "account": {"scheme": "BBAN", "id": "5301-0001234567"}},
    "creditor": {"name": "Charles Babbage", "account": {"scheme": "IBAN", "id": "DK5000400440116243"}},
    "remittance_info": "Invoice 42", "requested_at": "2026-11-26T09:00:00Z"})");
  CHECK(personal(transfer) == std::multiset<std::string>{"Ada Lovelace", "5301-0001234567",
                                                         "Charles Babbage", "DK5000400440116243",
                                                         "Invoice 42"});
  CHECK(find_subject(transfer) == std::optional<std::string>("acc-7"));

  // The clearing API's submit body and feed items (clearing-api.md).
  const auto submit = nlohmann::json::parse(R"({
    "transfer_id": "t-1", "amount_minor": 125000, "currency": "DKK",
    "debtor_account": "5301-0001234567", "debtor_name": "Ada Lovelace",
    "creditor_account": "DK5000400440116243", "creditor_name": "Charles Babbage",
    "remittance_info": "Invoice 42", "items": [{"debtor_name": "Grace Hopper"}]})");
  CHECK(personal(submit).size() == 6);
  CHECK(personal(submit).count("Grace Hopper") == 1);
  CHECK(find_subject(submit) == std::optional<std::string>("DK5000400440116243"));

  // An incoming payment: the subject is the creditor, the bank's customer.
  const auto incoming = nlohmann::json::parse(R"({"payment_id": "p-1",
    "debtor": {"name": "Grace Hopper", "account": "SE4550000000058398257466"},
    "creditor": {"name": "Ada Lovelace", "account": {"scheme": "IBAN", "id": "DK5000400440116243"}}})");
  CHECK(personal(incoming).size() == 4);
  CHECK(find_subject(incoming) == std::optional<std::string>("DK5000400440116243"));

  // Nothing personal, and no subject.
  const auto settled = nlohmann::json::parse(
      R"({"transfer_id": "t-1", "clearing_reference": "R1", "reason": "x", "name": "n"})");
  CHECK(personal(settled).empty());
  CHECK_FALSE(find_subject(settled));
  CHECK_FALSE(find_subject(nlohmann::json::parse(R"({"account_id": ""})")));
  // Values that are not strings are left alone (the codecs refuse them).
  CHECK(personal(nlohmann::json::parse(R"({"debtor": {"name": 7}, "remittance_info": null})"))
            .empty());
}
