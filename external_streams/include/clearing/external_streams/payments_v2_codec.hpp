#pragma once
// The codec of adapter.<cc>.payments.v2 (docs/streams.md, "adapter.<cc>.payments.v2"): one
// event type, TransferStatusChanged, in ISO 20022 pacs.002 terms, that always carries the
// transfer's amount, its clearing reference and its settlement date (null while unknown),
// so a consumer needs no earlier message to act on one. Incoming payments keep their v1
// shape (IncomingPaymentReceived) on the same stream. Derived from the same internal events
// as payments.v1, beside it.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/base/name_table.hpp"
#include "clearing/external_streams/payments_codec.hpp"

namespace clearing::external_streams::payments::v2 {

// pacs.002 TransactionStatus: PDNG (pending: the clearing has it, or the adapter is
// investigating an answer it never got), ACSC (settled), RJCT (rejected).
enum class TransferStatus { pending, settled, rejected };
inline constexpr base::NameTable<TransferStatus, 3> kTransferStatusCodes{{
    {TransferStatus::pending, "PDNG"},
    {TransferStatus::settled, "ACSC"},
    {TransferStatus::rejected, "RJCT"},
}};
static_assert(base::lists_every_enumerator(kTransferStatusCodes, TransferStatus::rejected));

struct StatusReason {
  std::string code;  // ISO 20022 ExternalStatusReason1Code, e.g. AC04; DUPL for a duplicate
  std::string text;
  friend bool operator==(const StatusReason&, const StatusReason&) = default;
};

// PDNG while the adapter has no answer it can trust: since when, after how many attempts.
struct Investigation {
  std::string since;  // RFC 3339
  std::int64_t attempts = 0;
  std::string last_error;
  friend bool operator==(const Investigation&, const Investigation&) = default;
};

struct TransferStatusChanged {
  static constexpr std::string_view kType = "TransferStatusChanged";
  std::string transfer_id;
  TransferStatus status = TransferStatus::pending;
  std::optional<Amount> amount;  // the transfer's; null only when its initiation is unknown
  std::optional<std::string> clearing_reference;  // null until the clearing gave one
  std::optional<std::string> settlement_date;     // YYYY-MM-DD: ACSC's, or PDNG's expected
  std::optional<StatusReason> reason;             // RJCT
  std::optional<Investigation> investigation;     // PDNG without an answer
  bool resolved_manually = false;
  friend bool operator==(const TransferStatusChanged&, const TransferStatusChanged&) = default;
};

nlohmann::json encode(const TransferStatusChanged& event);

// Strict: every field present with its type (null where the contract allows it); the first
// problem is the answer ("TransferStatusChanged.<field> <why>").
tl::expected<TransferStatusChanged, MessageError> decode_transfer_status_changed(
    const nlohmann::json& data);

// What the core does with it is what it does with v1's outcomes: the v1 type it stands for
// (TransferPending, TransferUnderInvestigation, TransferSucceeded, TransferRejected).
TransferOutcome outcome_of(const TransferStatusChanged& event);

}  // namespace clearing::external_streams::payments::v2
