#pragma once
// Countries and bank accounts as the clearing of one country knows them: an IBAN
// (ISO 13616) or the national BBAN format of docs/streams.md. Validation is pure and
// total: every input gets either an Account or a typed AccountError, never an exception.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/base/country.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::sagas {

// The one country type and its codes (clearing/base/country.hpp), under the names the
// domain has always used: parse_country accepts "DK" or "dk", country_code gives "DK",
// country_code_lower "dk".
using base::Country;
using base::country_code;
using base::country_code_lower;
using base::parse_country;

// DKK, SEK, NOK, EUR, as the domain's Currency.
Currency country_currency(Country country) noexcept;

enum class AccountScheme { iban, bban };

// "IBAN" / "BBAN", the names of the wire contract.
std::string_view scheme_name(AccountScheme scheme) noexcept;
// Accepts "IBAN"/"iban" and "BBAN"/"bban".
std::optional<AccountScheme> parse_scheme(std::string_view name) noexcept;

struct Account {
  AccountScheme scheme = AccountScheme::iban;
  std::string id;
  friend bool operator==(const Account&, const Account&) = default;
};

enum class AccountError {
  empty,              // no account id at all
  invalid_character,  // something other than the format's letters, digits and '-'
  wrong_country,      // an IBAN of another country than the adapter's
  wrong_length,       // IBAN length of the country, or a BBAN part too long or short
  invalid_format,     // not the national BBAN layout (e.g. the '-' missing)
  checksum_mismatch,  // IBAN MOD-97 or Norwegian MOD-11 check failed
  scheme_not_used,    // a scheme the country's accounts do not come in (a BBAN in Finland)
};

// A short English sentence for people; never contains the account number.
std::string_view account_error_message(AccountError error) noexcept;

// The account rules of one country: the registry (src/account.cpp) holds one entry per
// country, and adding a country adds its entry here with its tests (account_test.cpp).
struct AccountRules {
  Country country;
  // The IBAN's length in the country (ISO 13616's registry); every IBAN here is digits after
  // the country code and passes MOD-97.
  std::size_t iban_length = 0;
  // A national check of the BBAN an IBAN carries (after the check digits), or none.
  bool (*iban_national_check)(std::string_view bban) noexcept = nullptr;
  // The national BBAN format and its checks, or none: the country's accounts are IBANs only.
  tl::expected<void, AccountError> (*validate_bban)(std::string_view id) = nullptr;

  bool has_rule(AccountScheme scheme) const noexcept {
    return scheme == AccountScheme::iban ? iban_length > 0 : validate_bban != nullptr;
  }
};

// The registry's entry of `country`, or nullptr when it has none (a country of base's table
// whose account rules are not written yet: every account of it is refused).
const AccountRules* account_rules(Country country) noexcept;
// Whether the registry has a rule for accounts of `scheme` in `country`.
bool has_account_rule(Country country, AccountScheme scheme) noexcept;

// Checks `account` against the rules of `country` (the registry):
//  - IBAN: upper-case electronic form (no spaces), country code = `country`, length
//    DK 18 / SE 24 / NO 15 / FI 18, digits after the country code, MOD-97 = 1; for NO also
//    the MOD-11 check digit of the embedded BBAN.
//  - BBAN: DK "rrrr-a{1,10}", SE "c{4,5}-a{1,10}", NO 11 digits with MOD-11; none in FI
//    (scheme_not_used).
tl::expected<void, AccountError> validate_account(Country country, const Account& account);

// IBAN check digits (ISO 13616: ISO 7064 MOD 97-10), the one computation of them for the
// validator above and for those who make IBANs (core-sim's generator, the clearing mock).
// Characters are read as ISO 13616 reads them: digits as 0..9, the upper-case letters A..Z as
// 10..35; any other character (lower case, a space, '-', a non-ASCII byte) is the error
// invalid_character. Nothing else is checked (country, length: validate_account does).
//
// The remainder modulo 97 (0..96) of an IBAN in electronic form, its first four characters
// (country code, check digits) moved to the end: 1 when its check digits are right; a
// changed digit, or two different adjacent digits swapped, always gives another remainder.
// empty for "", wrong_length for 1 to 4 characters (nothing after the check digits).
tl::expected<int, AccountError> iban_mod97(std::string_view iban) noexcept;
// The check digits (2..98, written as two digits: "02".."98") that make
// country_code(country) + check digits + `bban` an IBAN whose iban_mod97 is 1. empty for "".
tl::expected<int, AccountError> iban_check_digits(Country country, std::string_view bban) noexcept;

// The MOD-11 check digit of a Norwegian account number's first ten digits (weights
// 5,4,3,2,7,6,5,4,3,2; 11 - sum mod 11, 0 for a remainder of 0), the one computation for the
// validator and for those who make Norwegian numbers (core-sim's generator, the clearing mock).
// nullopt when no digit is valid (a remainder of 1), or `first_ten` is not ten ASCII digits.
std::optional<int> norwegian_check_digit(std::string_view first_ten) noexcept;

// The scheme of account text as it arrives from outside (the clearing API and the operators'
// corrections carry bare account text): two leading ASCII letters, of either case, mean IBAN;
// anything else (digits first, one character, "", a non-ASCII byte) BBAN. The one rule for
// it: a guess, not a judgement (validate_account judges; "dk50..." is an IBAN with an
// invalid character).
AccountScheme account_scheme_of_text(std::string_view text) noexcept;

// Text as it arrives from outside: its scheme by account_scheme_of_text, then
// validate_account. The text is taken as is (no trimming, no case folding), so what is
// validated is what is sent.
tl::expected<Account, AccountError> parse_account_text(Country country, std::string_view text);

// For logs, which must never carry full account numbers: "****" plus the last four
// characters ("****6243"); ids of four characters or fewer are masked entirely.
std::string mask_account(std::string_view id);

}  // namespace clearing::sagas
