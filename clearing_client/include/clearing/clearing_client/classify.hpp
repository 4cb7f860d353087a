#pragma once
// Pure classification of one HTTP answer of the clearing API, per the contract table.
// No I/O, no Asio: the client calls it on every answer, and tests call it directly.

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/clearing_client/answer.hpp"

namespace clearing::clearing_client {

enum class CallKind { submit, inquire, incoming };

// What an answer's fields may hold. The contract names no lengths: these bounds are generous
// for the clearing's formats and far below what one event may hold (256 KiB), so that every
// answer taken can be recorded. An answer over one is unknown/contract_violation.
inline constexpr std::size_t kClearingReferenceBytesMax = 64;
inline constexpr std::size_t kStatusBytesMax = 4;        // ACSC, PDNG, RJCT
inline constexpr std::size_t kReasonCodeBytes = 4;       // ISO 20022: four of [A-Z0-9]
inline constexpr std::size_t kSettlementDateBytes = 10;  // YYYY-MM-DD
inline constexpr std::size_t kReasonBytesMax = 1'024;    // the clearing's free text
// The incoming feed's payments.
inline constexpr std::size_t kCursorBytesMax = 64;             // visible ASCII only
inline constexpr std::size_t kCurrencyBytesMax = 3;            // ISO 4217
inline constexpr std::size_t kAccountIdBytesMax = 64;          // IBAN: 34; BBAN shorter
inline constexpr std::size_t kPartyNameBytesMax = 1'024;       // 140 characters, up to 4 bytes each
inline constexpr std::size_t kRemittanceInfoBytesMax = 1'024;  // likewise
inline constexpr std::size_t kTimestampBytesMax = 64;
// What a RejectedPayment keeps of its element's raw JSON: a payment within the limits above
// is at most about 6 x 4 KiB even with every character escaped as \u00XX, so a good-faith
// payment is kept whole; a larger one (an oversize field) is kept cut, its length noted.
inline constexpr std::size_t kRejectedPaymentRawBytesMax = 64 * 1024;
// ClearingAnswer::detail: short for logs and events.
inline constexpr std::size_t kDetailBytesMax = 200;

// `retry_after` is the raw Retry-After header value if the answer had one. `reference` is the
// request's key (submit, inquire): an answer whose JSON body has a `reference` field that is
// not exactly it is unknown/reference_mismatch, whatever else it says.
// Every field taken is checked against the contract first (see UnknownCause). Never throws;
// anything that makes no sense is unknown with a cause and a detail. The detail is always
// one storable line of at most kDetailBytesMax bytes (base::escape_text).
ClearingAnswer classify_answer(CallKind kind, int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after,
                               std::string_view reference);

// True when the body is a JSON object whose `reference` is not `reference`: an answer meant
// for another request. The connection it came on is out of step (the real answer to this
// request may still be on its way) and must never carry another request.
bool names_another_reference(std::string_view body, std::string_view reference);

// Parses an incoming feed answer (any status; non-200 answers are classified failures).
//
// The envelope decides whether the page can be taken: a JSON object (no repeated key, no
// "error") with a `payments` array and, when that array has elements, a valid `next_cursor`.
// A page whose envelope breaks the contract is a failure (unknown with a cause): nothing in
// it can be trusted, and the cursor must not move.
//
// In a sound envelope each payment stands alone: one that breaks the contract (not JSON,
// invalid UTF-8 or a control character in a field, a repeated key, a field over its limit, a
// bad amount, ...) becomes a RejectedPayment and the others are taken, so that one bad
// payment never stops the feed. The payments array is split into its elements by brackets
// and strings alone, before any element is decoded, so bytes that no JSON parser accepts in
// one element (invalid UTF-8) cost only that element.
IncomingPage classify_incoming(int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after);

// Retry-After in seconds -> milliseconds; kRetryAfterDefaultMs when missing or not a
// non-negative integer (HTTP-dates are not used by this clearing), capped at kRetryAfterMaxMs.
std::int64_t parse_retry_after_ms(std::optional<std::string_view> retry_after);

// The JSON body of POST /v1/transfers (the contract's field names), as text and as the
// document (for a caller that seals its personal fields before storing it).
std::string encode_submit_body(const SubmitRequest& request);
nlohmann::json submit_body_json(const SubmitRequest& request);

// Why a stored submit body did not read back. Never retryable: the same bytes fail the same way.
enum class SubmitBodyErrc {
  not_an_object,  // not JSON, or JSON but not an object
  invalid_field,  // a field of the contract missing or not of its type
};
std::string_view to_string(SubmitBodyErrc code) noexcept;

struct SubmitBodyError {
  SubmitBodyErrc code;
  std::string field;    // invalid_field: the first field at fault; else empty
  std::string message;  // "the body is not a JSON object", "amount_minor is not an integer"
  friend bool operator==(const SubmitBodyError&, const SubmitBodyError&) = default;
};

// The same body read back, by the dispatcher (a submission stored with its body is sent again
// as it was) and by clearing-mock (what the clearing receives): every field of the contract
// present and of its type (amount_minor an integer within 2^63-1; remittance_info, optional
// in payments, may be absent or null), else an error naming the first field that is not.
// Values are not judged here (empty text, a non-positive amount): that is the receiver's
// business rule. Never throws.
tl::expected<SubmitRequest, SubmitBodyError> decode_submit_body(std::string_view body);
tl::expected<SubmitRequest, SubmitBodyError> decode_submit_body(const nlohmann::json& body);

}  // namespace clearing::clearing_client
