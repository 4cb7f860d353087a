#include "clearing/sagas/account.hpp"

#include <array>
#include <cstddef>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"

namespace clearing::sagas {
namespace {

constexpr std::size_t kIbanCheckedPrefixLength = 4;  // country code + check digits
constexpr std::size_t kNorwegianBbanLength = 11;
constexpr std::size_t kAccountDigitsMax = 10;
constexpr std::size_t kMaskVisibleLength = 4;

// One sentence per error, for people (account.hpp): a table like the name tables.
constexpr base::NameTable<AccountError, 7> kAccountErrorMessages{{
    {AccountError::empty, "account number is missing"},
    {AccountError::invalid_character, "account number contains invalid characters"},
    {AccountError::wrong_country, "IBAN belongs to another country"},
    {AccountError::wrong_length, "account number has the wrong length"},
    {AccountError::invalid_format, "account number is not in the national format"},
    {AccountError::checksum_mismatch, "account number check digits do not match"},
    {AccountError::scheme_not_used, "account scheme is not used in this country"},
}};
static_assert(base::lists_every_enumerator(kAccountErrorMessages, AccountError::scheme_not_used));

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_upper(char c) noexcept { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) noexcept { return c >= 'a' && c <= 'z'; }
bool is_letter(char c) noexcept { return is_upper(c) || is_lower(c); }

bool all_digits(std::string_view text) noexcept {
  for (char c : text)
    if (!is_digit(c)) return false;
  return true;
}

// Feeds `text` into a running ISO 7064 MOD 97-10 remainder, digits as 0..9 and upper-case
// letters as 10..35 (two decimal digits). Digit by digit, so no big integers are needed.
// False at the first other character (the remainder is then of no use).
bool feed_mod97(int& remainder, std::string_view text) noexcept {
  for (char c : text) {
    if (is_digit(c)) {
      remainder = (remainder * 10 + (c - '0')) % 97;
    } else if (is_upper(c)) {
      remainder = (remainder * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return true;
}

// Norwegian account numbers: weights 5,4,3,2,7,6,5,4,3,2 on the first ten digits; the
// check digit is 11 - (sum mod 11), 0 when the remainder is 0, and no valid number has
// remainder 1 (it would need check digit 10).
// `digits` has kNorwegianBbanLength digits.
constexpr std::array<int, 10> kNorwegianWeights{5, 4, 3, 2, 7, 6, 5, 4, 3, 2};

bool norwegian_mod11_ok(std::string_view digits) noexcept {
  const auto check = norwegian_check_digit(digits.substr(0, kNorwegianWeights.size()));
  return check && digits.size() == kNorwegianWeights.size() + 1 &&
         digits[kNorwegianWeights.size()] - '0' == *check;
}

tl::expected<void, AccountError> validate_iban(const AccountRules& rules, std::string_view id) {
  for (char c : id)
    if (!is_upper(c) && !is_digit(c)) return tl::unexpected(AccountError::invalid_character);
  if (id.size() < 2) return tl::unexpected(AccountError::wrong_length);
  if (id.substr(0, 2) != country_code(rules.country))
    return tl::unexpected(AccountError::wrong_country);
  if (id.size() != rules.iban_length) return tl::unexpected(AccountError::wrong_length);
  // The registry's IBANs (DK, SE, NO, FI) are numeric after the country code.
  if (!all_digits(id.substr(2))) return tl::unexpected(AccountError::invalid_character);
  if (iban_mod97(id) != 1) return tl::unexpected(AccountError::checksum_mismatch);
  if (rules.iban_national_check != nullptr &&
      !rules.iban_national_check(id.substr(kIbanCheckedPrefixLength)))
    return tl::unexpected(AccountError::checksum_mismatch);
  return {};
}

// "<first>-<account>" with a first part of first_min..first_max digits and an account
// part of 1..10 digits (DK registration number, SE clearing number).
tl::expected<void, AccountError> validate_dashed_bban(std::string_view id, std::size_t first_min,
                                                      std::size_t first_max) {
  for (char c : id)
    if (!is_digit(c) && c != '-') return tl::unexpected(AccountError::invalid_character);
  const auto dash = id.find('-');
  if (dash == std::string_view::npos || id.find('-', dash + 1) != std::string_view::npos)
    return tl::unexpected(AccountError::invalid_format);
  const auto first = id.substr(0, dash);
  const auto account = id.substr(dash + 1);
  if (first.size() < first_min || first.size() > first_max || account.empty() ||
      account.size() > kAccountDigitsMax)
    return tl::unexpected(AccountError::wrong_length);
  return {};
}

tl::expected<void, AccountError> validate_norwegian_bban(std::string_view id) {
  if (!all_digits(id)) return tl::unexpected(AccountError::invalid_character);
  if (id.size() != kNorwegianBbanLength) return tl::unexpected(AccountError::wrong_length);
  if (!norwegian_mod11_ok(id)) return tl::unexpected(AccountError::checksum_mismatch);
  return {};
}

// DK: registration number of 4 digits; SE: clearing number of 4 or 5 digits.
tl::expected<void, AccountError> validate_danish_bban(std::string_view id) {
  return validate_dashed_bban(id, 4, 4);
}
tl::expected<void, AccountError> validate_swedish_bban(std::string_view id) {
  return validate_dashed_bban(id, 4, 5);
}

// The registry: one entry per country, in no particular order. Adding a country adds its
// entry (and its tests in account_test.cpp); a country without national rules has the IBAN
// length only (FI).
const std::array<AccountRules, 4> kAccountRules{{
    {Country::dk, 18, nullptr, validate_danish_bban},
    {Country::se, 24, nullptr, validate_swedish_bban},
    {Country::no, 15, norwegian_mod11_ok, validate_norwegian_bban},
    {Country::fi, 18, nullptr, nullptr},
}};

}  // namespace

const AccountRules* account_rules(Country country) noexcept {
  for (const auto& rules : kAccountRules)
    if (rules.country == country) return &rules;
  return nullptr;
}

bool has_account_rule(Country country, AccountScheme scheme) noexcept {
  const auto* rules = account_rules(country);
  return rules != nullptr && rules->has_rule(scheme);
}

Currency country_currency(Country country) noexcept {
  const auto currency = Currency::parse(base::country_currency_code(country));
  CLEARING_ASSERT(currency.has_value());  // base's codes are three upper-case letters
  return *currency;
}

std::string_view scheme_name(AccountScheme scheme) noexcept {
  return scheme == AccountScheme::iban ? "IBAN" : "BBAN";
}

std::optional<AccountScheme> parse_scheme(std::string_view name) noexcept {
  if (name == "IBAN" || name == "iban") return AccountScheme::iban;
  if (name == "BBAN" || name == "bban") return AccountScheme::bban;
  return std::nullopt;
}

tl::expected<int, AccountError> iban_mod97(std::string_view iban) noexcept {
  if (iban.empty()) return tl::unexpected(AccountError::empty);
  if (iban.size() <= kIbanCheckedPrefixLength) return tl::unexpected(AccountError::wrong_length);
  int remainder = 0;
  if (!feed_mod97(remainder, iban.substr(kIbanCheckedPrefixLength)) ||
      !feed_mod97(remainder, iban.substr(0, kIbanCheckedPrefixLength)))
    return tl::unexpected(AccountError::invalid_character);
  return remainder;
}

std::optional<int> norwegian_check_digit(std::string_view first_ten) noexcept {
  if (first_ten.size() != kNorwegianWeights.size() || !all_digits(first_ten)) return std::nullopt;
  int sum = 0;
  for (std::size_t i = 0; i < kNorwegianWeights.size(); ++i)
    sum += (first_ten[i] - '0') * kNorwegianWeights[i];
  const int remainder = sum % 11;
  if (remainder == 1) return std::nullopt;
  return remainder == 0 ? 0 : 11 - remainder;
}

tl::expected<int, AccountError> iban_check_digits(Country country, std::string_view bban) noexcept {
  if (bban.empty()) return tl::unexpected(AccountError::empty);
  // The IBAN rearranged (BBAN, country code, check digits) with "00" for the check digits.
  int remainder = 0;
  if (!feed_mod97(remainder, bban)) return tl::unexpected(AccountError::invalid_character);
  const bool fed = feed_mod97(remainder, country_code(country)) && feed_mod97(remainder, "00");
  CLEARING_ASSERT(fed);  // base's country codes are two upper-case letters
  return 98 - remainder;
}

std::string_view account_error_message(AccountError error) noexcept {
  return base::name_in(kAccountErrorMessages, error).value_or("account number is invalid");
}

tl::expected<void, AccountError> validate_account(Country country, const Account& account) {
  if (account.id.empty()) return tl::unexpected(AccountError::empty);
  const auto* rules = account_rules(country);
  if (rules == nullptr || !rules->has_rule(account.scheme))
    return tl::unexpected(AccountError::scheme_not_used);
  if (account.scheme == AccountScheme::iban) return validate_iban(*rules, account.id);
  return rules->validate_bban(account.id);
}

AccountScheme account_scheme_of_text(std::string_view text) noexcept {
  const bool looks_like_iban = text.size() >= 2 && is_letter(text[0]) && is_letter(text[1]);
  return looks_like_iban ? AccountScheme::iban : AccountScheme::bban;
}

tl::expected<Account, AccountError> parse_account_text(Country country, std::string_view text) {
  Account account{account_scheme_of_text(text), std::string(text)};
  return validate_account(country, account).map([&account] { return std::move(account); });
}

std::string mask_account(std::string_view id) {
  if (id.size() <= kMaskVisibleLength) return "****";
  return "****" + std::string(id.substr(id.size() - kMaskVisibleLength));
}

}  // namespace clearing::sagas
