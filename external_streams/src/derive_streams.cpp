// The derivations of the outbound streams: pure functions from one internal event (and
// read access to the transfer's opening event) to what each stream publishes. One
// function per stream version (docs/streams.md); derivation.cpp runs them.

#include "clearing/base/clock.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/payments_codec.hpp"
#include "clearing/external_streams/payments_v2_codec.hpp"
#include "clearing/external_streams/positions_codec.hpp"

namespace clearing::external_streams {
namespace {

using Json = nlohmann::json;

std::string text(const Json& data, const char* field) {
  const auto it = data.find(field);
  return it != data.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

std::string transfer_stream_of(const std::string& transfer_id) { return "transfer-" + transfer_id; }

Draft transfer_draft(std::string type, const Json& data, Json body) {
  return Draft{std::move(type), text(data, "transfer_id"), std::move(body), false, ""};
}

// The amount and parties of the internal events (the saga's codec wrote them in the
// contract's shape), read with the contract's codec; nullopt (null on the wire) when absent.
std::optional<payments::Amount> amount_of(const Json& data, const char* field) {
  const auto it = data.find(field);
  if (it == data.end()) return std::nullopt;
  auto amount = payments::decode_amount(*it, "", field);
  return amount ? std::optional<payments::Amount>(std::move(*amount)) : std::nullopt;
}

std::optional<payments::Party> party_of(const Json& data, const char* field) {
  const auto it = data.find(field);
  if (it == data.end()) return std::nullopt;
  auto party = payments::decode_party(*it, "", field);
  return party ? std::optional<payments::Party>(std::move(*party)) : std::nullopt;
}

// The amount of a transfer, from its TransferInitiated.
std::optional<payments::Amount> transfer_amount(const std::string& transfer_id,
                                                const DerivationContext& context) {
  if (!context.first_of_type) return std::nullopt;
  const auto initiated =
      context.first_of_type(transfer_stream_of(transfer_id), "TransferInitiated");
  return initiated ? amount_of(initiated->data, "amount") : std::nullopt;
}

// A settlement as the internal events tell it: an outgoing transfer settled (by the
// clearing, or resolved so by hand) or an incoming payment recorded.
bool settled_outgoing(const eventstore::RecordedEvent& e) {
  return e.type == "TransferSettled" ||
         (e.type == "TransferResolvedManually" && text(e.data, "outcome") == "succeeded");
}

// An incoming payment that reaches the core: recorded as valid, or parked and then booked by
// an operator (IncomingPaymentBookedByOperator carries the payment booked in the same fields).
// Each payment has at most one of them.
bool incoming_booked(const eventstore::RecordedEvent& e) {
  return e.type == "IncomingPaymentRecorded" || e.type == "IncomingPaymentBookedByOperator";
}

std::optional<std::string> nonempty(std::string value) {
  return value.empty() ? std::nullopt : std::optional<std::string>(std::move(value));
}

// A v2 message about a transfer: its amount always (from its TransferInitiated).
payments::v2::TransferStatusChanged status_of(const eventstore::RecordedEvent& e,
                                              payments::v2::TransferStatus status,
                                              const DerivationContext& context) {
  payments::v2::TransferStatusChanged out;
  out.transfer_id = text(e.data, "transfer_id");
  out.status = status;
  out.amount = transfer_amount(out.transfer_id, context);
  return out;
}

Draft status_draft(const eventstore::RecordedEvent& e,
                   const payments::v2::TransferStatusChanged& event) {
  return transfer_draft(std::string(payments::v2::TransferStatusChanged::kType), e.data,
                        payments::v2::encode(event));
}

// The transfer's first pending answer is published; the saga records every one.
bool first_pending(const eventstore::RecordedEvent& e, const DerivationContext& context) {
  if (!context.first_of_type) return true;
  const auto first = context.first_of_type(transfer_stream_of(text(e.data, "transfer_id")),
                                           "TransferAcceptedPending");
  return first && first->event_id == e.event_id;
}

positions::PositionDelta delta_of(const eventstore::RecordedEvent& e,
                                  const DerivationContext& context) {
  const auto& d = e.data;
  positions::PositionDelta delta;
  if (settled_outgoing(e)) {
    delta.settlement_date = text(d, "settlement_date");
    delta.outgoing = true;
    delta.amount = transfer_amount(text(d, "transfer_id"), context);
  } else {
    delta.settlement_date = text(d, "received_at").substr(0, 10);
    delta.outgoing = false;
    delta.amount = amount_of(d, "amount");
  }
  // A settlement without a date (a manual resolution that named none) counts on the day
  // it was recorded: never a message without its entity.
  if (delta.settlement_date.size() != 10)
    delta.settlement_date = base::format_timestamp(e.recorded_at).substr(0, 10);
  return delta;
}

tl::expected<Draft, std::string> fold_positions_v1(const Draft& delta, nlohmann::json& state) {
  auto folded = positions::fold_position(delta.data, state);
  if (!folded) return tl::unexpected(folded.error().message);
  Draft out = delta;
  out.data = positions::encode(*folded);
  return out;
}

}  // namespace

std::vector<Draft> derive_payments_v1(const eventstore::RecordedEvent& e,
                                      const DerivationContext&) {
  const auto& d = e.data;
  const auto transfer_id = text(d, "transfer_id");
  if (e.type == "TransferAcceptedPending") {
    auto draft =
        transfer_draft("TransferPending", d,
                       payments::encode(payments::TransferPending{
                           .transfer_id = transfer_id,
                           .clearing_reference = text(d, "clearing_reference"),
                           .expected_settlement_date = text(d, "expected_settlement_date")}));
    draft.once_per_key = true;  // the saga records every pending answer; the core hears it once
    return {draft};
  }
  if (e.type == "TransferUnderInvestigation")
    return {transfer_draft("TransferUnderInvestigation", d,
                           payments::encode(payments::TransferUnderInvestigation{
                               .transfer_id = transfer_id,
                               .since = text(d, "since"),
                               .attempts = d.value("attempts", 0),
                               .last_error = text(d, "last_error")}))};
  if (e.type == "DuplicateTransferRequestRefused") {
    // The outcome of the second, refused request: it carries that request's correlation.
    auto draft = transfer_draft(
        "TransferRejected", d,
        payments::encode(payments::TransferRejected{
            .transfer_id = transfer_id, .reason_code = "DUPL", .reason = text(d, "reason")}));
    draft.correlation_id = text(d, "correlation_id");
    return {draft};
  }
  // An outcome the clearing gave, or one an operator resolved by hand: the same message,
  // marked resolved_manually.
  const bool manual = e.type == "TransferResolvedManually";
  if (e.type == "TransferSettled" || (manual && text(d, "outcome") == "succeeded"))
    return {transfer_draft("TransferSucceeded", d,
                           payments::encode(payments::TransferSucceeded{
                               .transfer_id = transfer_id,
                               .clearing_reference = text(d, "clearing_reference"),
                               .settlement_date = text(d, "settlement_date"),
                               .resolved_manually = manual}))};
  if (e.type == "TransferRejected" || manual)
    return {transfer_draft(
        "TransferRejected", d,
        payments::encode(payments::TransferRejected{.transfer_id = transfer_id,
                                                    .reason_code = text(d, "reason_code"),
                                                    .reason = text(d, "reason"),
                                                    .resolved_manually = manual}))};
  if (incoming_booked(e))
    return {Draft{"IncomingPaymentReceived", text(d, "payment_id"),
                  payments::encode(payments::IncomingPaymentReceived{
                      .payment_id = text(d, "payment_id"),
                      .clearing_reference = text(d, "clearing_reference"),
                      .amount = amount_of(d, "amount"),
                      .debtor = party_of(d, "debtor"),
                      .creditor = party_of(d, "creditor"),
                      .remittance_info = text(d, "remittance_info"),
                      .received_at = text(d, "received_at")}),
                  false, ""}};
  return {};
}

std::vector<Draft> derive_settlements_v1(const eventstore::RecordedEvent& e,
                                         const DerivationContext& context) {
  const auto& d = e.data;
  const auto transfer_id = text(d, "transfer_id");
  if (settled_outgoing(e))
    return {transfer_draft("OutgoingTransferSettled", d,
                           payments::encode(payments::OutgoingTransferSettled{
                               .transfer_id = transfer_id,
                               .clearing_reference = text(d, "clearing_reference"),
                               .amount = transfer_amount(transfer_id, context),
                               .settlement_date = text(d, "settlement_date")}))};
  if (incoming_booked(e))
    return {Draft{"IncomingPaymentSettled", text(d, "payment_id"),
                  payments::encode(payments::IncomingPaymentSettled{
                      .payment_id = text(d, "payment_id"),
                      .clearing_reference = text(d, "clearing_reference"),
                      .amount = amount_of(d, "amount"),
                      .settlement_date = text(d, "received_at").substr(0, 10)}),
                  false, ""}};
  return {};
}

std::vector<Draft> derive_payments_v2(const eventstore::RecordedEvent& e,
                                      const DerivationContext& context) {
  using payments::v2::TransferStatus;
  const auto& d = e.data;
  if (e.type == "TransferAcceptedPending") {
    if (!first_pending(e, context)) return {};
    auto event = status_of(e, TransferStatus::pending, context);
    event.clearing_reference = nonempty(text(d, "clearing_reference"));
    event.settlement_date = nonempty(text(d, "expected_settlement_date"));
    return {status_draft(e, event)};
  }
  if (e.type == "TransferUnderInvestigation") {
    auto event = status_of(e, TransferStatus::pending, context);
    event.investigation = payments::v2::Investigation{text(d, "since"), d.value("attempts", 0),
                                                      text(d, "last_error")};
    return {status_draft(e, event)};
  }
  if (e.type == "DuplicateTransferRequestRefused") {
    // The outcome of the second, refused request: it carries that request's correlation.
    auto event = status_of(e, TransferStatus::rejected, context);
    event.reason = payments::v2::StatusReason{"DUPL", text(d, "reason")};
    auto draft = status_draft(e, event);
    draft.correlation_id = text(d, "correlation_id");
    return {draft};
  }
  const bool manual = e.type == "TransferResolvedManually";
  if (settled_outgoing(e)) {
    auto event = status_of(e, TransferStatus::settled, context);
    event.clearing_reference = nonempty(text(d, "clearing_reference"));
    event.settlement_date = nonempty(text(d, "settlement_date"));
    event.resolved_manually = manual;
    return {status_draft(e, event)};
  }
  if (e.type == "TransferRejected" || manual) {
    auto event = status_of(e, TransferStatus::rejected, context);
    event.clearing_reference = nonempty(text(d, "clearing_reference"));
    event.reason = payments::v2::StatusReason{text(d, "reason_code"), text(d, "reason")};
    event.resolved_manually = manual;
    return {status_draft(e, event)};
  }
  if (incoming_booked(e)) return derive_payments_v1(e, context);
  return {};
}

std::vector<Draft> derive_positions_v1(const eventstore::RecordedEvent& e,
                                       const DerivationContext& context) {
  if (!settled_outgoing(e) && !incoming_booked(e)) return {};
  const auto delta = delta_of(e, context);
  return {Draft{std::string(positions::NetPositionChanged::kType), delta.settlement_date,
                positions::encode(delta), false, ""}};
}

const std::vector<Derivation>& derivations() {
  static const std::vector<Derivation> registry{
      {"payments.v1", &derive_payments_v1, nullptr},
      {"settlements.v1", &derive_settlements_v1, nullptr},
      {"payments.v2", &derive_payments_v2, nullptr},
      {"positions.v1", &derive_positions_v1, &fold_positions_v1},
  };
  return registry;
}

std::optional<Derivation> find_derivation(const std::string& name) {
  for (const auto& d : derivations())
    if (d.name == name) return d;
  return std::nullopt;
}

}  // namespace clearing::external_streams
