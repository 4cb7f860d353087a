// Issue 19's "done when", through the service as an operator runs it: an adapter that has
// derived adapter.dk.payments.v1 and settlements.v1 for 1,000 transfers is restarted with
// payments.v2 and positions.v1 added to its config; both are backfilled while events keep
// coming, and every message of every stream is then identical (ids, seqs, data) to those of an
// adapter that had all four streams from the start. A restart with another partition count
// for a registered stream is refused for good (StartError::retryable false), never retried.

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/service.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/testing/internal_history.hpp"
#include "clearing/privacy/vault.hpp"
#include "clearing/support/command_lines.hpp"
#include "test_database.hpp"

using namespace clearing;
using clearing::testing::TestDatabase;
using Json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kV1Only[] = {"payments.v1", "settlements.v1"};
constexpr const char* kAll[] = {"payments.v1", "settlements.v1", "payments.v2", "positions.v1"};

// config/dk.json with the given derivations as its outbound streams, on this database and
// Kafka, nothing listening for the clearing or the core (no transfer is dispatched here: the
// internal events are appended directly, as the sagas would have recorded them).
template <std::size_t N>
config::AdapterConfig adapter_config(const TestDatabase& database, const std::string& kafka,
                                     const char* const (&derivations)[N], int v2_partitions = 4) {
  config::MapEnvironment env(
      {{"CLEARING_ADAPTER_DATABASE_URL", database.url()},
       {"CLEARING_ADAPTER_KAFKA_BROKERS", kafka},
       {"CLEARING_ADAPTER_CLEARING_URL", "http://127.0.0.1:9"},
       {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://127.0.0.1:9"},
       {"CLEARING_ADAPTER_HTTP_ADDRESS", "127.0.0.1:" + std::to_string(support::free_port())},
       {"CLEARING_ADAPTER_API_TOKEN", "api-token-0123456789abcdef0123456"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-catchup-token-0123"},
       {"CLEARING_ADAPTER_DATA_KEK", std::string(support::kTestDataKek)}});
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  auto json = Json::parse(in);
  const std::map<std::string, int> partitions{{"payments.v1", 4},
                                              {"settlements.v1", 2},
                                              {"payments.v2", v2_partitions},
                                              {"positions.v1", 1}};
  json["streams"]["outbound"] = Json::array();
  for (const char* derivation : derivations)
    json["streams"]["outbound"].push_back({{"name", std::string("adapter.dk.") + derivation},
                                           {"partitions", partitions.at(derivation)},
                                           {"derivation", derivation}});
  auto cfg = config::parse_config(json.dump(), "dk.json", env);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().to_string()));
  return *cfg;
}

// The event store the "sagas" append to: the adapter's own database, migrated by the service.
struct History {
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;

  explicit History(const TestDatabase& database) {
    eventstore::DatabaseOptions options;
    options.url = database.url();
    options.connections_max = 2;
    pool = std::make_unique<eventstore::ConnectionPool>(options);
    store = std::make_unique<eventstore::EventStore>(*pool);
  }
  void append(const std::vector<external_streams::sample_history::Append>& appends) {
    for (const auto& a : appends)
      REQUIRE(store->append(eventstore::StreamId{a.stream}, eventstore::ExpectedVersion::any(),
                            a.events));
  }
};

// Waits until every registered stream is live and has derived every event appended so far.
void wait_derived(const TestDatabase& database, std::size_t streams) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (true) {
    const auto behind = database.query_value(
        "select count(*) from derived_streams d where d.phase <> 'live' or"
        " (select position from subscription_checkpoints where name = "
        "'derive-external-streams') < (select coalesce(max(position), 0) from events)");
    const auto registered = database.query_value("select count(*) from derived_streams");
    if (behind == "0" && registered == std::to_string(streams)) return;
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    "streams not derived in 120 s: " << behind << " behind");
    std::this_thread::sleep_for(50ms);
  }
}

// Every message of every outbound stream, in (stream, partition, seq) order, with every
// field a consumer sees but occurred_at: that is when the source event was recorded, which the
// two databases did at different times.
// Every message, its data opened: personal fields are sealed with fresh nonces in each
// database, so the stored text of two equal messages differs.
std::vector<std::string> messages(const TestDatabase& database) {
  eventstore::DatabaseOptions options;
  options.url = database.url();
  auto vault = privacy::Vault::create(
      {.database = options, .keys = *privacy::KeyRing::parse(support::kTestDataKek, "")});
  REQUIRE(vault);
  pqxx::connection c(database.url());
  pqxx::work tx(c);
  std::vector<std::string> out;
  for (const auto& row : tx.exec(
           "select stream || '|' || partition || '|' || seq || '|' || event_id || '|' || type ||"
           " '|' || entity_key, data::text, source_event_id || '|' || correlation_id"
           " from external_events order by stream, partition, seq")) {
    auto data = nlohmann::json::parse(row[1].c_str());
    REQUIRE((*vault)->open(tx, data));
    out.push_back(row[0].as<std::string>() + "|" + data.dump() + "|" + row[2].as<std::string>());
  }
  return out;
}

std::unique_ptr<adapter::Service> started(const config::AdapterConfig& cfg,
                                          const std::string& kafka) {
  auto created = adapter::Service::create(cfg, kafka);
  REQUIRE(created);
  auto started = (*created)->start();
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  return std::move(*created);
}

}  // namespace

TEST_CASE(
    "payments.v2 and positions.v1 added to an adapter with 1,000 transfers of history are "
    "backfilled to exactly the messages of an adapter that had them from the start") {
  using external_streams::sample_history::script;
  auto kafka = external_streams::EmbeddedKafka::start();
  REQUIRE(kafka);
  const auto bootstrap = (*kafka)->bootstrap_servers();
  for (const char* derivation : kAll)
    REQUIRE((*kafka)->create_topic(std::string("adapter.dk.") + derivation, 4));
  REQUIRE((*kafka)->create_topic("core.dk.payments.v1", 4));

  const auto history = script(0, 1000);
  const auto during = script(1000, 300);
  const auto after = script(1300, 100);

  // The adapter that grew: v1 only for the history, then restarted with all four streams
  // while events keep coming.
  TestDatabase grown;
  {
    auto v1_only = started(adapter_config(grown, bootstrap, kV1Only), bootstrap);
    History(grown).append(history);
    wait_derived(grown, 2);
    v1_only->stop();
  }
  CHECK(grown.query_value("select count(*) from external_events where stream like "
                          "'adapter.dk.payments.v2' or stream = 'adapter.dk.positions.v1'") == "0");
  {
    auto all = started(adapter_config(grown, bootstrap, kAll), bootstrap);
    CHECK(grown.query_value("select string_agg(stream || ':' || phase, ',' order by stream)"
                            " from derived_streams") ==
          "adapter.dk.payments.v1:live,adapter.dk.payments.v2:backfilling,"
          "adapter.dk.positions.v1:backfilling,adapter.dk.settlements.v1:live");
    History(grown).append(during);  // while the backfills run
    wait_derived(grown, 4);
    History(grown).append(after);  // after the hand-over: derived live
    wait_derived(grown, 4);
    all->stop();
  }
  CHECK(grown.query_value("select count(*) from derived_streams where live_since is null") == "0");

  // The adapter that had all four from the start, fed the same events.
  TestDatabase from_start;
  {
    auto all = started(adapter_config(from_start, bootstrap, kAll), bootstrap);
    History history_store(from_start);
    for (const auto* part : {&history, &during, &after}) history_store.append(*part);
    wait_derived(from_start, 4);
    all->stop();
  }

  const auto expected = messages(from_start);
  const auto got = messages(grown);
  REQUIRE(got.size() == expected.size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != expected[i] && ++differing <= 3)
      MESSAGE("message " << i << ":\n  grown      " << got[i] << "\n  from start " << expected[i]);
  CHECK(differing == 0);
  for (const char* derivation : {"payments.v2", "positions.v1"})
    CHECK(std::stoll(grown.query_value(
              std::string("select count(*) from external_events where stream = 'adapter.dk.") +
              derivation + "'")) > 500);
}

TEST_CASE("another partition count for a registered stream is refused for good, not retried") {
  auto kafka = external_streams::EmbeddedKafka::start();
  REQUIRE(kafka);
  const auto bootstrap = (*kafka)->bootstrap_servers();
  TestDatabase database;
  started(adapter_config(database, bootstrap, kAll), bootstrap)->stop();

  auto created = adapter::Service::create(adapter_config(database, bootstrap, kAll, 8), bootstrap);
  REQUIRE(created);
  const auto refused = (*created)->start();
  REQUIRE_FALSE(refused);
  CHECK_FALSE(refused.error().retryable);
  CHECK(refused.error().message ==
        "streams: stream adapter.dk.payments.v2 was registered with 4 partitions and is "
        "configured with 8: a stream's partition count is fixed (its entities would move to "
        "other partitions); publish a new version of the stream with the new count instead");
  // Nothing changed: the stream is still registered with its 4 partitions.
  CHECK(database.query_value("select partitions from derived_streams where stream = "
                             "'adapter.dk.payments.v2'") == "4");
}
