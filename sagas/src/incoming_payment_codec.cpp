#include "clearing/sagas/incoming_payment_codec.hpp"

#include <array>

#include "json_fields.hpp"

namespace clearing::sagas {
namespace {

using json_fields::Is;

// The fields both the recorded and the parked payment carry: the content stored flat.
void payment_fields(auto& e, auto& f) {
  f("payment_id", e.payment_id);
  f("clearing_reference", e.clearing_reference);
  f("cursor", e.cursor);
  f("amount", e.content.amount);
  f("debtor", e.content.debtor);
  f("creditor", e.content.creditor);
  f("remittance_info", e.content.remittance_info);
  f("received_at", e.content.received_at);
}

void fields(Is<IncomingPaymentRecorded> auto& e, auto& f) {
  payment_fields(e, f);
  f("settlement_date", e.settlement_date);  // since version 2
}

// Version 1 stored no settlement date: its readers took the UTC date of received_at, the
// rule incoming_settlement_date keeps. An unreadable received_at adds nothing, and decoding
// then names received_at.
nlohmann::json recorded_v1_to_v2(nlohmann::json data) {
  const auto received = data.find("received_at");
  Timestamp at{};
  if (received != data.end() && received->is_string() &&
      base::parse_timestamp(received->get_ref<const std::string&>(), at))
    data["settlement_date"] = incoming_settlement_date(at);
  return data;
}

void fields(Is<IncomingPaymentParked> auto& e, auto& f) {
  payment_fields(e, f);
  f("reason_code", e.reason_code);
  f("reason", e.reason);
}

void fields(Is<ConflictingIncomingPaymentReceived> auto& e, auto& f) {
  f("payment_id", e.payment_id);
  f("clearing_reference", e.clearing_reference);
  f("cursor", e.cursor);
  f("differing_fields", e.differing_fields);
}

void fields(Is<IncomingPaymentBookedByOperator> auto& e, auto& f) {
  payment_fields(e, f);
  f("settlement_date", e.settlement_date);
  f("corrected_fields", e.corrected_fields);
  f("operator", e.operator_name);
  f("reason", e.reason);
}

void fields(Is<IncomingPaymentReturnedByOperator> auto& e, auto& f) {
  f("payment_id", e.payment_id);
  f("clearing_reference", e.clearing_reference);
  f("operator", e.operator_name);
  f("reason", e.reason);
}

}  // namespace

template <>
struct json_fields::FieldLists<IncomingPaymentEvent> {
  static constexpr auto describe = [](auto& event, auto& visitor) { fields(event, visitor); };
  static constexpr std::array<Upcaster, 1> upcasters{{
      {IncomingPaymentRecorded::kType, SchemaVersion{1}, &recorded_v1_to_v2},
  }};
};
static_assert(json_fields::upcasters_fit<IncomingPaymentEvent>(
    json_fields::FieldLists<IncomingPaymentEvent>::upcasters));

template struct EventCodec<IncomingPaymentEvent>;

}  // namespace clearing::sagas
