// clearing-adapter: the service for one country and its operator commands.
//   run      --config FILE            the service (SIGTERM: graceful stop, exit 0)
//   trace    ID --config FILE [--json] [--core-url URL] the story of one transfer; with the
//            core's story URL (streams.core_story_url or --core-url) both sides in one timeline;
//            or of a parked message or parked incoming payment (its parked id or payment id,
//            with the operators' actions)
//   resolve  ID --config FILE --outcome succeeded|rejected --reason TEXT
//            [--clearing-reference R [--settlement-date D] | --reason-code C] [--api-url URL]
//   erase    --subject ID --reason TEXT --config FILE [--api-url URL]
//   parked   close|replay ID --reason TEXT --config FILE [--api-url URL]
//   parked   book ID --reason TEXT [--amount-minor-units N] [--creditor-account A] --config FILE
//            [--api-url URL]   a parked incoming payment, to the core (with corrections)
//   parked   return ID --reason TEXT --config FILE [--api-url URL]   a parked incoming payment,
//            recorded as returned (the bank's manual process; the clearing API has no return)
//            all of these through the running adapter's API with CLEARING_ADAPTER_OPERATOR_TOKEN
//            (or its _FILE form); the operator recorded is that token's name
//   streams  --config FILE [--json]    where each outbound stream stands: state (backfilling,
//            live, deprecated, retired), head, published, derivation position, backfill
//            progress, sunset (exit 0; 2 when the database cannot be read)
//   events check --config FILE        can this build read every stored event? (0 yes, 1 no)
// main() only parses arguments and wires; the work is in the adapter library.

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "clearing/adapter/core_story.hpp"
#include "clearing/adapter/events_check.hpp"
#include "clearing/adapter/service.hpp"
#include "clearing/adapter/streams_report.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/url.hpp"
#include "clearing/privacy/vault.hpp"

namespace {

using namespace clearing;

tl::expected<config::AdapterConfig, std::string> load(const std::string& path,
                                                      bool allow_missing_secrets) {
  auto loaded = config::load_config(path, config::Environment::process(), {allow_missing_secrets});
  if (!loaded) return tl::unexpected("configuration is not valid:\n" + loaded.error().to_string());
  return std::move(*loaded);
}

int fail(const std::string& message) {
  // In JSON mode (set once the config is loaded) a line of JSON like every other line.
  if (base::log_format() == base::LogFormat::json) {
    base::module_logger("main")->critical("stopped error=\"{}\"", message);
    return 2;
  }
  std::fprintf(stderr, "clearing-adapter: %s\n", message.c_str());
  return 2;
}

int run(const std::string& config_path) {
  auto config = load(config_path, false);
  if (!config) return fail(config.error());
  // The process's log format, set here once, as soon as it is known: before the config's own
  // lines (summary, warnings) and everything after. Service::create leaves it alone.
  base::set_log_format(config->log_format);
  base::set_log_level(std::string(config::log_level_name(config->log_level)));
  auto log = base::module_logger("main");
  log->info("config {}", config::redacted_summary(*config));
  for (const auto& warning : config::config_warnings(*config))
    log->warn("config {}", warning.to_string());

  // SIGTERM/SIGINT are waited for on this thread; every other thread ignores them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<external_streams::EmbeddedKafka> embedded;
  std::string bootstrap = config->kafka.brokers;
  if (config->kafka.embedded()) {
    auto started = external_streams::EmbeddedKafka::start(1);
    if (!started) return fail(started.error().message);
    embedded = std::move(*started);
    for (const auto& [topic, partitions] : adapter::configured_topics(*config))
      if (auto created = embedded->create_topic(topic, partitions); !created)
        return fail(created.error().message);
    bootstrap = embedded->bootstrap_servers();
    log->info("embedded kafka bootstrap={}", bootstrap);
  }
  // A database or broker that is not up yet (a restart, a deployment starting everything at
  // once) is waited for: the start is retried with backoff for up to kStartWait, each failure
  // logged; SIGTERM/SIGINT during the wait end it at once.
  constexpr auto kStartWait = std::chrono::seconds(60);
  const auto give_up_at = std::chrono::steady_clock::now() + kStartWait;
  std::unique_ptr<adapter::Service> service;
  for (int attempt = 1; !service; ++attempt) {
    auto created = adapter::Service::create(*config, bootstrap);
    if (!created) return fail(created.error());
    auto started = (*created)->start();
    if (started) {
      service = std::move(*created);
      break;
    }
    created->reset();  // stops what did start
    if (!started.error().retryable) return fail("cannot start: " + started.error().message);
    if (std::chrono::steady_clock::now() >= give_up_at)
      return fail("start failed (gave up after " + std::to_string(kStartWait.count()) +
                  " s): " + started.error().message);
    const auto backoff = std::chrono::milliseconds(std::min(250 << std::min(attempt - 1, 5), 5000));
    log->warn("start failed attempt={} error=\"{}\" retry_in_ms={}", attempt,
              started.error().message, backoff.count());
    const timespec wait{static_cast<time_t>(backoff.count() / 1000),
                        static_cast<long>(backoff.count() % 1000) * 1'000'000};
    if (const int sig = sigtimedwait(&signals, nullptr, &wait); sig > 0) {
      log->info("signal={} before the start succeeded: stopping",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return 0;
    }
  }
  int received = 0;
  sigwait(&signals, &received);
  log->info("signal={}: stopping", received == SIGTERM ? "SIGTERM" : "SIGINT");
  service->stop();
  return 0;
}

struct Store {
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<adapter::TransferService> transfers;
};

tl::expected<Store, std::string> open_store(const config::AdapterConfig& config) {
  Store s;
  eventstore::DatabaseOptions options;
  options.url = config.database.url;
  options.connections_max = 2;
  s.pool = std::make_unique<eventstore::ConnectionPool>(options);
  for (const auto* m :
       {&eventstore::eventstore_migrations(), &adapter::adapter_migrations(),
        &external_streams::external_streams_migrations(), &privacy::privacy_migrations()}) {
    auto applied = eventstore::apply_migrations(*s.pool, *m);
    if (!applied)
      return tl::unexpected("database " + config::redact_database_url(config.database.url) + ": " +
                            applied.error().message);
  }
  // Personal data reads open with the KEK (or [erased]); without it, sealed as stored.
  if (config.privacy.data_kek.is_set()) {
    auto ring = privacy::KeyRing::parse(config.privacy.data_kek.reveal(),
                                        config.privacy.data_kek_previous.reveal());
    if (!ring) return tl::unexpected(std::string(config::kEnvDataKek) + ": " + ring.error());
    auto vault = privacy::Vault::create({.database = options, .keys = std::move(*ring)});
    if (!vault) return tl::unexpected("personal data keys: " + vault.error().message);
    s.pool->set_protector(std::move(*vault));
  } else {
    std::fprintf(stderr, "clearing-adapter: %s is not set: personal data shows sealed\n",
                 config::kEnvDataKek);
  }
  s.store = std::make_unique<eventstore::EventStore>(*s.pool);
  s.transfers = std::make_unique<adapter::TransferService>(*s.store);
  return s;
}

// The core's story merged into `story` when a URL is given (--core-url, else
// streams.core_story_url): asked with the catch-up credential and TLS files, the same core.
// A core that cannot tell its side leaves the adapter's story whole and one line saying why;
// the exit status stays that of the adapter's side (docs/core-story.md).
void add_core_story(const config::AdapterConfig& config, const std::string& core_url,
                    const std::string& id, nlohmann::json& story) {
  const auto& streams = config.streams;
  const auto url = core_url.empty() ? streams.core_story_url : core_url;
  if (url.empty()) return;
  // Member by member: GCC 12 at -O3 takes the designated initializer's TLS strings for
  // maybe-uninitialized (a false positive that breaks the Release build with -Werror).
  adapter::CoreStoryClientOptions options;
  options.base_url = url;
  options.bearer_token = streams.core_catchup_token.reveal();
  options.tls.ca_file = streams.core_catchup_ca_file.value_or("");
  options.tls.cert_file = streams.core_catchup_client_cert_file.value_or("");
  options.tls.key_file = streams.core_catchup_client_key_file.value_or("");
  options.timeout_ms = config.clearing.request_timeout_ms;
  options.url_setting = core_url.empty() ? "streams.core_story_url" : "--core-url";
  options.token_setting = std::string(config::kEnvCoreCatchupToken);
  auto core = adapter::fetch_core_story(options, id);
  if (core)
    adapter::merge_core_story(story, *core);
  else
    adapter::mark_core_story_missing(story, core.error());
}

int trace(const std::string& config_path, const std::string& id, bool as_json,
          const std::string& core_url) {
  if (!core_url.empty())
    if (const auto problem = config::core_story_url_problem(core_url))
      return fail("--core-url: " + *problem + ", got \"" + config::redact_http_url(core_url) +
                  "\"");
  auto config = load(config_path, true);
  if (!config) return fail(config.error());
  base::set_log_level("warn");
  auto store = open_store(*config);
  if (!store) return fail(store.error());
  auto story = adapter::build_trace(*store->pool, *store->transfers, id);
  if (!story) {
    // Not a transfer: a parked message's id or a parked payment's id (its operators' actions).
    auto parked = adapter::build_parked_trace(*store->pool, *store->store, id);
    if (parked) {
      std::cout << (as_json ? parked->dump(2) + "\n" : adapter::render_parked_trace(*parked));
      return 0;
    }
    // Both answers: either may be the database's failure rather than "no such id".
    return fail(story.error() + "; " + parked.error());
  }
  add_core_story(*config, core_url, id, *story);
  std::cout << (as_json ? story->dump(2) + "\n" : adapter::render_trace(*story));
  return 0;
}

int streams(const std::string& config_path, bool as_json) {
  auto config = load(config_path, true);
  if (!config) return fail(config.error());
  base::set_log_level("warn");
  auto store = open_store(*config);
  if (!store) return fail(store.error());
  auto progress = adapter::read_streams_report(*store->pool);
  if (!progress) return fail(progress.error());
  std::cout << (as_json ? adapter::streams_json(*progress).dump(2) + "\n"
                        : adapter::render_streams(*progress));
  return 0;
}

// The API's base URL from the config's listening address: a wildcard address is reached on
// the loopback.
std::string api_url_of(const config::AdapterConfig& config) {
  auto address = config::parse_host_port(config.http.address);
  if (!address) return "";
  std::string host = address->host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(address->port);
}

// An operator action through the adapter's API with the operator token: the event names the
// token's name as the operator, and nothing bypasses the service. The answer's JSON on 200;
// otherwise the exit code, the refusal said on stderr.
tl::expected<nlohmann::json, int> as_operator(const std::string& config_path,
                                              const std::string& api_url, const std::string& path,
                                              const nlohmann::json& body) {
  auto config = load(config_path, true);
  if (!config) return tl::unexpected(fail(config.error()));
  if (!config->http.operator_token.is_set())
    return tl::unexpected(fail(std::string("no operator token: set ") + config::kEnvOperatorToken +
                               " (or " + config::kEnvOperatorToken + config::kSecretFileSuffix +
                               ")"));
  const auto base = api_url.empty() ? api_url_of(*config) : api_url;
  if (base.empty())
    return tl::unexpected(fail("http.address " + config->http.address + " is not host:port"));
  auto answer = http::send({.method = "POST",
                            .url = base + path,
                            .bearer_token = config->http.operator_token.reveal(),
                            .headers = {{"Content-Type", "application/json"}},
                            .body = body.dump(),
                            .timeout_ms = config->clearing.request_timeout_ms});
  if (!answer)
    return tl::unexpected(fail("the adapter's API at " + base + ": " + answer.error().message));
  const auto json = nlohmann::json::parse(answer->body, nullptr, false);
  if (answer->status == 200) return json.is_object() ? json : nlohmann::json::object();
  std::string said;
  if (json.is_object() && json.contains("error") && json["error"].is_object())
    said = json["error"].value("code", std::string()) + ": " +
           json["error"].value("message", std::string());
  if (answer->status == 401 || answer->status == 403)
    return tl::unexpected(fail("the adapter's API refused the operator token (HTTP " +
                               std::to_string(answer->status) + " " + said + "): check " +
                               config::kEnvOperatorToken));
  return tl::unexpected(fail("refused (HTTP " + std::to_string(answer->status) + " " + said + ")"));
}

// POST /transfers/{id}/resolve.
int resolve(const std::string& config_path, const std::string& id, const std::string& api_url,
            const nlohmann::json& body) {
  auto done = as_operator(config_path, api_url,
                          "/transfers/" + http::percent_encode(id) + "/resolve", body);
  if (!done) return done.error();
  std::cout << "transfer " << id << " resolved as " << body.value("outcome", std::string())
            << " by " << done->value("operator", std::string())
            << "; the outcome flows to the core like any other\n";
  return 0;
}

// POST /subjects/erase: the subject's data keys destroyed; prints the subject's reference
// (never the subject), the keys destroyed and the SubjectErased event.
int erase(const std::string& config_path, const std::string& subject, const std::string& reason,
          const std::string& api_url) {
  auto done = as_operator(config_path, api_url, "/subjects/erase",
                          nlohmann::json{{"subject", subject}, {"reason", reason}});
  if (!done) return done.error();
  std::cout << "subject " << done->value("subject_ref", std::string()) << " erased by "
            << done->value("operator", std::string()) << ": " << done->value("keys_destroyed", 0)
            << " data key(s) destroyed, event " << done->value("event_id", std::string())
            << "; its personal data now reads [erased]\n";
  return 0;
}

// POST /parked/{id}/close or /replay: the action's event names the token's name and the reason.
// POST /parked/{id}/book or /return on a parked incoming payment, likewise; `body` has the
// reason and a booking's corrections.
int parked_action(const std::string& config_path, const std::string& action, const std::string& id,
                  const nlohmann::json& body, const std::string& api_url) {
  auto done =
      as_operator(config_path, api_url, "/parked/" + http::percent_encode(id) + "/" + action, body);
  if (!done) return done.error();
  if (action == "book" || action == "return") {
    std::cout << "parked incoming payment " << id << " (payment "
              << done->value("payment_id", std::string()) << ") "
              << done->value("state", std::string()) << " by "
              << done->value("operator", std::string()) << ", event "
              << done->value("event_id", std::string()) << "\n"
              << done->value("note", std::string()) << "\n";
    return 0;
  }
  std::cout << "parked message " << id << " " << done->value("state", std::string()) << " by "
            << done->value("operator", std::string());
  if (action == "replay")
    std::cout << ": " << done->value("outcome", std::string()) << " transfer "
              << done->value("transfer_id", std::string());
  std::cout << ", event " << done->value("event_id", std::string()) << "\n";
  return 0;
}

// Exit 0: every stored event reads; 1: some do not (listed); 2: config or database error.
int events_check(const std::string& config_path) {
  auto config = load(config_path, true);
  if (!config) return fail(config.error());
  base::set_log_level("warn");
  auto store = open_store(*config);
  if (!store) return fail(store.error());
  adapter::EventsCheckOptions options;
  options.progress = [](std::int64_t read, std::int64_t failures) {
    std::fprintf(stderr, "events check: %lld events read, %lld do not read\n",
                 static_cast<long long>(read), static_cast<long long>(failures));
  };
  auto report = adapter::check_events(*store->store, options);
  if (!report) return fail("reading events: " + report.error().message);
  std::cout << adapter::render_events_check(*report);
  return report->exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  clearing::base::init_logging();
  CLI::App app{
      "clearing-adapter: the bank's adapter between its banking core and the national clearing"};
  app.require_subcommand(1);
  std::string config_path, id, outcome, reason, reference, reason_code, settlement_date, api_url;
  std::string operator_given;
  bool as_json = false;

  auto* run_cmd = app.add_subcommand("run", "run the adapter for one country");
  run_cmd->add_option("--config", config_path, "config file, e.g. config/dk.json")
      ->required()
      ->check(CLI::ExistingFile);

  auto* trace_cmd = app.add_subcommand("trace", "tell the story of one transfer, end to end");
  trace_cmd->add_option("transfer-id", id, "the transfer id")->required();
  trace_cmd->add_option("--config", config_path, "config file")
      ->required()
      ->check(CLI::ExistingFile);
  trace_cmd->add_flag("--json", as_json, "print JSON for tools");
  std::string core_url;
  trace_cmd->add_option("--core-url", core_url,
                        "the core's story API, e.g. http://127.0.0.1:8092 (default: "
                        "streams.core_story_url; neither: the adapter's side only)");

  auto* resolve_cmd =
      app.add_subcommand("resolve", "correct a transfer under investigation (people only)");
  resolve_cmd->add_option("transfer-id", id, "the transfer id")->required();
  resolve_cmd->add_option("--config", config_path, "config file")
      ->required()
      ->check(CLI::ExistingFile);
  resolve_cmd->add_option("--outcome", outcome, "succeeded|rejected")->required();
  resolve_cmd->add_option("--reason", reason, "why, in words")->required();
  auto* ref_opt = resolve_cmd->add_option("--clearing-reference", reference, "for succeeded");
  auto* date_opt =
      resolve_cmd->add_option("--settlement-date", settlement_date,
                              "for succeeded, YYYY-MM-DD (default: the calendar's settlement day)");
  auto* code_opt =
      resolve_cmd->add_option("--reason-code", reason_code, "for rejected (ISO 20022)");
  ref_opt->excludes(code_opt);
  date_opt->excludes(code_opt);
  // Gone (issue 21): named for whoever still types it, then refused with the reason.
  resolve_cmd->add_option("--operator", operator_given)->group("");
  resolve_cmd->add_option("--api-url", api_url,
                          "the adapter's API, e.g. http://127.0.0.1:8080 (default: from "
                          "http.address); the operator token is CLEARING_ADAPTER_OPERATOR_TOKEN");

  std::string subject;
  auto* erase_cmd = app.add_subcommand(
      "erase", "erase a data subject's personal data: destroy its keys (people only)");
  erase_cmd
      ->add_option("--subject", subject,
                   "the core's account id, or for incoming payments the creditor's account")
      ->required();
  erase_cmd->add_option("--reason", reason, "why, in words (recorded)")->required();
  erase_cmd->add_option("--config", config_path, "config file")
      ->required()
      ->check(CLI::ExistingFile);
  erase_cmd->add_option("--api-url", api_url,
                        "the adapter's API (default: from http.address); the operator token is "
                        "CLEARING_ADAPTER_OPERATOR_TOKEN");

  auto* parked_cmd =
      app.add_subcommand("parked", "act on a parked message or incoming payment (people only)");
  parked_cmd->require_subcommand(1);
  std::string parked_action_name;
  for (const auto& [name, what] :
       {std::pair<std::string, std::string>{"close", "the message is done with: close it"},
        {"replay",
         "after its cause was fixed, the message goes back into the inbound path once"}}) {
    auto* cmd = parked_cmd->add_subcommand(name, what);
    cmd->add_option("parked-id", id, "the parked message's id (GET /parked)")->required();
    cmd->add_option("--reason", reason, "why, in words (recorded)")->required();
    cmd->add_option("--config", config_path, "config file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--api-url", api_url,
                    "the adapter's API (default: from http.address); the operator token is "
                    "CLEARING_ADAPTER_OPERATOR_TOKEN");
    cmd->callback([&parked_action_name, name = name] { parked_action_name = name; });
  }
  std::int64_t book_amount = 0;
  std::string book_account;
  for (const auto& [name, what] :
       {std::pair<std::string, std::string>{
            "book",
            "a parked incoming payment goes to the core as an incoming payment (with the "
            "corrections that make it valid)"},
        {"return",
         "a parked incoming payment is recorded as returned to the payer (the bank's manual "
         "process: the clearing API has no return call)"}}) {
    auto* cmd = parked_cmd->add_subcommand(name, what);
    cmd->add_option("parked-id", id, "the parked payment's id (GET /parked, kind incoming_payment)")
        ->required();
    cmd->add_option("--reason", reason, "why, in words (recorded)")->required();
    if (name == "book") {
      cmd->add_option("--amount-minor-units", book_amount,
                      "the amount booked, in minor units of the adapter's currency (a payment "
                      "in another currency, after conversion)")
          ->check(CLI::PositiveNumber);
      cmd->add_option("--creditor-account", book_account,
                      "the creditor's account to book to (an invalid one, corrected)");
    }
    cmd->add_option("--config", config_path, "config file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--api-url", api_url,
                    "the adapter's API (default: from http.address); the operator token is "
                    "CLEARING_ADAPTER_OPERATOR_TOKEN");
    cmd->callback([&parked_action_name, name = name] { parked_action_name = name; });
  }

  auto* streams_cmd = app.add_subcommand(
      "streams", "where each outbound stream stands: state, head, published, backfill progress");
  streams_cmd->add_option("--config", config_path, "config file")
      ->required()
      ->check(CLI::ExistingFile);
  streams_cmd->add_flag("--json", as_json, "print JSON for tools");
  auto* events_cmd = app.add_subcommand("events", "the stored internal events");
  events_cmd->require_subcommand(1);
  auto* events_check_cmd = events_cmd->add_subcommand(
      "check", "read every stored event with this build; exit 1 if any does not read");
  events_check_cmd->add_option("--config", config_path, "config file")
      ->required()
      ->check(CLI::ExistingFile);

  CLI11_PARSE(app, argc, argv);
  if (*run_cmd) return run(config_path);
  if (*trace_cmd) return trace(config_path, id, as_json, core_url);
  if (*streams_cmd) return streams(config_path, as_json);
  if (*events_check_cmd) return events_check(config_path);
  if (*erase_cmd) return erase(config_path, subject, reason, api_url);
  if (*parked_cmd) {
    nlohmann::json body{{"reason", reason}};
    if (book_amount > 0) body["amount_minor_units"] = book_amount;
    if (!book_account.empty()) body["creditor_account"] = book_account;
    return parked_action(config_path, parked_action_name, id, body, api_url);
  }
  if (*resolve_cmd) {
    if (!operator_given.empty())
      return fail(std::string("--operator is no longer taken: the operator recorded is the name "
                              "of the token the API is asked with (") +
                  config::kEnvOperatorToken + ")");
    nlohmann::json body{{"outcome", outcome}, {"reason", reason}};
    if (!reference.empty()) body["clearing_reference"] = reference;
    if (!settlement_date.empty()) body["settlement_date"] = settlement_date;
    if (!reason_code.empty()) body["reason_code"] = reason_code;
    return resolve(config_path, id, api_url, body);
  }
  return 2;
}
