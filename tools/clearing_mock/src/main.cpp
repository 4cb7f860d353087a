// clearing-mock: the stubbed national clearing system (see mock_state.hpp for its rules).
// main only parses flags and wires the server.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "clearing/base/country.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/tracing/otlp.hpp"

namespace {

using clearing::clearing_mock::FaultSettings;

// A flag's name from a fault setting's name: '-' for '_'.
std::string flag_name(std::string prefix, const char* setting) {
  for (const char* c = setting; *c != '\0'; ++c) prefix += *c == '_' ? '-' : *c;
  return prefix;
}

// One flag per fault setting (the names, bounds and help of mock_state.hpp's table).
void add_fault_flags(CLI::App& app, FaultSettings& faults) {
  for (const auto& field : clearing::clearing_mock::fault_probability_fields()) {
    app.add_option(flag_name("--fault-", field.name), faults.*field.member, field.help)
        ->check(CLI::Range(0.0, 1.0))
        ->group("Faults");
  }
  for (const auto& field : clearing::clearing_mock::fault_integer_fields()) {
    // A late stray comes 1..max ms after the answer: its flag takes no 0. A setting that is
    // not 0 by default (hold_ms, queue_max, ...) shows its default.
    const bool stray = field.member == &FaultSettings::stray_delay_ms_max;
    auto* option = app.add_option(flag_name("--", field.name), faults.*field.member, field.help)
                       ->check(CLI::Range(stray ? 1 : 0, field.max))
                       ->group("Faults");
    if (faults.*field.member != 0) option->capture_default_str();
  }
}

// The clearing's own rules and the server: everything but the faults. The country and the
// cut-off arrive as text, checked after parsing.
void add_clearing_flags(CLI::App& app, clearing::clearing_mock::MockOptions& options,
                        std::string& country, std::string& cutoff, std::string& country_config) {
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port; 0 picks a free one (printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--token", options.bearer_token, "bearer token clients must send")
      ->capture_default_str();
  app.add_option("--country", country,
                 clearing::base::country_codes_lower_text() + ": account rules and currency")
      ->check(CLI::IsMember(clearing::base::country_codes_lower()))
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed of the fault schedule and the incoming feed")
      ->capture_default_str();
  app.add_option("--amount-max", options.amount_minor_max,
                 "largest amount_minor accepted; above: RJCT AM02")
      ->capture_default_str();
  app.add_option("--cutoff", cutoff, "cut-off time HH:MM (UTC); later transfers are PDNG");
  app.add_option("--country-config", country_config,
                 "the country's adapter config file (config/dk.json): its calendar "
                 "(country.business_days) dates PDNG answers on the next business day, holidays "
                 "and bank closing days skipped, and its cut-off applies unless --cutoff is given")
      ->check(CLI::ExistingFile);
  app.add_flag("--after-cutoff", options.always_after_cutoff,
               "behave as if always after the cut-off (every accepted transfer is PDNG)");
  app.add_option("--settle-after-inquiries", options.settle_after_inquiries,
                 "a PDNG transfer is ACSC from its N-th status inquiry on")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--incoming-count", options.incoming_generated,
                 "incoming payments generated from the seed")
      ->check(CLI::Range(0, clearing::clearing_mock::kIncomingPaymentsMax))
      ->capture_default_str();
  app.add_option("--incoming-resend", options.incoming_resend_probability,
                 "probability that a feed page re-sends the last delivered payment")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert_file,
                 "certificate chain (PEM): serve https only, with --tls-key")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls_key_file, "private key (PEM) of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca", options.tls_client_ca_file,
                 "CA bundle (PEM): require a client certificate it signed (mTLS)")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", options.threads, "server threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
}

// "HH:MM" (UTC) as minutes after midnight; nullopt when it is not that.
std::optional<int> cutoff_minute(const std::string& cutoff) {
  int hours = -1;
  int minutes = -1;
  char tail = 0;
  if (std::sscanf(cutoff.c_str(), "%2d:%2d%c", &hours, &minutes, &tail) != 2 || hours < 0 ||
      hours > 23 || minutes < 0 || minutes > 59)
    return std::nullopt;
  return hours * 60 + minutes;
}

}  // namespace

int main(int argc, char** argv) {
  namespace mock = clearing::clearing_mock;
  mock::MockOptions options;
  CLI::App app{
      "clearing-mock: a stubbed national clearing API (POST /v1/transfers, GET "
      "/v1/transfers/{reference}, GET /v1/incoming) with an idempotency store, a ledger, "
      "per-country validation, a cut-off, and seeded fault injection.\n"
      "Admin (bearer token too): GET /admin/ledger, GET /admin/stats, GET|PUT /admin/faults, "
      "POST /admin/incoming.\n"
      "Rules: creditor account ending 0004 -> RJCT AC04, 0006 -> AC06; amount over "
      "--amount-max -> AM02; other currency -> AM03; invalid account -> AC01. After the "
      "cut-off transfers answer 202 PDNG and settle on the --settle-after-inquiries-th "
      "status inquiry.\n"
      "Capacity model (off by default): --capacity N executors run submits and inquiries, "
      "each for --service-ms (slower by --thrash-permille as the queue grows); the others "
      "wait in a FIFO queue of --queue-max, beyond which they get 503 OVERLOADED with "
      "Retry-After."};
  std::string country = "dk";
  std::string cutoff;
  std::string country_config;
  std::string log_format = "text";
  add_clearing_flags(app, options, country, cutoff, country_config);
  add_fault_flags(app, options.faults);
  app.add_option("--log-format", log_format, "text, or json: one JSON object per line on stderr")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  clearing::base::init_logging();
  clearing::base::set_log_format(*clearing::base::parse_log_format(log_format));

  options.country = *clearing::sagas::parse_country(country);
  if (!country_config.empty()) {
    // The whole file is checked as the adapter checks it (secrets aside: they come from the
    // adapter's environment, not ours); only its country section is used.
    const auto loaded = clearing::config::load_config(
        country_config, clearing::config::MapEnvironment{}, {.allow_missing_secrets = true});
    if (!loaded) {
      std::cerr << "clearing-mock: --country-config: " << loaded.error().to_string() << '\n';
      return 2;
    }
    if (loaded->country.code != options.country) {
      std::cerr << "clearing-mock: --country-config " << country_config << " is for "
                << clearing::config::country_code_upper(loaded->country.code) << ", not --country "
                << country << '\n';
      return 2;
    }
    options.business_days = loaded->country.business_days;
    options.cutoff_minute_utc = static_cast<int>(loaded->country.cutoff_utc.count());
  }
  if (!cutoff.empty()) {
    const auto minute = cutoff_minute(cutoff);
    if (!minute) {
      std::cerr << "clearing-mock: --cutoff must be HH:MM, got '" << cutoff << "'\n";
      return 2;
    }
    options.cutoff_minute_utc = *minute;
  }

  // Tracing from the standard OpenTelemetry variables (off when no endpoint is set): a span
  // for each submit and inquiry, under the caller's traceparent.
  auto tracing = clearing::tracing::install_from_environment("clearing-mock");
  if (!tracing) {
    std::cerr << "clearing-mock: tracing: " << tracing.error() << '\n';
    return 2;
  }
  const auto span_exporter = tracing->exporter;

  auto server = mock::MockServer::start(options);
  if (!server) {
    std::cerr << "clearing-mock: " << server.error() << '\n';
    return 1;
  }
  // Scripts read the port from this first line.
  std::cout << "listening " << options.host << ":" << (*server)->port() << std::endl;
  (*server)->run_until_signal();
  if (span_exporter) span_exporter->stop();
  std::cout << "stopped" << std::endl;
  return 0;
}
