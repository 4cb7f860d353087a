#include "clearing/external_streams/positions_codec.hpp"

namespace clearing::external_streams::positions {
namespace {

using Json = nlohmann::json;

tl::unexpected<MessageError> invalid(const std::string& what) {
  return tl::unexpected(MessageError{MessageErrc::invalid_data, what});
}

std::optional<std::int64_t> integer_of(const Json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

}  // namespace

Json encode(const PositionDelta& d) {
  return {{"settlement_date", d.settlement_date},
          {"direction", d.outgoing ? "outgoing" : "incoming"},
          {"amount", d.amount ? payments::encode_amount(*d.amount) : Json(nullptr)}};
}

Json encode(const NetPositionChanged& e) {
  // No amount of the day known yet (its settlements' initiations are unknown): no currency
  // to state, so the totals are null rather than amounts in no currency.
  const auto amount = [&e](std::int64_t minor) {
    return e.currency.empty() ? Json(nullptr)
                              : Json{{"minor_units", minor}, {"currency", e.currency}};
  };
  return {{"settlement_date", e.settlement_date},
          {"outgoing_total", amount(e.outgoing_total)},
          {"incoming_total", amount(e.incoming_total)},
          {"net", amount(e.net)},
          {"count", e.count},
          {"amounts_unknown", e.amounts_unknown}};
}

tl::expected<NetPositionChanged, MessageError> decode_net_position_changed(const Json& data) {
  if (!data.is_object()) return invalid("NetPositionChanged data is not an object");
  NetPositionChanged out;
  const auto date = data.find("settlement_date");
  if (date == data.end() || !date->is_string())
    return invalid("NetPositionChanged.settlement_date is missing");
  out.settlement_date = date->get<std::string>();
  std::int64_t* totals[] = {&out.outgoing_total, &out.incoming_total, &out.net};
  const char* names[] = {"outgoing_total", "incoming_total", "net"};
  std::size_t nulls = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto it = data.find(names[i]);
    if (it == data.end())
      return invalid(std::string("NetPositionChanged.") + names[i] + " is missing");
    if (it->is_null()) {
      ++nulls;
      continue;
    }
    auto amount = payments::decode_amount(*it, "NetPositionChanged.", names[i]);
    if (!amount) return tl::unexpected(amount.error());
    if (!out.currency.empty() && amount->currency != out.currency)
      return invalid(std::string("NetPositionChanged.") + names[i] + ".currency differs");
    out.currency = amount->currency;
    *totals[i] = amount->minor_units;
  }
  if (nulls != 0 && nulls != 3)
    return invalid("NetPositionChanged totals are null only all together");
  const auto count = integer_of(data, "count");
  if (!count) return invalid("NetPositionChanged.count is not an integer");
  const auto unknown = integer_of(data, "amounts_unknown");
  if (!unknown) return invalid("NetPositionChanged.amounts_unknown is not an integer");
  out.count = *count;
  out.amounts_unknown = *unknown;
  return out;
}

tl::expected<NetPositionChanged, MessageError> fold_position(const Json& delta, Json& state) {
  const auto date = delta.find("settlement_date");
  const auto direction = delta.find("direction");
  if (date == delta.end() || !date->is_string() || direction == delta.end() ||
      !direction->is_string())
    return invalid("PositionDelta has no settlement_date or direction");
  const bool outgoing = direction->get<std::string>() == "outgoing";
  NetPositionChanged out;
  out.settlement_date = date->get<std::string>();
  out.outgoing_total = integer_of(state, "outgoing_total").value_or(0);
  out.incoming_total = integer_of(state, "incoming_total").value_or(0);
  out.count = integer_of(state, "count").value_or(0) + 1;
  out.amounts_unknown = integer_of(state, "amounts_unknown").value_or(0);
  if (const auto c = state.find("currency"); c != state.end() && c->is_string())
    out.currency = c->get<std::string>();
  const auto amount = delta.find("amount");
  if (amount == delta.end() || amount->is_null()) {
    ++out.amounts_unknown;
  } else {
    auto decoded = payments::decode_amount(*amount, "PositionDelta.", "amount");
    if (!decoded) return tl::unexpected(decoded.error());
    if (!out.currency.empty() && decoded->currency != out.currency)
      return invalid("PositionDelta.amount.currency differs from the day's " + out.currency);
    out.currency = decoded->currency;
    (outgoing ? out.outgoing_total : out.incoming_total) += decoded->minor_units;
  }
  out.net = out.incoming_total - out.outgoing_total;
  state = {{"outgoing_total", out.outgoing_total},
           {"incoming_total", out.incoming_total},
           {"count", out.count},
           {"amounts_unknown", out.amounts_unknown},
           {"currency", out.currency}};
  return out;
}

}  // namespace clearing::external_streams::positions
