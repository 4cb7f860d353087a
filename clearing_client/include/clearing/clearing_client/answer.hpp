#pragma once
// The vocabulary of the clearing client: what is sent (SubmitRequest) and the one
// classified answer every call returns (ClearingAnswer, IncomingPage). Light header:
// std only, so the sagas' callers and tests can include it without Asio.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clearing::clearing_client {

// Exactly one class per answer (contract: ../shared/contracts/clearing-api.md).
enum class AnswerClass {
  settled,            // 201 ACSC (or 200 ACSC on inquiry)
  pending,            // 202 PDNG (or 200 PDNG on inquiry): settles later, inquire
  rejected,           // 200 RJCT with reason_code: final, never executed
  unknown,            // the outcome is unknown (see UnknownCause): retry with the same key
  in_progress,        // 409: the same key is being processed right now
  key_reused,         // 422: the same key came with another body (a defect)
  maintenance,        // 503: nothing was done; retry after retry_after_ms
  malformed_request,  // 400: a bug or bad data, never retried as is
  not_found,          // 404 NOT_FOUND on inquiry: never accepted, nothing executed
  unauthorized,       // 401: wrong or missing bearer token
};

// Why an answer is `unknown`; `none` for every other class.
enum class UnknownCause {
  none,
  timeout,            // the deadline passed after the request may have been sent
  connection_reset,   // the connection broke (or the client stopped) before a full answer
  connect_failed,     // nothing was sent: resolve/connect/TLS handshake failed
  server_error,       // 500, 502, 504
  error_body_200,     // 200 with {"error": ...}: the mainframe failed behind a 200
  unparsable_body,    // not JSON, too large, or JSON that makes no sense for its status
  unexpected_status,  // an HTTP status the contract does not know for this call
  // The answer names another transfer: its `reference` is not the request's key. Never
  // taken as this transfer's answer (a stray answer, or a proxy that mixed connections).
  reference_mismatch,
  // JSON that breaks the contract in a field: invalid text (control characters, NUL also as
  // \u0000), over a named length limit (classify.hpp), a settlement_date that is no calendar
  // date, a reason_code that is not four upper-case letters or digits, a duplicate key.
  contract_violation,
};

// Stable snake_case names, used in metrics labels and in persisted events: never rename.
std::string_view to_string(AnswerClass answer_class) noexcept;
std::string_view to_string(UnknownCause cause) noexcept;

// Default wait when a 503 has no usable Retry-After header (missing, not a number of
// seconds, negative), and the cap on any Retry-After, so a broken header cannot park
// transfers for days.
inline constexpr std::int64_t kRetryAfterDefaultMs = 30'000;
inline constexpr std::int64_t kRetryAfterMaxMs = 3'600'000;

struct ClearingAnswer {
  AnswerClass answer_class = AnswerClass::unknown;
  UnknownCause cause = UnknownCause::none;
  int http_status = 0;              // 0 when no HTTP answer arrived
  std::string clearing_reference;   // settled, pending
  std::string settlement_date;      // settled, pending (YYYY-MM-DD)
  std::string status;               // the contract's status string (ACSC, PDNG, RJCT) if any
  std::string reason_code;          // rejected: ISO 20022 ExternalStatusReason1Code
  std::string reason;               // rejected: human text from the clearing
  std::string detail;               // diagnostics (error code, parse error, "cancelled"); no PII
  std::int64_t retry_after_ms = 0;  // maintenance only
  std::int64_t latency_ms = 0;      // from the call to the answer, queueing included
};

// The reference is the transfer id and also the idempotency key: one transfer, one key.
struct SubmitRequest {
  std::string reference;
  std::int64_t amount_minor = 0;
  std::string currency;
  std::string debtor_account;
  std::string debtor_name;
  std::string creditor_account;
  std::string creditor_name;
  std::string remittance_info;
};

struct IncomingPayment {
  std::string cursor;
  std::string clearing_reference;  // the identity: a re-sent payment has the same one
  std::int64_t amount_minor = 0;
  std::string currency;
  std::string debtor_account;
  std::string debtor_name;
  std::string creditor_account;
  std::string creditor_name;
  std::string remittance_info;
  std::string received_at;
};

// A payment of a sound page that breaks the contract: it costs only itself (the page's
// other payments are taken, the cursor moves past it). What is kept of it is bounded and
// storable as bytes; nothing in `reason` quotes a value.
struct RejectedPayment {
  std::size_t index = 0;  // its position in the page's payments array
  // The element's JSON text exactly as received (any bytes: invalid UTF-8, raw control
  // characters), its first kRejectedPaymentRawBytesMax bytes (classify.hpp) at most.
  std::string raw;
  std::size_t raw_bytes = 0;  // the element's full length: > raw.size() when raw was cut
  UnknownCause cause = UnknownCause::contract_violation;  // or unparsable_body
  // The field and the rule it breaks ("payment field debtor_name contains a control
  // character"), never the value: one storable line (base::escape_text).
  std::string reason;
  // Read from the element alone, and only when that field occurs once and is valid by the
  // rules a good payment's would be held to; nullopt otherwise.
  std::optional<std::string> cursor;
  std::optional<std::string> clearing_reference;
};

struct IncomingPage {
  bool ok = false;
  std::vector<IncomingPayment> payments;   // ok only: the payments that keep the contract
  std::vector<RejectedPayment> rejected;   // ok only: the ones that break it, in page order
  std::optional<std::string> next_cursor;  // ok only; absent when the clearing sent none
  // When !ok: why, classified like the other calls (unknown with a cause, unauthorized,
  // maintenance, malformed_request). When ok: answer_class is `settled` and unused.
  ClearingAnswer failure;
  std::int64_t latency_ms = 0;
};

}  // namespace clearing::clearing_client
