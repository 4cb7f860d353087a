#pragma once
// The three countries the adapter serves, one enum for every module: config/ reads the code
// from a country file, sagas/ validates accounts and currencies by it, the tools generate
// data for it. Only the names live here (std only, DESIGN.md section 2); what a country
// means for accounts or the calendar stays with the module that knows it.
//
// Thread safety: pure functions of their arguments.

#include <array>
#include <optional>
#include <string_view>

namespace clearing::base {

enum class Country { dk, se, no };

inline constexpr std::array<Country, 3> kCountries{Country::dk, Country::se, Country::no};

// Accepts the upper-case ("DK") or the lower-case ("dk") code, and the same for SE and NO;
// nullopt for anything else, mixed case ("Dk") included.
std::optional<Country> parse_country(std::string_view code) noexcept;
// "DK", "SE", "NO": the ISO 3166 code as IBANs and the country files carry it.
std::string_view country_code(Country country) noexcept;
// "dk", "se", "no": as stream names and config file names carry it.
std::string_view country_code_lower(Country country) noexcept;
// "DKK", "SEK", "NOK": the ISO 4217 code of the country's currency.
std::string_view country_currency_code(Country country) noexcept;

}  // namespace clearing::base
