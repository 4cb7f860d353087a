#include "clearing/sagas/incoming_payment_codec.hpp"

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

void fields(Is<IncomingPaymentRecorded> auto& e, auto& f) { payment_fields(e, f); }

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

}  // namespace

template <>
struct json_fields::FieldLists<IncomingPaymentEvent> {
  static constexpr auto describe = [](auto& event, auto& visitor) { fields(event, visitor); };
};

template struct EventCodec<IncomingPaymentEvent>;

}  // namespace clearing::sagas
