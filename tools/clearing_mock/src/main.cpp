// clearing-mock: the stubbed national clearing system (see mock_state.hpp for its rules).
// main only parses flags and wires the server.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "clearing/clearing_mock/mock_server.hpp"

namespace {

using clearing::clearing_mock::FaultSettings;

void add_fault_flags(CLI::App& app, FaultSettings& faults) {
  auto probability = CLI::Range(0.0, 1.0);
  struct Flag {
    const char* name;
    double* target;
    const char* help;
  };
  const Flag flags[] = {
      {"--fault-delay", &faults.delay, "probability of an injected delay (see --delay-ms)"},
      {"--fault-timeout-before-execute", &faults.timeout_before_execute,
       "hold the answer past the client's deadline, execute nothing, then close"},
      {"--fault-timeout-after-execute", &faults.timeout_after_execute,
       "execute, then hold the answer past the client's deadline and close"},
      {"--fault-close-after-execute", &faults.close_after_execute,
       "execute, then close the connection without answering"},
      {"--fault-reset-before-execute", &faults.reset_before_execute,
       "reset the connection (RST) before executing"},
      {"--fault-http-500", &faults.http_500, "answer 500, nothing executed"},
      {"--fault-http-502", &faults.http_502, "answer 502, nothing executed"},
      {"--fault-http-504", &faults.http_504, "execute, then answer 504"},
      {"--fault-error-body-200", &faults.error_body_200,
       "answer 200 with an error body, nothing executed"},
      {"--fault-malformed-json", &faults.malformed_json,
       "execute, then answer with a truncated JSON body"},
      {"--fault-maintenance-503", &faults.maintenance_503,
       "answer 503 with Retry-After, nothing executed"},
      {"--fault-stray-response", &faults.stray_response,
       "hostile: after the answer, an unrequested 201 ACSC or 200 RJCT AC04 on the same "
       "connection, at once or late (see --stray-delay-ms-max)"},
      {"--fault-duplicate-response", &faults.duplicate_response,
       "hostile: the answer written twice on its connection"},
      {"--fault-nul-field", &faults.nul_field,
       "hostile: a NUL in the answer's clearing_reference or reason (the ledger keeps the truth)"},
      {"--fault-oversize-field", &faults.oversize_field,
       "hostile: a 1 MB clearing_reference or reason in the answer (the ledger keeps the truth)"},
  };
  for (const auto& flag : flags) {
    app.add_option(flag.name, *flag.target, flag.help)->check(probability)->group("Faults");
  }
  app.add_option("--delay-ms-min", faults.delay_ms_min, "injected delay, lower bound (ms)")
      ->check(CLI::Range(0, 600'000))
      ->group("Faults");
  app.add_option("--delay-ms-max", faults.delay_ms_max, "injected delay, upper bound (ms)")
      ->check(CLI::Range(0, 600'000))
      ->group("Faults");
  app.add_option("--latency-ms", faults.latency_ms, "fixed latency added to every /v1 answer")
      ->check(CLI::Range(0, 600'000))
      ->group("Faults");
  app.add_option("--hold-ms", faults.hold_ms,
                 "how long timeout_* faults hold the connection (longer than the client's "
                 "deadline)")
      ->check(CLI::Range(0, 600'000))
      ->group("Faults");
  app.add_option("--retry-after-s", faults.retry_after_s, "Retry-After of maintenance_503")
      ->check(CLI::Range(0, 86'400))
      ->group("Faults");
  app.add_option("--stray-delay-ms-max", faults.stray_delay_ms_max,
                 "a late stray response comes 1..this many ms after the answer")
      ->check(CLI::Range(1, clearing::clearing_mock::kStrayDelayMsMax))
      ->capture_default_str()
      ->group("Faults");
}

// The clearing's own rules and the server: everything but the faults. The country and the
// cut-off arrive as text, checked after parsing.
void add_clearing_flags(CLI::App& app, clearing::clearing_mock::MockOptions& options,
                        std::string& country, std::string& cutoff) {
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port; 0 picks a free one (printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--token", options.bearer_token, "bearer token clients must send")
      ->capture_default_str();
  app.add_option("--country", country, "dk, se or no: account rules and currency")
      ->check(CLI::IsMember({"dk", "se", "no"}))
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed of the fault schedule and the incoming feed")
      ->capture_default_str();
  app.add_option("--amount-max", options.amount_minor_max,
                 "largest amount_minor accepted; above: RJCT AM02")
      ->capture_default_str();
  app.add_option("--cutoff", cutoff, "cut-off time HH:MM (UTC); later transfers are PDNG");
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
      "status inquiry."};
  std::string country = "dk";
  std::string cutoff;
  add_clearing_flags(app, options, country, cutoff);
  add_fault_flags(app, options.faults);
  CLI11_PARSE(app, argc, argv);

  options.country = *clearing::sagas::parse_country(country);
  if (!cutoff.empty()) {
    const auto minute = cutoff_minute(cutoff);
    if (!minute) {
      std::cerr << "clearing-mock: --cutoff must be HH:MM, got '" << cutoff << "'\n";
      return 2;
    }
    options.cutoff_minute_utc = *minute;
  }

  auto server = mock::MockServer::start(options);
  if (!server) {
    std::cerr << "clearing-mock: " << server.error() << '\n';
    return 1;
  }
  // Scripts read the port from this first line.
  std::cout << "listening " << options.host << ":" << (*server)->port() << std::endl;
  (*server)->run_until_signal();
  std::cout << "stopped" << std::endl;
  return 0;
}
