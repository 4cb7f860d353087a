#include "clearing/adapter/service.hpp"

#include <unistd.h>

#include <atomic>
#include <future>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/kafka_client_options.hpp"
#include "clearing/adapter/personal_data.hpp"
#include "clearing/adapter/readiness.hpp"
#include "clearing/adapter/streams_report.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/metrics.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/backfill.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/http/server.hpp"
#include "clearing/tracing/otlp.hpp"
#include "service_metrics.hpp"

namespace clearing::adapter {
using http::HttpRequest;
using http::HttpResponse;
using http::HttpServer;
using http::HttpServerOptions;
using http::RouteOptions;
// The config's copies of the relay's pacing default and limit (config.hpp cannot include
// relay.hpp).
static_assert(config::kRelayRoundIntervalMsDefault ==
              external_streams::kRoundIntervalMinDefault.count());
static_assert(config::kRelayRoundIntervalMsMax == external_streams::kRoundIntervalMinMax.count());

namespace {

sagas::RetryPolicy policy_of(const config::RetryConfig& r) {
  sagas::RetryPolicy p;
  p.backoff_initial_ms = r.backoff_initial_ms;
  p.backoff_max_ms = r.backoff_max_ms;
  p.backoff_multiplier = r.backoff_multiplier;
  p.unknown_outcomes_before_inquiry = static_cast<std::int32_t>(r.unknown_outcomes_before_inquiry);
  p.pending_inquiry_interval_ms = r.pending_inquiry_interval_ms;
  p.investigation_inquiry_interval_ms = r.investigation_inquiry_interval_ms;
  p.deadline_ms = r.deadline_ms;
  return p;
}

sagas::CountryRules rules_of(const config::CountryConfig& c) {
  sagas::CountryRules rules;
  rules.country = c.code;  // config and sagas share base::Country
  rules.currency = *sagas::Currency::parse(c.currency);
  rules.amount_limit_minor = c.amount_limit_minor;
  rules.account_schemes = c.account_schemes;  // each with a rule in the registry (validate)
  return rules;
}

// The API's tokens by role (config.hpp, HttpConfig; README, "API tokens"): the API token
// "api" reads (catch-up API, /transfers, /parked) and opens /metrics, as it always did; the
// optional metrics and operator tokens each open their own role's routes only. None at all
// only in the embedded demo without secrets: authentication disabled.
std::vector<http::BearerToken> api_tokens(const config::HttpConfig& http) {
  std::vector<http::BearerToken> tokens;
  if (http.api_token.is_set())
    tokens.push_back({"api",
                      http.api_token.reveal(),
                      {std::string(http::kRoleReader), std::string(http::kRoleMetrics)}});
  if (http.metrics_token.is_set())
    tokens.push_back({"metrics", http.metrics_token.reveal(), {std::string(http::kRoleMetrics)}});
  if (http.operator_token.is_set())
    tokens.push_back(
        {"operator", http.operator_token.reveal(), {std::string(http::kRoleOperator)}});
  return tokens;
}

// What the config says of each outbound stream, as the stream registry takes it.
std::vector<external_streams::StreamSetting> stream_settings(const config::AdapterConfig& config) {
  std::vector<external_streams::StreamSetting> out;
  for (const auto& stream : config.streams.outbound) {
    external_streams::StreamSetting setting{
        .spec = {stream.name, stream.partitions},
        .derivation = std::string(config::derivation_name(stream.derivation))};
    base::Timestamp from{};
    if (stream.backfill_from && base::parse_timestamp(*stream.backfill_from, from))
      setting.backfill_from = from;
    for (const auto& entry : config.streams.deprecated)
      if (entry.stream == stream.name) {
        setting.sunset = config::format_date(entry.sunset);
        setting.retired = entry.retired;
      }
    out.push_back(std::move(setting));
  }
  return out;
}

std::string instance_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

std::vector<std::pair<std::string, int>> configured_topics(const config::AdapterConfig& config) {
  std::vector<std::pair<std::string, int>> topics{
      {config.streams.inbound.name, config.streams.inbound.partitions}};
  for (const auto& out : config.streams.outbound) topics.emplace_back(out.name, out.partitions);
  return topics;
}

// Retention runs daily; a round that failed (the database away) is tried again within
// minutes rather than a day later.
constexpr std::chrono::seconds kRetentionInterval{24 * 3600};
constexpr std::chrono::seconds kRetentionRetry{300};

struct Service::Impl {
  config::AdapterConfig config;
  std::string kafka_bootstrap;
  std::shared_ptr<spdlog::logger> log = base::module_logger("service");
  base::SystemClock clock;
  base::metrics::Registry metrics;

  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::shared_ptr<privacy::Vault> vault;  // the pool's protector
  base::BackgroundThread retention;       // applies privacy.retention_years once a day
  // The last retention round's outcome: a failed one is retried soon, and shown on /metrics.
  std::atomic<bool> retention_applied{false};
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<TransferService> transfers;
  std::unique_ptr<clearing_client::ClearingClient> client;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<IncomingPoller> poller;
  std::unique_ptr<eventstore::Subscription> derivation;
  std::vector<std::unique_ptr<external_streams::Backfill>> backfills;
  std::vector<external_streams::StreamRecord> streams;  // as registered at start
  bool refused = false;  // the start failed for a reason only a person can fix
  std::shared_ptr<external_streams::DerivationLookups> derivation_lookups =
      std::make_shared<external_streams::DerivationLookups>();
  std::unique_ptr<external_streams::Relay> relay;
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  std::unique_ptr<HttpServer> http;
  // Tracing (OTEL_* variables, tracing/otlp.hpp): the exporter when an endpoint is set, and
  // the tracer installed as the process's while the service runs.
  std::shared_ptr<tracing::OtlpHttpExporter> span_exporter;
  std::shared_ptr<const tracing::Tracer> tracer;
  bool started = false;
  // Logs readiness once per change of the components' states (status() is const: /readyz).
  mutable ReadinessLog readiness_log{base::module_logger("readiness")};

  tl::expected<void, std::string> open_database() {
    eventstore::DatabaseOptions options;
    options.url = config.database.url;
    options.connections_max = static_cast<std::size_t>(config.database.connections_max);
    options.statement_timeout = std::chrono::milliseconds(config.database.statement_timeout_ms);
    options.application_name =
        "clearing-adapter-" + std::string(config::country_code_lower(config.country.code));
    pool = std::make_unique<eventstore::ConnectionPool>(options);
    for (const auto* migrations :
         {&eventstore::eventstore_migrations(), &adapter_migrations(),
          &external_streams::external_streams_migrations(), &privacy::privacy_migrations()}) {
      auto applied = eventstore::apply_migrations(*pool, *migrations);
      if (!applied)
        return tl::unexpected("database " + config::redact_database_url(config.database.url) +
                              ": " + applied.error().message);
      for (const auto& id : applied->applied) log->info("migration applied id={}", id);
    }
    auto registered = external_streams::register_streams(*pool, stream_settings(config));
    if (!registered) {
      if (!registered.error().retryable()) refused = true;
      return tl::unexpected("streams: " + registered.error().message);
    }
    streams = std::move(*registered);
    if (auto opened = open_vault(options); !opened) return opened;
    // Each stream's state and progress, once at start; a backfill logs its own as it goes.
    if (auto progress = read_streams_report(*pool))
      for (const auto& p : *progress) log->info("stream {}", stream_progress_fields(p));
    transfers = std::make_unique<TransferService>(*store);
    return {};
  }

  // Personal data at rest: the vault seals and opens through the pool from here on. A KEK
  // the data keys do not know refuses the start (a person must give the right one).
  tl::expected<void, std::string> open_vault(const eventstore::DatabaseOptions& options) {
    auto ring = privacy::KeyRing::parse(config.privacy.data_kek.reveal(),
                                        config.privacy.data_kek_previous.reveal());
    if (!ring) {
      refused = true;
      return tl::unexpected(std::string(config::kEnvDataKek) + " / " +
                            config::kOptionalEnvDataKekPrevious + ": " + ring.error());
    }
    auto made = privacy::Vault::create({.database = options, .keys = std::move(*ring)});
    if (!made) {
      if (made.error().code == eventstore::StoreErrc::invalid_argument) refused = true;
      return tl::unexpected("personal data keys: " + made.error().message);
    }
    vault = std::move(*made);
    pool->set_protector(vault);
    store = std::make_unique<eventstore::EventStore>(*pool);
    if (auto rewrapped = rewrap_data_keys(*store, *vault); !rewrapped)
      return tl::unexpected("rewrapping the data keys: " + rewrapped.error().message);
    else if (*rewrapped > 0)
      log->info("data_keys_rewrapped keys={} kek_id={}", *rewrapped, vault->kek_id());
    retention_applied = expire_personal_data();
    log->info("personal data sealed kek_id={} retention_years={}", vault->kek_id(),
              config.privacy.retention_years);
    return {};
  }

  // Retention: a failed round is logged, shown on /metrics (privacy_retention_failing) and
  // tried again within kRetentionRetry; the data stays sealed meanwhile.
  bool expire_personal_data() {
    const auto today = std::chrono::year_month_day{
        std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now())};
    auto expired = apply_retention(*store, *vault, config.privacy.retention_years,
                                   static_cast<int>(today.year()));
    if (!expired) {
      log->warn("retention_failed error={} retry_in_s={}", expired.error().message,
                kRetentionRetry.count());
      return false;
    }
    if (*expired > 0)
      log->info("retention_applied keys_destroyed={} retention_years={}", *expired,
                config.privacy.retention_years);
    return true;
  }

  tl::expected<void, std::string> open_client() {
    clearing_client::ClientOptions options;
    options.base_url = config.clearing.base_url;
    options.bearer_token = config.clearing.token.reveal();
    options.request_timeout_ms = config.clearing.request_timeout_ms;
    options.connect_timeout_ms = config.clearing.connect_timeout_ms;
    options.in_flight_max = config.clearing.in_flight_max;
    options.adaptive_concurrency =
        config.clearing.concurrency_mode == config::ConcurrencyMode::adaptive;
    options.concurrency_initial = config.clearing.concurrency_initial;
    options.concurrency_min = config.clearing.concurrency_min;
    options.pool_connections_max = config.clearing.pool_connections_max;
    options.reuse_connections = config.clearing.reuse_connections;
    options.verify_tls = config.clearing.verify_tls;
    options.ca_file = config.clearing.ca_file.value_or("");
    options.client_cert_file = config.clearing.client_cert_file.value_or("");
    options.client_key_file = config.clearing.client_key_file.value_or("");
    auto created = clearing_client::ClearingClient::start(options);
    if (!created) return tl::unexpected("clearing client: " + created.error().message);
    client = std::move(*created);
    return {};
  }

  // Every family of /metrics: service_metrics.cpp (and the README's "Metrics and alerts").
  void register_metrics() {
    dispatcher_hook =
        register_service_metrics(metrics,
                                 {pool, client, dispatcher, poller, derivation, derivation_lookups,
                                  consumer, clock, &span_exporter},
                                 log);
    metrics.gauge_callback(
        "privacy_retention_failing",
        "1 while the last retention round (privacy.retention_years) failed: personal data past "
        "its retention is not yet erased; it is tried again every few minutes",
        {}, [this] {
          return std::vector<std::pair<base::metrics::LabelValues, double>>{
              {{}, retention_applied ? 0.0 : 1.0}};
        });
  }

  // From the standard OpenTelemetry variables; off (contexts still propagated, nothing
  // exported) when no endpoint is set. A bad value refuses the start.
  tl::expected<void, std::string> open_tracing() {
    auto installed = tracing::install_from_environment("clearing-adapter");
    if (!installed) {
      refused = true;
      return tl::unexpected("tracing: " + installed.error());
    }
    span_exporter = installed->exporter;
    tracer = installed->tracer;
    if (span_exporter)
      log->info("tracing exporting url={} service_name={}", span_exporter->options().traces_url,
                span_exporter->options().service_name);
    else
      log->info("tracing off: no OTEL_EXPORTER_OTLP_ENDPOINT; trace contexts still propagated");
    return {};
  }

  AnswerHook dispatcher_hook;

  // The workers, made but not started: dispatcher, incoming poller, derivation, relay and
  // inbound consumer. The errors are messages for a person at start-up.
  tl::expected<void, std::string> open_workers() {
    const auto rules = rules_of(config.country);
    const auto policy = policy_of(config.retry);
    open_dispatcher(policy);
    poller = std::make_unique<IncomingPoller>(
        *store, *client, clock,
        IncomingPollerOptions{std::chrono::milliseconds(config.incoming.poll_interval_ms),
                              config.incoming.page_limit, rules});
    if (auto opened = open_derivation(); !opened) return opened;
    if (auto opened = open_relay(); !opened) return opened;
    return open_consumer(InboundRules{rules, policy});
  }

  void open_dispatcher(const sagas::RetryPolicy& policy) {
    DispatcherOptions d;
    d.owner = instance_name();
    d.in_flight_max = config.dispatcher.in_flight_max;
    d.claim_batch_max = config.dispatcher.claim_batch_max;
    d.window_follows_client_limit =
        config.clearing.concurrency_mode == config::ConcurrencyMode::adaptive;
    d.lease = std::chrono::milliseconds(config.dispatcher.lease_ms);
    d.idle_poll = std::chrono::milliseconds(config.dispatcher.idle_poll_ms);
    d.stop_grace = std::chrono::milliseconds(config.dispatcher.stop_grace_ms);
    d.lease_by_session = config.dispatcher.lease_by_session;
    d.policy = policy;
    d.maintenance = config.clearing.maintenance_windows.windows();
    d.on_answer = dispatcher_hook;
    dispatcher = std::make_unique<Dispatcher>(*transfers, *client, clock, d);
  }

  // The live derivation of every live stream, and a backfill for each stream that is
  // still backfilling (stream_registry.hpp).
  tl::expected<void, std::string> open_derivation() {
    std::vector<external_streams::DerivedStream> derived;
    for (const auto& out : config.streams.outbound) {
      const auto name = std::string(config::derivation_name(out.derivation));
      const auto found = external_streams::find_derivation(name);
      if (!found) {
        refused = true;
        return tl::unexpected("stream " + out.name + ": no derivation named " + name +
                              " is built in");
      }
      derived.push_back({{out.name, out.partitions}, found->derive, found->fold});
    }
    for (const auto& record : streams) {
      if (record.phase != external_streams::StreamPhase::backfilling) continue;
      for (const auto& stream : derived)
        if (stream.spec.name == record.name)
          backfills.push_back(std::make_unique<external_streams::Backfill>(
              *store, stream,
              external_streams::BackfillOptions{
                  .live_busy = [this] { return live_derivation_busy(); },
                  .lookups = derivation_lookups}));
    }
    derivation = std::make_unique<eventstore::Subscription>(
        *store,
        eventstore::SubscriptionOptions{.name = std::string(external_streams::kLiveDerivation)},
        external_streams::make_derivation_handler(
            *store, std::move(derived),
            {.lookups = derivation_lookups, .live_streams_only = true}));
    return {};
  }

  // The live derivation has a backlog (its last batch was full): backfills wait.
  bool live_derivation_busy() const {
    return derivation && derivation->status().state == eventstore::SubscriptionState::catching_up;
  }

  external_streams::KafkaClientOptions kafka_options() const {
    return kafka_client_options(config, kafka_bootstrap);
  }

  tl::expected<void, std::string> open_relay() {
    external_streams::RelayOptions relay_options;
    relay_options.kafka = kafka_options();
    relay_options.batch_max = config.kafka.relay_batch_max;
    relay_options.round_interval_min =
        std::chrono::milliseconds(config.kafka.relay_round_interval_min_ms);
    auto created_relay = external_streams::Relay::create(*pool, relay_options);
    if (!created_relay)
      return tl::unexpected("relay: " + external_streams::message_of(created_relay.error()));
    relay = std::move(*created_relay);
    return {};
  }

  // The core's catch-up API, asked with the adapter's own credential toward the core (never
  // its API token): a refused token names that variable, so the operator knows what to fix.
  // None when no URL is configured.
  external_streams::CatchUpFetcher core_catch_up_fetcher() const {
    if (config.streams.core_catchup_url.empty()) return {};
    return external_streams::make_http_catch_up_fetcher(
        {.base_url = config.streams.core_catchup_url,
         .bearer_token = config.streams.core_catchup_token.reveal(),
         .timeout_ms = config.clearing.request_timeout_ms,
         .token_setting = std::string(config::kEnvCoreCatchupToken) +
                          " (the adapter's credential toward the core)",
         .url_setting = std::string("streams.core_catchup_url or ") + config::kEnvCoreCatchupUrl,
         .tls_setting = "streams.core_catchup_ca_file, streams.core_catchup_client_cert_file and "
                        "streams.core_catchup_client_key_file",
         .tls = {.ca_file = config.streams.core_catchup_ca_file.value_or(""),
                 .cert_file = config.streams.core_catchup_client_cert_file.value_or(""),
                 .key_file = config.streams.core_catchup_client_key_file.value_or("")}});
  }

  tl::expected<void, std::string> open_consumer(const InboundRules& inbound) {
    external_streams::ConsumerOptions consumer_options;
    consumer_options.kafka = kafka_options();
    consumer_options.group_id = config.kafka.group_id;
    consumer_options.topics = {config.streams.inbound.name};
    consumer_options.batch_max = config.kafka.consumer_batch_max;
    consumer_options.tail_check_interval =
        std::chrono::milliseconds(config.streams.tail_check_interval_ms);
    if (config.kafka.partition_assignment == config::PartitionAssignment::database) {
      consumer_options.assignment = external_streams::PartitionAssignment::database;
      consumer_options.partitions = config.streams.inbound.partitions;
    }
    // Transfers the consumer initiated are due for submission: claimed at once, not at the
    // dispatcher's next idle poll (the dispatcher stops after the consumer).
    consumer_options.on_applied = [this] { dispatcher->wake(); };
    auto created_consumer = external_streams::StreamConsumer::create(
        *pool, consumer_options, make_transfer_inbound(*transfers, clock, inbound),
        core_catch_up_fetcher());
    if (!created_consumer)
      return tl::unexpected("consumer: " + external_streams::message_of(created_consumer.error()));
    consumer = std::move(*created_consumer);
    return {};
  }

  tl::expected<void, std::string> open_http() {
    const auto address = config::parse_host_port(config.http.address);
    if (!address)
      return tl::unexpected("http.address " + config.http.address + " is not host:port");
    HttpServerOptions options;
    options.host = address->host;
    options.port = address->port;
    options.tokens = api_tokens(config.http);
    options.connections_max = config.http.connections_max;
    options.connections_per_client_max = config.http.connections_per_client_max;
    options.idle_timeout_ms = config.http.idle_timeout_ms;
    if (config.http.tls_cert_file) {
      options.tls =
          http::TlsServerOptions{.cert_file = *config.http.tls_cert_file,
                                 .key_file = config.http.tls_key_file.value_or(""),
                                 .client_ca_file = config.http.tls_client_ca_file.value_or("")};
    }
    auto created = HttpServer::create(options);
    if (!created) return tl::unexpected("http: " + created.error().message);
    http = std::move(*created);
    // Liveness only: never blocks, so it runs on the I/O thread and answers when every worker
    // is busy (a flood of /readyz, which asks the database, cannot make it fail).
    http->route(
        "GET", "/healthz",
        [](const HttpRequest&) { return HttpResponse::json(200, R"({"status":"ok"})"); },
        RouteOptions{.requires_auth = false, .on_io_thread = true});
    // Unauthenticated: which component is not ready, never why in its own words.
    http->route(
        "GET", "/readyz",
        [this](const HttpRequest&) {
          const auto answer = readiness_log.observe(readiness());
          return HttpResponse::json(answer.ready ? 200 : 503, answer.body);
        },
        false);
    http->route(
        "GET", "/metrics",
        [this](const HttpRequest&) {
          HttpResponse r;
          r.content_type = std::string(base::metrics::Registry::kContentType);
          r.body = metrics.render();
          return r;
        },
        RouteOptions{.role = http::kRoleMetrics});
    external_streams::add_catch_up_routes(*http, *pool, {.metrics = &metrics});
    add_transfer_routes(*http, *pool, *transfers,
                        {config.country, {rules_of(config.country), policy_of(config.retry)}});
    add_erasure_route(*http, *store, *vault);
    auto started_http = http->start();
    if (!started_http) return tl::unexpected("http: " + started_http.error().message);
    return {};
  }

  // Each component's state, from the fixed vocabulary of readiness.hpp: the errors behind
  // them (a database error's DETAIL names the row's values) stay out of /readyz and the log.
  std::vector<ComponentReadiness> readiness() const {
    std::vector<ComponentReadiness> out;
    out.push_back(
        {ReadinessComponent::service, started ? ComponentState::ok : ComponentState::starting, {}});
    auto ping = pool->transact([](eventstore::Transaction& tx) -> eventstore::StoreResult<bool> {
      tx.exec("select 1");
      return true;
    });
    if (ping)
      out.push_back({ReadinessComponent::database, ComponentState::ok, {}});
    else
      out.push_back({ReadinessComponent::database, ComponentState::unavailable, ping.error().code});
    ComponentState relay_state = ComponentState::starting;
    if (relay)
      relay_state =
          relay->stats().last_error.empty() ? ComponentState::ok : ComponentState::failing;
    out.push_back({ReadinessComponent::relay, relay_state, {}});
    // Not ready until the inbound consumer has joined its group: before its first
    // assignment it reads nothing (a new member waits out the group's join, seconds).
    ComponentState consumer_state = ComponentState::starting;
    if (consumer) {
      // One held partition is an alert (clearing_inbound_partitions_held), not a reason to
      // stop routing to this instance: the other partitions flow. All of them held is a stall.
      const auto stats = consumer->stats();
      const auto held = static_cast<std::int64_t>(stats.held.size());
      consumer_state = !stats.joined ? ComponentState::not_joined
                       : held == 0   ? ComponentState::ok
                       : stats.partitions_assigned > 0 && held >= stats.partitions_assigned
                           ? ComponentState::stalled
                           : ComponentState::degraded;
    }
    out.push_back({ReadinessComponent::inbound_consumer, consumer_state, {}});
    ComponentState derivation_state = ComponentState::starting;
    if (derivation)
      derivation_state = derivation->status().state == eventstore::SubscriptionState::stalled
                             ? ComponentState::stalled
                             : ComponentState::ok;
    out.push_back({ReadinessComponent::derivation, derivation_state, {}});
    // The dispatcher is not ready while its claims fail (the database). The incoming
    // poller is degraded, still ready, while the clearing's feed fails (its maintenance
    // windows are routine: the alert is clearing_incoming_feed_failures_total), and not
    // ready while its pages fail in the database.
    WorkerReadiness dispatcher_worker{.created = dispatcher != nullptr, .service_started = started};
    if (dispatcher) {
      const auto stats = dispatcher->stats();
      dispatcher_worker.running = stats.running;
      dispatcher_worker.failing = stats.claim_failing;
    }
    out.push_back({ReadinessComponent::dispatcher, worker_state(dispatcher_worker), {}});
    WorkerReadiness poller_worker{.created = poller != nullptr, .service_started = started};
    if (poller) {
      const auto stats = poller->stats();
      poller_worker.running = stats.running;
      poller_worker.failing = stats.store_failing;
      poller_worker.degraded = stats.feed_failing;
    }
    out.push_back({ReadinessComponent::incoming_poller, worker_state(poller_worker), {}});
    return out;
  }

  tl::expected<void, std::string> start();

  ServiceStatus status() const {
    const auto components = readiness();
    const auto state_of = [&components](ReadinessComponent component) {
      for (const auto& one : components)
        if (one.component == component) return one.state;
      return ComponentState::starting;
    };
    const auto ok = [&state_of](ReadinessComponent component) {
      return state_of(component) == ComponentState::ok;
    };
    ServiceStatus s;
    const bool running = ok(ReadinessComponent::service);
    s.database = ok(ReadinessComponent::database);
    s.kafka = running && ok(ReadinessComponent::relay) &&
              (ok(ReadinessComponent::inbound_consumer) ||
               state_of(ReadinessComponent::inbound_consumer) == ComponentState::degraded);
    s.subscriptions = running && ok(ReadinessComponent::derivation);
    s.detail = readiness_log.observe(components).summary;
    return s;
  }
};

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Service::~Service() { stop(); }

tl::expected<std::unique_ptr<Service>, std::string> Service::create(config::AdapterConfig config,
                                                                    std::string kafka_bootstrap) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->kafka_bootstrap = std::move(kafka_bootstrap);
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

tl::expected<void, StartError> Service::start() {
  auto started = impl_->start();
  if (!started) return tl::unexpected(StartError{started.error(), !impl_->refused});
  return {};
}

tl::expected<void, std::string> Service::Impl::start() {
  auto& s = *this;
  s.log->info("starting country={} config={}", config::country_code_upper(s.config.country.code),
              s.config.source_file);
  if (auto ok = s.open_tracing(); !ok) return ok;
  if (auto ok = s.open_database(); !ok) return ok;
  if (auto ok = s.open_client(); !ok) return ok;
  s.register_metrics();
  if (auto ok = s.open_workers(); !ok) return ok;
  s.derivation->start();
  for (auto& backfill : s.backfills) backfill->start();
  s.relay->start();
  s.dispatcher->start();
  s.poller->start();
  s.consumer->start();
  s.retention.start([&s] {
    while (s.retention.sleep_for(s.retention_applied ? kRetentionInterval : kRetentionRetry))
      s.retention_applied = s.expire_personal_data();
  });
  if (auto ok = s.open_http(); !ok) return ok;
  s.started = true;
  s.log->info("started http_port={} kafka={}", s.http->port(), s.kafka_bootstrap);
  return {};
}

void Service::stop() {
  auto& s = *impl_;
  if (!s.started && !s.http && !s.consumer) return;
  s.log->info("stopping: no new input; answers in flight are recorded, the rest is safe in events");
  if (s.consumer) s.consumer->stop();
  if (s.poller) s.poller->stop();
  if (s.dispatcher) s.dispatcher->stop();
  for (auto& backfill : s.backfills) backfill->stop();
  if (s.derivation) s.derivation->stop();
  if (s.relay) s.relay->stop();
  s.retention.stop();
  if (s.http) s.http->stop();
  // The spans of the work just finished are posted once more; the process's tracer is off.
  if (s.tracer && tracing::global_tracer() == s.tracer) tracing::install_global_tracer(nullptr);
  if (s.span_exporter) s.span_exporter->stop();
  if (s.client) {
    // Bounded: a client that cannot stop must not keep the process from exiting (all
    // that matters is in the database already). A stuck one is left behind, not destroyed.
    auto finished = std::make_shared<std::promise<void>>();
    auto stopped = finished->get_future();
    auto* client = s.client.get();
    std::thread([client, finished] {
      client->stop();
      finished->set_value();
    }).detach();
    if (stopped.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      s.log->error("clearing client did not stop within 5 s: leaving it behind");
      (void)s.client.release();
    }
  }
  s.started = false;
  s.consumer.reset();
  s.http.reset();
  s.log->info("stopped");
}

std::uint16_t Service::http_port() const { return impl_->http ? impl_->http->port() : 0; }
std::vector<http::HttpServer::RouteInfo> Service::api_routes() const {
  return impl_->http ? impl_->http->routes() : std::vector<http::HttpServer::RouteInfo>{};
}
ServiceStatus Service::status() const { return impl_->status(); }
std::string Service::metrics_text() const { return impl_->metrics.render(); }

}  // namespace clearing::adapter
