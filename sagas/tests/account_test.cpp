#include "clearing/sagas/account.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>

using namespace clearing::sagas;

namespace {

AccountError error_of(Country country, AccountScheme scheme, std::string id) {
  const auto result = validate_account(country, Account{scheme, std::move(id)});
  REQUIRE_FALSE(result.has_value());
  return result.error();
}

bool valid(Country country, AccountScheme scheme, std::string id) {
  return validate_account(country, Account{scheme, std::move(id)}).has_value();
}

std::string swapped(std::string text, std::size_t i) {
  std::swap(text[i], text[i + 1]);
  return text;
}

std::string changed(std::string text, std::size_t i) {
  text[i] = text[i] == '9' ? '0' : static_cast<char>(text[i] + 1);
  return text;
}

// "<code><check digits, two of them><bban>".
std::string iban_of(std::string code, int check, const std::string& bban) {
  return code + (check < 10 ? "0" : "") + std::to_string(check) + bban;
}

constexpr auto kIban = AccountScheme::iban;
constexpr auto kBban = AccountScheme::bban;

}  // namespace

TEST_CASE("countries parse in both cases and know their currency") {
  CHECK(parse_country("DK") == Country::dk);
  CHECK(parse_country("se") == Country::se);
  CHECK(parse_country("NO") == Country::no);
  CHECK_FALSE(parse_country("GB").has_value());
  CHECK_FALSE(parse_country("Dk").has_value());
  CHECK(country_code(Country::se) == "SE");
  CHECK(country_code_lower(Country::no) == "no");
  CHECK(country_currency(Country::dk).code() == "DKK");
  CHECK(country_currency(Country::se).code() == "SEK");
  CHECK(country_currency(Country::no).code() == "NOK");
  CHECK(parse_country("FI") == Country::fi);
  CHECK(country_currency(Country::fi).code() == "EUR");
  CHECK(parse_scheme("IBAN") == AccountScheme::iban);
  CHECK(parse_scheme("bban") == AccountScheme::bban);
  CHECK(scheme_name(AccountScheme::bban) == "BBAN");
}

TEST_CASE("given the published IBAN examples, each is valid in its own country only") {
  CHECK(valid(Country::dk, kIban, "DK5000400440116243"));
  CHECK(valid(Country::se, kIban, "SE4550000000058398257466"));
  CHECK(valid(Country::no, kIban, "NO9386011117947"));
  CHECK(error_of(Country::se, kIban, "DK5000400440116243") == AccountError::wrong_country);
  CHECK(error_of(Country::dk, kIban, "NO9386011117947") == AccountError::wrong_country);
  // A valid British IBAN is still the wrong country for every adapter.
  CHECK(error_of(Country::dk, kIban, "GB82WEST12345698765432") == AccountError::wrong_country);
}

TEST_CASE("when one IBAN digit changes, MOD-97 catches it at every position") {
  const std::string iban = "DK5000400440116243";
  for (std::size_t i = 2; i < iban.size(); ++i) {
    CAPTURE(i);
    CHECK(error_of(Country::dk, kIban, changed(iban, i)) == AccountError::checksum_mismatch);
  }
}

TEST_CASE("when two different adjacent IBAN digits are swapped, MOD-97 catches it") {
  const std::string iban = "SE4550000000058398257466";
  int swaps_checked = 0;
  for (std::size_t i = 2; i + 1 < iban.size(); ++i) {
    if (iban[i] == iban[i + 1]) continue;
    CAPTURE(i);
    CHECK(error_of(Country::se, kIban, swapped(iban, i)) == AccountError::checksum_mismatch);
    ++swaps_checked;
  }
  CHECK(swaps_checked > 10);
}

TEST_CASE("iban_check_digits gives the printed check digits of each country's published IBAN") {
  // The IBAN registry's examples.
  const std::pair<Country, std::string> known[] = {
      {Country::dk, "DK5000400440116243"},
      {Country::se, "SE4550000000058398257466"},
      {Country::no, "NO9386011117947"},
      {Country::fi, "FI2112345600000785"},
  };
  for (const auto& [country, iban] : known) {
    CAPTURE(iban);
    CHECK(iban_check_digits(country, iban.substr(4)) == std::stoi(iban.substr(2, 2)));
    CHECK(iban_mod97(iban) == 1);
  }
  // Another country's code gives other check digits for the same BBAN.
  CHECK(iban_check_digits(Country::fi, "00400440116243") != 50);
  // Letters count as 10..35: a British IBAN, whose BBAN starts with its bank's letters.
  CHECK(iban_mod97("GB82WEST12345698765432") == 1);
}

TEST_CASE("when one digit changes, iban_mod97 gives another remainder, at every position") {
  for (const std::string iban : {"DK5000400440116243", "SE4550000000058398257466",
                                 "NO9386011117947", "FI2112345600000785"}) {
    for (std::size_t i = 2; i < iban.size(); ++i) {
      CAPTURE(iban);
      CAPTURE(i);
      const auto remainder = iban_mod97(changed(iban, i));
      REQUIRE(remainder.has_value());
      CHECK(*remainder != 1);
    }
  }
  // And the check digits of a changed BBAN are others.
  CHECK(iban_check_digits(Country::dk, "00400440116244") != 50);
}

TEST_CASE("iban_check_digits makes check digits 2..98 that iban_mod97 accepts") {
  for (int n = 0; n < 2000; ++n) {
    const std::string number = std::to_string(n * 7919);
    const std::string bban = std::string(14 - number.size(), '0') + number;
    CAPTURE(bban);
    const auto check = iban_check_digits(Country::fi, bban);
    REQUIRE(check.has_value());
    CHECK(*check >= 2);
    CHECK(*check <= 98);
    const auto iban = iban_of("FI", *check, bban);
    CHECK(iban_mod97(iban) == 1);
    CHECK(valid(Country::fi, kIban, iban));
  }
  // Upper-case letters in a BBAN are read like the British one's.
  const auto with_letters = iban_check_digits(Country::dk, "WEST12345698765432");
  REQUIRE(with_letters.has_value());
  CHECK(iban_mod97(iban_of("DK", *with_letters, "WEST12345698765432")) == 1);
}

TEST_CASE("iban_mod97 and iban_check_digits refuse empty, short and non-alphanumeric input") {
  CHECK(iban_mod97("").error() == AccountError::empty);
  CHECK(iban_mod97("D").error() == AccountError::wrong_length);
  CHECK(iban_mod97("DK50").error() == AccountError::wrong_length);
  CHECK(iban_mod97("DK500").has_value());
  CHECK(iban_mod97("dk5000400440116243").error() == AccountError::invalid_character);
  CHECK(iban_mod97("DK50 0040 0440 1162 43").error() == AccountError::invalid_character);
  CHECK(iban_mod97("DK5000400440116-43").error() == AccountError::invalid_character);
  CHECK(iban_mod97("DK50004004401162\xC3\xA9").error() == AccountError::invalid_character);
  CHECK(iban_mod97(std::string("DK50") + '\0' + "04004401162").error() ==
        AccountError::invalid_character);
  CHECK(iban_check_digits(Country::dk, "").error() == AccountError::empty);
  CHECK(iban_check_digits(Country::dk, "0040 0440116243").error() ==
        AccountError::invalid_character);
  CHECK(iban_check_digits(Country::dk, "west12345698765432").error() ==
        AccountError::invalid_character);
}

TEST_CASE("IBANs of the wrong length, with spaces, lower case or letters are refused") {
  CHECK(error_of(Country::dk, kIban, "DK500040044011624") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kIban, "DK50004004401162430") == AccountError::wrong_length);
  CHECK(error_of(Country::no, kIban, "NO938601111794") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kIban, "DK50 0040 0440 1162 43") == AccountError::invalid_character);
  CHECK(error_of(Country::dk, kIban, "dk5000400440116243") == AccountError::invalid_character);
  CHECK(error_of(Country::dk, kIban, "DK50004004401162A3") == AccountError::invalid_character);
  CHECK(error_of(Country::dk, kIban, "") == AccountError::empty);
  CHECK(error_of(Country::dk, kIban, "D") == AccountError::wrong_length);
}

TEST_CASE("a Norwegian IBAN must also pass the MOD-11 of its embedded BBAN") {
  // NO66 8601 1117 948: right MOD-97 check digits for a BBAN whose MOD-11 digit is wrong
  // (86011117947 is the valid one), so only the national check can refuse it.
  const std::string iban = "NO6686011117948";
  REQUIRE(iban_mod97(iban) == 1);
  CHECK(error_of(Country::no, kIban, iban) == AccountError::checksum_mismatch);
}

TEST_CASE("Danish BBAN: 4-digit registration number, '-', 1 to 10 digit account") {
  CHECK(valid(Country::dk, kBban, "5301-0001234567"));
  CHECK(valid(Country::dk, kBban, "0040-1"));
  CHECK(error_of(Country::dk, kBban, "530-0001234567") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kBban, "53011-0001234567") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kBban, "5301-00012345678") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kBban, "5301-") == AccountError::wrong_length);
  CHECK(error_of(Country::dk, kBban, "53010001234567") == AccountError::invalid_format);
  CHECK(error_of(Country::dk, kBban, "5301-0001-234567") == AccountError::invalid_format);
  CHECK(error_of(Country::dk, kBban, "5301-00012A4567") == AccountError::invalid_character);
}

TEST_CASE("Swedish BBAN: 4 or 5 digit clearing number, '-', 1 to 10 digit account") {
  CHECK(valid(Country::se, kBban, "8327-9123456789"));
  CHECK(valid(Country::se, kBban, "83279-123456789"));
  CHECK(error_of(Country::se, kBban, "832-9123456789") == AccountError::wrong_length);
  CHECK(error_of(Country::se, kBban, "832791-23456789") == AccountError::wrong_length);
  CHECK(error_of(Country::se, kBban, "8327 9123456789") == AccountError::invalid_character);
}

TEST_CASE("Norwegian BBAN: 11 digits with a MOD-11 check digit") {
  CHECK(valid(Country::no, kBban, "86011117947"));
  CHECK(error_of(Country::no, kBban, "8601111794") == AccountError::wrong_length);
  CHECK(error_of(Country::no, kBban, "8601.11.17947") == AccountError::invalid_character);
  CHECK(error_of(Country::no, kBban, "86011117946") == AccountError::checksum_mismatch);
  const std::string bban = "86011117947";
  for (std::size_t i = 0; i < bban.size(); ++i) {
    CAPTURE(i);
    CHECK(error_of(Country::no, kBban, changed(bban, i)) == AccountError::checksum_mismatch);
  }
  for (std::size_t i = 0; i + 1 < bban.size(); ++i) {
    if (bban[i] == bban[i + 1]) continue;
    CAPTURE(i);
    CHECK(error_of(Country::no, kBban, swapped(bban, i)) == AccountError::checksum_mismatch);
  }
}

TEST_CASE("a Norwegian number whose remainder is 1 has no valid check digit") {
  // 0000000001x: sum = 1 * 2 = 2, remainder 2, check digit 9.
  CHECK(valid(Country::no, kBban, "00000000019"));
  // 0000000040x: sum = 4 * 3 = 12, remainder 1: no check digit can make it valid.
  for (char check = '0'; check <= '9'; ++check) {
    CHECK(error_of(Country::no, kBban, std::string("0000000040") + check) ==
          AccountError::checksum_mismatch);
  }
}

TEST_CASE("norwegian_check_digit: the digit the validator checks, nullopt where none is valid") {
  CHECK(norwegian_check_digit("8601111794") == 7);
  CHECK(norwegian_check_digit("0000000001") == 9);
  CHECK(norwegian_check_digit("0000000000") == 0);                // remainder 0: check digit 0
  CHECK_FALSE(norwegian_check_digit("0000000040").has_value());   // remainder 1
  CHECK_FALSE(norwegian_check_digit("860111179").has_value());    // nine digits
  CHECK_FALSE(norwegian_check_digit("86011117947").has_value());  // eleven
  CHECK_FALSE(norwegian_check_digit("860111179a").has_value());
  CHECK_FALSE(norwegian_check_digit("").has_value());
  // Every ten digits of a sweep: the validator accepts exactly the computed digit appended.
  for (int n = 0; n < 2000; ++n) {
    const auto ten = std::to_string(1'000'000'000LL + n * 4'999'963LL % 1'000'000'000LL);
    CAPTURE(ten);
    const auto check = norwegian_check_digit(ten);
    for (char c = '0'; c <= '9'; ++c)
      CHECK(valid(Country::no, kBban, ten + c) == (check && *check == c - '0'));
  }
}

TEST_CASE("Finnish IBAN: FI, two check digits and 14 digits, 18 characters, MOD-97") {
  // The IBAN registry's example (FI21 1234 5600 0007 85) and the published examples of
  // Nordea (FI14 1009 3000 1234 58), Aktia (FI55 4234 5670 0000 81) and OP (FI49 5000 9420
  // 0287 30).
  for (const char* iban :
       {"FI2112345600000785", "FI1410093000123458", "FI5542345670000081", "FI4950009420028730"}) {
    CAPTURE(iban);
    CHECK(valid(Country::fi, kIban, iban));
    CHECK(parse_account_text(Country::fi, iban).has_value());
    CHECK(error_of(Country::dk, kIban, iban) == AccountError::wrong_country);
  }
  // Wrong check digits, a changed last digit, two digits swapped.
  CHECK(error_of(Country::fi, kIban, "FI2212345600000785") == AccountError::checksum_mismatch);
  CHECK(error_of(Country::fi, kIban, "FI2112345600000786") == AccountError::checksum_mismatch);
  CHECK(error_of(Country::fi, kIban, "FI1410093000123485") == AccountError::checksum_mismatch);
  const std::string iban = "FI2112345600000785";
  for (std::size_t i = 2; i < iban.size(); ++i) {
    CAPTURE(i);
    CHECK(error_of(Country::fi, kIban, changed(iban, i)) == AccountError::checksum_mismatch);
  }
  // Wrong length: one digit short, one too many, a Danish-length body is still FI's 18 only.
  CHECK(error_of(Country::fi, kIban, "FI211234560000078") == AccountError::wrong_length);
  CHECK(error_of(Country::fi, kIban, "FI21123456000007850") == AccountError::wrong_length);
  // Letters, spaces (the paper form) and lower case.
  CHECK(error_of(Country::fi, kIban, "FI21123456000007A5") == AccountError::invalid_character);
  CHECK(error_of(Country::fi, kIban, "FI21 1234 5600 0007 85") == AccountError::invalid_character);
  CHECK(error_of(Country::fi, kIban, "fi2112345600000785") == AccountError::invalid_character);
  // Another country's valid IBAN.
  CHECK(error_of(Country::fi, kIban, "DK5000400440116243") == AccountError::wrong_country);
  CHECK(error_of(Country::fi, kIban, "") == AccountError::empty);
}

TEST_CASE("Finland has no national BBAN scheme: a BBAN is refused, whatever it looks like") {
  for (const char* bban : {"123456-785", "12345600000785", "5301-0001234567", "86011117947"}) {
    CAPTURE(bban);
    CHECK(error_of(Country::fi, kBban, bban) == AccountError::scheme_not_used);
  }
  CHECK(parse_account_text(Country::fi, "12345600000785").error() == AccountError::scheme_not_used);
}

TEST_CASE("the registry has an entry for every country, with the IBAN lengths of ISO 13616") {
  for (const auto country : clearing::base::kCountries) {
    CAPTURE(country_code(country));
    const auto* rules = account_rules(country);
    REQUIRE(rules != nullptr);
    CHECK(rules->country == country);
    CHECK(has_account_rule(country, kIban));
  }
  CHECK(account_rules(Country::dk)->iban_length == 18);
  CHECK(account_rules(Country::se)->iban_length == 24);
  CHECK(account_rules(Country::no)->iban_length == 15);
  CHECK(account_rules(Country::fi)->iban_length == 18);
  CHECK(has_account_rule(Country::dk, kBban));
  CHECK(has_account_rule(Country::se, kBban));
  CHECK(has_account_rule(Country::no, kBban));
  CHECK_FALSE(has_account_rule(Country::fi, kBban));
}

TEST_CASE("parse_account_text detects the scheme from two leading letters") {
  const auto iban = parse_account_text(Country::dk, "DK5000400440116243");
  REQUIRE(iban.has_value());
  CHECK(iban->scheme == AccountScheme::iban);
  CHECK(iban->id == "DK5000400440116243");
  const auto bban = parse_account_text(Country::dk, "5301-0001234567");
  REQUIRE(bban.has_value());
  CHECK(bban->scheme == AccountScheme::bban);
  CHECK(parse_account_text(Country::dk, "GB82WEST12345698765432").error() ==
        AccountError::wrong_country);
  CHECK(parse_account_text(Country::no, "86011117946").error() == AccountError::checksum_mismatch);
  CHECK(parse_account_text(Country::se, "").error() == AccountError::empty);
}

TEST_CASE("account_scheme_of_text: two leading ASCII letters of either case mean IBAN") {
  for (const char* text :
       {"DK5000400440116243", "dk5000400440116243", "Dk", "GB82WEST", "NO93 8601 1117 947"}) {
    CAPTURE(text);
    CHECK(account_scheme_of_text(text) == AccountScheme::iban);
  }
  for (const char* text : {"", "D", "5301-0001234567", "86011117947", "D1K", "1DK", " DK50",
                           "\xC3\x85K5000400440116243"}) {
    CAPTURE(text);
    CHECK(account_scheme_of_text(text) == AccountScheme::bban);
  }
  // The guess is not a judgement: lower case is an IBAN, refused by the IBAN rule.
  CHECK(parse_account_text(Country::dk, "dk5000400440116243").error() ==
        AccountError::invalid_character);
}

TEST_CASE("every account error has a message that carries no account number") {
  for (auto error : {AccountError::empty, AccountError::invalid_character,
                     AccountError::wrong_country, AccountError::wrong_length,
                     AccountError::invalid_format, AccountError::checksum_mismatch}) {
    CHECK_FALSE(account_error_message(error).empty());
  }
}

TEST_CASE("mask_account keeps only the last four characters") {
  CHECK(mask_account("DK5000400440116243") == "****6243");
  CHECK(mask_account("5301-0001234567") == "****4567");
  CHECK(mask_account("1234") == "****");
  CHECK(mask_account("") == "****");
}
