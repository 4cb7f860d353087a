#pragma once
// The countries the adapter serves, one value type for every module: config/ reads the code
// from a country file, sagas/ validates accounts and currencies by it, the tools generate
// data for it. A Country is its ISO 3166 code; what base knows of each (its codes, its ISO 4217
// currency and that currency's minor units) is one table, src/country.cpp, the only place that
// lists the countries. What a country means for accounts (sagas/account.hpp: the account-rule
// registry) or the calendar (its config file) stays with the module that knows it.
//
// Adding a country: its constant and kCountries entry below with its row in that table, its
// account-rule entry in sagas/src/account.cpp (with tests) and its config file (README,
// "Adding a country"). Nothing else lists the countries.
//
// Thread safety: immutable values and pure functions of their arguments.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clearing::base {

class Country {
 public:
  // The countries by name, for code and tests that mean one of them (Country::dk).
  static const Country dk;
  static const Country se;
  static const Country no;
  static const Country fi;

  // Its row in the table (src/country.cpp). Only the constants below make a Country (and
  // parse_country returns one of them), so every value has a row.
  constexpr std::size_t index() const noexcept { return index_; }
  friend constexpr bool operator==(Country, Country) = default;

 private:
  constexpr explicit Country(std::uint8_t index) noexcept : index_(index) {}
  std::uint8_t index_ = 0;
};

// The rows of the table, in its order: Country::dk, se, no, fi.
inline constexpr Country Country::dk{0};
inline constexpr Country Country::se{1};
inline constexpr Country Country::no{2};
inline constexpr Country Country::fi{3};

// Every country the table knows, in its order.
inline constexpr std::array<Country, 4> kCountries{Country::dk, Country::se, Country::no,
                                                   Country::fi};

// Accepts the upper-case ("DK") or the lower-case ("dk") code of a known country; nullopt for
// anything else, mixed case ("Dk") included.
std::optional<Country> parse_country(std::string_view code) noexcept;
// "DK", "SE", "NO", "FI": the ISO 3166 code as IBANs and the country files carry it.
std::string_view country_code(Country country) noexcept;
// "dk", "se", "no", "fi": as stream names and config file names carry it.
std::string_view country_code_lower(Country country) noexcept;
// "DKK", "SEK", "NOK", "EUR": the ISO 4217 code of the country's currency.
std::string_view country_currency_code(Country country) noexcept;
// The ISO 4217 minor units of that currency: 2 for all four (amounts are in øre, öre, cents).
int country_currency_minor_units(Country country) noexcept;
// Every known country's lower-case code in table order ("dk", "se", "no", "fi"), for the
// tools' --country choices; and the same joined with ", " for their help and messages.
std::vector<std::string> country_codes_lower();
std::string country_codes_lower_text();

}  // namespace clearing::base
