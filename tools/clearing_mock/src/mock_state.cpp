// The clearing mock's behaviour (see mock_state.hpp for the rules). No Asio: JSON and std.

#include "clearing/clearing_mock/mock_state.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "clearing/base/assert.hpp"
#include "clearing/base/country.hpp"
#include "clearing/base/name_table.hpp"
#include "clearing/clearing_client/answer_codec.hpp"
#include "clearing/clearing_client/classify.hpp"

namespace clearing::clearing_mock {
namespace {

using nlohmann::json;

// The keys of the stats' fault counts: each name is spelled once, here.
constexpr base::NameTable<FaultClass, kFaultClassCount> kFaultClassNames{{
    {FaultClass::none, "none"},
    {FaultClass::timeout_before_execute, "timeout_before_execute"},
    {FaultClass::timeout_after_execute, "timeout_after_execute"},
    {FaultClass::close_after_execute, "close_after_execute"},
    {FaultClass::reset_before_execute, "reset_before_execute"},
    {FaultClass::http_500, "http_500"},
    {FaultClass::http_502, "http_502"},
    {FaultClass::http_504, "http_504"},
    {FaultClass::error_body_200, "error_body_200"},
    {FaultClass::malformed_json, "malformed_json"},
    {FaultClass::maintenance_503, "maintenance_503"},
}};
static_assert(base::lists_every_enumerator(kFaultClassNames, FaultClass::maintenance_503));

constexpr base::NameTable<HostileFault, kHostileFaultCount> kHostileFaultNames{{
    {HostileFault::none, "none"},
    {HostileFault::stray_response, "stray_response"},
    {HostileFault::duplicate_response, "duplicate_response"},
    {HostileFault::nul_field, "nul_field"},
    {HostileFault::oversize_field, "oversize_field"},
}};
static_assert(base::lists_every_enumerator(kHostileFaultNames, HostileFault::oversize_field));

// The contract's answer bodies come from its codec (clearing_client/answer_codec.hpp), the
// one the client's classification is pinned against; only the feed, the admin routes and the
// deliberately broken answers are written here.
HttpAnswer answer(int status, std::string body) { return HttpAnswer{status, std::move(body), {}}; }

HttpAnswer answer(int status, const json& body) { return answer(status, body.dump()); }

HttpAnswer error_answer(int status, std::string_view code, std::string_view message) {
  return answer(status, clearing_client::encode_answer_body(clearing_client::ErrorBody{
                            .code = std::string(code), .message = std::string(message)}));
}

HttpAnswer rejected_answer(std::string_view code, std::string_view reason) {
  return answer(200, clearing_client::encode_answer_body(clearing_client::RejectedBody{
                         .reason_code = std::string(code), .reason = std::string(reason)}));
}

// Days since 1970-01-01 as a calendar day (std::chrono's civil calendar: no gmtime, so no
// thread-safety questions); written "YYYY-MM-DD" by config::format_date, as the adapter does.
std::chrono::year_month_day civil_day(std::int64_t days) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{days}}};
}

std::int64_t days_since_epoch(std::chrono::system_clock::time_point at) {
  return std::chrono::floor<std::chrono::days>(at).time_since_epoch().count();
}

std::string timestamp_text(std::chrono::system_clock::time_point at) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(at);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const auto in_day = (seconds - day).count();
  char text[32];
  std::snprintf(text, sizeof text, "%sT%02lld:%02lld:%02lldZ",
                config::format_date(civil_day(day.time_since_epoch().count())).c_str(),
                static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60),
                static_cast<long long>(in_day % 60));
  return text;
}

std::string cursor_text(std::int64_t cursor) {
  char text[32];
  std::snprintf(text, sizeof text, "%012lld", static_cast<long long>(cursor));
  return text;
}

// A valid IBAN of a country whose accounts are IBANs only (FI): "1" and `number`'s digits, cut
// or padded with zeros to the registry's length, after its MOD-97 check digits.
std::string generated_iban(sagas::Country country, std::uint64_t number) {
  const auto* rules = sagas::account_rules(country);
  const int body_digits = static_cast<int>(rules->iban_length) - 4;
  std::string body = "1" + std::to_string(number);
  body.resize(static_cast<std::size_t>(body_digits), '0');
  const auto check_digits = sagas::iban_check_digits(country, body);
  CLEARING_ASSERT(check_digits.has_value());  // the body is digits
  const std::string check = (*check_digits < 10 ? "0" : "") + std::to_string(*check_digits);
  return std::string(sagas::country_code(country)) + check + body;
}

// A valid account of the country for generated incoming payments: a BBAN where the country
// has them (DK/SE: no check digit; NO: 11 digits with the MOD-11 check digit), else an IBAN.
std::string generated_bban(sagas::Country country, std::uint64_t number) {
  char digits[32];
  if (country == sagas::Country::dk) {
    std::snprintf(digits, sizeof digits, "%010llu",
                  static_cast<unsigned long long>(number % 10'000'000'000ull));
    return std::string("5301-") + digits;
  }
  if (country == sagas::Country::se) {
    std::snprintf(digits, sizeof digits, "%07llu",
                  static_cast<unsigned long long>(number % 10'000'000ull));
    return std::string("8327-") + digits;
  }
  if (country != sagas::Country::no) return generated_iban(country, number);
  // At most 11 consecutive candidates can have no check digit (the bound of this loop).
  for (std::uint64_t candidate = number;; ++candidate) {
    std::snprintf(digits, sizeof digits, "12%08llu",
                  static_cast<unsigned long long>(candidate % 100'000'000ull));
    const auto check = sagas::norwegian_check_digit(digits);
    if (!check) continue;
    return std::string(digits) + static_cast<char>('0' + *check);
  }
}

struct Transfer {
  std::string reference;
  std::int64_t amount_minor = 0;
  std::string currency;
  std::string debtor_account;
  std::string creditor_account;
};

struct StoreEntry {
  std::string canonical_body;
  Transfer transfer;
  bool in_progress = true;
  HttpAnswer answer;  // valid when !in_progress
};

struct Payment {
  std::int64_t cursor = 0;
  json body;  // without "cursor"
};

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::int64_t> to_int(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string_view to_string(FaultClass fault) noexcept {
  return base::name_in(kFaultClassNames, fault).value_or("invalid");
}

std::string_view to_string(HostileFault fault) noexcept {
  return base::name_in(kHostileFaultNames, fault).value_or("invalid");
}

bool acts_before_execute(FaultClass fault) noexcept {
  switch (fault) {
    case FaultClass::timeout_before_execute:
    case FaultClass::reset_before_execute:
    case FaultClass::http_500:
    case FaultClass::http_502:
    case FaultClass::error_body_200:
    case FaultClass::maintenance_503:
      return true;
    default:
      return false;
  }
}

namespace {

constexpr FaultProbabilityField kProbabilities[] = {
    {"delay", &FaultSettings::delay, "probability of an injected delay (see --delay-ms)"},
    {"timeout_before_execute", &FaultSettings::timeout_before_execute,
     "hold the answer past the client's deadline, execute nothing, then close"},
    {"timeout_after_execute", &FaultSettings::timeout_after_execute,
     "execute, then hold the answer past the client's deadline and close"},
    {"close_after_execute", &FaultSettings::close_after_execute,
     "execute, then close the connection without answering"},
    {"reset_before_execute", &FaultSettings::reset_before_execute,
     "reset the connection (RST) before executing"},
    {"http_500", &FaultSettings::http_500, "answer 500, nothing executed"},
    {"http_502", &FaultSettings::http_502, "answer 502, nothing executed"},
    {"http_504", &FaultSettings::http_504, "execute, then answer 504"},
    {"error_body_200", &FaultSettings::error_body_200,
     "answer 200 with an error body, nothing executed"},
    {"malformed_json", &FaultSettings::malformed_json,
     "execute, then answer with a truncated JSON body"},
    {"maintenance_503", &FaultSettings::maintenance_503,
     "answer 503 with Retry-After, nothing executed"},
    {"stray_response", &FaultSettings::stray_response,
     "hostile: after the answer, an unrequested 201 ACSC or 200 RJCT AC04 on the same "
     "connection, at once or late (see --stray-delay-ms-max)"},
    {"duplicate_response", &FaultSettings::duplicate_response,
     "hostile: the answer written twice on its connection"},
    {"nul_field", &FaultSettings::nul_field,
     "hostile: a NUL in the answer's clearing_reference or reason (the ledger keeps the truth)"},
    {"oversize_field", &FaultSettings::oversize_field,
     "hostile: a 1 MB clearing_reference or reason in the answer (the ledger keeps the truth)"},
    {"scheme_timeout", &FaultSettings::scheme_timeout,
     "SEPA Instant (--country fi only): a valid transfer is rejected by the scheme, RJCT AB05 "
     "or AB06 (timeout at the creditor's bank or at the instructed agent), not executed"},
};
// Bounds of the capacity model's settings.
constexpr int kCapacityMax = 100'000;
constexpr int kQueueMax = 1'000'000;
constexpr int kThrashPermilleMax = 100'000;

constexpr FaultIntegerField kIntegers[] = {
    {"delay_ms_min", &FaultSettings::delay_ms_min, kFaultMsMax, "injected delay, lower bound (ms)"},
    {"delay_ms_max", &FaultSettings::delay_ms_max, kFaultMsMax, "injected delay, upper bound (ms)"},
    {"latency_ms", &FaultSettings::latency_ms, kFaultMsMax,
     "fixed latency added to every /v1 answer"},
    {"hold_ms", &FaultSettings::hold_ms, kFaultMsMax,
     "how long timeout_* faults hold the connection (longer than the client's deadline)"},
    {"retry_after_s", &FaultSettings::retry_after_s, 86'400,
     "Retry-After of maintenance_503 and of the capacity model's 503 OVERLOADED"},
    {"stray_delay_ms_max", &FaultSettings::stray_delay_ms_max, kStrayDelayMsMax,
     "a late stray response comes 1..this many ms after the answer"},
    {"capacity", &FaultSettings::capacity, kCapacityMax,
     "capacity model: submits and inquiries executed at once, the others wait in a FIFO queue "
     "(0: unlimited, the model is off)"},
    {"service_ms", &FaultSettings::service_ms, kFaultMsMax,
     "capacity model: execution time of one submit or inquiry, before latency and delays"},
    {"queue_max", &FaultSettings::queue_max, kQueueMax,
     "capacity model: requests allowed to wait for an executor; beyond, 503 OVERLOADED with "
     "Retry-After, nothing executed"},
    {"thrash_permille", &FaultSettings::thrash_permille, kThrashPermilleMax,
     "capacity model: execution takes service_ms * (1 + thrash_permille/1000 * "
     "waiting/capacity), so throughput falls when pushed past capacity"},
    {"service_jitter_permille", &FaultSettings::service_jitter_permille, 1'000,
     "capacity model: execution time varies uniformly by +-this/1000 (seeded)"},
};

double probability_of(const FaultSettings& settings, std::string_view fault_name) {
  for (const auto& field : kProbabilities) {
    if (fault_name == field.name) return settings.*field.member;
  }
  return 0;
}

}  // namespace

tl::expected<void, std::string> apply_faults_json(FaultSettings& settings, std::string_view text) {
  const json parsed = json::parse(text.begin(), text.end(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return tl::unexpected(std::string("faults must be a JSON object"));
  }
  FaultSettings updated = settings;
  for (const auto& [key, value] : parsed.items()) {
    bool known = false;
    for (const auto& field : kProbabilities) {
      if (key != field.name) continue;
      known = true;
      if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 1) {
        return tl::unexpected("fault " + key + " must be a probability in [0, 1]");
      }
      updated.*field.member = value.get<double>();
    }
    for (const auto& field : kIntegers) {
      if (key != field.name) continue;
      known = true;
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
          value.get<std::int64_t>() > field.max) {
        return tl::unexpected("fault setting " + key + " must be an integer in [0, " +
                              std::to_string(field.max) + "]");
      }
      updated.*field.member = value.get<int>();
    }
    if (!known) return tl::unexpected("unknown fault setting: " + key);
  }
  if (updated.delay_ms_min > updated.delay_ms_max) {
    return tl::unexpected(std::string("delay_ms_min must not exceed delay_ms_max"));
  }
  settings = updated;
  return {};
}

std::span<const FaultProbabilityField> fault_probability_fields() noexcept {
  return kProbabilities;
}

std::span<const FaultIntegerField> fault_integer_fields() noexcept { return kIntegers; }

std::string faults_to_json(const FaultSettings& settings) {
  json out = json::object();
  for (const auto& field : kProbabilities) out[field.name] = settings.*field.member;
  for (const auto& field : kIntegers) out[field.name] = settings.*field.member;
  return out.dump();
}

tl::expected<void, std::string> validate_options(const MockOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return tl::unexpected(std::string("port must be in [0, 65535]"));
  }
  if (options.bearer_token.empty()) return tl::unexpected(std::string("token must not be empty"));
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return tl::unexpected(std::string("tls-cert and tls-key go together"));
  }
  if (!options.tls_client_ca_file.empty() && options.tls_cert_file.empty()) {
    return tl::unexpected(std::string("tls-client-ca needs tls-cert and tls-key"));
  }
  if (options.amount_minor_max <= 0) {
    return tl::unexpected(std::string("amount limit must be positive"));
  }
  if (options.cutoff_minute_utc &&
      (*options.cutoff_minute_utc < 0 || *options.cutoff_minute_utc >= 24 * 60)) {
    return tl::unexpected(std::string("cut-off must be a time of day HH:MM"));
  }
  if (options.settle_after_inquiries < 1 || options.settle_after_inquiries > 1'000) {
    return tl::unexpected(std::string("settle-after-inquiries must be in [1, 1000]"));
  }
  if (options.incoming_generated < 0 || options.incoming_generated > kIncomingPaymentsMax) {
    return tl::unexpected("incoming count must be in [0, " + std::to_string(kIncomingPaymentsMax) +
                          "]");
  }
  if (options.incoming_resend_probability < 0 || options.incoming_resend_probability > 1) {
    return tl::unexpected(std::string("incoming re-send probability must be in [0, 1]"));
  }
  if (options.threads < 1 || options.threads > 64) {
    return tl::unexpected(std::string("threads must be in [1, 64]"));
  }
  if (options.idle_timeout_ms < 1 || options.write_timeout_ms < 1) {
    return tl::unexpected(std::string("timeouts must be positive"));
  }
  FaultSettings check = options.faults;
  if (auto valid = apply_faults_json(check, faults_to_json(options.faults)); !valid) {
    return tl::unexpected(valid.error());
  }
  return {};
}

struct MockState::Data {
  mutable std::mutex mutex;
  FaultSettings faults;
  std::mt19937_64 fault_rng;
  std::mt19937_64 resend_rng;
  std::mt19937_64 hostile_rng;  // the hostile answers' own stream (seed + 3)
  std::mt19937_64 service_rng;  // the execution time's jitter (seed + 4)
  std::mt19937_64 scheme_rng;   // SEPA Instant's scheme rejections (seed + 5)
  std::int64_t scheme_rejections = 0;
  // The capacity model's queue: tickets with their wake-ups, first come first served.
  std::deque<std::pair<std::uint64_t, std::function<void()>>> waiting;
  std::uint64_t next_ticket = 0;
  std::int64_t stray_sequence = 0;                    // made-up clearing references of strays
  std::unordered_map<std::string, StoreEntry> store;  // by idempotency key
  std::map<std::string, LedgerEntry> ledger;          // by reference, ordered for the listing
  std::vector<Payment> incoming;                      // cursor = index + 1
  std::int64_t clearing_sequence = 0;
  MockStats stats;

  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(fault_rng); }
};

MockState::MockState(MockOptions options)
    : options_(std::move(options)), data_(std::make_unique<Data>()) {
  data_->faults = options_.faults;
  data_->fault_rng.seed(options_.seed);
  data_->resend_rng.seed(options_.seed + 1);
  data_->hostile_rng.seed(options_.seed + 3);
  data_->service_rng.seed(options_.seed + 4);
  data_->scheme_rng.seed(options_.seed + 5);
  std::mt19937_64 generator(options_.seed + 2);
  const auto currency = std::string(base::country_currency_code(options_.country));
  for (int i = 1; i <= options_.incoming_generated; ++i) {
    Payment payment;
    payment.cursor = i;
    const auto received = std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} +
                          std::chrono::hours{9} + std::chrono::minutes{i};
    payment.body = {
        {"clearing_reference", "IN" + std::to_string(options_.seed) + "-" + cursor_text(i)},
        {"amount_minor", static_cast<std::int64_t>(100 + generator() % 1'000'000)},
        {"currency", currency},
        {"debtor_account", generated_bban(options_.country, generator())},
        {"debtor_name", "Incoming Debtor " + std::to_string(i)},
        {"creditor_account", generated_bban(options_.country, generator())},
        {"creditor_name", "Incoming Creditor " + std::to_string(i)},
        {"remittance_info", "Incoming payment " + std::to_string(i)},
        {"received_at", timestamp_text(received)},
    };
    data_->incoming.push_back(std::move(payment));
  }
  for (int i = 0; i < kFaultClassCount; ++i) {
    data_->stats.faults[std::string(to_string(static_cast<FaultClass>(i)))] = 0;
  }
  for (int i = 1; i < kHostileFaultCount; ++i) {
    data_->stats.faults[std::string(to_string(static_cast<HostileFault>(i)))] = 0;
  }
  data_->stats.faults.erase("none");
  data_->stats.faults["delay"] = 0;
}

MockState::~MockState() = default;

FaultPlan MockState::plan_faults(Endpoint) {
  std::lock_guard lock(data_->mutex);
  FaultPlan plan;
  const auto& faults = data_->faults;
  // One draw per class in a fixed order, whatever the outcome, so that the schedule of a
  // seed does not depend on which probabilities are set.
  for (int i = 1; i < kFaultClassCount; ++i) {
    const auto fault = static_cast<FaultClass>(i);
    const double draw = data_->uniform();
    if (plan.fault == FaultClass::none && draw < probability_of(faults, to_string(fault)))
      plan.fault = fault;
  }
  const double delay_draw = data_->uniform();
  const double delay_position = data_->uniform();
  if (delay_draw < faults.delay) {
    plan.delay_ms = faults.delay_ms_min +
                    static_cast<int>(delay_position * (faults.delay_ms_max - faults.delay_ms_min));
    ++data_->stats.faults["delay"];
  }
  plan.delay_ms += faults.latency_ms;
  plan.hold_ms = faults.hold_ms;
  if (plan.fault != FaultClass::none) ++data_->stats.faults[std::string(to_string(plan.fault))];
  return plan;
}

HttpAnswer MockState::fault_answer(FaultClass fault, const HttpAnswer& real) const {
  switch (fault) {
    case FaultClass::http_500:
      return error_answer(500, "INTERNAL", "mainframe transaction abended");
    case FaultClass::http_502:
      return error_answer(502, "BAD_GATEWAY", "no answer from the mainframe region");
    case FaultClass::http_504:
      return error_answer(504, "GATEWAY_TIMEOUT", "the mainframe did not answer in time");
    case FaultClass::error_body_200:
      return error_answer(200, "MAINFRAME_ERROR", "CICS transaction failed");
    case FaultClass::maintenance_503: {
      auto out = error_answer(503, "MAINTENANCE", "maintenance window");
      std::lock_guard lock(data_->mutex);
      out.headers.emplace_back("Retry-After", std::to_string(data_->faults.retry_after_s));
      return out;
    }
    case FaultClass::malformed_json: {
      // A prefix of a JSON object never parses: the closing brace is the last character.
      HttpAnswer damaged = real;
      damaged.body = real.body.substr(0, real.body.size() / 2);
      return damaged;
    }
    default:
      return real;
  }
}

HostilePlan MockState::plan_hostile(Endpoint endpoint) {
  std::lock_guard lock(data_->mutex);
  HostilePlan plan;
  if (endpoint == Endpoint::incoming) return plan;
  auto uniform = [&] {
    return std::uniform_real_distribution<double>(0.0, 1.0)(data_->hostile_rng);
  };
  for (int i = 1; i < kHostileFaultCount; ++i) {
    const auto fault = static_cast<HostileFault>(i);
    const double draw = uniform();
    if (plan.fault == HostileFault::none &&
        draw < probability_of(data_->faults, to_string(fault))) {
      plan.fault = fault;
    }
  }
  const double late = uniform();
  const double delay = uniform();
  const double rejects = uniform();
  if (plan.fault == HostileFault::stray_response) {
    const int delay_max = std::max(data_->faults.stray_delay_ms_max, 1);
    plan.stray_delay_ms = late < 0.5 ? 0 : 1 + static_cast<int>(delay * (delay_max - 1));
    plan.stray_rejects = rejects < 0.5;
  }
  return plan;
}

std::optional<HttpAnswer> MockState::hostile_answer(HostileFault fault, const HttpAnswer& real) {
  if (fault != HostileFault::nul_field && fault != HostileFault::oversize_field)
    return std::nullopt;
  json body = json::parse(real.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("status")) return std::nullopt;
  const char* field = body.contains("clearing_reference") ? "clearing_reference" : "reason";
  const std::string text = body.value(field, "");
  body[field] = fault == HostileFault::nul_field ? text + std::string(1, '\0') + "X"
                                                 : text + std::string(kOversizeFieldBytes, 'X');
  std::lock_guard lock(data_->mutex);
  ++data_->stats.faults[std::string(to_string(fault))];
  return HttpAnswer{real.status, body.dump(), real.headers};
}

HttpAnswer MockState::stray_answer(const HostilePlan& plan) {
  std::lock_guard lock(data_->mutex);
  const auto n = ++data_->stray_sequence;
  std::optional<std::string> reference;
  if (plan.stray_delay_ms > 0)
    reference = "stray-" + std::to_string(options_.seed) + "-" + std::to_string(n);
  if (plan.stray_rejects) {
    return answer(200, clearing_client::encode_answer_body(
                           clearing_client::RejectedBody{.reason_code = "AC04",
                                                         .reason = "creditor account closed",
                                                         .reference = std::move(reference)}));
  }
  return answer(
      201, clearing_client::encode_answer_body(clearing_client::AcceptedBody{
               .clearing_reference = "STRAY" + std::to_string(options_.seed) + "-" + cursor_text(n),
               .settlement_date = config::format_date(civil_day(days_since_epoch(options_.now()))),
               .reference = std::move(reference)}));
}

void MockState::note_hostile(HostileFault fault) {
  std::lock_guard lock(data_->mutex);
  ++data_->stats.faults[std::string(to_string(fault))];
}

std::optional<HttpAnswer> MockState::begin_submit(std::string_view idempotency_key,
                                                  std::string_view body) {
  const auto request = clearing_client::decode_submit_body(body);
  if (!request) return error_answer(400, "FF01", request.error().message);
  const std::pair<const char*, const std::string*> required[] = {
      {"reference", &request->reference},
      {"currency", &request->currency},
      {"debtor_account", &request->debtor_account},
      {"debtor_name", &request->debtor_name},
      {"creditor_account", &request->creditor_account},
      {"creditor_name", &request->creditor_name}};
  for (const auto& [name, text] : required) {
    if (text->empty()) return error_answer(400, "FF01", std::string("empty field ") + name);
  }
  if (request->amount_minor <= 0) {
    return error_answer(400, "FF01", "amount_minor must be a positive integer");
  }
  if (idempotency_key.empty()) return error_answer(400, "FF01", "Idempotency-Key missing");
  if (request->reference != idempotency_key) {
    return error_answer(400, "FF01", "Idempotency-Key differs from reference");
  }

  std::string key(idempotency_key);
  // The body as the codec writes it (keys sorted, the contract's fields only): the same
  // transfer sent again compares equal whatever its spacing or key order.
  std::string canonical = clearing_client::encode_submit_body(*request);
  std::lock_guard lock(data_->mutex);
  if (auto it = data_->store.find(key); it != data_->store.end()) {
    if (it->second.canonical_body != canonical) {
      ++data_->stats.key_reused_answers;
      return error_answer(422, "IDEMPOTENCY_KEY_REUSED", "the key came with another body");
    }
    if (it->second.in_progress) {
      ++data_->stats.in_progress_answers;
      return error_answer(409, "IN_PROGRESS", "the key is being processed");
    }
    ++data_->stats.replays;
    return it->second.answer;
  }
  StoreEntry entry;
  entry.canonical_body = std::move(canonical);
  entry.transfer = Transfer{key, request->amount_minor, request->currency, request->debtor_account,
                            request->creditor_account};
  data_->store.emplace(key, std::move(entry));
  return std::nullopt;
}

void MockState::abandon_submit(const std::string& key) {
  std::lock_guard lock(data_->mutex);
  const auto it = data_->store.find(key);
  CLEARING_ASSERT(it != data_->store.end() && it->second.in_progress);
  data_->store.erase(it);
}

// SEPA Instant's scheme rejection (FaultSettings::scheme_timeout): for a Euro country only,
// drawn while it is on. The caller holds the mutex.
bool MockState::scheme_rejects(sagas::Country country) {
  const double probability = data_->faults.scheme_timeout;
  if (probability <= 0 || base::country_currency_code(country) != "EUR") return false;
  return std::uniform_real_distribution<double>(0.0, 1.0)(data_->scheme_rng) < probability;
}

HttpAnswer MockState::execute_submit(const std::string& key) {
  std::lock_guard lock(data_->mutex);
  auto it = data_->store.find(key);
  CLEARING_ASSERT(it != data_->store.end() && it->second.in_progress);
  StoreEntry& entry = it->second;
  const Transfer& transfer = entry.transfer;
  const auto country = options_.country;

  auto reject = [&](std::string_view code, std::string_view reason) {
    LedgerEntry& row = data_->ledger[transfer.reference];
    row.reference = transfer.reference;
    row.amount_minor = transfer.amount_minor;
    row.currency = transfer.currency;
    row.status = "RJCT";
    row.reason_code = std::string(code);
    return rejected_answer(code, reason);
  };
  HttpAnswer result;
  if (!sagas::parse_account_text(country, transfer.debtor_account)) {
    result = reject("AC01", "incorrect debtor account number");
  } else if (!sagas::parse_account_text(country, transfer.creditor_account)) {
    result = reject("AC01", "incorrect creditor account number");
  } else if (transfer.currency != base::country_currency_code(country)) {
    result = reject("AM03", "currency not processable");
  } else if (transfer.amount_minor > options_.amount_minor_max) {
    result = reject("AM02", "amount exceeds the clearing limit");
  } else if (transfer.creditor_account.ends_with("0004")) {
    result = reject("AC04", "creditor account closed");
  } else if (transfer.creditor_account.ends_with("0006")) {
    result = reject("AC06", "creditor account blocked");
  } else if (scheme_rejects(country)) {
    const bool creditor_bank = data_->scheme_rejections++ % 2 == 0;
    ++data_->stats.faults["scheme_timeout"];
    result = creditor_bank ? reject("AB05", "timeout at the creditor agent")
                           : reject("AB06", "timeout at the instructed agent");
  } else {
    const auto now = options_.now();
    const auto today = days_since_epoch(now);
    const auto minute = std::chrono::duration_cast<std::chrono::minutes>(
                            now - std::chrono::sys_days{std::chrono::days{today}})
                            .count();
    const bool after_cutoff = options_.always_after_cutoff ||
                              (options_.cutoff_minute_utc && minute >= *options_.cutoff_minute_utc);
    LedgerEntry& row = data_->ledger[transfer.reference];
    CLEARING_ASSERT_MSG(row.execution_count == 0, "a reference executed twice");
    row.reference = transfer.reference;
    row.clearing_reference =
        "CLR" + std::to_string(options_.seed) + "-" + cursor_text(++data_->clearing_sequence);
    row.amount_minor = transfer.amount_minor;
    row.currency = transfer.currency;
    row.executed_at = timestamp_text(now);
    row.status = after_cutoff ? "PDNG" : "ACSC";
    row.execution_count += 1;
    ++data_->stats.executions_total;
    const std::string date = config::format_date(
        after_cutoff ? options_.business_days.next_business_day(civil_day(today))
                     : civil_day(today));
    // The settlement date is kept in the answer; the ledger row points to it through the store.
    result = answer(after_cutoff ? 202 : 201,
                    clearing_client::encode_answer_body(
                        clearing_client::AcceptedBody{.pending = after_cutoff,
                                                      .clearing_reference = row.clearing_reference,
                                                      .settlement_date = date}));
  }
  entry.in_progress = false;
  entry.answer = result;
  return result;
}

Admission MockState::admit(std::function<void()> wake) {
  std::lock_guard lock(data_->mutex);
  auto& s = data_->stats;
  const auto capacity = data_->faults.capacity;
  // FIFO: a free executor goes to the queue's first, never to a newcomer.
  if (capacity == 0 || (s.executing_now < capacity && data_->waiting.empty())) {
    ++s.executing_now;
    s.executing_peak = std::max(s.executing_peak, s.executing_now);
    return Admission{Admission::Kind::execute, 0};
  }
  if (data_->waiting.size() >= static_cast<std::size_t>(data_->faults.queue_max)) {
    ++s.overloaded_answers;
    return Admission{Admission::Kind::overloaded, 0};
  }
  const auto ticket = ++data_->next_ticket;
  data_->waiting.emplace_back(ticket, std::move(wake));
  s.queued_now = static_cast<std::int64_t>(data_->waiting.size());
  s.queued_peak = std::max(s.queued_peak, s.queued_now);
  return Admission{Admission::Kind::wait, ticket};
}

int MockState::execution_ms() {
  std::lock_guard lock(data_->mutex);
  const auto& faults = data_->faults;
  if (faults.service_ms == 0) return 0;
  double factor = 1.0;
  if (faults.capacity > 0) {
    factor += faults.thrash_permille / 1000.0 * static_cast<double>(data_->waiting.size()) /
              faults.capacity;
  }
  const double spread = faults.service_jitter_permille / 1000.0;
  const double jitter = std::uniform_real_distribution<double>(-spread, spread)(data_->service_rng);
  const double ms = std::round(faults.service_ms * factor * (1.0 + jitter));
  return static_cast<int>(std::clamp(ms, 0.0, static_cast<double>(kFaultMsMax)));
}

void MockState::finish_execution() {
  std::vector<std::function<void()>> woken;
  {
    std::lock_guard lock(data_->mutex);
    auto& s = data_->stats;
    CLEARING_ASSERT(s.executing_now > 0);
    --s.executing_now;
    const auto capacity = data_->faults.capacity;
    // More than one when the capacity was raised (or set to 0) while requests waited.
    while (!data_->waiting.empty() && (capacity == 0 || s.executing_now < capacity)) {
      woken.push_back(std::move(data_->waiting.front().second));
      data_->waiting.pop_front();
      ++s.executing_now;
      s.executing_peak = std::max(s.executing_peak, s.executing_now);
    }
    s.queued_now = static_cast<std::int64_t>(data_->waiting.size());
  }
  for (auto& wake : woken) wake();
}

bool MockState::leave_queue(std::uint64_t ticket) {
  std::lock_guard lock(data_->mutex);
  auto& waiting = data_->waiting;
  const auto it = std::find_if(waiting.begin(), waiting.end(),
                               [ticket](const auto& entry) { return entry.first == ticket; });
  if (it == waiting.end()) return false;
  waiting.erase(it);
  data_->stats.queued_now = static_cast<std::int64_t>(waiting.size());
  return true;
}

HttpAnswer MockState::overloaded_answer() const {
  auto out = error_answer(503, "OVERLOADED", "the mainframe's queue is full");
  std::lock_guard lock(data_->mutex);
  out.headers.emplace_back("Retry-After", std::to_string(data_->faults.retry_after_s));
  return out;
}

HttpAnswer MockState::inquire(std::string_view reference) {
  std::lock_guard lock(data_->mutex);
  const std::string key(reference);
  const auto row = data_->ledger.find(key);
  if (row == data_->ledger.end()) {
    if (const auto it = data_->store.find(key);
        it != data_->store.end() && it->second.in_progress) {
      ++data_->stats.in_progress_answers;
      return error_answer(409, "IN_PROGRESS", "the reference is being processed");
    }
    return error_answer(404, "NOT_FOUND", "no transfer with this reference was accepted");
  }
  LedgerEntry& entry = row->second;
  if (entry.status == "RJCT") {
    return rejected_answer(entry.reason_code, "rejected");
  }
  const auto stored = data_->store.find(key);
  CLEARING_ASSERT(stored != data_->store.end());
  const json first = json::parse(stored->second.answer.body);
  if (entry.status == "PDNG") {
    entry.inquiries += 1;
    if (entry.inquiries >= options_.settle_after_inquiries) entry.status = "ACSC";
  }
  return answer(200, clearing_client::encode_answer_body(clearing_client::AcceptedBody{
                         .pending = entry.status == "PDNG",
                         .clearing_reference = entry.clearing_reference,
                         .settlement_date = first.value("settlement_date", "")}));
}

HttpAnswer MockState::incoming(std::string_view query) {
  std::int64_t after = 0;
  std::int64_t limit = 100;
  if (auto text = query_value(query, "after"); text && !text->empty()) {
    auto value = to_int(*text);
    if (!value || *value < 0) return error_answer(400, "FF01", "after must be a cursor");
    after = *value;
  }
  if (auto text = query_value(query, "limit"); text) {
    auto value = to_int(*text);
    if (!value || *value < 1 || *value > kIncomingLimitMax) {
      return error_answer(400, "FF01", "limit must be in [1, 1000]");
    }
    limit = *value;
  }
  std::lock_guard lock(data_->mutex);
  auto with_cursor = [](const Payment& payment) {
    json item = payment.body;
    item["cursor"] = cursor_text(payment.cursor);
    return item;
  };
  json payments = json::array();
  const auto size = static_cast<std::int64_t>(data_->incoming.size());
  const double resend_draw = std::uniform_real_distribution<double>(0, 1)(data_->resend_rng);
  if (after >= 1 && after <= size && resend_draw < options_.incoming_resend_probability) {
    payments.push_back(with_cursor(data_->incoming[after - 1]));
    ++data_->stats.incoming_resends;
  }
  json next_cursor = after > 0 ? json(cursor_text(after)) : json(nullptr);
  for (std::int64_t cursor = after + 1; cursor <= size && cursor <= after + limit; ++cursor) {
    payments.push_back(with_cursor(data_->incoming[cursor - 1]));
    next_cursor = cursor_text(cursor);
  }
  return answer(200, {{"payments", payments}, {"next_cursor", next_cursor}});
}

HttpAnswer MockState::add_incoming(std::string_view body) {
  const json parsed = json::parse(body.begin(), body.end(), nullptr, false);
  if (parsed.is_discarded()) return error_answer(400, "FF01", "body is not JSON");
  const json items = parsed.is_object() && parsed.contains("payments") ? parsed["payments"]
                     : parsed.is_array()                               ? parsed
                                                                       : json::array({parsed});
  std::vector<json> accepted;
  for (const auto& item : items) {
    if (!item.is_object()) return error_answer(400, "FF01", "a payment must be an object");
    for (const char* name :
         {"clearing_reference", "currency", "debtor_account", "creditor_account"}) {
      if (!item.contains(name) || !item[name].is_string()) {
        return error_answer(400, "FF01", std::string("payment field missing: ") + name);
      }
    }
    if (!item.contains("amount_minor") || !item["amount_minor"].is_number_integer() ||
        item["amount_minor"].get<std::int64_t>() <= 0) {
      return error_answer(400, "FF01", "amount_minor must be a positive integer");
    }
    json payment = item;
    payment.erase("cursor");
    for (const char* name : {"debtor_name", "creditor_name", "remittance_info"}) {
      if (!payment.contains(name)) payment[name] = "";
    }
    if (!payment.contains("received_at")) payment["received_at"] = timestamp_text(options_.now());
    accepted.push_back(std::move(payment));
  }
  std::lock_guard lock(data_->mutex);
  if (data_->incoming.size() + accepted.size() > static_cast<std::size_t>(kIncomingPaymentsMax)) {
    return error_answer(400, "FF01", "incoming feed is full");
  }
  json cursors = json::array();
  for (auto& payment : accepted) {
    const auto cursor = static_cast<std::int64_t>(data_->incoming.size()) + 1;
    data_->incoming.push_back(Payment{cursor, std::move(payment)});
    cursors.push_back(cursor_text(cursor));
  }
  return answer(201, {{"cursors", cursors}});
}

std::vector<LedgerEntry> MockState::ledger() const {
  std::lock_guard lock(data_->mutex);
  std::vector<LedgerEntry> rows;
  rows.reserve(data_->ledger.size());
  for (const auto& [reference, row] : data_->ledger) rows.push_back(row);
  return rows;
}

std::string MockState::ledger_json() const {
  json rows = json::array();
  for (const auto& row : ledger()) {
    rows.push_back({{"reference", row.reference},
                    {"clearing_reference", row.clearing_reference},
                    {"amount_minor", row.amount_minor},
                    {"currency", row.currency},
                    {"executed_at", row.executed_at},
                    {"status", row.status},
                    {"reason_code", row.reason_code},
                    {"execution_count", row.execution_count},
                    {"inquiries", row.inquiries}});
  }
  return json{{"transfers", rows}}.dump();
}

std::vector<LedgerEntry> ledger_from_json(std::string_view text) {
  std::vector<LedgerEntry> out;
  const auto body = json::parse(text);
  for (const auto& row : body.at("transfers")) {
    LedgerEntry entry;
    entry.reference = row.at("reference").get<std::string>();
    entry.clearing_reference = row.at("clearing_reference").get<std::string>();
    entry.amount_minor = row.at("amount_minor").get<std::int64_t>();
    entry.currency = row.at("currency").get<std::string>();
    entry.executed_at = row.at("executed_at").get<std::string>();
    entry.status = row.at("status").get<std::string>();
    entry.reason_code = row.at("reason_code").get<std::string>();
    entry.execution_count = row.at("execution_count").get<int>();
    entry.inquiries = row.at("inquiries").get<int>();
    out.push_back(std::move(entry));
  }
  return out;
}

MockStats MockState::stats() const {
  std::lock_guard lock(data_->mutex);
  return data_->stats;
}

std::string MockState::stats_json() const {
  const auto s = stats();
  return json{{"requests_total", s.requests_total},
              {"requests", s.requests},
              {"faults", s.faults},
              {"executions_total", s.executions_total},
              {"replays", s.replays},
              {"in_progress_answers", s.in_progress_answers},
              {"key_reused_answers", s.key_reused_answers},
              {"unauthorized", s.unauthorized},
              {"connections_accepted", s.connections_accepted},
              {"in_flight_now", s.in_flight_now},
              {"in_flight_peak", s.in_flight_peak},
              {"incoming_resends", s.incoming_resends},
              {"requests_before_answer", s.requests_before_answer},
              {"executing_now", s.executing_now},
              {"executing_peak", s.executing_peak},
              {"queued_now", s.queued_now},
              {"queued_peak", s.queued_peak},
              {"overloaded_answers", s.overloaded_answers}}
      .dump();
}

FaultSettings MockState::faults() const {
  std::lock_guard lock(data_->mutex);
  return data_->faults;
}

void MockState::set_faults(const FaultSettings& settings) {
  std::lock_guard lock(data_->mutex);
  data_->faults = settings;
}

HttpAnswer MockState::put_faults(std::string_view body) {
  std::lock_guard lock(data_->mutex);
  if (auto applied = apply_faults_json(data_->faults, body); !applied) {
    return error_answer(400, "FF01", applied.error());
  }
  return HttpAnswer{200, faults_to_json(data_->faults), {}};
}

std::size_t MockState::in_progress_count() const {
  std::lock_guard lock(data_->mutex);
  std::size_t count = 0;
  for (const auto& [key, entry] : data_->store) count += entry.in_progress ? 1 : 0;
  return count;
}

void MockState::note_connection() {
  std::lock_guard lock(data_->mutex);
  ++data_->stats.connections_accepted;
}

void MockState::note_request(std::string_view endpoint_name) {
  std::lock_guard lock(data_->mutex);
  ++data_->stats.requests_total;
  ++data_->stats.requests[std::string(endpoint_name)];
}

void MockState::note_unauthorized() {
  std::lock_guard lock(data_->mutex);
  ++data_->stats.unauthorized;
}

void MockState::note_request_before_answer() {
  std::lock_guard lock(data_->mutex);
  ++data_->stats.requests_before_answer;
}

void MockState::request_started() {
  std::lock_guard lock(data_->mutex);
  auto& s = data_->stats;
  ++s.in_flight_now;
  s.in_flight_peak = std::max(s.in_flight_peak, s.in_flight_now);
}

void MockState::request_finished() {
  std::lock_guard lock(data_->mutex);
  CLEARING_ASSERT(data_->stats.in_flight_now > 0);
  --data_->stats.in_flight_now;
}

}  // namespace clearing::clearing_mock
