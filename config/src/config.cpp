// Pure helpers of the config types: enum names, the business-day calendar, stream names,
// host:port, and database URL redaction. Country codes are base's (clearing/base/country.hpp).

#include "clearing/config/config.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"

namespace clearing::config {

namespace {

// The names are the config file's words (and the summary's): one table per enumeration.
constexpr base::NameTable<Derivation, 4> kDerivationNames{{
    {Derivation::payments_v1, "payments.v1"},
    {Derivation::settlements_v1, "settlements.v1"},
    {Derivation::payments_v2, "payments.v2"},
    {Derivation::positions_v1, "positions.v1"},
}};
static_assert(base::lists_every_enumerator(kDerivationNames, Derivation::positions_v1));

constexpr base::NameTable<PartitionAssignment, 2> kPartitionAssignmentNames{{
    {PartitionAssignment::database, "database"},
    {PartitionAssignment::group, "group"},
}};
static_assert(base::lists_every_enumerator(kPartitionAssignmentNames, PartitionAssignment::group));

constexpr base::NameTable<ConcurrencyMode, 2> kConcurrencyModeNames{{
    {ConcurrencyMode::adaptive, "adaptive"},
    {ConcurrencyMode::fixed, "fixed"},
}};
static_assert(base::lists_every_enumerator(kConcurrencyModeNames, ConcurrencyMode::fixed));

constexpr base::NameTable<LogLevel, 5> kLogLevelNames{{
    {LogLevel::trace, "trace"},
    {LogLevel::debug, "debug"},
    {LogLevel::info, "info"},
    {LogLevel::warn, "warn"},
    {LogLevel::error, "error"},
}};
static_assert(base::lists_every_enumerator(kLogLevelNames, LogLevel::error));

// Kafka security: librdkafka's words.
constexpr base::NameTable<KafkaSecurityProtocol, 4> kKafkaSecurityProtocolNames{{
    {KafkaSecurityProtocol::plaintext, "PLAINTEXT"},
    {KafkaSecurityProtocol::ssl, "SSL"},
    {KafkaSecurityProtocol::sasl_plaintext, "SASL_PLAINTEXT"},
    {KafkaSecurityProtocol::sasl_ssl, "SASL_SSL"},
}};
static_assert(base::lists_every_enumerator(kKafkaSecurityProtocolNames,
                                           KafkaSecurityProtocol::sasl_ssl));

constexpr base::NameTable<SaslMechanism, 3> kSaslMechanismNames{{
    {SaslMechanism::plain, "PLAIN"},
    {SaslMechanism::scram_sha_256, "SCRAM-SHA-256"},
    {SaslMechanism::scram_sha_512, "SCRAM-SHA-512"},
}};
static_assert(base::lists_every_enumerator(kSaslMechanismNames, SaslMechanism::scram_sha_512));

constexpr base::NameTable<KafkaEndpointIdentification, 2> kKafkaEndpointIdentificationNames{{
    {KafkaEndpointIdentification::https, "https"},
    {KafkaEndpointIdentification::none, "none"},
}};
static_assert(base::lists_every_enumerator(kKafkaEndpointIdentificationNames,
                                           KafkaEndpointIdentification::none));

}  // namespace

std::string_view kafka_security_protocol_name(KafkaSecurityProtocol protocol) noexcept {
  return base::name_in(kKafkaSecurityProtocolNames, protocol).value_or("?");
}

std::string_view sasl_mechanism_name(SaslMechanism mechanism) noexcept {
  return base::name_in(kSaslMechanismNames, mechanism).value_or("?");
}

std::string_view kafka_endpoint_identification_name(KafkaEndpointIdentification value) noexcept {
  return base::name_in(kKafkaEndpointIdentificationNames, value).value_or("?");
}

std::string_view derivation_name(Derivation derivation) noexcept {
  return base::name_in(kDerivationNames, derivation).value_or("?");
}

std::string_view partition_assignment_name(PartitionAssignment assignment) noexcept {
  return base::name_in(kPartitionAssignmentNames, assignment).value_or("?");
}

base::MaintenanceWindows MaintenanceWindowsConfig::windows() const {
  base::MaintenanceWindows out;
  out.weekly.reserve(weekly.size());
  out.dated.reserve(dated.size());
  for (const auto& [index, window] : weekly) out.weekly.push_back(window);
  for (const auto& [index, window] : dated) out.dated.push_back(window);
  return out;
}

std::string_view concurrency_mode_name(ConcurrencyMode mode) noexcept {
  return base::name_in(kConcurrencyModeNames, mode).value_or("?");
}

std::string_view log_level_name(LogLevel level) noexcept {
  return base::name_in(kLogLevelNames, level).value_or("?");
}

std::string format_date(std::chrono::year_month_day date) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

std::string format_time_of_day(std::chrono::minutes since_midnight) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02ld:%02ld",
                static_cast<long>(since_midnight.count() / 60),
                static_cast<long>(since_midnight.count() % 60));
  return buffer;
}

std::string_view weekday_name(std::chrono::weekday day) noexcept {
  static constexpr std::array<std::string_view, 7> kNames{"Sun", "Mon", "Tue", "Wed",
                                                          "Thu", "Fri", "Sat"};
  return day.ok() ? kNames[day.c_encoding()] : "???";
}

// ---------------------------------------------------------------------------------------
// Business days.

namespace {

bool contains_sorted(const std::vector<std::chrono::year_month_day>& days,
                     std::chrono::year_month_day date) {
  return std::binary_search(days.begin(), days.end(), date);
}

}  // namespace

bool BusinessDays::is_business_day(std::chrono::year_month_day date) const {
  CLEARING_ASSERT(date.ok());
  const std::chrono::weekday day_of_week{std::chrono::sys_days{date}};
  if (std::find(weekend.begin(), weekend.end(), day_of_week) != weekend.end()) return false;
  return !contains_sorted(holidays, date) && !contains_sorted(bank_closing_days, date);
}

std::chrono::year_month_day BusinessDays::next_business_day(
    std::chrono::year_month_day date) const {
  CLEARING_ASSERT(date.ok());
  std::chrono::sys_days day{date};
  for (int step = 0; step < kBusinessDaySearchDaysMax; ++step) {
    day += std::chrono::days{1};
    if (is_business_day(std::chrono::year_month_day{day})) return std::chrono::year_month_day{day};
  }
  // A validated calendar leaves at least one working weekday and has at most kHolidaysMax
  // closing days of each kind, so the loop always ends above.
  base::assertion_failed("next business day found", __FILE__, __LINE__,
                         "no business day within kBusinessDaySearchDaysMax days");
}

std::chrono::year_month_day BusinessDays::business_day_on_or_after(
    std::chrono::year_month_day date) const {
  return is_business_day(date) ? date : next_business_day(date);
}

std::chrono::year_month_day CountryConfig::settlement_date(
    std::chrono::sys_time<std::chrono::milliseconds> at) const {
  const auto day = std::chrono::floor<std::chrono::days>(at);
  const std::chrono::year_month_day date{day};
  const bool before_cutoff = at - day < std::chrono::milliseconds{cutoff_utc};
  if (before_cutoff && is_business_day(date)) return date;
  return next_business_day(date);
}

// ---------------------------------------------------------------------------------------
// Names and addresses.

namespace {

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Consumes `prefix` from the front of `text`.
bool consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

}  // namespace

bool is_valid_stream_name(std::string_view name) {
  // stream_name_pattern() by hand: std::regex is slow to build and this runs once per name.
  if (!consume(name, "core.") && !consume(name, "adapter.")) return false;
  const bool country_known =
      std::any_of(base::kCountries.begin(), base::kCountries.end(), [&name](Country country) {
        return consume(name, std::string(country_code_lower(country)) + ".");
      });
  if (!country_known) return false;
  std::size_t letters = 0;
  while (letters < name.size() && is_lower(name[letters])) ++letters;
  if (letters == 0) return false;
  name.remove_prefix(letters);
  if (!consume(name, ".v") || name.empty()) return false;
  return std::all_of(name.begin(), name.end(), is_digit);
}

std::string stream_name_pattern() {
  std::string codes;
  for (const auto country : base::kCountries) {
    codes += (codes.empty() ? "" : "|") + std::string(country_code_lower(country));
  }
  return "^(core|adapter)\\.(" + codes + ")\\.[a-z]+\\.v[0-9]+$";
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {  // [IPv6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  if (host.empty()) return std::nullopt;
  const auto host_char_ok = [](char c) {
    return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
           c == '_' || c == ':';
  };
  if (!std::all_of(host.begin(), host.end(), host_char_ok)) return std::nullopt;
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
    return std::nullopt;
  }
  int number = 0;
  std::from_chars(port.data(), port.data() + port.size(), number);
  if (number < 1 || number > 65535) return std::nullopt;
  return HostPort{std::string(host), number};
}

// ---------------------------------------------------------------------------------------
// Redaction.

namespace {

constexpr std::string_view kMask = "***";

// A parameter is secret when its name, percent-decoded and in lower case, holds one of these
// words: libpq's password and sslpassword, and any other name that says it carries a secret,
// so that a misspelt or future parameter is masked rather than shown.
constexpr std::array<std::string_view, 3> kSecretNameWords{"password", "secret", "token"};
// %2570 decodes to %70, which decodes to p: names are decoded until they stop changing, a
// bounded number of times.
constexpr int kNameDecodeRoundsMax = 4;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One round of %XX decoding; a malformed escape stays as it is.
std::string percent_decoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int high = i + 2 < text.size() && text[i] == '%' ? hex_digit(text[i + 1]) : -1;
    const int low = high < 0 ? -1 : hex_digit(text[i + 2]);
    if (low < 0) {
      out += text[i];
      continue;
    }
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

bool is_secret_parameter(std::string_view raw_name) {
  std::string name(raw_name);
  for (int round = 0; round < kNameDecodeRoundsMax; ++round) {
    std::string decoded = percent_decoded(name);
    if (decoded == name) break;
    name = std::move(decoded);
  }
  std::transform(name.begin(), name.end(), name.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return std::any_of(kSecretNameWords.begin(), kSecretNameWords.end(),
                     [&](std::string_view word) { return name.find(word) != std::string::npos; });
}

// Where the user information of scheme://user:password@host... ends (its '@'), or npos. The
// authority ends at the first '/', but a password pasted without percent-encoding may hold
// '/' or '?': when the authority has no '@', a wider part is searched, erring on the side of
// masking too much (an '@' in a query value) rather than showing a password.
std::size_t userinfo_end(std::string_view url, std::size_t authority_begin) {
  for (const std::string_view stops :
       {std::string_view("/?#"), std::string_view("?#"), std::string_view()}) {
    const std::size_t stop = stops.empty()
                                 ? url.size()
                                 : std::min(url.find_first_of(stops, authority_begin), url.size());
    const std::size_t at = url.substr(0, stop).rfind('@');
    if (at != std::string_view::npos && at >= authority_begin) return at;
  }
  return std::string_view::npos;
}

// name=value&name=value (a URI's query): secret values masked.
std::string redact_query(std::string_view query) {
  std::string out;
  for (std::size_t from = 0; from <= query.size();) {
    const std::size_t end = std::min(query.find('&', from), query.size());
    const std::string_view pair = query.substr(from, end - from);
    const std::size_t equals = pair.find('=');
    if (equals != std::string_view::npos && is_secret_parameter(pair.substr(0, equals))) {
      out.append(pair.substr(0, equals + 1));
      out.append(kMask);
    } else {
      out.append(pair);
    }
    if (end < query.size()) out += '&';
    from = end + 1;
  }
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// libpq's "key = value key = 'quoted \\' value'" form: secret values masked, the rest kept.
std::string redact_conninfo(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  const auto copy_while = [&](auto predicate) {
    const std::size_t begin = i;
    while (i < text.size() && predicate(text[i])) ++i;
    out.append(text.substr(begin, i - begin));
    return text.substr(begin, i - begin);
  };
  while (i < text.size()) {
    copy_while(is_space);
    const std::string_view key = copy_while([](char c) { return c != '=' && !is_space(c); });
    copy_while(is_space);
    if (i >= text.size() || text[i] != '=') continue;  // a bare word: shown, libpq refuses it
    out += text[i++];
    copy_while(is_space);
    // The value: 'quoted' (a backslash escapes the next character) or up to white space.
    const std::size_t value_begin = i;
    const bool quoted = i < text.size() && text[i] == '\'';
    if (quoted) ++i;
    while (i < text.size() && (quoted ? text[i] != '\'' : !is_space(text[i]))) {
      i += text[i] == '\\' && i + 1 < text.size() ? 2 : 1;
    }
    if (quoted && i < text.size()) ++i;  // the closing quote
    const std::string_view value = text.substr(value_begin, i - value_begin);
    if (is_secret_parameter(key)) {
      out.append(kMask);
    } else {
      out.append(value);
    }
  }
  return out;
}

}  // namespace

std::string redact_database_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return redact_conninfo(url);
  std::string out(url.substr(0, scheme_end + 3));
  const std::size_t authority_begin = scheme_end + 3;
  std::size_t rest = authority_begin;
  // user:password@: the user stays (it says which role connects), the password goes.
  if (const auto at = userinfo_end(url, authority_begin); at != std::string_view::npos) {
    const std::string_view userinfo = url.substr(authority_begin, at - authority_begin);
    const auto colon = userinfo.find(':');
    out.append(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) {
      out += ':';
      out.append(kMask);
    }
    rest = at;
  }
  const auto query = url.find('?', rest);
  out.append(url.substr(rest, query == std::string_view::npos ? url.size() : query - rest));
  if (query != std::string_view::npos) {
    out += '?';
    out += redact_query(url.substr(query + 1));
  }
  return out;
}

std::string redact_http_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const std::size_t authority_begin = scheme_end + 3;
  std::string out(url.substr(0, authority_begin));
  std::size_t rest = authority_begin;
  // The whole user information: a name alone may be a token (https://t0ken@host).
  if (const auto at = userinfo_end(url, authority_begin); at != std::string_view::npos) {
    out.append(kMask);
    rest = at;
  }
  // A query or a fragment may carry a token (?access_token=...): neither is shown.
  const auto query = url.find_first_of("?#", rest);
  out.append(url.substr(rest, query == std::string_view::npos ? url.size() : query - rest));
  if (query != std::string_view::npos) {
    out += url[query];
    out.append(kMask);
  }
  return out;
}

}  // namespace clearing::config
