#include "clearing/base/country.hpp"

#include <cstddef>

#include "clearing/base/assert.hpp"

namespace clearing::base {
namespace {

struct CountryFacts {
  std::string_view upper;
  std::string_view lower;
  std::string_view currency;  // ISO 4217
  int minor_units;            // ISO 4217's minor units of that currency
};

// One row per country, in the order of kCountries; the only table of these facts.
constexpr std::array<CountryFacts, kCountries.size()> kFacts{{
    {"DK", "dk", "DKK", 2},
    {"SE", "se", "SEK", 2},
    {"NO", "no", "NOK", 2},
    {"FI", "fi", "EUR", 2},
}};

constexpr const CountryFacts& facts_of(Country country) noexcept {
  const auto index = country.index();
  // Only the constants of country.hpp make a Country: a programming error otherwise.
  CLEARING_ASSERT(index < kFacts.size());
  return kFacts[index];
}

constexpr bool table_follows_constants() {
  for (std::size_t i = 0; i < kCountries.size(); ++i)
    if (kCountries[i].index() != i) return false;
  return facts_of(Country::dk).upper == "DK" && facts_of(Country::se).upper == "SE" &&
         facts_of(Country::no).upper == "NO" && facts_of(Country::fi).upper == "FI";
}
static_assert(table_follows_constants(), "kFacts follows the order of kCountries");

}  // namespace

std::optional<Country> parse_country(std::string_view code) noexcept {
  for (const auto country : kCountries)
    if (code == facts_of(country).upper || code == facts_of(country).lower) return country;
  return std::nullopt;
}

std::string_view country_code(Country country) noexcept { return facts_of(country).upper; }

std::string_view country_code_lower(Country country) noexcept { return facts_of(country).lower; }

std::string_view country_currency_code(Country country) noexcept {
  return facts_of(country).currency;
}

int country_currency_minor_units(Country country) noexcept { return facts_of(country).minor_units; }

std::vector<std::string> country_codes_lower() {
  std::vector<std::string> out;
  for (const auto country : kCountries) out.emplace_back(country_code_lower(country));
  return out;
}

std::string country_codes_lower_text() {
  std::string out;
  for (const auto country : kCountries)
    out += (out.empty() ? "" : ", ") + std::string(country_code_lower(country));
  return out;
}

}  // namespace clearing::base
