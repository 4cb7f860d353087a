#pragma once
// The cryptography of personal data at rest, through OpenSSL: AES-256-GCM (authenticated
// encryption with associated data), HMAC-SHA-256, random keys, base64. Pure functions of
// their inputs except for the random nonces and keys; OpenSSL stays in aead.cpp.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace clearing::privacy {

inline constexpr std::size_t kKeyBytes = 32;  // AES-256
inline constexpr std::size_t kNonceBytes = 12;
inline constexpr std::size_t kTagBytes = 16;

using Key = std::array<unsigned char, kKeyBytes>;

// 32 bytes from the system's CSPRNG (RAND_bytes).
Key random_key();

// nonce | ciphertext | tag, with a fresh random nonce: the same plaintext seals differently
// every time. `aad` is bound to the result: open() with another aad fails.
std::string aead_seal(const Key& key, std::string_view plaintext, std::string_view aad);
// The plaintext, or nullopt when the input is shorter than nonce and tag, or the tag does
// not verify (another key, another aad, or a changed byte).
std::optional<std::string> aead_open(const Key& key, std::string_view sealed, std::string_view aad);

// HMAC-SHA-256 of `message` under `key`: 32 raw bytes.
std::string hmac_sha256(const Key& key, std::string_view message);

// Standard base64 with padding; from_base64 refuses anything else (whitespace included).
std::string to_base64(std::string_view bytes);
std::optional<std::string> from_base64(std::string_view text);

// A key from base64 text of exactly 32 bytes; nullopt for anything else.
std::optional<Key> key_from_base64(std::string_view text);

// A key's public name: the first 8 bytes of SHA-256(key) in hex (16 characters). Stored
// beside what the key wraps, so that the right key of a key ring is found.
std::string key_fingerprint(const Key& key);

// Lower-case hex of bytes.
std::string to_hex(std::string_view bytes);

}  // namespace clearing::privacy
