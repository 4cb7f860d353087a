#include "clearing/core_sim/transfer_source.hpp"

#include <fmt/format.h>

#include <fstream>
#include <istream>
#include <random>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/base/uuid.hpp"
#include "wire.hpp"

namespace clearing::core_sim {
namespace {

using Json = nlohmann::json;
using sagas::Account;
using sagas::AccountScheme;
using sagas::Country;

// Namespace of the generator's transfer ids (derived, so a restart regenerates them).
constexpr const char* kTransferIdNamespace = "0d6f3b52-8a41-4c7e-b2d9-5e1f7a3c9b64";
constexpr std::int64_t kValidAmountMinorMin = 100;
constexpr std::int64_t kValidAmountMinorMax = 2'000'000;

// The kinds' names (reports, logs) and the reason code the adapter answers for each.
constexpr base::NameTable<RequestKind, kInvalidKinds + 1> kRequestKindNames{{
    {RequestKind::valid, "valid"},
    {RequestKind::bad_checksum, "bad_checksum"},
    {RequestKind::wrong_currency, "wrong_currency"},
    {RequestKind::over_limit, "over_limit"},
    {RequestKind::closed_account, "closed_account"},
    {RequestKind::blocked_account, "blocked_account"},
}};
static_assert(base::lists_every_enumerator(kRequestKindNames, RequestKind::blocked_account));

constexpr base::NameTable<RequestKind, kInvalidKinds + 1> kExpectedReasonCodes{{
    {RequestKind::valid, ""},
    {RequestKind::bad_checksum, "AC01"},
    {RequestKind::wrong_currency, "AM03"},
    {RequestKind::over_limit, "AM02"},
    {RequestKind::closed_account, "AC04"},
    {RequestKind::blocked_account, "AC06"},
}};
static_assert(base::lists_every_enumerator(kExpectedReasonCodes, RequestKind::blocked_account));

std::string digits(Random& random, int count) {
  std::uniform_int_distribution<int> digit(0, 9);
  std::string out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) out.push_back(static_cast<char>('0' + digit(random)));
  return out;
}

std::string nonzero_lead_digits(Random& random, int count) {
  std::string out = digits(random, count);
  if (out[0] == '0') out[0] = '1';
  return out;
}

// The MOD-97 check digits of an IBAN of `country` carrying `body` (digits: the generator's).
int check_digits_of(Country country, std::string_view body) {
  const auto check = sagas::iban_check_digits(country, body);
  CLEARING_ASSERT(check.has_value());
  return *check;
}

std::string make_iban(Country country, std::string_view body, int check) {
  return fmt::format("{}{:02d}{}", sagas::country_code(country), check, body);
}

// Eleven digits with a valid MOD-11 check digit; `fixed_tail` (0..3 digits) ends the
// first ten digits, and `check` (or -1: any) is the check digit wanted.
std::string norwegian_bban(Random& random, std::string_view fixed_tail, int check) {
  for (int attempt = 0; attempt < kGeneratorDrawAttemptsMax; ++attempt) {
    std::string ten = nonzero_lead_digits(random, 10 - static_cast<int>(fixed_tail.size()));
    ten += fixed_tail;
    const auto digit = sagas::norwegian_check_digit(ten);
    if (!digit || (check >= 0 && *digit != check)) continue;
    return ten + static_cast<char>('0' + *digit);
  }
  CLEARING_ASSERT_MSG(false, "no Norwegian account number found within the draw limit");
  return {};
}

// The national BBAN text of the country (DK "rrrr-a{10}", SE "cccc-a{10}", NO 11 digits);
// only for a country whose accounts come as BBANs (has_bban).
std::string national_bban(Country country, Random& random) {
  if (country == Country::no) return norwegian_bban(random, "", -1);
  CLEARING_ASSERT(country == Country::dk || country == Country::se);
  return nonzero_lead_digits(random, 4) + "-" + digits(random, 10);
}

bool has_bban(Country country) { return sagas::has_account_rule(country, AccountScheme::bban); }

// How many digits an IBAN of the country carries after its check digits (the registry's).
int iban_body_length(Country country) {
  const auto* rules = sagas::account_rules(country);
  CLEARING_ASSERT(rules != nullptr);
  return static_cast<int>(rules->iban_length) - 4;
}

// The digits an IBAN of the country carries after its check digits: a national BBAN where the
// registry has a national check on it (NO), else a bank code that does not start with 0 and
// digits (the SE bank code is three digits).
std::string iban_body(Country country, Random& random) {
  if (country == Country::no) return norwegian_bban(random, "", -1);
  const int lead = country == Country::se ? 3 : 4;
  return nonzero_lead_digits(random, lead) + digits(random, iban_body_length(country) - lead);
}

bool mock_special(std::string_view id) { return id.ends_with("0004") || id.ends_with("0006"); }

// A per-request random source: the seed and the index decide it, nothing else.
Random random_for(std::uint64_t seed, std::string_view purpose, std::int64_t index) {
  const std::uint64_t tag = std::hash<std::string_view>{}(purpose);
  return Random(
      Random::mix(seed ^ Random::mix(static_cast<std::uint64_t>(index) ^ Random::mix(tag))));
}

RequestKind draw_kind(double invalid_share, Random& random) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (unit(random) >= invalid_share) return RequestKind::valid;
  std::uniform_int_distribution<int> which(1, kInvalidKinds);
  return static_cast<RequestKind>(which(random));
}

AccountScheme draw_scheme(Random& random) {
  return std::uniform_int_distribution<int>(0, 1)(random) == 0 ? AccountScheme::bban
                                                               : AccountScheme::iban;
}

}  // namespace

// ---- JSONL ----

tl::expected<TransferRequest, std::string> request_from_json(nlohmann::json data) {
  if (!data.is_object()) return tl::unexpected(std::string("not a JSON object"));
  const auto text = [&](const char* name) -> std::optional<std::string> {
    const auto it = data.find(name);
    if (it == data.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
      return std::nullopt;
    return it->get<std::string>();
  };
  TransferRequest r;
  auto transfer_id = text("transfer_id");
  if (!transfer_id) return tl::unexpected(std::string("transfer_id is missing or empty"));
  auto account_id = text("account_id");
  if (!account_id) return tl::unexpected(std::string("account_id is missing or empty"));
  auto amount = wire::decode_money(data, "amount");
  if (!amount) return tl::unexpected(amount.error());
  r.transfer_id = std::move(*transfer_id);
  r.account_id = std::move(*account_id);
  r.amount = *amount;
  r.data = std::move(data);
  return r;
}

JsonlSource parse_jsonl(std::istream& in) {
  JsonlSource source;
  std::string line;
  const auto skip = [&](std::string reason) {
    ++source.lines_skipped;
    if (source.skipped.size() < kSkippedLinesKeptMax)
      source.skipped.push_back({source.lines_read, std::move(reason)});
  };
  while (source.lines_read < kJsonlLinesMax && std::getline(in, line)) {
    ++source.lines_read;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line.size() > kJsonlLineBytesMax) {
      skip(fmt::format("line longer than {} bytes", kJsonlLineBytesMax));
      continue;
    }
    auto parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      skip("not valid JSON");
      continue;
    }
    auto request = request_from_json(std::move(parsed));
    if (!request) {
      skip(request.error());
      continue;
    }
    source.requests.push_back(std::move(*request));
  }
  return source;
}

tl::expected<JsonlSource, std::string> read_jsonl_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return tl::unexpected("cannot open " + path);
  return parse_jsonl(in);
}

// ---- generator ----

// The table's names are string literals, so data() is null-terminated.
const char* to_string(RequestKind kind) noexcept {
  return base::name_in(kRequestKindNames, kind).value_or("unknown").data();
}

std::string_view expected_reason_code(RequestKind kind) noexcept {
  return base::name_in(kExpectedReasonCodes, kind).value_or("");
}

std::string generated_account_id(int index) { return fmt::format("acct-{:04d}", index); }

std::string_view foreign_currency(Country country) {
  return sagas::country_currency(country).code() == kForeignCurrency ? kForeignCurrencyOfEuro
                                                                     : kForeignCurrency;
}

std::string foreign_account_id(Country country) {
  return foreign_currency(country) == kForeignCurrency ? kForeignAccountId
                                                       : kForeignAccountIdOfEuro;
}

Account valid_account(Country country, AccountScheme scheme, Random& random) {
  // A country without BBANs (FI) gets an IBAN where a BBAN was asked for.
  if (!has_bban(country)) scheme = AccountScheme::iban;
  for (int attempt = 0; attempt < kGeneratorDrawAttemptsMax; ++attempt) {
    Account account{scheme, {}};
    if (scheme == AccountScheme::bban) {
      account.id = national_bban(country, random);
    } else {
      const auto body = iban_body(country, random);
      account.id = make_iban(country, body, check_digits_of(country, body));
    }
    if (mock_special(account.id)) continue;
    CLEARING_ASSERT(sagas::validate_account(country, account).has_value());
    return account;
  }
  CLEARING_ASSERT_MSG(false, "no valid account found within the draw limit");
  return {};
}

Account bban_ending_with(Country country, std::string_view suffix, Random& random) {
  CLEARING_ASSERT(suffix.size() == 4);
  if (!has_bban(country)) {
    // An IBAN ending with the suffix (FI): its check digits come before the body.
    const auto body = nonzero_lead_digits(random, 4) +
                      digits(random, iban_body_length(country) - 8) + std::string(suffix);
    Account account{AccountScheme::iban, make_iban(country, body, check_digits_of(country, body))};
    CLEARING_ASSERT(sagas::validate_account(country, account).has_value());
    return account;
  }
  Account account{AccountScheme::bban, {}};
  if (country == Country::no) {
    // The last digit is the MOD-11 check digit: fix the three before it, draw the rest
    // until the check digit comes out as the suffix's last digit.
    account.id = norwegian_bban(random, suffix.substr(0, 3), suffix[3] - '0');
  } else {
    account.id = nonzero_lead_digits(random, 4) + "-" + digits(random, 6) + std::string(suffix);
  }
  CLEARING_ASSERT(sagas::validate_account(country, account).has_value());
  return account;
}

Account iban_with_bad_checksum(Country country, Random& random) {
  const auto body = iban_body(country, random);
  const int check = check_digits_of(country, body);
  // One off the right check digits: never congruent modulo 97, so MOD-97 fails.
  const int wrong = check < 98 ? check + 1 : check - 1;
  Account account{AccountScheme::iban, make_iban(country, body, wrong)};
  CLEARING_ASSERT(!sagas::validate_account(country, account).has_value());
  return account;
}

GeneratedRequest generate_request(const GeneratorOptions& options, std::int64_t index,
                                  base::Timestamp now) {
  CLEARING_ASSERT(options.accounts >= 1 && index >= 0);
  CLEARING_ASSERT(options.invalid_share >= 0.0 && options.invalid_share <= 1.0);
  auto random = random_for(options.seed, "request", index);
  GeneratedRequest out;
  out.kind = draw_kind(options.invalid_share, random);

  const int account_index = std::uniform_int_distribution<int>(1, options.accounts)(random);
  // The debtor's own account number belongs to the core account: the same every time.
  auto account_random = random_for(options.seed, "account", account_index);
  const Account debtor = valid_account(options.country, AccountScheme::bban, account_random);

  const auto currency = sagas::country_currency(options.country);
  sagas::Money amount{std::uniform_int_distribution<std::int64_t>(kValidAmountMinorMin,
                                                                  kValidAmountMinorMax)(random),
                      currency};
  std::string account_id = generated_account_id(account_index);
  Account creditor;
  switch (out.kind) {
    case RequestKind::valid:
      creditor = valid_account(options.country, draw_scheme(random), random);
      break;
    case RequestKind::bad_checksum:
      creditor = iban_with_bad_checksum(options.country, random);
      break;
    case RequestKind::wrong_currency:
      creditor = valid_account(options.country, draw_scheme(random), random);
      amount.currency = *sagas::Currency::parse(foreign_currency(options.country));
      account_id = foreign_account_id(options.country);
      break;
    case RequestKind::over_limit:
      creditor = valid_account(options.country, draw_scheme(random), random);
      amount.minor_units =
          options.amount_limit_minor + 1 +
          std::uniform_int_distribution<std::int64_t>(0, options.amount_limit_minor / 10)(random);
      break;
    case RequestKind::closed_account:
      creditor = bban_ending_with(options.country, "0004", random);
      break;
    case RequestKind::blocked_account:
      creditor = bban_ending_with(options.country, "0006", random);
      break;
  }
  const auto transfer_id = base::derived_uuid(
      kTransferIdNamespace,
      fmt::format("{}|{}|{}", options.seed, sagas::country_code_lower(options.country), index));
  const int payee = std::uniform_int_distribution<int>(1, 9999)(random);

  auto& r = out.request;
  r.transfer_id = transfer_id;
  r.account_id = account_id;
  r.amount = amount;
  r.expected_reason_code = std::string(expected_reason_code(out.kind));
  r.data = external_streams::payments::encode(external_streams::payments::TransferRequested{
      .transfer_id = transfer_id,
      .account_id = account_id,
      .amount = wire::amount(amount),
      .debtor = wire::party(fmt::format("Account holder {}", account_index), debtor),
      .creditor = wire::party(fmt::format("Payee {}", payee), creditor),
      .remittance_info = fmt::format("Invoice {}", index + 1),
      .requested_at = now});
  return out;
}

}  // namespace clearing::core_sim
