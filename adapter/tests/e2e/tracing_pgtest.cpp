// Distributed tracing through the running service (in this process, on the embedded Kafka,
// with the clearing mock in process): a TransferRequested arrives with the core's
// traceparent header, and one trace follows it through consume, decide, the clearing call
// (and the clearing mock's server span under the call's traceparent header), the answer's
// decision, the derivation and the publication, whose Kafka header continues the trace. The
// spans reach an OTLP/HTTP receiver (an http::HttpServer here) as OTLP JSON, their parent links
// checked one by one; every event of the transfer keeps the trace in its metadata. With the
// receiver gone the adapter goes on and counts the spans it drops.

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>

#include "clearing/adapter/service.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/trace_context.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/message.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/wait.hpp"
#include "clearing/tracing/otlp_receiver.hpp"
#include "test_database.hpp"

using namespace clearing;
using clearing::testing::TestDatabase;
using Span = tracing::testing::OtlpReceiver::ReceivedSpan;

namespace {

constexpr const char* kCoreStream = "core.dk.payments.v1";
constexpr const char* kOutStream = "adapter.dk.payments.v1";
// The core's span, as its traceparent header names it.
constexpr const char* kCoreTrace = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kCoreSpan = "b7ad6b7169203331";

// A TransferRequested on partition 0 at `seq`, with the core's trace headers when given.
void produce_request(const std::string& bootstraps, const std::string& transfer_id,
                     std::int64_t seq, const std::string& traceparent) {
  external_streams::ExternalMessage m;
  m.stream = kCoreStream;
  m.partition = 0;
  m.seq = seq;
  m.event_id = base::new_uuid();
  m.type = "TransferRequested";
  m.occurred_at = "2026-11-26T09:00:00.000Z";
  m.correlation_id = "corr-" + transfer_id;
  m.source_event_id = base::new_uuid();
  m.data = testing::core_request_data(transfer_id);
  m.key = transfer_id;
  const auto value = m.to_json().dump();
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  REQUIRE(producer);
  rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
  if (!traceparent.empty()) {
    rd_kafka_header_add(headers, "traceparent", -1, traceparent.data(),
                        static_cast<ssize_t>(traceparent.size()));
    rd_kafka_header_add(headers, "tracestate", -1, "core=1", 6);
  }
  REQUIRE(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(m.stream.c_str()), RD_KAFKA_V_PARTITION(0),
                            RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                            RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  REQUIRE(rd_kafka_flush(producer, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
}

// The traceparent headers of the messages keyed `key` on `topic` (read from the start).
std::vector<std::string> outbound_traceparents(const std::string& bootstraps,
                                               const std::string& topic, const std::string& key,
                                               std::size_t wanted) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
  rd_kafka_conf_set(conf, "group.id", ("tracing-test-" + base::new_uuid()).c_str(), error,
                    sizeof error);
  rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", error, sizeof error);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  REQUIRE(consumer);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  REQUIRE(rd_kafka_subscribe(consumer, topics) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (out.size() < wanted && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 200);
    if (m == nullptr) continue;
    if (!m->err && m->key && std::string(static_cast<const char*>(m->key), m->key_len) == key) {
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "traceparent", &value, &size) ==
              RD_KAFKA_RESP_ERR_NO_ERROR)
        out.emplace_back(static_cast<const char*>(value), size);
      else
        out.emplace_back();
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

std::string string_attribute(const Span& span, const std::string& key) {
  const auto value = span.attribute(key);
  return value.is_object() ? value.value("stringValue", "") : "";
}

std::string transfer_status(const std::string& url, const std::string& transfer_id) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  const auto rows =
      tx.exec_params("select status from transfer_status where transfer_id = $1", transfer_id);
  return rows.empty() ? "" : rows[0][0].as<std::string>();
}

}  // namespace

TEST_CASE(
    "one trace from the core's header through consume, decide, the clearing call, "
    "derivation and publication; with the receiver down the spans are dropped and counted") {
  tracing::testing::OtlpReceiver receiver;
  ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().c_str(), 1);
  ::setenv("OTEL_SERVICE_NAME", "clearing-adapter-test", 1);
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  ::unsetenv("OTEL_TRACES_SAMPLER");

  clearing_mock::MockOptions mock_options;
  mock_options.bearer_token = "clearing-token-16";
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE_MESSAGE(mock, (mock ? "" : mock.error()));

  TestDatabase database;
  auto kafka = external_streams::EmbeddedKafka::start();
  REQUIRE(kafka);
  const auto bootstraps = (*kafka)->bootstrap_servers();
  const int http_port = support::free_port();
  config::MapEnvironment env(
      {{"CLEARING_ADAPTER_DATABASE_URL", database.url()},
       {"CLEARING_ADAPTER_KAFKA_BROKERS", bootstraps},
       {"CLEARING_ADAPTER_CLEARING_URL", (*mock)->base_url()},
       {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://127.0.0.1:9"},
       {"CLEARING_ADAPTER_HTTP_ADDRESS", "127.0.0.1:" + std::to_string(http_port)},
       {"CLEARING_ADAPTER_API_TOKEN", "api-token-0123456789abcdef0123456"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-catchup-token-0123"},
       {"CLEARING_ADAPTER_DATA_KEK", std::string(support::kTestDataKek)}});
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  auto cfg = config::parse_config(nlohmann::json::parse(in).dump(), "dk.json", env);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().to_string()));
  for (const auto& [topic, partitions] : adapter::configured_topics(*cfg))
    REQUIRE((*kafka)->create_topic(topic, partitions));
  auto created = adapter::Service::create(*cfg, bootstraps);
  REQUIRE_MESSAGE(created, (created ? "" : created.error()));
  auto& service = **created;
  const auto service_started = service.start();
  REQUIRE_MESSAGE(service_started, (service_started ? "" : service_started.error().message));

  const std::string core_parent = std::string("00-") + kCoreTrace + "-" + kCoreSpan + "-01";
  const auto transfer_id = base::new_uuid();
  produce_request(bootstraps, transfer_id, 1, core_parent);
  REQUIRE(support::wait_until(
      [&] { return transfer_status(database.url(), transfer_id) == "succeeded"; },
      std::chrono::seconds(60)));
  // The outcome's message on the adapter's stream carries the trace on.
  const auto headers = outbound_traceparents(bootstraps, kOutStream, transfer_id, 1);
  REQUIRE(headers.size() >= 1);
  const auto published = base::parse_traceparent(headers[0]);
  REQUIRE_MESSAGE(published.has_value(), headers[0]);
  CHECK(published->trace_id == kCoreTrace);
  CHECK(published->sampled());

  // Every span named below has arrived (the exporter posts each second).
  const auto by_name = [](const std::vector<Span>& spans) {
    std::multimap<std::string, Span> out;
    for (const auto& s : spans)
      if (s.trace_id() == kCoreTrace) out.emplace(s.name(), s);
    return out;
  };
  REQUIRE(receiver.wait_for([&](const std::vector<Span>& spans) {
    const auto named = by_name(spans);
    for (const char* name : {"consume core.dk.payments.v1", "clearing submit",
                             "clearing-mock submit", "derive", "publish adapter.dk.payments.v1"})
      if (named.count(name) == 0) return false;
    return named.count("decide") >= 2;
  }));
  const auto spans = receiver.spans();
  const auto named = by_name(spans);
  std::map<std::string, Span> by_id;
  for (const auto& s : spans) by_id.emplace(s.span_id(), s);
  const auto parent_name = [&](const Span& s) {
    const auto it = by_id.find(s.parent_span_id());
    return it == by_id.end() ? std::string("?") : it->second.name();
  };

  const auto& consume = named.find("consume core.dk.payments.v1")->second;
  CHECK(consume.parent_span_id() == kCoreSpan);
  CHECK(consume.span.value("kind", 0) == 5);  // consumer
  CHECK(consume.span.value("traceState", "") == "core=1");
  CHECK(string_attribute(consume, "transfer.id") == transfer_id);
  CHECK(consume.service == "clearing-adapter-test");

  const auto& submit = named.find("clearing submit")->second;
  CHECK(submit.span.value("kind", 0) == 3);  // client
  CHECK(string_attribute(submit, "transfer.id") == transfer_id);
  CHECK(submit.attribute("clearing.attempt") == nlohmann::json{{"intValue", "1"}});
  CHECK(string_attribute(submit, "clearing.answer_class") != "");
  // The inbound decision, under consume, scheduled the call.
  const auto& inbound_decide = by_id.at(submit.parent_span_id());
  CHECK(inbound_decide.name() == "decide");
  CHECK(inbound_decide.parent_span_id() == consume.span_id());
  // The clearing saw the call's traceparent header: its server span is the call's child.
  const auto& clearing = named.find("clearing-mock submit")->second;
  CHECK(clearing.parent_span_id() == submit.span_id());
  CHECK(clearing.span.value("kind", 0) == 2);  // server
  // The answer's decision is the call's child.
  bool answer_decided = false;
  for (auto [it, end] = named.equal_range("decide"); it != end; ++it)
    answer_decided = answer_decided || it->second.parent_span_id() == submit.span_id();
  CHECK(answer_decided);
  // Derivation and publication follow from decisions; the Kafka header names the publish span.
  for (auto [it, end] = named.equal_range("derive"); it != end; ++it)
    CHECK(parent_name(it->second) == "decide");
  bool header_is_publish = false;
  for (auto [it, end] = named.equal_range("publish adapter.dk.payments.v1"); it != end; ++it) {
    CHECK(parent_name(it->second) == "decide");
    CHECK(it->second.span.value("kind", 0) == 4);  // producer
    header_is_publish = header_is_publish || it->second.span_id() == published->span_id;
  }
  CHECK(header_is_publish);
  // Ids and classes only: no name, no account number in anything exported.
  for (const auto& body : receiver.bodies()) {
    CHECK(body.find("Ada") == std::string::npos);
    CHECK(body.find("Charles") == std::string::npos);
    CHECK(body.find("0001234567") == std::string::npos);
    CHECK(body.find("DK5000400440116243") == std::string::npos);
  }
  // Every event of the transfer keeps the trace: a retry days later continues it.
  {
    pqxx::connection c(database.url());
    pqxx::nontransaction tx(c);
    const auto rows = tx.exec_params(
        "select type, metadata->'extra'->'trace'->>'traceparent' from events where stream_id = $1",
        "transfer-" + transfer_id);
    REQUIRE(rows.size() >= 2);
    for (const auto& row : rows) {
      CAPTURE(row[0].as<std::string>());
      REQUIRE_FALSE(row[1].is_null());
      const auto kept = base::parse_traceparent(row[1].as<std::string>());
      REQUIRE(kept.has_value());
      CHECK(kept->trace_id == kCoreTrace);
      CHECK(by_id.count(kept->span_id) == 1);  // a span that was exported
    }
  }

  // A request without a traceparent starts a trace of its own.
  const auto untraced = base::new_uuid();
  produce_request(bootstraps, untraced, 2, "");
  REQUIRE(
      support::wait_until([&] { return transfer_status(database.url(), untraced) == "succeeded"; },
                          std::chrono::seconds(60)));
  const auto own = outbound_traceparents(bootstraps, kOutStream, untraced, 1);
  REQUIRE(own.size() >= 1);
  const auto own_context = base::parse_traceparent(own[0]);
  REQUIRE(own_context.has_value());
  CHECK(own_context->trace_id != kCoreTrace);

  // The receiver gone: the transfers still go through, and the dropped spans are counted.
  receiver.stop();
  const auto dropped_before = [&] {
    const auto text = service.metrics_text();
    const auto at = text.find("\ntracing_spans_dropped_total ");
    REQUIRE(at != std::string::npos);
    return std::strtod(text.c_str() + at + std::strlen("\ntracing_spans_dropped_total "), nullptr);
  };
  const double before = dropped_before();
  const auto unheard = base::new_uuid();
  produce_request(bootstraps, unheard, 3, core_parent);
  REQUIRE(
      support::wait_until([&] { return transfer_status(database.url(), unheard) == "succeeded"; },
                          std::chrono::seconds(60)));
  CHECK(support::wait_until([&] { return dropped_before() > before; }, std::chrono::seconds(30)));
  MESSAGE("spans dropped with the receiver down: " << dropped_before() - before);
  service.stop();
  ::unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  ::unsetenv("OTEL_SERVICE_NAME");
}
