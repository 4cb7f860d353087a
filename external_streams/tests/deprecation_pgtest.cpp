// A deprecated stream, against real PostgreSQL, librdkafka's mock cluster and the HTTP
// server and client: its Kafka messages carry the `deprecation` header, its catch-up
// answers the Deprecation (RFC 9745) and Sunset (RFC 8594) headers, a retired stream's
// history stays readable, and catch-up reads are counted per stream and per reader.

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "clearing/base/metrics.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/testing/internal_history.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "test_database.hpp"

using namespace clearing;
using namespace clearing::external_streams;

namespace {

const StreamSpec kOld{"adapter.dk.payments.v1", 2};  // deprecated
const StreamSpec kNew{"adapter.dk.payments.v2", 2};  // live
constexpr const char* kSunset = "2027-06-30";

StreamSetting setting(const StreamSpec& spec, const char* derivation,
                      std::optional<std::string> sunset = std::nullopt, bool retired = false) {
  return {.spec = spec, .derivation = derivation, .sunset = std::move(sunset), .retired = retired};
}

struct Fixture {
  testing::TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<EmbeddedKafka> kafka;

  Fixture() {
    eventstore::DatabaseOptions options;
    options.url = database.url();
    pool = std::make_unique<eventstore::ConnectionPool>(options);
    for (const auto* m : {&eventstore::eventstore_migrations(), &external_streams_migrations()})
      REQUIRE(eventstore::apply_migrations(*pool, *m));
    store = std::make_unique<eventstore::EventStore>(*pool);
    register_as({setting(kOld, "payments.v1", kSunset), setting(kNew, "payments.v2")});
    auto started = EmbeddedKafka::start(1);
    REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
    kafka = std::move(*started);
    for (const auto& s : {kOld, kNew}) REQUIRE(kafka->create_topic(s.name, s.partitions));
  }

  // What an adapter started with these settings registers.
  void register_as(const std::vector<StreamSetting>& settings) {
    auto registered = register_streams(*pool, settings);
    REQUIRE_MESSAGE(registered, (registered ? "" : registered.error().message));
  }

  // `transfers` settled transfers, as the sagas codec writes them, derived by the live
  // derivation of the registry's live streams.
  void settle_transfers(const std::string& prefix, int transfers) {
    for (int i = 0; i < transfers; ++i) {
      const auto id = prefix + std::to_string(i);
      const auto events = sample_history::settled_transfer(id);
      REQUIRE(store->append(eventstore::StreamId{"transfer-" + id},
                            eventstore::ExpectedVersion::any(), events));
    }
    std::vector<DerivedStream> derived;
    for (const auto& [spec, name] : {std::pair{kOld, "payments.v1"}, {kNew, "payments.v2"}}) {
      const auto found = find_derivation(name);
      REQUIRE(found);
      derived.push_back({spec, found->derive, found->fold});
    }
    eventstore::Subscription derivation(
        *store, {.name = std::string(kLiveDerivation)},
        make_derivation_handler(*store, std::move(derived), {.live_streams_only = true}));
    // Until the checkpoint reaches the last event (a poll that finds nothing may only mean
    // that a transaction of a test beside this one holds the horizon back).
    const auto last = count("select coalesce(max(position), 0) from events");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      auto handled = derivation.poll_once();
      REQUIRE(handled);
      if (*handled > 0) continue;
      if (count("select coalesce((select position from subscription_checkpoints where name = '" +
                std::string(kLiveDerivation) + "'), 0)") >= last)
        break;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::int64_t count(const std::string& sql) const { return std::stoll(database.query_value(sql)); }
  std::int64_t messages_of(const StreamSpec& spec) const {
    return count("select count(*) from external_events where stream = '" + spec.name + "'");
  }

  std::unique_ptr<Relay> relay(std::chrono::milliseconds deprecation_refresh) {
    RelayOptions options;
    options.kafka.bootstrap_servers = kafka->bootstrap_servers();
    options.kafka.client_id = "relay";
    options.kafka.message_timeout_ms = 20'000;
    options.deprecation_refresh = deprecation_refresh;
    auto made = Relay::create(*pool, options);
    REQUIRE_MESSAGE(made, (made ? "" : message_of(made.error())));
    return std::move(*made);
  }

  // Relays until every message written is acknowledged.
  void relay_all(Relay& relay) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count("select coalesce(sum(head - published), 0) from external_stream_heads") > 0) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      auto relayed = relay.run_once();
      REQUIRE_MESSAGE(relayed, (relayed ? "" : relayed.error().message));
    }
  }
};

// A message read back from Kafka: its stream, seq header and deprecation header (none
// when it has none).
struct Consumed {
  std::string stream;
  std::string seq;
  std::optional<std::string> deprecation;
};

std::optional<std::string> header_of(rd_kafka_message_t* message, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  const void* value = nullptr;
  std::size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return {};
  return std::string(static_cast<const char*>(value), size);
}

// Every message of both streams' partitions from the beginning, until `expected` of them.
std::vector<Consumed> consume_all(Fixture& f, std::size_t expected) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", f.kafka->bootstrap_servers().c_str(), error,
                            sizeof error) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "group.id", "deprecation-reader", error, sizeof error) ==
          RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "enable.auto.commit", "false", error, sizeof error) ==
          RD_KAFKA_CONF_OK);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  REQUIRE(consumer != nullptr);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(4);
  for (const auto& spec : {kOld, kNew})
    for (int p = 0; p < spec.partitions; ++p)
      rd_kafka_topic_partition_list_add(partitions, spec.name.c_str(), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
  REQUIRE(rd_kafka_assign(consumer, partitions) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(partitions);
  std::vector<Consumed> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 100);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      out.push_back({rd_kafka_topic_name(message->rkt), header_of(message, "seq").value_or(""),
                     header_of(message, "deprecation")});
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  REQUIRE(out.size() == expected);
  return out;
}

// The catch-up API on a real HTTP server, its reader's token named "treasury".
struct CatchUpServer {
  base::metrics::Registry metrics;
  std::unique_ptr<http::HttpServer> server;

  explicit CatchUpServer(Fixture& f) {
    auto made = http::HttpServer::create(
        {.bearer_token = "treasury-token", .bearer_token_name = "treasury"});
    REQUIRE(made);
    server = std::move(*made);
    add_catch_up_routes(*server, *f.pool, {.metrics = &metrics});
    REQUIRE(server->start());
  }

  http::ClientResponse get(const std::string& stream, int partition,
                           const std::string& token = "treasury-token") const {
    auto got =
        http::get("http://127.0.0.1:" + std::to_string(server->port()) + "/streams/" + stream +
                      "/partitions/" + std::to_string(partition) + "/events?from=1&limit=1000",
                  token, 5'000);
    REQUIRE_MESSAGE(got, (got ? "" : got.error().message));
    return *got;
  }

  // The counter's sample of one series as /metrics renders it, "" when it has none.
  std::string reads(const std::string& stream, const std::string& reader) const {
    const auto text = metrics.render();
    const auto series =
        "clearing_catch_up_reads_total{stream=\"" + stream + "\",reader=\"" + reader + "\"} ";
    const auto at = text.find(series);
    if (at == std::string::npos) return "";
    return text.substr(at + series.size(), text.find('\n', at) - at - series.size());
  }
};

// Every partition of the deprecated stream read once, each answer with the Deprecation
// (deprecated_at set by the test) and Sunset headers: the messages it has.
std::size_t deprecated_history(const CatchUpServer& api) {
  std::size_t events = 0;
  for (int p = 0; p < kOld.partitions; ++p) {
    const auto answer = api.get(kOld.name, p);
    REQUIRE(answer.status == 200);
    CHECK(answer.headers.at("deprecation") == "@1796119200");
    CHECK(answer.headers.at("sunset") == "Wed, 30 Jun 2027 00:00:00 GMT");
    events += nlohmann::json::parse(answer.body).at("events").size();
  }
  return events;
}

}  // namespace

TEST_CASE("the Deprecation and Sunset field values are exactly RFC 9745's and RFC 8594's") {
  using std::chrono::seconds;
  CHECK(deprecation_field(base::Timestamp{seconds{1796119200}}) == "@1796119200");
  // Milliseconds are cut, not rounded: the field is whole seconds.
  CHECK(deprecation_field(base::Timestamp{std::chrono::milliseconds{1796119200999}}) ==
        "@1796119200");
  CHECK(sunset_field("2027-06-30") == "Wed, 30 Jun 2027 00:00:00 GMT");
  CHECK(sunset_field("2028-02-29") == "Tue, 29 Feb 2028 00:00:00 GMT");
  CHECK(sunset_field("2027-01-05") == "Tue, 05 Jan 2027 00:00:00 GMT");
  for (const auto* bad : {"2027-02-29", "2027-13-01", "2027-6-30", "2027/06/30", "", "+027-06-30",
                          "2027-06-3x", "2027-06-30T00"}) {
    CAPTURE(bad);
    CHECK_FALSE(sunset_field(bad));
  }
  CHECK(deprecation_header_value("2027-06-30") == "sunset=2027-06-30");
}

TEST_CASE(
    "a deprecated stream's Kafka messages carry the deprecation header, a live stream's do not; "
    "a deprecation registered later shows at the relay's next read of the registry") {
  Fixture f;
  f.settle_transfers("t", 6);
  REQUIRE(f.messages_of(kOld) == 6);
  REQUIRE(f.messages_of(kNew) == 6);
  auto relay = f.relay(std::chrono::milliseconds(1));
  f.relay_all(*relay);

  auto consumed = consume_all(f, 12);
  std::map<std::string, int> deprecated, plain;
  for (const auto& m : consumed) {
    CAPTURE(m.stream);
    CHECK_FALSE(m.seq.empty());  // the existing headers are still there
    if (m.deprecation) {
      CHECK(*m.deprecation == "sunset=2027-06-30");
      ++deprecated[m.stream];
    } else {
      ++plain[m.stream];
    }
  }
  CHECK(deprecated == std::map<std::string, int>{{kOld.name, 6}});
  CHECK(plain == std::map<std::string, int>{{kNew.name, 6}});

  // An instance started with a newer config deprecates v2 too: this relay learns it from the
  // registry, not from its own options.
  f.register_as(
      {setting(kOld, "payments.v1", kSunset), setting(kNew, "payments.v2", "2028-02-29")});
  f.settle_transfers("u", 2);
  f.relay_all(*relay);
  std::map<std::pair<std::string, std::string>, int> by_header;
  for (const auto& m : consume_all(f, 16)) ++by_header[{m.stream, m.deprecation.value_or("none")}];
  CHECK(by_header ==
        std::map<std::pair<std::string, std::string>, int>{{{kOld.name, "sunset=2027-06-30"}, 8},
                                                           {{kNew.name, "none"}, 6},
                                                           {{kNew.name, "sunset=2028-02-29"}, 2}});
}

TEST_CASE(
    "catch-up answers of a deprecated or retired stream carry Deprecation and Sunset, a live "
    "stream's neither; a retired stream stays readable; reads are counted per stream and "
    "reader") {
  Fixture f;
  f.settle_transfers("t", 4);
  // A fixed deprecation instant, so the header's value is known exactly.
  f.database.exec(
      "update derived_streams set deprecated_at = '2026-12-01T10:00:00Z'"
      " where stream = '" +
      kOld.name + "'");
  CatchUpServer api(f);

  CHECK(deprecated_history(api) == 4);
  const auto live = api.get(kNew.name, 0);
  REQUIRE(live.status == 200);
  CHECK_FALSE(live.headers.contains("deprecation"));
  CHECK_FALSE(live.headers.contains("sunset"));

  // Neither a refused token nor an unknown stream is counted (nor makes a series).
  CHECK(api.get(kOld.name, 0, "wrong-token").status == 401);
  CHECK(api.get("adapter.dk.nothing.v1", 0).status == 404);
  CHECK(api.get(kOld.name, 7).status == 404);
  CHECK(api.reads(kOld.name, "treasury") == "2");
  CHECK(api.reads(kNew.name, "treasury") == "1");
  CHECK(api.metrics.render().find("adapter.dk.nothing.v1") == std::string::npos);
  CHECK(api.metrics.render().find("reader=\"api\"") == std::string::npos);

  // After the sunset: retired, no longer derived, its history still served with its headers.
  f.register_as({setting(kOld, "payments.v1", kSunset, true), setting(kNew, "payments.v2")});
  CHECK(f.database.query_value("select phase from derived_streams where stream = '" + kOld.name +
                               "'") == "retired");
  f.settle_transfers("u", 3);
  CHECK(f.messages_of(kOld) == 4);
  CHECK(f.messages_of(kNew) == 7);
  CHECK(deprecated_history(api) == 4);
  CHECK(api.reads(kOld.name, "treasury") == "4");
  CHECK_FALSE(api.get(kNew.name, 1).headers.contains("sunset"));
  CHECK(api.reads(kNew.name, "treasury") == "2");
}
