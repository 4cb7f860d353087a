#include "clearing/sagas/money.hpp"

#include <doctest/doctest.h>

using namespace clearing::sagas;

TEST_CASE("Currency accepts exactly three upper-case letters") {
  REQUIRE(Currency::parse("DKK").has_value());
  CHECK(Currency::parse("DKK")->code() == "DKK");
  CHECK_FALSE(Currency::parse("dkk").has_value());
  CHECK_FALSE(Currency::parse("DK").has_value());
  CHECK_FALSE(Currency::parse("DKKK").has_value());
  CHECK_FALSE(Currency::parse("D1K").has_value());
  CHECK_FALSE(Currency::parse("").has_value());
}

TEST_CASE("a default Currency is ISO 4217 'no currency', equal only to itself") {
  CHECK(Currency{}.code() == "XXX");
  CHECK(Currency{} == *Currency::parse("XXX"));
  CHECK(Currency{} != *Currency::parse("SEK"));
}

TEST_CASE("Money compares amount and currency and prints minor units") {
  const Money a{125000, *Currency::parse("DKK")};
  CHECK(a == Money{125000, *Currency::parse("DKK")});
  CHECK(a != Money{125000, *Currency::parse("SEK")});
  CHECK(a != Money{125001, *Currency::parse("DKK")});
  CHECK(to_string(a) == "125000 DKK");
}
