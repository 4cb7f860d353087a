#pragma once
// Pure classification of one HTTP answer of the clearing API, per the contract table.
// No I/O, no Asio: the client calls it on every answer, and tests call it directly.

#include <optional>
#include <string>
#include <string_view>

#include "clearing/clearing_client/answer.hpp"

namespace clearing::clearing_client {

enum class CallKind { submit, inquire, incoming };

// `retry_after` is the raw Retry-After header value if the answer had one.
// Never throws; anything that makes no sense is unknown/unparsable_body with a detail.
ClearingAnswer classify_answer(CallKind kind, int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after);

// Parses an incoming feed answer (any status; non-200 answers are classified failures).
IncomingPage classify_incoming(int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after);

// Retry-After in seconds -> milliseconds; kRetryAfterDefaultMs when missing or not a
// non-negative integer (HTTP-dates are not used by this clearing), capped at kRetryAfterMaxMs.
std::int64_t parse_retry_after_ms(std::optional<std::string_view> retry_after);

// The JSON body of POST /v1/transfers (the contract's field names).
std::string encode_submit_body(const SubmitRequest& request);

}  // namespace clearing::clearing_client
