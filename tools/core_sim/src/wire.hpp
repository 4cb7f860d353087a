#pragma once
// Private to core-sim: its domain values (sagas::Money, sagas::Account) in the shapes of the
// streams contract, written and read with its one codec (external_streams::payments). The
// core's own account events store money in the same shape, through the same functions.

#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

#include "clearing/base/assert.hpp"
#include "clearing/external_streams/payments_codec.hpp"
#include "clearing/sagas/account.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::core_sim::wire {

namespace payments = external_streams::payments;

inline payments::Amount amount(const sagas::Money& money) {
  return payments::Amount{money.minor_units, std::string(money.currency.code())};
}

inline payments::Party party(std::string name, const sagas::Account& account) {
  return payments::Party{
      std::move(name),
      payments::AccountRef{std::string(sagas::scheme_name(account.scheme)), account.id}};
}

inline nlohmann::json encode_money(const sagas::Money& money) {
  return payments::encode_amount(amount(money));
}

// The amount at data[field] as Money; the message names the field and the rule.
inline tl::expected<sagas::Money, std::string> decode_money(const nlohmann::json& data,
                                                            const char* field) {
  const auto it = data.find(field);
  auto decoded =
      payments::decode_amount(it == data.end() ? nlohmann::json(nullptr) : *it, "", field);
  if (!decoded) return tl::unexpected(decoded.error().message);
  const auto currency = sagas::Currency::parse(decoded->currency);
  CLEARING_ASSERT(currency.has_value());  // the codec has checked it
  return sagas::Money{decoded->minor_units, *currency};
}

}  // namespace clearing::core_sim::wire
