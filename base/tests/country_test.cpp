#include "clearing/base/country.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace clearing::base;

TEST_CASE("parse_country accepts the upper- and the lower-case code of each country") {
  CHECK(parse_country("DK") == Country::dk);
  CHECK(parse_country("dk") == Country::dk);
  CHECK(parse_country("SE") == Country::se);
  CHECK(parse_country("se") == Country::se);
  CHECK(parse_country("NO") == Country::no);
  CHECK(parse_country("no") == Country::no);
}

TEST_CASE("parse_country refuses other countries, mixed case and near misses") {
  for (const char* text : {"", "GB", "FI", "Dk", "dK", "D", "DKK", " DK", "DK ", "dk."}) {
    CAPTURE(text);
    CHECK_FALSE(parse_country(text).has_value());
  }
}

TEST_CASE("each country's codes and currency") {
  CHECK(country_code(Country::dk) == "DK");
  CHECK(country_code(Country::se) == "SE");
  CHECK(country_code(Country::no) == "NO");
  CHECK(country_code_lower(Country::dk) == "dk");
  CHECK(country_code_lower(Country::se) == "se");
  CHECK(country_code_lower(Country::no) == "no");
  CHECK(country_currency_code(Country::dk) == "DKK");
  CHECK(country_currency_code(Country::se) == "SEK");
  CHECK(country_currency_code(Country::no) == "NOK");
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
