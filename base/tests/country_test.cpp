#include "clearing/base/country.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace clearing::base;

TEST_CASE("parse_country accepts the upper- and the lower-case code of each country") {
  for (const auto& [text, country] :
       {std::pair{"DK", Country::dk}, std::pair{"dk", Country::dk}, std::pair{"SE", Country::se},
        std::pair{"se", Country::se}, std::pair{"NO", Country::no}, std::pair{"no", Country::no},
        std::pair{"FI", Country::fi}, std::pair{"fi", Country::fi}}) {
    CAPTURE(text);
    CHECK(parse_country(text) == country);
  }
}

TEST_CASE("parse_country refuses other countries, mixed case and near misses") {
  for (const char* text : {"", "GB", "EE", "Fi", "Dk", "dK", "D", "DKK", " DK", "DK ", "dk."}) {
    CAPTURE(text);
    CHECK_FALSE(parse_country(text).has_value());
  }
}

TEST_CASE("each country's codes and currency") {
  struct Codes {
    Country country;
    const char* code;
    const char* code_lower;
    const char* currency;
  };
  for (const auto& expected :
       {Codes{Country::dk, "DK", "dk", "DKK"}, Codes{Country::se, "SE", "se", "SEK"},
        Codes{Country::no, "NO", "no", "NOK"}, Codes{Country::fi, "FI", "fi", "EUR"}}) {
    CAPTURE(expected.code);
    CHECK(country_code(expected.country) == expected.code);
    CHECK(country_code_lower(expected.country) == expected.code_lower);
    CHECK(country_currency_code(expected.country) == expected.currency);
    CHECK(country_currency_minor_units(expected.country) == 2);
  }
}

TEST_CASE("every country's codes parse back to it, and no two countries share a name") {
  std::set<std::string> names;
  for (const auto country : kCountries) {
    CAPTURE(country_code(country));
    CHECK(parse_country(country_code(country)) == country);
    CHECK(parse_country(country_code_lower(country)) == country);
    names.emplace(country_code(country));
    names.emplace(country_currency_code(country));
  }
  CHECK(names.size() == 2 * kCountries.size());
}
