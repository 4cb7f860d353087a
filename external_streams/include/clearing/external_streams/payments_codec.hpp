#pragma once
// The codec of the payment streams' `data` (shared/contracts/streams.md): the one place
// that writes and reads TransferRequested (core.<cc>.payments.v1), the outcomes and
// incoming payments of adapter.<cc>.payments.v1, the settlements.v1 events, and the amount
// and party shapes they share. The core's side (core-sim) and the adapter's side both use
// it, each in its own direction, so the two cannot drift apart.
//
// The types here are the wire's, not the domain's: currency and account scheme are the
// contract's text (checked by the decoder), so this module needs nothing of sagas/. Each
// side maps them to its own domain types.
//
// Decoders never throw; what they refuse is MessageErrc::invalid_data with a message that
// names the field and the rule ("TransferRequested.debtor.name has control characters"),
// never the value (it may be personal data). Those messages are parking reasons: stable.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/base/clock.hpp"
#include "clearing/external_streams/message.hpp"

namespace clearing::external_streams::payments {

// A transfer id: 1..200 characters of [A-Za-z0-9._:-] (it names the transfer's stream, a
// URL path segment, the Kafka key and log fields).
inline constexpr std::size_t kTransferIdBytesMax = 200;
// Every text of a TransferRequested: what the event store cannot hold (NUL, control
// characters) or should not (a 256 KB name) is refused. The decider's own limits (140
// characters) are stricter; this only makes sure the request can be kept as it came.
inline constexpr std::size_t kTextFieldBytesMax = 1024;

bool is_transfer_id(std::string_view id) noexcept;

// ---- shared shapes: amount {"minor_units", "currency"}, party {"name", "account"}

struct Amount {
  std::int64_t minor_units = 0;
  std::string currency;  // ISO 4217: three upper-case letters
  friend bool operator==(const Amount&, const Amount&) = default;
};

struct AccountRef {
  std::string scheme;  // "IBAN" or "BBAN" (the decoder also reads "iban", "bban", and writes them
                       // upper case)
  std::string id;
  friend bool operator==(const AccountRef&, const AccountRef&) = default;
};

struct Party {
  std::string name;
  AccountRef account;
  friend bool operator==(const Party&, const Party&) = default;
};

nlohmann::json encode_amount(const Amount& amount);
nlohmann::json encode_party(const Party& party);

// `field` names the value in the messages ("amount", "debtor"); `prefix` goes before it
// ("TransferRequested."). The checks are TransferRequested's: integer minor units within
// 2^63-1, currency and texts printable UTF-8 of at most kTextFieldBytesMax bytes, currency of
// three upper-case letters, scheme IBAN or BBAN.
tl::expected<Amount, MessageError> decode_amount(const nlohmann::json& amount,
                                                 const std::string& prefix,
                                                 const std::string& field);
tl::expected<Party, MessageError> decode_party(const nlohmann::json& party,
                                               const std::string& prefix, const std::string& field);

// ---- core.<cc>.payments.v1

struct TransferRequested {
  static constexpr std::string_view kType = "TransferRequested";
  std::string transfer_id;
  std::string account_id;  // the core's account id
  Amount amount;
  Party debtor;
  Party creditor;
  std::string remittance_info;  // optional on the wire: absent reads as empty
  base::Timestamp requested_at{};
  friend bool operator==(const TransferRequested&, const TransferRequested&) = default;
};

nlohmann::json encode(const TransferRequested& event);
// Every field checked in the order of the contract's example; the first problem is the
// answer ("TransferRequested.<field> <why>").
tl::expected<TransferRequested, MessageError> decode_transfer_requested(const nlohmann::json& data);

// ---- adapter.<cc>.payments.v1

struct TransferPending {
  static constexpr std::string_view kType = "TransferPending";
  std::string transfer_id;
  std::string clearing_reference;
  std::string expected_settlement_date;  // YYYY-MM-DD
};

struct TransferUnderInvestigation {
  static constexpr std::string_view kType = "TransferUnderInvestigation";
  std::string transfer_id;
  std::string since;  // RFC 3339
  std::int64_t attempts = 0;
  std::string last_error;
};

struct TransferSucceeded {
  static constexpr std::string_view kType = "TransferSucceeded";
  std::string transfer_id;
  std::string clearing_reference;
  std::string settlement_date;     // YYYY-MM-DD
  bool resolved_manually = false;  // written only when true
};

struct TransferRejected {
  static constexpr std::string_view kType = "TransferRejected";
  std::string transfer_id;
  std::string reason_code;  // ISO 20022 ExternalStatusReason1Code
  std::string reason;
  bool resolved_manually = false;  // written only when true
};

struct IncomingPaymentReceived {
  static constexpr std::string_view kType = "IncomingPaymentReceived";
  std::string payment_id;
  std::string clearing_reference;
  std::optional<Amount> amount;  // null when unknown
  std::optional<Party> debtor;
  std::optional<Party> creditor;
  std::string remittance_info;
  std::string received_at;  // RFC 3339
};

// ---- adapter.<cc>.settlements.v1

struct OutgoingTransferSettled {
  static constexpr std::string_view kType = "OutgoingTransferSettled";
  std::string transfer_id;
  std::string clearing_reference;
  std::optional<Amount> amount;  // null when the transfer's initiation was not found
  std::string settlement_date;
};

struct IncomingPaymentSettled {
  static constexpr std::string_view kType = "IncomingPaymentSettled";
  std::string payment_id;
  std::string clearing_reference;
  std::optional<Amount> amount;
  std::string settlement_date;
};

nlohmann::json encode(const TransferPending& event);
nlohmann::json encode(const TransferUnderInvestigation& event);
nlohmann::json encode(const TransferSucceeded& event);
nlohmann::json encode(const TransferRejected& event);
nlohmann::json encode(const IncomingPaymentReceived& event);
nlohmann::json encode(const OutgoingTransferSettled& event);
nlohmann::json encode(const IncomingPaymentSettled& event);

// What the core reads of a transfer's outcome (TransferPending, TransferUnderInvestigation,
// TransferSucceeded, TransferRejected). Only transfer_id is required (a non-empty string):
// the core decides what a missing reason code means. A text field that is absent, not a
// string or empty reads as nullopt.
struct TransferOutcome {
  std::string type;
  std::string transfer_id;
  std::optional<std::string> clearing_reference;
  std::optional<std::string> reason_code;  // TransferRejected
};
bool is_transfer_outcome(std::string_view type) noexcept;
tl::expected<TransferOutcome, MessageError> decode_transfer_outcome(std::string_view type,
                                                                    const nlohmann::json& data);

// What the core reads of an IncomingPaymentReceived: payment_id is required (a non-empty
// string); the amount's parts are read where they are well typed.
struct IncomingPaymentSeen {
  std::string payment_id;
  std::optional<std::int64_t> minor_units;
  std::optional<std::string> currency;
};
tl::expected<IncomingPaymentSeen, MessageError> decode_incoming_payment_received(
    const nlohmann::json& data);

}  // namespace clearing::external_streams::payments
