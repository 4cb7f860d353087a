#pragma once
// Stored form of the IncomingPayment events; the same rules as transfer_codec.hpp.

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"

namespace clearing::sagas {

struct IncomingPaymentCodec {
  static std::string_view event_type(const IncomingPaymentEvent& event);
  static nlohmann::json encode(const IncomingPaymentEvent& event);
  static tl::expected<IncomingPaymentEvent, eventstore::DecodeError> decode(
      std::string_view type, const nlohmann::json& data);
};

}  // namespace clearing::sagas
