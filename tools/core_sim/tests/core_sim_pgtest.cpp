// core-sim end to end against librdkafka's mock cluster and a fake adapter in the test:
// the fake adapter consumes core.dk.payments.v1 from Kafka and answers on
// adapter.dk.payments.v1 (append_external + a Relay on a database of its own), with a
// pending, an under-investigation, a duplicate outcome, an outcome for an unknown transfer
// and a message of an unknown type. The report must count each of them right, and no
// money may move twice. A second run has the fake adapter publish every outcome on
// adapter.dk.payments.v1 and .v2, as the real one derives both from one internal event,
// and core-sim switches from v1 to v2 midway: each transfer gets exactly one outcome.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/core_sim.hpp"
#include "clearing/core_sim/transfer_source.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/catch_up_api.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/payments_v2_codec.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "test_database.hpp"

using namespace clearing;
using external_streams::Draft;
using external_streams::ExternalMessage;
using external_streams::StreamSpec;

namespace {

const StreamSpec kCore{"core.dk.payments.v1", 2};
const StreamSpec kAdapter{"adapter.dk.payments.v1", 2};
// Another partition count than v1's: the switch must not depend on the two being alike.
const StreamSpec kAdapterV2{"adapter.dk.payments.v2", 3};
constexpr std::int64_t kLimitMinor = 1'000'000'000;

std::unique_ptr<external_streams::EmbeddedKafka> start_kafka() {
  auto kafka = external_streams::EmbeddedKafka::start(1);
  REQUIRE_MESSAGE(kafka, (kafka ? "" : kafka.error().message));
  REQUIRE((*kafka)->create_topic(kCore.name, kCore.partitions));
  REQUIRE((*kafka)->create_topic(kAdapter.name, kAdapter.partitions));
  REQUIRE((*kafka)->create_topic(kAdapterV2.name, kAdapterV2.partitions));
  return std::move(*kafka);
}

// What the real adapter would answer for a request (the clearing mock's rules).
std::pair<std::string, std::string> outcome_for(const nlohmann::json& data) {
  const auto creditor = data["creditor"]["account"];
  const sagas::Account account{*sagas::parse_scheme(creditor["scheme"].get<std::string>()),
                               creditor["id"].get<std::string>()};
  if (!sagas::validate_account(sagas::Country::dk, account)) return {"TransferRejected", "AC01"};
  if (data["amount"]["currency"] != "DKK") return {"TransferRejected", "AM03"};
  if (data["amount"]["minor_units"].get<std::int64_t>() > kLimitMinor)
    return {"TransferRejected", "AM02"};
  if (account.id.ends_with("0004")) return {"TransferRejected", "AC04"};
  if (account.id.ends_with("0006")) return {"TransferRejected", "AC06"};
  return {"TransferSucceeded", ""};
}

// The fake adapter: its own database, its outgoing streams, a relay and its catch-up API.
// Answering, it answers each request on v1 as it comes; otherwise it only records the
// requests, and the test answers them (answer_both).
struct FakeAdapter {
  testing::TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  std::unique_ptr<external_streams::Relay> relay;
  std::unique_ptr<http::HttpServer> http;
  std::atomic<int> requests_seen{0};
  std::string first_succeeded;  // the transfer that gets a duplicate outcome
  bool pending_sent = false, investigation_sent = false, extras_sent = false;
  const bool answering;

  explicit FakeAdapter(const std::string& bootstraps, bool answers = true) : answering(answers) {
    pool = std::make_unique<eventstore::ConnectionPool>(
        eventstore::DatabaseOptions{.url = database.url()});
    for (const auto* m :
         {&eventstore::eventstore_migrations(), &external_streams::external_streams_migrations()})
      REQUIRE(eventstore::apply_migrations(*pool, *m));
    const std::vector<StreamSpec> streams{kAdapter, kAdapterV2};
    REQUIRE(external_streams::ensure_streams(*pool, streams));
    database.exec(
        "create table fake_requests (transfer_id text primary key, correlation_id text, "
        "source_event_id text,"
        " partition int, seq bigint, data jsonb)");

    auto server = http::HttpServer::create({.bearer_token = "adapter-token"});
    REQUIRE(server);
    http = std::move(*server);
    external_streams::add_catch_up_routes(*http, *pool);
    REQUIRE(http->start());

    external_streams::KafkaClientOptions kafka;
    kafka.bootstrap_servers = bootstraps;
    kafka.client_id = "fake-adapter";
    auto made_relay = external_streams::Relay::create(*pool, {.kafka = kafka});
    REQUIRE(made_relay);
    relay = std::move(*made_relay);
    external_streams::ConsumerOptions options;
    options.kafka = kafka;
    options.group_id = "fake-adapter-dk";
    options.topics = {kCore.name};
    // Answers each request; parks nothing (a core message it would park fails the test).
    struct Answering final : external_streams::InboundHandler {
      FakeAdapter& fake;
      explicit Answering(FakeAdapter& f) : fake(f) {}
      tl::expected<void, external_streams::ApplyError> apply(eventstore::Transaction& tx,
                                                             const ExternalMessage& m) override {
        auto answered = fake.answer(tx, m);
        if (!answered)
          return tl::unexpected(external_streams::ApplyError::unusable(answered.error()));
        return {};
      }
      eventstore::StoreResult<void> park(eventstore::Transaction&,
                                         const external_streams::RawMessage&,
                                         const external_streams::MessageError& e,
                                         const std::optional<ExternalMessage>&) override {
        FAIL("fake adapter parked a core message: " << e.message);
        return {};
      }
    };
    auto made = external_streams::StreamConsumer::create(*pool, options,
                                                         std::make_unique<Answering>(*this));
    REQUIRE_MESSAGE(made, (made ? "" : external_streams::message_of(made.error())));
    consumer = std::move(*made);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http->port()); }

  void start() {
    relay->start();
    consumer->start();
  }
  ~FakeAdapter() {
    if (consumer) consumer->stop();
    if (relay) relay->stop();
    if (http) http->stop();
  }

  // Each outcome gets a source event of its own, as the adapter's internal events would.
  static void emit(eventstore::Transaction& tx, const std::string& type, const std::string& key,
                   const nlohmann::json& data, const std::string& correlation_id) {
    eventstore::RecordedEvent source;
    source.event_id = eventstore::EventId{base::new_uuid()};
    source.metadata.correlation_id = correlation_id;
    source.recorded_at = base::SystemClock{}.now();
    auto appended =
        external_streams::append_external(tx, kAdapter, Draft{type, key, data, false, ""}, source);
    if (!appended) throw std::runtime_error(appended.error().message);
  }

  tl::expected<void, external_streams::MessageError> answer(eventstore::Transaction& tx,
                                                            const ExternalMessage& m) {
    CHECK(m.type == "TransferRequested");
    CHECK(m.key == m.data["transfer_id"].get<std::string>());
    CHECK(base::is_uuid(m.correlation_id));
    CHECK(base::is_uuid(m.source_event_id));
    tx.exec_params("insert into fake_requests values ($1, $2, $3, $4, $5, $6::jsonb)", m.key,
                   m.correlation_id, m.source_event_id, m.partition, m.seq, m.data.dump());
    ++requests_seen;
    if (!answering) return {};
    const auto& id = m.key;
    const auto [type, reason] = outcome_for(m.data);
    if (type == "TransferSucceeded" && !pending_sent) {
      pending_sent = true;
      emit(tx, "TransferPending", id,
           {{"transfer_id", id},
            {"clearing_reference", "CR-" + id},
            {"expected_settlement_date", "2026-11-27"}},
           m.correlation_id);
    } else if (type == "TransferSucceeded" && !investigation_sent) {
      investigation_sent = true;
      emit(tx, "TransferUnderInvestigation", id,
           {{"transfer_id", id},
            {"since", "2026-11-26T09:00:00.000Z"},
            {"attempts", 5},
            {"last_error", "timeout"}},
           m.correlation_id);
    }
    if (type == "TransferSucceeded") {
      const nlohmann::json data{{"transfer_id", id},
                                {"clearing_reference", "CR-" + id},
                                {"settlement_date", "2026-11-26"}};
      emit(tx, type, id, data, m.correlation_id);
      if (first_succeeded.empty()) {
        first_succeeded = id;
        emit(tx, type, id, data,
             m.correlation_id);  // the duplicate outcome: a new seq, the same transfer
      }
    } else {
      emit(tx, type, id, {{"transfer_id", id}, {"reason_code", reason}, {"reason", "test"}},
           m.correlation_id);
    }
    if (!extras_sent) {
      extras_sent = true;
      emit(tx, "TransferSucceeded", "not-a-core-transfer",
           {{"transfer_id", "not-a-core-transfer"},
            {"clearing_reference", "CR-x"},
            {"settlement_date", "2026-11-26"}},
           base::new_uuid());
      emit(tx, "SomethingNew", "entity-1", {{"what", "a type the core does not know"}},
           base::new_uuid());
    }
    return {};
  }
};

// One internal event of the adapter, derived to a message on each version (the same
// source_event_id), appended in one transaction as the adapter's derivation does.
void publish_both(eventstore::ConnectionPool& adapter_pool, const Draft& on_v1, const Draft& on_v2,
                  const std::string& correlation_id) {
  eventstore::RecordedEvent source;
  source.event_id = eventstore::EventId{base::new_uuid()};
  source.metadata.correlation_id = correlation_id;
  source.recorded_at = base::SystemClock{}.now();
  auto done =
      adapter_pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<int> {
        for (const auto& [stream, draft] : {std::pair{&kAdapter, &on_v1}, {&kAdapterV2, &on_v2}})
          if (auto appended = external_streams::append_external(tx, *stream, *draft, source);
              !appended)
            return tl::unexpected(appended.error());
        return 0;
      });
  REQUIRE_MESSAGE(done, (done ? "" : done.error().message));
}

// The outcome of a recorded request (or only a pending answer) on both versions.
void answer_both(testing::TestDatabase& adapter_db, eventstore::ConnectionPool& adapter_pool,
                 const std::string& transfer_id, bool pending_only = false) {
  const auto data = nlohmann::json::parse(adapter_db.query_value(
      "select data::text from fake_requests where transfer_id = '" + transfer_id + "'"));
  const auto correlation = adapter_db.query_value(
      "select correlation_id from fake_requests where transfer_id = '" + transfer_id + "'");
  namespace v2 = external_streams::payments::v2;
  const auto [type, reason] = outcome_for(data);
  v2::TransferStatusChanged changed;
  changed.transfer_id = transfer_id;
  changed.amount = external_streams::payments::Amount{
      data["amount"]["minor_units"].get<std::int64_t>(), data["amount"]["currency"]};
  nlohmann::json v1{{"transfer_id", transfer_id}};
  std::string v1_type = type;
  if (pending_only) {
    v1_type = "TransferPending";
    v1["clearing_reference"] = "CR-" + transfer_id;
    v1["expected_settlement_date"] = "2026-11-27";
    changed.status = v2::TransferStatus::pending;
    changed.clearing_reference = "CR-" + transfer_id;
    changed.settlement_date = "2026-11-27";
  } else if (type == "TransferSucceeded") {
    v1["clearing_reference"] = "CR-" + transfer_id;
    v1["settlement_date"] = "2026-11-26";
    changed.status = v2::TransferStatus::settled;
    changed.clearing_reference = "CR-" + transfer_id;
    changed.settlement_date = "2026-11-26";
  } else {
    v1["reason_code"] = reason;
    v1["reason"] = "test";
    changed.status = v2::TransferStatus::rejected;
    changed.reason = v2::StatusReason{reason, "test"};
  }
  publish_both(adapter_pool, Draft{v1_type, transfer_id, v1, false, ""},
               Draft{std::string(v2::TransferStatusChanged::kType), transfer_id,
                     v2::encode(changed), false, ""},
               correlation);
}

// An incoming payment on both versions (the same shape on each).
void receive_both(eventstore::ConnectionPool& adapter_pool, const std::string& payment_id) {
  const Draft received{
      "IncomingPaymentReceived",
      payment_id,
      {{"payment_id", payment_id}, {"amount", {{"minor_units", 4200}, {"currency", "DKK"}}}},
      false,
      ""};
  publish_both(adapter_pool, received, received, base::new_uuid());
}

core_sim::CoreSimOptions options_for(const testing::TestDatabase& db,
                                     const std::string& bootstraps) {
  core_sim::CoreSimOptions o;
  o.country = "dk";
  o.database_url = db.url();
  o.kafka_bootstrap = bootstraps;
  o.core_partitions = kCore.partitions;
  o.adapter_partitions = kAdapter.partitions;
  o.api_token = "core-token";
  o.amount_limit_minor = kLimitMinor;
  return o;
}

// Options of a core-sim answered by `fake`: its catch-up API, and the generator's
// transfers over 5 accounts.
core_sim::CoreSimOptions options_answered_by(const FakeAdapter& fake,
                                             const testing::TestDatabase& db,
                                             const std::string& bootstraps, int transfers,
                                             std::uint64_t seed) {
  auto o = options_for(db, bootstraps);
  o.adapter_catch_up_url = fake.url();
  o.adapter_api_token = "adapter-token";
  o.transfers = transfers;
  o.seed = seed;
  o.accounts = 5;
  return o;
}

// One JSONL request line in DKK.
std::string jsonl_line(const std::string& id, const std::string& account, std::int64_t minor) {
  return nlohmann::json{
      {"transfer_id", id},
      {"account_id", account},
      {"amount", {{"minor_units", minor}, {"currency", "DKK"}}},
      {"debtor", {{"name", "Ada"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Charles"}, {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
      {"remittance_info", "Invoice"},
      {"requested_at", "2026-11-26T09:00:00Z"}}
      .dump();
}

// Waits until the publisher has handled the whole source.
void wait_published(core_sim::CoreSim& sim) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!sim.progress().publishing_done) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A run that publishes the whole source and stops: its progress.
core_sim::Progress publish_all(const core_sim::CoreSimOptions& options) {
  auto made = core_sim::CoreSim::create(options);
  REQUIRE(made);
  REQUIRE((*made)->start());
  wait_published(**made);
  const auto progress = (*made)->progress();
  (*made)->stop();
  return progress;
}

// The core's story of a transfer, from the catch-up API's server (200 required).
nlohmann::json story_of(const core_sim::CoreSim& sim, const std::string& transfer_id) {
  auto got = http::get("http://127.0.0.1:" + std::to_string(sim.catch_up_port()) + "/transfers/" +
                           transfer_id + "/story",
                       "core-token", 5000);
  REQUIRE(got);
  REQUIRE_MESSAGE(got->status == 200, got->body);
  return nlohmann::json::parse(got->body);
}

// A core-sim reading a JSONL source of the test's own: Kafka, the core's database, the file
// (named for the database, removed when the test ends) and options naming all three.
struct JsonlFixture {
  std::unique_ptr<external_streams::EmbeddedKafka> kafka = start_kafka();
  testing::TestDatabase core_db;
  std::filesystem::path path;
  core_sim::CoreSimOptions options;

  JsonlFixture(const std::string& prefix, std::int64_t opening_balance_minor)
      : path(std::filesystem::temp_directory_path() / (prefix + core_db.name() + ".jsonl")),
        options(options_for(core_db, kafka->bootstrap_servers())) {
    options.jsonl_path = path.string();
    options.opening_balance_minor = opening_balance_minor;
  }
  ~JsonlFixture() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

}  // namespace

TEST_CASE(
    "core-sim against a fake adapter: one outcome per reservation, a duplicate counted and not "
    "applied") {
  auto kafka = start_kafka();
  FakeAdapter fake(kafka->bootstrap_servers());
  testing::TestDatabase core_db;

  auto options = options_answered_by(fake, core_db, kafka->bootstrap_servers(), 60, 11);
  options.invalid_share = 0.4;
  options.publish_batch_max = 7;
  auto made = core_sim::CoreSim::create(options);
  REQUIRE_MESSAGE(made, (made ? "" : made.error()));
  auto& sim = **made;
  REQUIRE_MESSAGE(sim.start(), "core-sim start");
  REQUIRE(sim.catch_up_port() > 0);
  fake.start();

  REQUIRE(sim.wait_until_done(std::chrono::seconds(120)));
  // The unknown-type message and the unknown transfer's outcome ride on partitions of
  // their own: wait until they are applied too.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto report = sim.report();
  while (report.parked_messages < 1 || report.violations.total() < 2) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    report = sim.report();
  }
  const auto progress = sim.progress();
  sim.stop();
  MESSAGE(core_sim::to_text(report));

  // Everything planned was requested (opening balances cover even the over-limit ones).
  CHECK(progress.total_planned == 60);
  CHECK(progress.processed == 60);
  CHECK(progress.publishing_done);
  CHECK(report.planned == 60);
  CHECK(report.requested == 60);
  CHECK(report.refused == 0);
  CHECK(fake.requests_seen.load() == 60);
  CHECK(report.succeeded + report.rejected == 60);
  CHECK(report.still_open == 0);
  CHECK(report.rejected > 0);
  CHECK(report.succeeded > 0);
  CHECK(report.rejected_by_reason.size() >= 3);
  CHECK(report.expectation_mismatches == 0);  // the fake answered what each kind predicts
  CHECK(report.pending_seen == 1);
  CHECK(report.under_investigation_seen == 1);
  CHECK(report.parked_messages == 1);
  // The duplicate outcome and the stranger's outcome: counted, not applied.
  CHECK(report.violations.double_completion == 1);
  CHECK(report.violations.unknown_transfer == 1);
  CHECK(report.violations.total() == 2);
  CHECK(report.resolved_twice_in_ledger == 0);
  CHECK_FALSE(report.resolved_exactly_once);
  CHECK(report.latency.count == 60);
  CHECK(report.latency.p50_ms > 0);
  CHECK(report.latency.p50_ms <= report.latency.p95_ms);
  CHECK(report.latency.p95_ms <= report.latency.p99_ms);
  CHECK(report.latency.p99_ms <= report.latency.max_ms);
  CHECK(core_sim::to_json(report)["violations"]["double_completion"] == 1);

  // The duplicate's transfer was completed once: one ReservationCompleted event.
  REQUIRE_FALSE(fake.first_succeeded.empty());
  CHECK(core_db.query_value("select count(*) from events where type = 'ReservationCompleted' and "
                            "data->>'transfer_id' = '" +
                            fake.first_succeeded + "'") == "1");
  CHECK(core_db.query_value("select kind from core_violations where transfer_id = '" +
                            fake.first_succeeded + "'") == "double_completion");
  // Money: each account's balance is its opening balance minus what succeeded; nothing reserved.
  CHECK(core_db.query_value(
            "select count(*) from core_accounts a where reserved_minor <> 0 or balance_minor <> " +
            std::to_string(options.opening_balance_minor) +
            " - coalesce((select sum(amount_minor) from core_transfers t where t.account_id = "
            "a.account_id"
            " and t.status = 'succeeded'), 0)") == "0");
  // Traceability: what the adapter received names the FundsReserved event and the core's
  // correlation id.
  CHECK(core_db.query_value(
            "select count(*) from core_transfers t join events e on e.event_id::text = "
            "t.reserved_event_id"
            " and e.type = 'FundsReserved' and e.data->>'transfer_id' = t.transfer_id"
            " join external_events x on x.entity_key = t.transfer_id"
            " and x.source_event_id::text = t.reserved_event_id and x.correlation_id = "
            "t.correlation_id"
            " and x.stream = 'core.dk.payments.v1' and x.partition = t.stream_partition"
            " and x.seq = t.stream_seq") == "60");
  CHECK(fake.database.query_value(
            "select count(*) from fake_requests where data ?& array['transfer_id', 'account_id',"
            " 'amount', 'debtor', 'creditor', 'remittance_info', 'requested_at']") == "60");
  // The outcome instants are stored with the transfer (latency survives a restart).
  CHECK(core_db.query_value(
            "select count(*) from core_transfers where outcome_at >= requested_at") == "60");
}

TEST_CASE(
    "core-sim from JSONL: a bad line is skipped and counted, refusals are kept, a restart "
    "republishes nothing") {
  const JsonlFixture f("core_sim_", 1'000'000);
  {
    std::ofstream out(f.path);  // one batch (publish_batch_max 100)
    out << jsonl_line("jsonl-1", "acct-a", 1000) << "\n"
        << "{ this line is broken\n"
        << jsonl_line("jsonl-2", "acct-b", 2000) << "\n"
        << jsonl_line("jsonl-3", "acct-a", 5'000'000)
        << "\n"  // above the opening balance: refused by the core
        << jsonl_line("jsonl-4", "acct-b", 3000)
        << "\n"
        // The same transfer id again, from another account, in the same batch: the first counts.
        << jsonl_line("jsonl-2", "acct-a", 2000) << "\n";
  }

  {
    auto made = core_sim::CoreSim::create(f.options);
    REQUIRE(made);
    auto& sim = **made;
    REQUIRE(sim.start());
    wait_published(sim);
    const auto p = sim.progress();
    CHECK(p.total_planned == 5);
    CHECK(p.requested == 3);
    CHECK(p.refused == 1);
    CHECK(p.open == 3);
    CHECK_FALSE(sim.wait_until_done(std::chrono::milliseconds(200)));  // no adapter answers
    const auto report = sim.report();
    CHECK(report.source_lines_skipped == 1);
    CHECK(report.refused_by_reason.at("insufficient_funds") == 1);
    CHECK(report.still_open == 3);
    CHECK_FALSE(report.resolved_exactly_once);

    // The core's catch-up API serves what it published, behind its token.
    const std::string base =
        "http://127.0.0.1:" + std::to_string(sim.catch_up_port()) + "/streams/core.dk.payments.v1";
    std::int64_t served = 0;
    for (int partition = 0; partition < kCore.partitions; ++partition) {
      auto got =
          http::get(base + "/partitions/" + std::to_string(partition) + "/events?from=1&limit=100",
                    "core-token", 2000);
      REQUIRE(got);
      REQUIRE(got->status == 200);
      const auto body = nlohmann::json::parse(got->body);
      served += static_cast<std::int64_t>(body["events"].size());
      for (const auto& e : body["events"]) CHECK(e["type"] == "TransferRequested");
    }
    CHECK(served == 3);
    auto unauthorised = http::get(base + "/partitions/0/events", "wrong", 2000);
    REQUIRE(unauthorised);
    CHECK(unauthorised->status == 401);
    // The story of a refused transfer is its refusal; of an open one, what was published.
    const auto refused_story = story_of(sim, "jsonl-3");
    CHECK(refused_story["status"] == "refused");
    REQUIRE(refused_story["events"].size() == 1);
    CHECK(refused_story["events"][0]["type"] == "TransferRefused");
    CHECK(refused_story["events"][0]["reason"] == "insufficient_funds");
    CHECK(refused_story.dump().find("acct-a") == std::string::npos);
    const auto open_story = story_of(sim, "jsonl-1");
    CHECK(open_story["status"] == "open");
    REQUIRE(open_story["events"].size() == 2);
    CHECK(open_story["events"][0]["type"] == "FundsReserved");
    CHECK(open_story["events"][1]["type"] == "TransferRequested");
    // The relay published them: Kafka's copy is acknowledged.
    const auto published_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (f.core_db.query_value("select coalesce(sum(published), 0) from external_stream_heads") !=
           "3") {
      REQUIRE(std::chrono::steady_clock::now() < published_by);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    sim.stop();
  }
  // Restart over the same database and file: nothing is requested twice.
  publish_all(f.options);
  CHECK(f.core_db.query_value("select count(*) from external_events") == "3");
  CHECK(f.core_db.query_value("select count(*) from events where type = 'FundsReserved'") == "3");
  CHECK(f.core_db.query_value(
            "select account_id from core_transfers where transfer_id = 'jsonl-2'") == "acct-b");
  CHECK(f.core_db.query_value(
            "select string_agg(stream_seq::text, ',' order by stream_partition, stream_seq)"
            " from core_transfers") ==
        f.core_db.query_value(
            "select string_agg(seq::text, ',' order by partition, seq) from external_events"));
  CHECK(f.core_db.query_value("select count(*) from events where type = 'AccountOpened'") == "2");
}

TEST_CASE(
    "core-sim publisher: several transfers of one account in one batch chain on each other, "
    "set-wise") {
  // acct-a opens with 10'000: c1 and c3 fit, c4 does not after them, c5 fits what is left.
  const JsonlFixture f("core_sim_chain_", 10'000);
  std::ofstream(f.path) << jsonl_line("c1", "acct-a", 4'000) << "\n"
                        << jsonl_line("c2", "acct-b", 1'000) << "\n"
                        << jsonl_line("c3", "acct-a", 4'000) << "\n"
                        << jsonl_line("c4", "acct-a", 4'000) << "\n"
                        << jsonl_line("c5", "acct-a", 2'000) << "\n";
  for (int run = 1; run <= 2; ++run) {  // the second run republishes nothing
    const auto p = publish_all(f.options);
    CHECK(p.requested == 4);
    CHECK(p.refused == 1);
  }
  CHECK(f.core_db.query_value(
            "select account_id || ':' || reason from core_refused where transfer_id = 'c4'") ==
        "acct-a:insufficient_funds");
  CHECK(f.core_db.query_value(
            "select string_agg(data->>'transfer_id', ',' order by version) from events"
            " where stream_id = 'account-acct-a' and type = 'FundsReserved'") == "c1,c3,c5");
  CHECK(f.core_db.query_value(
            "select string_agg(account_id || '=' || balance_minor || '/' || reserved_minor, ','"
            " order by account_id) from core_accounts") == "acct-a=10000/10000,acct-b=10000/1000");
  // Each request names its own FundsReserved event.
  CHECK(f.core_db.query_value("select count(*) from core_transfers t join events e on "
                              "e.event_id::text = t.reserved_event_id"
                              " and e.data->>'transfer_id' = t.transfer_id") == "4");
}

TEST_CASE("create() names the bad option") {
  core_sim::CoreSimOptions o;
  o.database_url = "postgresql://localhost/x";
  o.kafka_bootstrap = "127.0.0.1:9092";
  o.country = "de";
  auto made = core_sim::CoreSim::create(o);
  REQUIRE_FALSE(made);
  CHECK(made.error().find("country") != std::string::npos);
  o.country = "SE";
  o.invalid_share = 1.5;
  made = core_sim::CoreSim::create(o);
  REQUIRE_FALSE(made);
  CHECK(made.error().find("invalid_share") != std::string::npos);
  o.invalid_share = 0;
  o.publish_batch_max = 0;
  CHECK(core_sim::CoreSim::create(o).error().find("publish_batch_max") != std::string::npos);
  o.publish_batch_max = 10;
  CHECK(core_sim::CoreSim::create(o).has_value());
}

TEST_CASE(
    "core-sim switches from adapter.dk.payments.v1 to v2 midway: every transfer gets exactly one "
    "outcome") {
  auto kafka = start_kafka();
  FakeAdapter fake(kafka->bootstrap_servers(), /*answers=*/false);
  testing::TestDatabase core_db;
  auto options = options_answered_by(fake, core_db, kafka->bootstrap_servers(), 80, 19);
  options.invalid_share = 0.3;
  options.publish_batch_max = 9;
  const auto answer = [&](const std::vector<std::string>& ids, bool pending_only = false) {
    for (const auto& id : ids) answer_both(fake.database, *fake.pool, id, pending_only);
  };
  const auto resolved = [](core_sim::CoreSim& sim) {
    const auto p = sim.progress();
    return p.succeeded + p.rejected;
  };
  const auto wait_resolved = [&](core_sim::CoreSim& sim, std::int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (resolved(sim) < n) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };

  // The transfers in four sets of 20: answered before the switch (v1 applies them), around
  // it (the first half from v1, the second half as it stops: either may), after core-sim
  // stopped, and after it started on v2. Four of each later set get a pending answer
  // before the switch. Every outcome is on both versions, from one internal event.
  std::vector<std::vector<std::string>> sets(4);
  std::vector<std::string> pending_first;
  std::int64_t v1_resolved_at_switch = 0;
  {
    auto made = core_sim::CoreSim::create(options);
    REQUIRE_MESSAGE(made, (made ? "" : made.error()));
    auto& sim = **made;
    REQUIRE(sim.start());
    fake.start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fake.requests_seen.load() < options.transfers) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::istringstream ids(fake.database.query_value(
        "select string_agg(transfer_id, ' ' order by transfer_id) from fake_requests"));
    std::size_t i = 0;
    for (std::string id; ids >> id; ++i) sets[std::min<std::size_t>(i / 20, 3)].push_back(id);
    REQUIRE(i == 80);
    for (std::size_t k = 1; k < 4; ++k)
      for (std::size_t j = 0; j < 20; j += 5) pending_first.push_back(sets[k][j]);
    answer(pending_first, /*pending_only=*/true);
    answer(sets[0]);
    receive_both(*fake.pool, "payment-before");
    wait_resolved(sim, 20);
    // Set 1: half applied from v1 for sure, the other half answered just before the stop.
    answer({sets[1].begin(), sets[1].begin() + 10});
    wait_resolved(sim, 30);
    answer({sets[1].begin() + 10, sets[1].end()});
    sim.stop();
    v1_resolved_at_switch = resolved(sim);
  }
  answer(sets[2]);
  options.outcomes_version = "v2";
  // A group of its own: progress lives in the core's database, not in the group, and the
  // mock cluster makes a group's next member wait about 9 s.
  options.consumer_group = "core-sim-dk-v2";
  auto made = core_sim::CoreSim::create(options);
  REQUIRE_MESSAGE(made, (made ? "" : made.error()));
  auto& sim = **made;
  REQUIRE(sim.start());
  answer(sets[3]);
  receive_both(*fake.pool, "payment-after");
  const bool done = sim.wait_until_done(std::chrono::seconds(60));
  // The payment rides on a partition of its own: until it is in too.
  const auto payments_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sim.report().incoming_payments < 2 && std::chrono::steady_clock::now() < payments_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto report = sim.report();
  sim.stop();
  MESSAGE(core_sim::to_text(report));
  MESSAGE("resolved from v1 before the switch: " << v1_resolved_at_switch);
  REQUIRE(done);

  CHECK(report.requested == 80);
  CHECK(report.succeeded + report.rejected == 80);
  CHECK(report.still_open == 0);
  CHECK(report.violations.total() == 0);
  CHECK(report.resolved_twice_in_ledger == 0);
  CHECK(report.parked_messages == 0);
  CHECK(report.expectation_mismatches == 0);
  CHECK(report.pending_seen == static_cast<std::int64_t>(pending_first.size()));
  CHECK(report.incoming_payments == 2);  // once each, though both versions carried them
  CHECK(core_db.query_value("select string_agg(payment_id, ',' order by payment_id) from "
                            "core_incoming_payments") == "payment-after,payment-before");
  CHECK(report.resolved_exactly_once);
  // From the ledger: one resolution event per transfer, none for another.
  CHECK(core_db.query_value(
            "select count(*) from core_transfers t where (select count(*) from events e"
            " where e.type in ('ReservationCompleted', 'ReservationReleased')"
            " and e.data->>'transfer_id' = t.transfer_id) = 1") == "80");
  CHECK(core_db.query_value("select count(*) from events where type in ('ReservationCompleted', "
                            "'ReservationReleased')") == "80");
  // Who brought what: set 0 and the pending answers came on v1; sets 2 and 3 on v2.
  const auto handled_on = [&](const std::string& id) {
    return core_db.query_value(
        "select string_agg(right(stream, 2), ',' order by stream) from"
        " core_outcome_sources where transfer_id = '" +
        id + "'");
  };
  for (const auto& id : sets[0]) CHECK(handled_on(id) == "v1");
  for (const auto& id : sets[2])
    CHECK(handled_on(id) ==
          (std::find(pending_first.begin(), pending_first.end(), id) != pending_first.end()
               ? "v1,v2"
               : "v2"));
  CHECK(core_db.query_value("select count(*) from core_outcome_sources") ==
        std::to_string(80 + pending_first.size()));
  CHECK(v1_resolved_at_switch >= 30);
  CHECK(v1_resolved_at_switch <= 40);
}

TEST_CASE(
    "the story endpoint tells a transfer's events with their causes, and refuses unknown and "
    "malformed ids") {
  auto kafka = start_kafka();
  FakeAdapter fake(kafka->bootstrap_servers());
  testing::TestDatabase core_db;
  auto options = options_answered_by(fake, core_db, kafka->bootstrap_servers(), 12, 23);
  options.invalid_share = 0.4;
  auto made = core_sim::CoreSim::create(options);
  REQUIRE_MESSAGE(made, (made ? "" : made.error()));
  auto& sim = **made;
  REQUIRE(sim.start());
  fake.start();
  REQUIRE(sim.wait_until_done(std::chrono::seconds(120)));
  // The duplicate outcome rides on the transfer's partition, after its first outcome.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (sim.report().violations.double_completion < 1) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string stories =
      "http://127.0.0.1:" + std::to_string(sim.catch_up_port()) + "/transfers/";
  const auto adapter_message = [&](const std::string& id, const std::string& type, int nth) {
    return fake.database.query_value(
        "select event_id::text from external_events where entity_key = '" + id + "' and type = '" +
        type + "' order by seq offset " + std::to_string(nth) + " limit 1");
  };

  // The transfer that got a second TransferSucceeded: reserved, requested, completed by the
  // first, the second not applied.
  const auto& id = fake.first_succeeded;
  REQUIRE_FALSE(id.empty());
  const auto story = story_of(sim, id);
  MESSAGE(story.dump(2));
  CHECK(story["status"] == "succeeded");
  const auto& events = story["events"];
  REQUIRE(events.size() == 4);
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e["type"]);
  CHECK(types == std::vector<std::string>{"FundsReserved", "TransferRequested",
                                          "ReservationCompleted", "OutcomeNotApplied"});
  for (std::size_t i = 1; i < events.size(); ++i)
    CHECK(events[i - 1]["at"].get<std::string>() <= events[i]["at"].get<std::string>());
  const auto& reserved = events[0];
  const auto& requested = events[1];
  const auto& completed = events[2];
  const auto& refused = events[3];
  CHECK(reserved["event_id"] ==
        core_db.query_value("select reserved_event_id from core_transfers where transfer_id = '" +
                            id + "'"));
  CHECK(reserved["amount"]["currency"] == "DKK");
  // What the adapter received names the request's event and its cause.
  CHECK(requested["source_event_id"] == reserved["event_id"]);
  CHECK(requested["stream"] == "core.dk.payments.v1");
  CHECK(requested["correlation_id"] == story["correlation_id"]);
  CHECK(requested["event_id"] ==
        core_db.query_value("select event_id::text from external_events where entity_key = '" + id +
                            "'"));
  CHECK(fake.database.query_value(
            "select source_event_id from fake_requests where transfer_id = '" + id + "'") ==
        reserved["event_id"]);
  // The completion names the adapter's first message as its cause, the refusal the second.
  CHECK(completed["causation_id"] == adapter_message(id, "TransferSucceeded", 0));
  CHECK(completed["source"]["stream"] == "adapter.dk.payments.v1");
  CHECK(refused["violation"] == "double_completion");
  CHECK(refused["causation_id"] == adapter_message(id, "TransferSucceeded", 1));
  // No account id anywhere in the story.
  const auto account =
      core_db.query_value("select account_id from core_transfers where transfer_id = '" + id + "'");
  CHECK(story.dump().find(account) == std::string::npos);

  // A rejected transfer: released with the adapter's reason code.
  const auto rejected = core_db.query_value(
      "select transfer_id from core_transfers where status = 'rejected' order by transfer_id limit "
      "1");
  REQUIRE_FALSE(rejected.empty());
  const auto released = story_of(sim, rejected);
  CHECK(released["status"] == "rejected");
  REQUIRE(released["events"].size() == 3);
  CHECK(released["events"][2]["type"] == "ReservationReleased");
  CHECK(released["events"][2]["reason_code"] == released["reason_code"]);
  CHECK(released["events"][2]["causation_id"] == adapter_message(rejected, "TransferRejected", 0));

  // Unknown, malformed, without the token.
  auto unknown = http::get(stories + "no-such-transfer/story", "core-token", 2000);
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(unknown->body.find("unknown_transfer") != std::string::npos);
  auto malformed = http::get(stories + "bad%20id/story", "core-token", 2000);
  REQUIRE(malformed);
  CHECK(malformed->status == 400);
  CHECK(malformed->body.find("bad_transfer_id") != std::string::npos);
  auto too_long = http::get(stories + std::string(201, 'a') + "/story", "core-token", 2000);
  REQUIRE(too_long);
  CHECK(too_long->status == 400);
  auto anonymous = http::get(stories + id + "/story", "", 2000);
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
  sim.stop();
}
