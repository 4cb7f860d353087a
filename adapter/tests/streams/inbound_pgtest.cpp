// The core's stream into the adapter over Kafka (librdkafka's mock cluster): requests
// become transfers, a message that never reached Kafka is fetched through the core's
// catch-up API over HTTP, and bad input is parked, with the transfer rejected FF01 where
// its id is readable, and that outcome derived onto the adapter's stream.

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <pqxx/pqxx>

#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"

using namespace clearing;
using namespace clearing::testing;
using external_streams::StreamSpec;

namespace {

const StreamSpec kCore{"core.dk.payments.v1", 2};
const StreamSpec kOut{"adapter.dk.payments.v1", 2};

nlohmann::json request_data(const std::string& transfer_id, int index) {
  return {
      {"transfer_id", transfer_id},
      {"account_id", "acct-" + std::to_string(index)},
      {"amount", {{"minor_units", 1000 + index}, {"currency", "DKK"}}},
      {"debtor", {{"name", "Ada"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Charles"}, {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
      {"remittance_info", "Invoice"},
      {"requested_at", "2026-11-26T09:00:00Z"}};
}

void produce(const std::string& bootstraps, const external_streams::ExternalMessage& m) {
  const std::string value = m.to_json().dump();
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  REQUIRE(producer);
  REQUIRE(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(m.stream.c_str()),
                            RD_KAFKA_V_PARTITION(m.partition),
                            RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  REQUIRE(rd_kafka_flush(producer, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
}

void produce_text(const std::string& bootstraps, const std::string& topic, int partition,
                  const std::string& value) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  REQUIRE(producer);
  REQUIRE(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  REQUIRE(rd_kafka_flush(producer, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
}

}  // namespace

TEST_CASE(
    "core requests become transfers; a lost message comes through the catch-up API; bad input is "
    "parked and rejected FF01") {
  SagaDatabase adapter_db;  // the adapter's database
  SagaDatabase core_db;     // stands in for the core's: its outgoing stream and catch-up API
  const std::vector<StreamSpec> core_streams{kCore};
  REQUIRE(external_streams::ensure_streams(*core_db.pool, core_streams));
  const std::vector<StreamSpec> adapter_streams{kOut};
  REQUIRE(external_streams::ensure_streams(*adapter_db.pool, adapter_streams));

  auto kafka = external_streams::EmbeddedKafka::start(1);
  REQUIRE(kafka);
  REQUIRE((*kafka)->create_topic(kCore.name, kCore.partitions));

  auto server = http::HttpServer::create({.bearer_token = "core-token"});
  REQUIRE(server);
  external_streams::add_catch_up_routes(**server, *core_db.pool);
  REQUIRE((*server)->start());
  const std::string core_url = "http://127.0.0.1:" + std::to_string((*server)->port());

  // The core writes 6 requests to its stream; Kafka gets all but one of them.
  std::vector<external_streams::ExternalMessage> written;
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    const auto id = base::new_uuid();
    ids.push_back(id);
    eventstore::RecordedEvent source;
    source.event_id = eventstore::EventId{base::new_uuid()};
    source.metadata.correlation_id = "corr-" + std::to_string(i);
    auto appended = core_db.pool->transact([&](eventstore::Transaction& tx) {
      return external_streams::append_external(
          tx, kCore, {"TransferRequested", id, request_data(id, i), false, ""}, source);
    });
    REQUIRE(appended);
    written.push_back(**appended);
  }
  // Lose the first message of one partition that has at least two.
  std::map<int, int> per_partition;
  for (const auto& m : written) ++per_partition[m.partition];
  const int lossy = per_partition[0] >= 2 ? 0 : 1;
  REQUIRE(per_partition[lossy] >= 2);
  std::string lost_id;
  for (const auto& m : written) {
    if (m.partition == lossy && m.seq == 1) {
      lost_id = m.key;
      continue;
    }
    produce((*kafka)->bootstrap_servers(), m);
  }
  // Bad input on partition 0 after the good ones.
  const auto readable = base::new_uuid();
  const std::int64_t next_seq = per_partition[0] + 1;
  external_streams::ExternalMessage broken;
  broken.stream = kCore.name;
  broken.partition = 0;
  broken.seq = next_seq;
  broken.event_id = base::new_uuid();
  broken.type = "TransferRequested";
  broken.occurred_at = "2026-11-26T09:00:00.000Z";
  broken.correlation_id = "corr-broken";
  broken.source_event_id = base::new_uuid();
  broken.data = {{"transfer_id", readable}, {"account_id", "a"}};  // no amount, no parties
  produce((*kafka)->bootstrap_servers(), broken);
  produce_text((*kafka)->bootstrap_servers(), kCore.name, 0, "definitely not json");

  base::SystemClock clock;
  adapter::InboundRules rules{dk_rules(), fast_policy()};
  external_streams::ConsumerOptions options;
  options.kafka.bootstrap_servers = (*kafka)->bootstrap_servers();
  options.kafka.client_id = "adapter-inbound";
  options.group_id = "clearing-adapter-dk";
  options.topics = {kCore.name};
  auto consumer = external_streams::StreamConsumer::create(
      *adapter_db.pool, options,
      adapter::make_transfer_inbound(*adapter_db.transfers, clock, rules),
      external_streams::make_http_catch_up_fetcher({core_url, "core-token", 2000}));
  REQUIRE_MESSAGE(consumer, (consumer ? "" : external_streams::message_of(consumer.error())));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (adapter_db.database.query_value("select count(*) from transfer_status") != "7" ||
         adapter_db.database.query_value("select count(*) from parked_messages") != "2") {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    (*consumer)->run_once();
  }

  // Six transfers initiated (one of them fetched over HTTP), the broken one rejected FF01.
  CHECK((*consumer)->stats().gap_fetched == 1);
  CHECK(adapter_db.database.query_value(
            "select count(*) from events where type = 'TransferInitiated'") == "7");
  auto lost = adapter_db.store->read_stream(adapter::transfer_stream(lost_id));
  REQUIRE(lost);
  REQUIRE_FALSE(lost->empty());
  CHECK(lost->front().metadata.source["seq"] == 1);
  CHECK(lost->front().metadata.correlation_id.rfind("corr-", 0) == 0);
  CHECK(adapter_db.database.query_value("select status from transfer_status where transfer_id = '" +
                                        readable + "'") == "rejected");
  CHECK(adapter_db.database.query_value(
            "select data->>'reason_code' from events where type = 'TransferRejected'"
            " and stream_id = 'transfer-" +
            readable + "'") == "FF01");
  CHECK(adapter_db.database.query_value(
            "select count(*) from parked_messages where reason_code = 'invalid_data'"
            " and correlation_id = 'corr-broken' and topic = 'core.dk.payments.v1'") == "1");
  CHECK(adapter_db.database.query_value("select convert_from(raw, 'UTF8') from parked_messages"
                                        " where reason_code = 'not_json'") ==
        "definitely not json");
  // Sequence progress: every seq of both partitions applied.
  CHECK(adapter_db.database.query_value("select sum(last_seq) from inbound_stream_progress") ==
        std::to_string(written.size() + 1));

  // The FF01 outcome flows to the core like any other.
  eventstore::Subscription derive(
      *adapter_db.store, {.name = "derive"},
      external_streams::make_derivation_handler(*adapter_db.store,
                                                {{kOut, &external_streams::derive_payments_v1}}));
  while (*derive.poll_once() > 0) {
  }
  CHECK(adapter_db.database.query_value(
            "select data->>'reason_code' from external_events where entity_key = '" + readable +
            "'") == "FF01");
  CHECK(adapter_db.database.query_value(
            "select correlation_id from external_events where entity_key = '" + readable + "'") ==
        "corr-broken");
  (*server)->stop();
}

TEST_CASE("the catch-up API answers bad parameters with clear 400s") {
  SagaDatabase db;
  const std::vector<StreamSpec> streams{kOut};
  REQUIRE(external_streams::ensure_streams(*db.pool, streams));
  auto server = http::HttpServer::create({.bearer_token = "t"});
  REQUIRE(server);
  external_streams::add_catch_up_routes(**server, *db.pool);
  REQUIRE((*server)->start());
  const std::string base = "http://127.0.0.1:" + std::to_string((*server)->port()) + "/streams/";
  auto get = [&](const std::string& path, const std::string& token = "t") {
    auto r = http::get(base + path, token, 2000);
    REQUIRE(r);
    return *r;
  };
  CHECK(get("adapter.dk.payments.v1/partitions/0/events").status == 200);
  CHECK(nlohmann::json::parse(
            get("adapter.dk.payments.v1/partitions/0/events?from=1&limit=10").body)["head"] == 0);
  CHECK(get("adapter.dk.payments.v1/partitions/0/events", "wrong").status == 401);
  CHECK(get("adapter.dk.payments.v1/partitions/x/events").status == 400);
  CHECK(get("adapter.dk.payments.v1/partitions/0/events?from=0").status == 400);
  CHECK(get("adapter.dk.payments.v1/partitions/0/events?limit=1001").status == 400);
  CHECK(get("adapter.dk.payments.v1/partitions/0/events?limit=ten").status == 400);
  CHECK(get("adapter.dk.payments.v1/partitions/0/events?frm=1").status == 400);
  CHECK(get("adapter.dk.payments.v1/partitions/7/events").status == 404);
  CHECK(get("adapter.se.payments.v1/partitions/0/events").status == 404);
  const auto bad = get("adapter.dk.payments.v1/partitions/0/events?limit=0");
  CHECK(bad.body.find("limit must be an integer in [1, 1000]") != std::string::npos);
  (*server)->stop();
}
