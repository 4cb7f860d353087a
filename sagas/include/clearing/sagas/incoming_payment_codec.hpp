#pragma once
// Stored form of the IncomingPayment events; the rules are event_codec.hpp's.

#include "clearing/sagas/event_codec.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"

namespace clearing::sagas {

using IncomingPaymentCodec = EventCodec<IncomingPaymentEvent>;
extern template struct EventCodec<IncomingPaymentEvent>;  // in incoming_payment_codec.cpp

}  // namespace clearing::sagas
