#include "clearing/sagas/money.hpp"

namespace clearing::sagas {

std::optional<Currency> Currency::parse(std::string_view code) noexcept {
  if (code.size() != 3) return std::nullopt;
  Currency currency;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (code[i] < 'A' || code[i] > 'Z') return std::nullopt;
    currency.code_[i] = code[i];
  }
  return currency;
}

std::string to_string(const Money& money) {
  return std::to_string(money.minor_units) + " " + std::string(money.currency.code());
}

}  // namespace clearing::sagas
