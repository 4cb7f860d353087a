#include "clearing/base/country.hpp"

#include <cstddef>

#include "clearing/base/assert.hpp"

namespace clearing::base {
namespace {

struct CountryNames {
  std::string_view upper;
  std::string_view lower;
  std::string_view currency;
};

// One row per country, in the order of the enum; the only table of these names.
constexpr std::array<CountryNames, kCountries.size()> kNames{{
    {"DK", "dk", "DKK"},
    {"SE", "se", "SEK"},
    {"NO", "no", "NOK"},
}};

constexpr const CountryNames& names_of(Country country) noexcept {
  const auto index = static_cast<std::size_t>(country);
  // Only a cast from a wrong integer makes another value: a programming error.
  CLEARING_ASSERT(index < kNames.size());
  return kNames[index];
}

static_assert(names_of(Country::dk).upper == "DK" && names_of(Country::se).upper == "SE" &&
                  names_of(Country::no).upper == "NO",
              "kNames follows the order of the enum");

}  // namespace

std::optional<Country> parse_country(std::string_view code) noexcept {
  for (const auto country : kCountries)
    if (code == names_of(country).upper || code == names_of(country).lower) return country;
  return std::nullopt;
}

std::string_view country_code(Country country) noexcept { return names_of(country).upper; }

std::string_view country_code_lower(Country country) noexcept { return names_of(country).lower; }

std::string_view country_currency_code(Country country) noexcept {
  return names_of(country).currency;
}

}  // namespace clearing::base
