#include "clearing/external_streams/payments_codec.hpp"

#include <limits>

#include "clearing/base/text.hpp"

namespace clearing::external_streams::payments {
namespace {

using Json = nlohmann::json;

tl::unexpected<MessageError> invalid(const std::string& field, const std::string& why) {
  return tl::unexpected(MessageError{MessageErrc::invalid_data, field + " " + why});
}

const Json* member(const Json& j, const char* name) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

// A required text: present, a string, at most kTextFieldBytesMax bytes, printable UTF-8.
tl::expected<std::string, MessageError> text(const Json& j, const std::string& path,
                                             const char* name) {
  const auto* v = member(j, name);
  if (v == nullptr) return invalid(path + name, "is missing");
  if (!v->is_string()) return invalid(path + name, "is not a string");
  auto value = v->get<std::string>();
  if (value.size() > kTextFieldBytesMax)
    return invalid(path + name, "is " + std::to_string(value.size()) + " bytes, more than " +
                                    std::to_string(kTextFieldBytesMax));
  if (!base::is_printable_utf8(value)) return invalid(path + name, "has control characters");
  return value;
}

bool is_currency_code(std::string_view code) {
  if (code.size() != 3) return false;
  for (const char c : code)
    if (c < 'A' || c > 'Z') return false;
  return true;
}

// The scheme's name as the contract spells it; lower case has always been read too. Empty
// for anything else.
std::string_view canonical_scheme(std::string_view scheme) {
  if (scheme == "IBAN" || scheme == "iban") return "IBAN";
  if (scheme == "BBAN" || scheme == "bban") return "BBAN";
  return {};
}

// What the core reads leniently: a non-empty string, else nothing.
std::optional<std::string> nonempty_text(const Json& data, const char* name) {
  const auto* v = member(data, name);
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty())
    return std::nullopt;
  return v->get<std::string>();
}

Json optional_amount(const std::optional<Amount>& amount) {
  return amount ? encode_amount(*amount) : Json(nullptr);
}
Json optional_party(const std::optional<Party>& party) {
  return party ? encode_party(*party) : Json(nullptr);
}

}  // namespace

bool is_transfer_id(std::string_view id) noexcept {
  return base::is_identifier(id, kTransferIdBytesMax);
}

Json encode_amount(const Amount& amount) {
  return {{"minor_units", amount.minor_units}, {"currency", amount.currency}};
}

Json encode_party(const Party& party) {
  return {{"name", party.name},
          {"account", {{"scheme", party.account.scheme}, {"id", party.account.id}}}};
}

tl::expected<Amount, MessageError> decode_amount(const Json& amount, const std::string& prefix,
                                                 const std::string& field) {
  const auto path = prefix + field;
  if (!amount.is_object()) return invalid(path, "is missing or not an object");
  const auto* minor = member(amount, "minor_units");
  if (minor == nullptr || !minor->is_number_integer())
    return invalid(path + ".minor_units", "is not an integer");
  // 2^63 and more arrive as unsigned: refused as out of range, not wrapped to a negative.
  if (minor->is_number_unsigned() &&
      minor->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return invalid(path + ".minor_units", "is beyond 2^63-1");
  Amount out;
  out.minor_units = minor->get<std::int64_t>();
  auto currency = text(amount, path + ".", "currency");
  if (!currency) return tl::unexpected(currency.error());
  if (!is_currency_code(*currency)) return invalid(path + ".currency", "is not an ISO 4217 code");
  out.currency = std::move(*currency);
  return out;
}

tl::expected<Party, MessageError> decode_party(const Json& party, const std::string& prefix,
                                               const std::string& field) {
  const auto path = prefix + field;
  if (!party.is_object()) return invalid(path, "is missing or not an object");
  auto name = text(party, path + ".", "name");
  if (!name) return tl::unexpected(name.error());
  const auto* account = member(party, "account");
  if (account == nullptr || !account->is_object()) return invalid(path + ".account", "is missing");
  auto scheme = text(*account, path + ".account.", "scheme");
  if (!scheme) return tl::unexpected(scheme.error());
  auto id = text(*account, path + ".account.", "id");
  if (!id) return tl::unexpected(id.error());
  const auto canonical = canonical_scheme(*scheme);
  if (canonical.empty()) return invalid(path + ".account.scheme", "must be IBAN or BBAN");
  return Party{std::move(*name), AccountRef{std::string(canonical), std::move(*id)}};
}

// ---- core.<cc>.payments.v1

Json encode(const TransferRequested& e) {
  return {{"transfer_id", e.transfer_id},
          {"account_id", e.account_id},
          {"amount", encode_amount(e.amount)},
          {"debtor", encode_party(e.debtor)},
          {"creditor", encode_party(e.creditor)},
          {"remittance_info", e.remittance_info},
          {"requested_at", base::format_timestamp(e.requested_at)}};
}

tl::expected<TransferRequested, MessageError> decode_transfer_requested(const Json& d) {
  const std::string prefix = "TransferRequested.";
  TransferRequested out;
  auto transfer_id = text(d, prefix, "transfer_id");
  if (!transfer_id) return tl::unexpected(transfer_id.error());
  if (!is_transfer_id(*transfer_id))
    return invalid(prefix + "transfer_id", "must be 1.." + std::to_string(kTransferIdBytesMax) +
                                               " characters of [A-Za-z0-9._:-]");
  out.transfer_id = std::move(*transfer_id);
  auto account_id = text(d, prefix, "account_id");
  if (!account_id) return tl::unexpected(account_id.error());
  out.account_id = std::move(*account_id);
  const auto* amount = member(d, "amount");
  auto decoded_amount =
      decode_amount(amount == nullptr ? Json(nullptr) : *amount, prefix, "amount");
  if (!decoded_amount) return tl::unexpected(decoded_amount.error());
  out.amount = std::move(*decoded_amount);
  for (auto [name, party] :
       {std::pair{"debtor", &out.debtor}, std::pair{"creditor", &out.creditor}}) {
    const auto* value = member(d, name);
    auto decoded = decode_party(value == nullptr ? Json(nullptr) : *value, prefix, name);
    if (!decoded) return tl::unexpected(decoded.error());
    *party = std::move(*decoded);
  }
  if (member(d, "remittance_info") != nullptr) {  // optional: absent means empty
    auto remittance = text(d, prefix, "remittance_info");
    if (!remittance) return tl::unexpected(remittance.error());
    out.remittance_info = std::move(*remittance);
  }
  auto requested = text(d, prefix, "requested_at");
  if (!requested) return tl::unexpected(requested.error());
  if (!base::parse_timestamp(*requested, out.requested_at))
    return invalid(prefix + "requested_at", "is not an RFC 3339 UTC time");
  return out;
}

// ---- adapter.<cc>.payments.v1

Json encode(const TransferPending& e) {
  return {{"transfer_id", e.transfer_id},
          {"clearing_reference", e.clearing_reference},
          {"expected_settlement_date", e.expected_settlement_date}};
}

Json encode(const TransferUnderInvestigation& e) {
  return {{"transfer_id", e.transfer_id},
          {"since", e.since},
          {"attempts", e.attempts},
          {"last_error", e.last_error}};
}

Json encode(const TransferSucceeded& e) {
  Json out = {{"transfer_id", e.transfer_id},
              {"clearing_reference", e.clearing_reference},
              {"settlement_date", e.settlement_date}};
  if (e.resolved_manually) out["resolved_manually"] = true;
  return out;
}

Json encode(const TransferRejected& e) {
  Json out = {{"transfer_id", e.transfer_id}, {"reason_code", e.reason_code}, {"reason", e.reason}};
  if (e.resolved_manually) out["resolved_manually"] = true;
  return out;
}

Json encode(const IncomingPaymentReceived& e) {
  return {{"payment_id", e.payment_id},
          {"clearing_reference", e.clearing_reference},
          {"amount", optional_amount(e.amount)},
          {"debtor", optional_party(e.debtor)},
          {"creditor", optional_party(e.creditor)},
          {"remittance_info", e.remittance_info},
          {"received_at", e.received_at}};
}

// ---- adapter.<cc>.settlements.v1

Json encode(const OutgoingTransferSettled& e) {
  return {{"transfer_id", e.transfer_id},
          {"clearing_reference", e.clearing_reference},
          {"amount", optional_amount(e.amount)},
          {"settlement_date", e.settlement_date}};
}

Json encode(const IncomingPaymentSettled& e) {
  return {{"payment_id", e.payment_id},
          {"clearing_reference", e.clearing_reference},
          {"amount", optional_amount(e.amount)},
          {"settlement_date", e.settlement_date}};
}

// ---- the core's reading of the adapter's events

bool is_transfer_outcome(std::string_view type) noexcept {
  return type == TransferSucceeded::kType || type == TransferRejected::kType ||
         type == TransferPending::kType || type == TransferUnderInvestigation::kType;
}

tl::expected<TransferOutcome, MessageError> decode_transfer_outcome(std::string_view type,
                                                                    const Json& data) {
  auto transfer_id = nonempty_text(data, "transfer_id");
  if (!transfer_id)
    return tl::unexpected(MessageError{MessageErrc::invalid_data, "transfer_id is missing"});
  TransferOutcome out{std::string(type), std::move(*transfer_id),
                      nonempty_text(data, "clearing_reference"), std::nullopt};
  if (type == TransferRejected::kType) out.reason_code = nonempty_text(data, "reason_code");
  return out;
}

tl::expected<IncomingPaymentSeen, MessageError> decode_incoming_payment_received(const Json& data) {
  auto payment_id = nonempty_text(data, "payment_id");
  if (!payment_id)
    return tl::unexpected(MessageError{MessageErrc::invalid_data, "payment_id is missing"});
  IncomingPaymentSeen out{std::move(*payment_id), std::nullopt, std::nullopt};
  if (const auto* amount = member(data, "amount"); amount != nullptr && amount->is_object()) {
    if (const auto* minor = member(*amount, "minor_units");
        minor != nullptr && minor->is_number_integer())
      out.minor_units = minor->get<std::int64_t>();
    if (const auto* currency = member(*amount, "currency");
        currency != nullptr && currency->is_string())
      out.currency = currency->get<std::string>();
  }
  return out;
}

}  // namespace clearing::external_streams::payments
