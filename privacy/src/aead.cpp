#include "clearing/privacy/aead.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memory>
#include <stdexcept>

namespace clearing::privacy {
namespace {

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherContext new_context() {
  CipherContext context(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  // Only when out of memory: nothing sensible can follow.
  if (!context) throw std::bad_alloc();
  return context;
}

const unsigned char* bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

unsigned char* bytes(std::string& text) { return reinterpret_cast<unsigned char*>(text.data()); }

}  // namespace

Key random_key() {
  Key key{};
  // RAND_bytes fails only when the CSPRNG cannot be seeded: no key may be made then.
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no random key");
  return key;
}

std::string aead_seal(const Key& key, std::string_view plaintext, std::string_view aad) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* nonce = bytes(out);
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1)
    throw std::runtime_error("RAND_bytes failed: no nonce");
  auto context = new_context();
  int length = 0;
  bool ok = EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) == 1;
  ok = ok && EVP_EncryptUpdate(context.get(), nullptr, &length, bytes(aad),
                               static_cast<int>(aad.size())) == 1;
  ok = ok && EVP_EncryptUpdate(context.get(), nonce + kNonceBytes, &length, bytes(plaintext),
                               static_cast<int>(plaintext.size())) == 1;
  int final_length = 0;
  ok = ok && EVP_EncryptFinal_ex(context.get(), nonce + kNonceBytes + length, &final_length) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                 nonce + kNonceBytes + plaintext.size()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM encryption failed");
  return out;
}

std::optional<std::string> aead_open(const Key& key, std::string_view sealed,
                                     std::string_view aad) {
  if (sealed.size() < kNonceBytes + kTagBytes) return std::nullopt;
  const auto text_size = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(text_size, '\0');
  std::string tag(sealed.substr(kNonceBytes + text_size));
  auto context = new_context();
  int length = 0;
  bool ok =
      EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key.data(), bytes(sealed)) == 1;
  ok = ok && EVP_DecryptUpdate(context.get(), nullptr, &length, bytes(aad),
                               static_cast<int>(aad.size())) == 1;
  ok = ok && EVP_DecryptUpdate(context.get(), bytes(out), &length, bytes(sealed) + kNonceBytes,
                               static_cast<int>(text_size)) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                                 tag.data()) == 1;
  int final_length = 0;
  ok = ok && EVP_DecryptFinal_ex(context.get(), bytes(out) + length, &final_length) == 1;
  if (!ok) return std::nullopt;
  return out;
}

std::string hmac_sha256(const Key& key, std::string_view message) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes(message), message.size(),
           bytes(out), &length) == nullptr)
    throw std::runtime_error("HMAC-SHA-256 failed");
  out.resize(length);
  return out;
}

std::string to_base64(std::string_view input) {
  std::string out(4 * ((input.size() + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(bytes(out), bytes(input), static_cast<int>(input.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    const bool valid = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '+' || c == '/' || c == '=';
    if (!valid) return std::nullopt;
  }
  std::string out(3 * text.size() / 4, '\0');
  const int written = EVP_DecodeBlock(bytes(out), bytes(text), static_cast<int>(text.size()));
  if (written < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding's bytes as zeros: drop them.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(written) - padding);
  if (to_base64(out) != text) return std::nullopt;  // '=' inside, or non-canonical bits
  return out;
}

std::optional<Key> key_from_base64(std::string_view text) {
  const auto raw = from_base64(text);
  if (!raw || raw->size() != kKeyBytes) return std::nullopt;
  Key key{};
  std::copy(raw->begin(), raw->end(), key.begin());
  return key;
}

std::string key_fingerprint(const Key& key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(key.data(), key.size(), digest);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), 8));
}

std::string to_hex(std::string_view input) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(input.size() * 2);
  for (unsigned char c : input) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0f];
  }
  return out;
}

}  // namespace clearing::privacy
