// /metrics of a running service (in this process, on the embedded Kafka) while every way
// the handling can stop is made to happen at once, over a few thousand rows: a subscription
// stalled behind its locked checkpoint, the relay unable to mark what Kafka acknowledged,
// the dispatcher's claims failing (its table locked) while calls fall due, the incoming
// feed unreachable, alarm events, parked messages and parked incoming payments. Each figure
// is checked, the statements behind them use their indexes, the text passes
// `promtool check metrics`, and one scrape's time is printed. /readyz's words for the
// dispatcher and the incoming poller follow, and come back once the locks are gone.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "clearing/adapter/service.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/support/command_lines.hpp"
#include "test_database.hpp"

using namespace clearing;
using clearing::testing::TestDatabase;

namespace {

template <class Predicate>
bool eventually(Predicate p, std::chrono::seconds within = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return p();
}

// The value of one sample (`name{labels} value` or `name value`), or nullopt when absent.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

std::string type_of(const std::string& text, const std::string& family) {
  const std::string prefix = "# TYPE " + family + " ";
  const auto at = text.find(prefix);
  if (at == std::string::npos) return "";
  return text.substr(at + prefix.size(), text.find('\n', at) - at - prefix.size());
}

std::string plan_of(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  std::string plan;
  for (const auto& row : tx.exec("explain " + sql)) plan += row[0].as<std::string>() + "\n";
  return plan;
}

}  // namespace

TEST_CASE(
    "/metrics: every way the handling can stop is a figure, read through indexes, and passes "
    "promtool") {
  TestDatabase database;
  auto kafka = external_streams::EmbeddedKafka::start();
  REQUIRE(kafka);
  const int port = support::free_port();
  config::MapEnvironment env(
      {{"CLEARING_ADAPTER_DATABASE_URL", database.url()},
       {"CLEARING_ADAPTER_KAFKA_BROKERS", (*kafka)->bootstrap_servers()},
       // Nothing listens there: every request of the feed fails.
       {"CLEARING_ADAPTER_CLEARING_URL", "http://127.0.0.1:9"},
       {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://127.0.0.1:9"},
       {"CLEARING_ADAPTER_HTTP_ADDRESS", "127.0.0.1:" + std::to_string(port)},
       {"CLEARING_ADAPTER_API_TOKEN", "api-token-0123456789abcdef0123456"},
       {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-catchup-token-0123"},
       {"CLEARING_ADAPTER_DATA_KEK", std::string(support::kTestDataKek)}});
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  auto json = nlohmann::json::parse(in);
  // A blocked statement fails after 1 s instead of 5: the stalls below show sooner.
  json["database"]["statement_timeout_ms"] = 1000;
  // Leases by time, not by session: the 300 calls below "in flight elsewhere" are leased to an
  // owner with no liveness session, which session leases (the shipped default) count as dead,
  // so the dispatcher could claim them. Seen once in a clean-clone run: it claimed a batch,
  // its workers then waited on the locks below recording the answers, no claim failed, and the
  // claimed leases ran out into "overdue" (2,064 instead of 2,000).
  json["dispatcher"]["lease_by_session"] = false;
  auto cfg = config::parse_config(json.dump(), "dk.json", env);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().to_string()));
  for (const auto& [topic, partitions] : adapter::configured_topics(*cfg))
    REQUIRE((*kafka)->create_topic(topic, partitions));
  auto created = adapter::Service::create(*cfg, (*kafka)->bootstrap_servers());
  REQUIRE(created);
  auto& service = **created;
  const auto service_started = service.start();
  REQUIRE_MESSAGE(service_started, (service_started ? "" : service_started.error().message));

  pqxx::connection seed(database.url());
  pqxx::connection locks(database.url());
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::string due_soon = std::to_string(now_ms + 3000);
  {
    pqxx::work tx(seed);
    // 5,000 transfers: 3,000 finished (rows from before created_at: null), 1,500 under
    // investigation (the oldest first recorded an hour ago), 500 initiated (10 s ago).
    tx.exec(
        "insert into transfer_status (transfer_id, status, correlation_id, created_at)"
        " select 'done-' || g, 'succeeded', 'c', null from generate_series(1, 3000) g");
    tx.exec(
        "insert into transfer_status (transfer_id, status, correlation_id, created_at)"
        " select 'ui-' || g, 'under_investigation', 'c', now() - make_interval(secs => 3600 - g)"
        " from generate_series(0, 1499) g");
    tx.exec(
        "insert into transfer_status (transfer_id, status, correlation_id, created_at)"
        " select 'in-' || g, 'initiated', 'c', now() - interval '10 s' from generate_series(1, "
        "500) g");
    // 2,000 calls fall due in 3 s (then the dispatcher's claims are blocked), 300 due and
    // under a live lease (in flight elsewhere: not overdue), 200 due in an hour.
    tx.exec(
        "insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id)"
        " select 'ui-' || g, 'inquiry', 2, " +
        due_soon + " + g, 'c' from generate_series(0, 1499) g");
    tx.exec(
        "insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id)"
        " select 'in-' || g, 'submit', 1, " +
        due_soon + " + g, 'c' from generate_series(1, 500) g");
    tx.exec(
        "insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id, "
        "lease_owner,"
        " lease_until_ms) select 'leased-' || g, 'submit', 1, " +
        std::to_string(now_ms - 5000) + ", 'c', 'elsewhere', " + std::to_string(now_ms + 600'000) +
        " from generate_series(1, 300) g");
    tx.exec(
        "insert into transfer_work (transfer_id, action, attempt, due_at_ms, correlation_id)"
        " select 'later-' || g, 'submit', 1, " +
        std::to_string(now_ms + 3'600'000) + ", 'c' from generate_series(1, 200) g");
    // 2,000 parked messages of three sources, each raw value 400 bytes (a message's size).
    tx.exec(
        "insert into parked_messages (source, reason_code, reason, raw)"
        " select 'kafka', 'not_json', 'r', convert_to(repeat('x', 400), 'UTF8') from "
        "generate_series(1, 1200)");
    tx.exec(
        "insert into parked_messages (source, reason_code, reason, raw)"
        " select 'clearing-feed', 'invalid_payment', 'r', convert_to(repeat('x', 400), 'UTF8') "
        "from generate_series(1, 500)");
    tx.exec(
        "insert into parked_messages (source, reason_code, reason, raw)"
        " select 'dispatcher', 'refused', 'r', convert_to(repeat('x', 400), 'UTF8') from "
        "generate_series(1, 300)");
    // And 70 that operators closed or replayed (issue 22): kept, but no longer open.
    tx.exec(
        "insert into parked_messages (source, reason_code, reason, raw, state)"
        " select 'kafka', 'not_json', 'r', convert_to(repeat('x', 400), 'UTF8'),"
        " case when g % 2 = 0 then 'closed' else 'replayed' end from generate_series(1, 70) g");
    // 40 parked incoming payments listed beside them (issue 22): 25 open, 15 booked or
    // returned by an operator.
    tx.exec(
        "insert into parked_messages (source, reason_code, reason, raw, payment_id, state)"
        " select 'incoming-payment', 'AM03', 'r', convert_to(repeat('x', 400), 'UTF8'),"
        " 'p-' || g, case when g <= 25 then 'open' when g <= 35 then 'booked' else 'returned'"
        " end from generate_series(1, 40) g");
    tx.exec("analyze transfer_work");
    tx.commit();
  }
  // The locks each stall is made of, held until the end of the checks: the dispatcher's
  // claim (an UPDATE) waits, the relay's mark (an UPDATE) waits, the derivation's batch
  // (SELECT ... FOR UPDATE of its checkpoint) waits; plain reads (the metrics) pass. Table
  // locks, not row locks: a transaction that locks rows takes a transaction id, and its
  // open xid would hold back the subscription's snapshot horizon instead (it would then see
  // no new event at all: "behind", not "stalled", which SubscriptionBehind alerts on).
  pqxx::work held(locks);
  held.exec("lock table transfer_work in share mode");
  held.exec("lock table external_stream_published in exclusive mode");
  held.exec("lock table subscription_checkpoints in exclusive mode");
  {
    pqxx::work tx(seed);
    // Alarms and parked incoming payments among 5,000 other events: the derivation has them
    // to handle, and cannot (its checkpoint is locked).
    tx.exec(
        "insert into events (stream_id, version, event_id, type, data, metadata)"
        " select 'noise-' || g, 1, gen_random_uuid(), 'MetricsTestNoise', '{}', '{}' from "
        "generate_series(1, 5000) g");
    tx.exec(
        "insert into events (stream_id, version, event_id, type, data, metadata)"
        " select 'transfer-done-' || g, 2, gen_random_uuid(), "
        "'ContradictingClearingAnswerReceived', '{}', '{}'"
        " from generate_series(1, 3) g");
    tx.exec(
        "insert into events (stream_id, version, event_id, type, data, metadata)"
        " select 'incoming-c-' || g, 2, gen_random_uuid(), 'ConflictingIncomingPaymentReceived', "
        "'{}', '{}'"
        " from generate_series(1, 2) g");
    tx.exec(
        "insert into events (stream_id, version, event_id, type, data, metadata)"
        " select 'incoming-p-' || g, 1, gen_random_uuid(), 'IncomingPaymentParked',"
        " jsonb_build_object('reason_code', case when g <= 600 then 'AC01' else 'AM03' end), '{}'"
        " from generate_series(1, 1000) g");
    // Five messages on partition 0 of the payments stream, written 30 s ago: the relay
    // publishes them and cannot move its mark.
    tx.exec(
        "insert into external_events (stream, partition, seq, event_id, type, entity_key, data, "
        "source_event_id,"
        " correlation_id, occurred_at, recorded_at)"
        " select 'adapter.dk.payments.v1', 0, g, gen_random_uuid(), 'TransferCompleted', 'k', '{}',"
        " gen_random_uuid(), 'c', now(), now() - interval '30 s' from generate_series(1, 5) g");
    tx.exec(
        "update external_stream_seqs set head = 5 where stream = 'adapter.dk.payments.v1' and "
        "partition = 0");
    // Not transfer_work: ANALYZE would wait on the share lock held above.
    tx.exec("analyze events, transfer_status, parked_messages, external_events");
    tx.commit();
  }

  const std::string kAssigned =
      "clearing_inbound_partition_assigned{stream=\"core.dk.payments.v1\",";
  std::string text;
  REQUIRE_MESSAGE(
      eventually([&] {
        text = service.metrics_text();
        return sample(
                   text,
                   R"(clearing_subscription_state{subscription="derive-external-streams",state="stalled"})") ==
                   1.0 &&
               sample(text, "clearing_calls_overdue") == 2000.0 &&
               sample(text, "clearing_dispatcher_claim_failures_total") >= 1.0 &&
               sample(text, "clearing_incoming_feed_failures_total") >= 1.0 &&
               // The group has given its only member the inbound partitions.
               sample(text, kAssigned + "partition=\"3\"}") == 1.0;
      }),
      text);

  // Transfers: open by state (0 samples too), the oldest of each, the overdue calls.
  CHECK(sample(text, R"(clearing_transfers{state="under_investigation"})") == 1500.0);
  CHECK(sample(text, R"(clearing_transfers{state="initiated"})") == 500.0);
  CHECK(sample(text, R"(clearing_transfers{state="submitting"})") == 0.0);
  const auto oldest_investigation =
      sample(text, R"(clearing_transfers_oldest_age_seconds{state="under_investigation"})");
  REQUIRE(oldest_investigation);
  CHECK(*oldest_investigation >= 3600.0);
  CHECK(*oldest_investigation < 3700.0);
  const auto oldest_initiated =
      sample(text, R"(clearing_transfers_oldest_age_seconds{state="initiated"})");
  REQUIRE(oldest_initiated);
  CHECK(*oldest_initiated >= 10.0);
  CHECK(*oldest_initiated < 100.0);
  CHECK(sample(text, R"(clearing_transfers_oldest_age_seconds{state="submitting"})") == 0.0);
  const auto overdue_age = sample(text, "clearing_calls_overdue_oldest_age_seconds");
  REQUIRE(overdue_age);
  CHECK(*overdue_age > 0.0);
  CHECK(*overdue_age < 120.0);
  CHECK(sample(text, R"(clearing_transfer_work_due{action="submit"})") == 1000.0);
  CHECK(sample(text, R"(clearing_transfer_work_due{action="inquiry"})") == 1500.0);

  // Alarms, parked messages and parked incoming payments.
  CHECK(
      sample(text, R"(clearing_alarm_events_total{type="ContradictingClearingAnswerReceived"})") ==
      3.0);
  CHECK(sample(text, R"(clearing_alarm_events_total{type="ConflictingIncomingPaymentReceived"})") ==
        2.0);
  // The contradictions alone, as their own alarm (issue 22).
  CHECK(sample(text, "clearing_contradictions_total") == 3.0);
  CHECK(sample(text, R"(clearing_incoming_payments_parked_total{reason="AC01"})") == 600.0);
  CHECK(sample(text, R"(clearing_incoming_payments_parked_total{reason="AM03"})") == 400.0);
  CHECK(sample(text, R"(clearing_parked_messages{source="kafka",reason="not_json"})") == 1200.0);
  CHECK(sample(text,
               R"(clearing_parked_messages{source="clearing-feed",reason="invalid_payment"})") ==
        500.0);
  CHECK(sample(text, R"(clearing_parked_messages{source="dispatcher",reason="refused"})") == 300.0);
  // Open parked incoming payments, under their own source.
  CHECK(sample(text, R"(clearing_parked_messages{source="incoming-payment",reason="AM03"})") ==
        25.0);

  // The stalled subscription: every committed event after its checkpoint, and no progress.
  const auto lag =
      sample(text, R"(clearing_subscription_lag_events{subscription="derive-external-streams"})");
  REQUIRE(lag);
  CHECK(*lag >= 6005.0);
  CHECK(*lag < 6100.0);
  CHECK(
      sample(
          text,
          R"(clearing_subscription_progress_age_seconds{subscription="derive-external-streams"})") >=
      0.0);
  CHECK(sample(text, R"(clearing_subscription_failures{subscription="derive-external-streams"})") >=
        1.0);
  CHECK(
      sample(
          text,
          R"(clearing_subscription_state{subscription="derive-external-streams",state="live"})") ==
      0.0);

  // The relay: partition 0 has five messages Kafka has but the mark does not, 30 s old.
  CHECK(sample(text,
               R"(clearing_relay_lag_messages{stream="adapter.dk.payments.v1",partition="0"})") ==
        5.0);
  CHECK(sample(text,
               R"(clearing_relay_lag_messages{stream="adapter.dk.payments.v1",partition="1"})") ==
        0.0);
  const auto relay_age = sample(
      text,
      R"(clearing_relay_oldest_unpublished_age_seconds{stream="adapter.dk.payments.v1",partition="0"})");
  REQUIRE(relay_age);
  CHECK(*relay_age >= 30.0);
  CHECK(
      sample(
          text,
          R"(clearing_relay_oldest_unpublished_age_seconds{stream="adapter.dk.payments.v1",partition="1"})") ==
      0.0);

  // The inbound partitions this instance reads: the only member of its group reads all four
  // of the country's stream, and no other.
  for (const auto* partition : {"0", "1", "2", "3"})
    CHECK_MESSAGE(sample(text, kAssigned + "partition=\"" + partition + "\"}") == 1.0, partition);
  CHECK_FALSE(sample(text, kAssigned + "partition=\"4\"}"));
  CHECK(text.find("clearing_inbound_partition_assigned{stream=\"adapter.") == std::string::npos);

  // Counts since start are counters; states and backlogs gauges.
  for (const auto* counter :
       {"clearing_dispatcher_calls_abandoned_total", "clearing_dispatcher_answers_refused_total",
        "clearing_dispatcher_record_failures_total", "clearing_dispatcher_claim_failures_total",
        "clearing_incoming_feed_failures_total", "clearing_incoming_feed_requests_total",
        "clearing_inbound_messages_total", "clearing_client_refused_total",
        "clearing_alarm_events_total", "clearing_contradictions_total",
        "clearing_incoming_payments_parked_total", "clearing_derivation_lookups_total",
        "clearing_answers_total", "clearing_inbound_fetch_restarts_total",
        "clearing_concurrency_limit_changes_total"})
    CHECK_MESSAGE(type_of(text, counter) == "counter", counter);
  for (const auto* gauge : {"clearing_calls_overdue", "clearing_transfers",
                            "clearing_parked_messages", "clearing_subscription_state",
                            "clearing_relay_lag_messages", "clearing_inbound_partitions_held",
                            "clearing_inbound_partition_assigned", "clearing_concurrency_limit",
                            "clearing_concurrency_limit_min", "clearing_concurrency_limit_max"})
    CHECK_MESSAGE(type_of(text, gauge) == "gauge", gauge);
  // The shipped config's adaptive limit: its bounds, and the limit within them (the calls to
  // the unreachable clearing may have cut it).
  CHECK(sample(text, "clearing_concurrency_limit_min") == 4.0);
  CHECK(sample(text, "clearing_concurrency_limit_max") == 512.0);
  const auto limit = sample(text, "clearing_concurrency_limit");
  REQUIRE(limit);
  CHECK(*limit >= 4.0);
  CHECK(*limit <= 16.0);  // it starts at concurrency_initial, and nothing could raise it
  CHECK(sample(text, R"(clearing_concurrency_limit_changes_total{direction="raise"})") == 0.0);
  CHECK(sample(text, "clearing_dispatcher_calls_abandoned_total") == 0.0);
  CHECK(sample(text, "clearing_inbound_fetch_restarts_total") ==
        0.0);  // every partition was delivered

  // /readyz: the dispatcher's claims fail (the database), the feed is unreachable.
  const auto detail = service.status().detail;
  CHECK_MESSAGE(detail.find("dispatcher=failing") != std::string::npos, detail);
  CHECK_MESSAGE(detail.find("incoming_poller=degraded") != std::string::npos, detail);
  CHECK_MESSAGE(detail.find("derivation=stalled") != std::string::npos, detail);

  // One scrape's time, with all of the above in the tables (printed, no threshold).
  std::vector<double> scrape_ms;
  for (int i = 0; i < 7; ++i) {
    const auto started = std::chrono::steady_clock::now();
    (void)service.metrics_text();
    scrape_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count());
  }
  std::sort(scrape_ms.begin(), scrape_ms.end());
  MESSAGE(
      "one scrape of /metrics over 5,000 transfers, 2,500 calls, 2,000 parked messages, 6,005 "
      "events behind: "
      "min "
      << scrape_ms.front() << " ms, median " << scrape_ms[scrape_ms.size() / 2] << " ms, max "
      << scrape_ms.back() << " ms");

  // The statements use their indexes, not a scan of the tables that grow for ever.
  {
    pqxx::connection c(database.url());
    {
      // As autovacuum leaves them: the visibility map set, so index-only scans pay.
      pqxx::nontransaction tx(c);
      tx.exec("vacuum analyze parked_messages");
      tx.exec("vacuum analyze events");
    }
    const auto alarms =
        plan_of(c,
                "select count(*) from events where type = 'ContradictingClearingAnswerReceived'"
                " and type in ('ContradictingClearingAnswerReceived',"
                " 'ConflictingIncomingPaymentReceived', 'IncomingPaymentParked')");
    CHECK_MESSAGE(alarms.find("events_alarms") != std::string::npos, alarms);
    const auto parked_incoming =
        plan_of(c,
                "select coalesce(data->>'reason_code', ''), count(*) from events"
                " where type = 'IncomingPaymentParked' group by 1");
    CHECK_MESSAGE(parked_incoming.find("events_alarms") != std::string::npos, parked_incoming);
    const auto oldest =
        plan_of(c,
                "select min(t.created_at) from transfer_status t where t.status = 'initiated'"
                " and t.status not in ('succeeded', 'rejected')");
    CHECK_MESSAGE(oldest.find("transfer_status_unfinished") != std::string::npos, oldest);
    // A checkpoint 10 events behind the head (all 6,005 behind, a scan is cheaper: right).
    std::string near_head;
    {
      pqxx::nontransaction tx(c);
      const auto row = tx.exec(
          "select transaction_id::text, position from events"
          " order by transaction_id desc, position desc offset 10 limit 1")[0];
      near_head = "('" + row[0].as<std::string>() + "'::xid8, " + row[1].as<std::string>() + ")";
    }
    const auto lagging =
        plan_of(c,
                "select count(*) from (select 1 from events e where (e.transaction_id, e.position)"
                " > " +
                    near_head + " limit 100000) a");
    CHECK_MESSAGE(lagging.find("events_commit_order") != std::string::npos, lagging);
    const auto parked =
        plan_of(c, "select source, reason_code, count(*) from parked_messages group by 1, 2");
    CHECK_MESSAGE(parked.find("parked_messages_source_reason") != std::string::npos, parked);
    const auto open_parked = plan_of(c,
                                     "select source, reason_code, count(*) from parked_messages "
                                     "where state = 'open' group by 1, 2");
    CHECK_MESSAGE(open_parked.find("parked_messages_open_source_reason") != std::string::npos,
                  open_parked);
  }

  // promtool (Debian's prometheus package, installed by scripts/setup) accepts the text.
  REQUIRE_MESSAGE(std::system("command -v promtool >/dev/null 2>&1") == 0,
                  "promtool is missing: run scripts/setup (Debian package prometheus)");
  const std::string path = "/tmp/service-metrics-" + std::to_string(getpid()) + ".prom";
  std::ofstream(path) << text;
  const std::string check = "promtool check metrics < " + path + " > " + path + ".out 2>&1";
  const int promtool_exit = std::system(check.c_str());
  std::ifstream lint(path + ".out");
  std::stringstream lint_text;
  lint_text << lint.rdbuf();
  CHECK_MESSAGE(promtool_exit == 0, lint_text.str());
  std::remove(path.c_str());
  std::remove((path + ".out").c_str());

  // The locks go (and the due calls with them): each component says so again.
  held.exec("delete from transfer_work");
  held.commit();
  CHECK(eventually([&] {
    const auto d = service.status().detail;
    return d.find("dispatcher=ok") != std::string::npos &&
           d.find("derivation=ok") != std::string::npos;
  }));
  CHECK(eventually([&] {
    return sample(
               service.metrics_text(),
               R"(clearing_relay_lag_messages{stream="adapter.dk.payments.v1",partition="0"})") ==
           0.0;
  }));

  // A figure that cannot be read is counted by family, and its family has no samples in that
  // scrape (never a false zero).
  {
    pqxx::work tx(seed);
    tx.exec("alter table transfer_status rename to transfer_status_away");
    tx.commit();
  }
  const auto unreadable = service.metrics_text();
  {
    pqxx::work tx(seed);
    tx.exec("alter table transfer_status_away rename to transfer_status");
    tx.commit();
  }
  CHECK(unreadable.find("\nclearing_transfers{") == std::string::npos);
  // The failure is counted as it happens; the counter's family is written before the
  // families read at scrape time, so the count shows from the next scrape on.
  const auto readable = service.metrics_text();
  CHECK(readable.find("\nclearing_transfers{") != std::string::npos);
  bool counted = false;
  std::istringstream lines(readable);
  for (std::string line; std::getline(lines, line);)
    counted = counted || (line.starts_with("clearing_metrics_query_failures_total{") &&
                          line.find(R"(family="clearing_transfers")") != std::string::npos);
  CHECK(counted);
  service.stop();
}
