#pragma once
// Money is integer minor units plus an ISO 4217 currency, never floating point: a
// rounding error in a payment is a wrong payment.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clearing::sagas {

// An ISO 4217 alphabetic code: exactly three upper-case ASCII letters. Only
// well-formed codes can be built; whether a currency is accepted is a rule of the
// country (CountryRules), not of this type.
class Currency {
 public:
  // "XXX" is ISO 4217's "no currency": a safe default that no country accepts.
  constexpr Currency() = default;

  // nullopt unless `code` is three upper-case letters.
  static std::optional<Currency> parse(std::string_view code) noexcept;

  std::string_view code() const noexcept { return {code_.data(), code_.size()}; }
  friend bool operator==(const Currency&, const Currency&) = default;

 private:
  std::array<char, 3> code_{'X', 'X', 'X'};
};

struct Money {
  std::int64_t minor_units = 0;
  Currency currency;
  friend bool operator==(const Money&, const Money&) = default;
};

// "125000 DKK": for reasons and messages; minor units are kept as they are, so the
// text never suggests a precision the amount does not have.
std::string to_string(const Money& money);

}  // namespace clearing::sagas
