// core-sim: the composition of its parts (request_source, database_setup,
// transfer_publisher, core_stream_serving, outcome_consumer, figures) and the options'
// validation. See core_sim.hpp for the contract.

#include "clearing/core_sim/core_sim.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "clearing/base/country.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "core_stream_serving.hpp"
#include "database_setup.hpp"
#include "figures.hpp"
#include "outcome_consumer.hpp"
#include "request_source.hpp"
#include "stop_signal.hpp"
#include "transfer_publisher.hpp"

namespace clearing::core_sim {
static_assert(kRelayRoundIntervalMsDefault == external_streams::kRoundIntervalMinDefault.count());
static_assert(kRelayRoundIntervalMsMax == external_streams::kRoundIntervalMinMax.count());

namespace {

constexpr auto kDonePollInterval = std::chrono::milliseconds(50);

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

tl::expected<void, std::string> validate(const CoreSimOptions& o) {
  const auto bad = [](std::string message) { return tl::unexpected(std::move(message)); };
  if (!sagas::parse_country(o.country))
    return bad("country must be one of " + base::country_codes_lower_text() + ", not '" +
               o.country + "'");
  if (o.database_url.empty()) return bad("database_url is required");
  if (o.kafka_bootstrap.empty()) return bad("kafka_bootstrap is required");
  if (o.core_partitions < 1 || o.core_partitions > external_streams::kPartitionsMax)
    return bad(fmt::format("core_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.adapter_partitions < 1 || o.adapter_partitions > external_streams::kPartitionsMax)
    return bad(
        fmt::format("adapter_partitions must be in [1, {}]", external_streams::kPartitionsMax));
  if (o.outcomes_version != "v1" && o.outcomes_version != "v2")
    return bad("outcomes_version must be v1 or v2, not '" + o.outcomes_version + "'");
  if (o.http_port < 0 || o.http_port > 65535) return bad("http_port must be in [0, 65535]");
  if (o.transfers < 0) return bad("transfers must not be negative");
  if (!(o.invalid_share >= 0.0 && o.invalid_share <= 1.0))
    return bad("invalid_share must be in [0, 1]");
  if (!(o.rate_per_s >= 0.0) || std::isinf(o.rate_per_s))
    return bad("rate_per_s must be >= 0 (0: unlimited)");
  if (o.accounts < 1 || o.accounts > 9999) return bad("accounts must be in [1, 9999]");
  if (o.opening_balance_minor < 0) return bad("opening_balance_minor must not be negative");
  if (o.amount_limit_minor < 1 || o.amount_limit_minor > (std::int64_t{1} << 52))
    return bad("amount_limit_minor must be in [1, 2^52]");
  if (o.publish_batch_max < 1 || o.publish_batch_max > kPublishBatchMax)
    return bad(fmt::format("publish_batch_max must be in [1, {}]", kPublishBatchMax));
  if (o.fetch_wait_max_ms < 1 || o.fetch_wait_max_ms > 5000)
    return bad("fetch_wait_max_ms must be in [1, 5000]");
  if (o.relay_round_interval_min_ms < 0 || o.relay_round_interval_min_ms > kRelayRoundIntervalMsMax)
    return bad(
        fmt::format("relay_round_interval_min_ms must be in [0, {}]", kRelayRoundIntervalMsMax));
  if (o.database_connections_max < 3 || o.database_connections_max > 64)
    return bad("database_connections_max must be in [3, 64]");
  return {};
}

// The Kafka client of one of core-sim's roles ("relay", "consumer").
external_streams::KafkaClientOptions kafka_client(const CoreSimOptions& options,
                                                  std::string_view role) {
  external_streams::KafkaClientOptions kafka;
  kafka.bootstrap_servers = options.kafka_bootstrap;
  kafka.client_id = options.kafka_client_id + "-" + std::string(role);
  kafka.fetch_wait_max_ms = options.fetch_wait_max_ms;
  return kafka;
}

eventstore::DatabaseOptions database_options(const CoreSimOptions& options) {
  eventstore::DatabaseOptions database;
  database.url = options.database_url;
  database.connections_max = static_cast<std::size_t>(options.database_connections_max);
  database.application_name = "core-sim";
  // core-sim runs no subscription, so nothing listens on its database: a NOTIFY after
  // each appending commit was a round trip (and a transaction) for nobody.
  database.notify_after_commit = false;
  return database;
}

}  // namespace

// Threads: create/start/stop run on the owner's thread; the publisher thread reads the
// source, the store and the cache (thread safe) and writes only its atomics; progress(),
// report() and wait_until_done() read the pool (thread safe), the source, the publisher's
// atomics and the stop signal.
struct CoreSim::Impl {
  Impl(CoreSimOptions options_in, sagas::Country country_in)
      : options(std::move(options_in)),
        country(country_in),
        core_stream{"core." + cc() + ".payments.v1", options.core_partitions},
        adapter_stream("adapter." + cc() + ".payments." + options.outcomes_version),
        pool(std::make_unique<eventstore::ConnectionPool>(database_options(options))),
        store(std::make_unique<eventstore::EventStore>(*pool)),
        publisher(
            *store, account_cache, core_stream, source, stop_signal,
            {.rate_per_s = options.rate_per_s, .publish_batch_max = options.publish_batch_max}) {}

  std::string cc() const { return std::string(sagas::country_code_lower(country)); }

  const CoreSimOptions options;
  const sagas::Country country;
  const external_streams::StreamSpec core_stream;
  const std::string adapter_stream;
  std::shared_ptr<spdlog::logger> log = base::module_logger("core_sim");

  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  AccountCache account_cache;
  RequestSource source;  // loaded by start(), before the publisher starts
  StopSignal stop_signal;
  TransferPublisher publisher;
  CoreStreamServing serving;  // the relay and the catch-up API
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  bool started = false;

  tl::expected<void, std::string> start() {
    if (started) return tl::unexpected(std::string("already started"));
    started = true;
    if (auto prepared = prepare_database(*pool, core_stream); !prepared) return prepared;
    auto loaded = RequestSource::load(options, country);
    if (!loaded) return tl::unexpected(loaded.error());
    source = std::move(*loaded);
    auto opened = open_accounts(*store, account_cache, source.accounts_to_open(),
                                options.opening_balance_minor);
    if (!opened) return opened;
    if (auto serving_open = serving.open(*pool, options, kafka_client(options, "relay"));
        !serving_open)
      return serving_open;
    auto made_consumer = make_outcome_consumer(*store, account_cache, options, country,
                                               adapter_stream, kafka_client(options, "consumer"));
    if (!made_consumer) return tl::unexpected(made_consumer.error());
    consumer = std::move(*made_consumer);

    serving.start_relay();
    consumer->start();
    publisher.start();
    log->info(
        "started country={} stream={} partitions={} outcomes_stream={} catch_up_port={} "
        "planned={}",
        cc(), core_stream.name, core_stream.partitions, adapter_stream, serving.port(),
        source.planned());
    return {};
  }

  void stop() {
    if (!stop_signal.raise()) return;
    publisher.join();
    if (consumer) consumer->stop();
    serving.stop();  // the relay, then the HTTP server
    if (started) log->info("stopped");
  }

  Progress progress() const {
    Progress p = read_progress(*pool);
    p.total_planned = source.planned();
    p.processed = publisher.processed();
    p.publishing_done = publisher.done();
    return p;
  }

  Report report() const {
    Report r = read_report(*pool);
    r.country = cc();
    r.planned = source.planned();
    r.source_lines_skipped = source.lines_skipped();
    r.resolved_exactly_once = r.violations.total() == 0 && r.still_open == 0 &&
                              r.resolved_twice_in_ledger == 0 &&
                              r.succeeded + r.rejected == r.requested;
    return r;
  }
};

CoreSim::CoreSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoreSim::~CoreSim() { stop(); }

tl::expected<std::unique_ptr<CoreSim>, std::string> CoreSim::create(CoreSimOptions options) {
  options.country = lower(options.country);
  if (auto valid = validate(options); !valid) return tl::unexpected(valid.error());
  const auto country = *sagas::parse_country(options.country);
  auto impl = std::make_unique<Impl>(std::move(options), country);
  return std::unique_ptr<CoreSim>(new CoreSim(std::move(impl)));
}

tl::expected<void, std::string> CoreSim::start() {
  try {
    return impl_->start();
  } catch (const std::exception& e) {
    // Library exceptions stop at the module boundary (STYLE.md).
    return tl::unexpected(std::string("start failed: ") + e.what());
  }
}

void CoreSim::stop() { impl_->stop(); }

std::uint16_t CoreSim::catch_up_port() const { return impl_->serving.port(); }

Progress CoreSim::progress() const { return impl_->progress(); }

Report CoreSim::report() const { return impl_->report(); }

bool CoreSim::wait_until_done(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (impl_->publisher.done() && read_open_count(*impl_->pool) == std::optional<std::int64_t>{0})
      return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!impl_->stop_signal.pause(kDonePollInterval)) return false;  // stopping
  }
}

}  // namespace clearing::core_sim
