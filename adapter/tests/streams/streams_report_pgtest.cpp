// Where each outbound stream stands, read from a real registry (issue 19, item 1): a store
// whose live derivation has derived payments.v1 and settlements.v1 for a while, then
// payments.v2 added (backfilling, one batch in) and v1 deprecated. `clearing-adapter
// streams` (the function and the binary, text and --json) and the clearing_stream_*
// families of /metrics show the same figures, and follow the backfill's hand-over.

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/streams_report.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/testing/internal_history.hpp"
#include "clearing/processes/process.hpp"
#include "service_metrics.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;
using external_streams::StreamSetting;

namespace {

const std::string kV1 = "adapter.dk.payments.v1";
const std::string kV2 = "adapter.dk.payments.v2";
const std::string kSettlements = "adapter.dk.settlements.v1";

// One settled transfer's internal events, shaped as the saga's codec writes them: one
// message on each stream.
void settled_transfer(eventstore::EventStore& store, const std::string& id) {
  const auto events = external_streams::sample_history::settled_transfer(id);
  REQUIRE(store.append(eventstore::StreamId{"transfer-" + id}, eventstore::ExpectedVersion::any(),
                       events));
}

std::int64_t position_of(SagaDatabase& db, const std::string& checkpoint) {
  return std::stoll(db.database.query_value(
      "select position from subscription_checkpoints where name = '" + checkpoint + "'"));
}

// Until the subscription `name` has read every event appended so far. A poll that hands
// over nothing is not enough: a subscription reads only events of transactions older than
// the oldest one running on the whole server (eventstore's visibility horizon), and the
// tests running beside this one share the server. Seen in a parallel run: drained early,
// no partition of v1 had 5 messages yet.
void drain(eventstore::Subscription& subscription, SagaDatabase& db, const std::string& name) {
  const auto head =
      std::stoll(db.database.query_value("select coalesce(max(position), 0) from events"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto handled = subscription.poll_once();
    REQUIRE_MESSAGE(handled, (handled ? "" : handled.error().message));
    if (*handled > 0) continue;
    if (position_of(db, name) >= head) return;
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until, name << " did not reach " << head);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// The value of one sample (`name{labels} value`), or nullopt when absent.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

std::string state_series(const std::string& stream, const char* state) {
  return "clearing_stream_state{stream=\"" + stream + "\",state=\"" + state + "\"}";
}

std::string stream_series(const char* family, const std::string& stream) {
  return std::string(family) + "{stream=\"" + stream + "\"}";
}

// /metrics of a service whose only part is the database pool.
struct Metrics {
  base::metrics::Registry registry;
  std::unique_ptr<clearing_client::ClearingClient> client;
  std::unique_ptr<adapter::Dispatcher> dispatcher;
  std::unique_ptr<adapter::IncomingPoller> poller;
  std::unique_ptr<eventstore::Subscription> derivation;
  std::shared_ptr<external_streams::DerivationLookups> lookups =
      std::make_shared<external_streams::DerivationLookups>();
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  base::SystemClock clock;
  explicit Metrics(const std::unique_ptr<eventstore::ConnectionPool>& pool) {
    adapter::register_service_metrics(
        registry, {pool, client, dispatcher, poller, derivation, lookups, consumer, clock},
        base::module_logger("test"));
  }
};

}  // namespace

TEST_CASE("streams: a live, a deprecated and a backfilling stream, in the command and /metrics") {
  SagaDatabase db;
  for (int i = 1; i <= 10; ++i) settled_transfer(*db.store, "t" + std::to_string(i));

  // At first: v1 and settlements, live from the start (the live derivation has not moved).
  const StreamSetting v1{.spec = {kV1, 4}, .derivation = "payments.v1"};
  const StreamSetting settlements{.spec = {kSettlements, 2}, .derivation = "settlements.v1"};
  {
    const std::vector<StreamSetting> first{v1, settlements};
    REQUIRE(external_streams::register_streams(*db.pool, first));
  }
  const std::vector<external_streams::DerivedStream> derived{
      {v1.spec, &external_streams::derive_payments_v1},
      {settlements.spec, &external_streams::derive_settlements_v1},
      {{kV2, 4}, &external_streams::derive_payments_v2}};
  eventstore::Subscription live(
      *db.store, {.name = std::string(external_streams::kLiveDerivation)},
      external_streams::make_derivation_handler(*db.store, derived, {.live_streams_only = true}));
  drain(live, db, std::string(external_streams::kLiveDerivation));
  for (int i = 11; i <= 20; ++i) settled_transfer(*db.store, "t" + std::to_string(i));
  drain(live, db, std::string(external_streams::kLiveDerivation));
  // Kafka has acknowledged all of settlements and 15 of v1's 20 messages.
  db.database.exec(
      "update external_stream_published p set published = s.head from external_stream_seqs s"
      " where s.stream = p.stream and s.partition = p.partition and p.stream = '" +
      kSettlements + "'");
  db.database.exec("update external_stream_published set published = 0 where stream = '" + kV1 +
                   "'");
  const auto first_partition = db.database.query_value(
      "select min(partition) from external_stream_seqs where stream = '" + kV1 + "' and head >= 5");
  db.database.exec("update external_stream_published set published = 5 where stream = '" + kV1 +
                   "' and partition = " + first_partition);

  // Then payments.v2 is added (the live derivation has moved: it backfills) and v1 gets a
  // sunset; the backfill reads one batch of 8 events (4 transfers).
  auto deprecated_v1 = v1;
  deprecated_v1.sunset = "2099-12-31";
  {
    const std::vector<StreamSetting> second{
        deprecated_v1, settlements, {.spec = {kV2, 4}, .derivation = "payments.v2"}};
    REQUIRE(external_streams::register_streams(*db.pool, second));
  }
  eventstore::Subscription backfill(
      *db.store, {.name = external_streams::backfill_subscription_name(kV2), .batch_size = 8},
      external_streams::make_backfill_handler(*db.store, derived[2]));
  REQUIRE(backfill.poll_once() == std::size_t{8});

  const auto live_position = position_of(db, std::string(external_streams::kLiveDerivation));
  const auto backfill_position = position_of(db, external_streams::backfill_subscription_name(kV2));
  REQUIRE(backfill_position > 0);
  REQUIRE(backfill_position < live_position);

  // The function: the registry's streams by name, each with its figures.
  auto report = adapter::read_streams_report(*db.pool);
  REQUIRE_MESSAGE(report, (report ? "" : report.error()));
  REQUIRE(report->size() == 3);
  const auto& v1_now = (*report)[0];
  const auto& v2_now = (*report)[1];
  const auto& settlements_now = (*report)[2];
  CHECK(v1_now.record.name == kV1);
  CHECK(external_streams::state_of(v1_now.record) == external_streams::StreamState::deprecated);
  CHECK(v1_now.head == 20);
  CHECK(v1_now.published == 5);
  CHECK(v1_now.position == live_position);
  CHECK(v2_now.record.name == kV2);
  CHECK(external_streams::state_of(v2_now.record) == external_streams::StreamState::backfilling);
  CHECK(v2_now.head == 4);
  CHECK(v2_now.position == backfill_position);
  CHECK(v2_now.live_position == live_position);
  CHECK(settlements_now.head == 20);
  CHECK(settlements_now.published == 20);
  CHECK(external_streams::state_of(settlements_now.record) == external_streams::StreamState::live);

  const auto text = adapter::render_streams(*report);
  MESSAGE("clearing-adapter streams:\n" << text);
  const auto percent = adapter::backfill_percent(v2_now);
  REQUIRE(percent);
  CHECK(*percent > 0.0);
  CHECK(*percent < 100.0);
  char percent_text[16];
  std::snprintf(percent_text, sizeof percent_text, "%.1f%%", *percent);
  CHECK_MESSAGE(text.find(kV2 + ": backfilling, at position " + std::to_string(backfill_position) +
                          " of the live derivation's " + std::to_string(live_position) + " (" +
                          percent_text + ")") != std::string::npos,
                text);
  CHECK_MESSAGE(text.find(kV1 + ": deprecated, sunset 2099-12-31") != std::string::npos, text);

  // The binary prints the same, as text and as JSON.
  const std::string config = "/tmp/streams-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    std::ofstream(config) << nlohmann::json::parse(in).dump(2);
  }
  const std::map<std::string, std::string> env{
      {"CLEARING_ADAPTER_DATABASE_URL", db.database.url()}};
  {
    Process streams({CLEARING_ADAPTER, "streams", "--config", config}, env);
    REQUIRE_MESSAGE(streams.wait() == 0, streams.stderr_text());
    CHECK(streams.read_all() == text);
  }
  {
    Process streams({CLEARING_ADAPTER, "streams", "--config", config, "--json"}, env);
    REQUIRE_MESSAGE(streams.wait() == 0, streams.stderr_text());
    const auto json = nlohmann::json::parse(streams.read_all());
    CHECK(json == adapter::streams_json(*report));
    CHECK(json["streams"][1]["state"] == "backfilling");
    CHECK(json["streams"][1]["backfill_percent"] == *percent);
  }
  {
    // A database that does not answer: exit 2, and the message says which (without secrets).
    Process streams(
        {CLEARING_ADAPTER, "streams", "--config", config},
        {{"CLEARING_ADAPTER_DATABASE_URL", "postgresql://adapter:secret@127.0.0.1:9/none"}});
    CHECK(streams.wait() == 2);
    const auto error = streams.stderr_text();
    CHECK_MESSAGE(error.find("clearing-adapter: database") == 0, error);
    CHECK_MESSAGE(error.find("secret") == std::string::npos, error);
  }
  std::remove(config.c_str());

  // /metrics: the same figures, per stream.
  Metrics metrics(db.pool);
  auto scraped = metrics.registry.render();
  CHECK(sample(scraped, state_series(kV2, "backfilling")) == 1.0);
  CHECK(sample(scraped, state_series(kV2, "live")) == 0.0);
  CHECK(sample(scraped, state_series(kV1, "deprecated")) == 1.0);
  CHECK(sample(scraped, state_series(kV1, "live")) == 0.0);
  CHECK(sample(scraped, state_series(kSettlements, "live")) == 1.0);
  CHECK(sample(scraped, state_series(kSettlements, "retired")) == 0.0);
  CHECK(sample(scraped, stream_series("clearing_stream_head", kV1)) == 20.0);
  CHECK(sample(scraped, stream_series("clearing_stream_published", kV1)) == 5.0);
  CHECK(sample(scraped, stream_series("clearing_stream_head", kV2)) == 4.0);
  CHECK(sample(scraped, stream_series("clearing_stream_derivation_position", kV2)) ==
        static_cast<double>(backfill_position));
  CHECK(sample(scraped, stream_series("clearing_stream_derivation_position", kV1)) ==
        static_cast<double>(live_position));
  CHECK(sample(scraped, stream_series("clearing_stream_live_lag_positions", kV2)) ==
        static_cast<double>(live_position - backfill_position));
  CHECK(sample(scraped, stream_series("clearing_stream_live_lag_positions", kV1)) == 0.0);
  CHECK(scraped.find("clearing_metrics_query_failures_total{family=\"clearing_stream") ==
        std::string::npos);
  // One scrape's time with the stream families (printed, no threshold).
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (void)metrics.registry.render();
  MESSAGE("one scrape of every family over 3 streams, 40 events: "
          << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                     .count() /
                 20
          << " ms (mean of 20)");

  // The backfill reads the rest and hands the stream over: live, nothing left to read, and
  // every transfer's status on v2.
  drain(backfill, db, external_streams::backfill_subscription_name(kV2));
  auto handed = external_streams::hand_over_if_caught_up(*db.pool, kV2);
  REQUIRE(handed);
  CHECK(*handed);
  scraped = metrics.registry.render();
  CHECK(sample(scraped, state_series(kV2, "backfilling")) == 0.0);
  CHECK(sample(scraped, state_series(kV2, "live")) == 1.0);
  CHECK(sample(scraped, stream_series("clearing_stream_head", kV2)) == 20.0);
  CHECK(sample(scraped, stream_series("clearing_stream_live_lag_positions", kV2)) == 0.0);
  report = adapter::read_streams_report(*db.pool);
  REQUIRE(report);
  CHECK_FALSE(adapter::backfill_percent((*report)[1]));
  CHECK((*report)[1].record.live_since.has_value());

  // v1 retired: its messages stay counted; it derives no more, so no derivation figure.
  auto retired_v1 = deprecated_v1;
  retired_v1.retired = true;
  {
    const std::vector<StreamSetting> third{
        retired_v1, settlements, {.spec = {kV2, 4}, .derivation = "payments.v2"}};
    REQUIRE(external_streams::register_streams(*db.pool, third));
  }
  scraped = metrics.registry.render();
  CHECK(sample(scraped, state_series(kV1, "retired")) == 1.0);
  CHECK(sample(scraped, state_series(kV1, "deprecated")) == 0.0);
  CHECK(sample(scraped, stream_series("clearing_stream_head", kV1)) == 20.0);
  CHECK_FALSE(sample(scraped, stream_series("clearing_stream_derivation_position", kV1)));
  CHECK_FALSE(sample(scraped, stream_series("clearing_stream_live_lag_positions", kV1)));
  CHECK(sample(scraped, stream_series("clearing_stream_derivation_position", kV2)) ==
        static_cast<double>(position_of(db, std::string(external_streams::kLiveDerivation))));
}

TEST_CASE("/metrics: a stream figure the database cannot give is counted, never a false zero") {
  SagaDatabase db;
  const std::vector<StreamSetting> settings{{.spec = {kV1, 4}, .derivation = "payments.v1"}};
  REQUIRE(external_streams::register_streams(*db.pool, settings));
  Metrics metrics(db.pool);
  CHECK(sample(metrics.registry.render(), state_series(kV1, "live")) == 1.0);
  db.database.exec("alter table derived_streams rename to derived_streams_gone");
  // The failures family renders before the streams' (by name): the next scrape has the count.
  const auto failed = metrics.registry.render();
  CHECK_FALSE(sample(failed, state_series(kV1, "live")));
  CHECK_FALSE(sample(failed, stream_series("clearing_stream_head", kV1)));
  const auto counted = metrics.registry.render();
  CHECK_MESSAGE(
      counted.find("clearing_metrics_query_failures_total{family=\"clearing_stream_state\",") !=
          std::string::npos,
      counted);
  CHECK(counted.find("clearing_metrics_query_failures_total{family=\"clearing_stream_head\",") !=
        std::string::npos);
}
