// The outbound streams' registry, backfill and hand-over (issue 19) against real PostgreSQL:
// payments.v2 and positions.v1 added to a store that derived payments.v1 for a while are
// backfilled to exactly the messages a store that had all three from the start holds; the
// hand-over derives every event once while events are appended and the live derivation
// runs; two backfills of one stream never derive an event twice; register_streams' refusals
// and its treatment of streams from before the registry and of backfill_from; retirement;
// positions.v1 rebuilt from history.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/external_streams/backfill.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/testing/internal_history.hpp"
#include "test_database.hpp"

using namespace clearing;
using namespace clearing::external_streams;
using eventstore::Transaction;
using Json = nlohmann::json;
using namespace std::chrono_literals;
using external_streams::sample_history::Append;
using external_streams::sample_history::script;

namespace {

const StreamSpec kV1{"adapter.dk.payments.v1", 4};
const StreamSpec kV2{"adapter.dk.payments.v2", 4};
const StreamSpec kPositions{"adapter.dk.positions.v1", 2};

StreamSetting v1() { return {kV1, "payments.v1"}; }
StreamSetting v2() { return {kV2, "payments.v2"}; }
StreamSetting positions() { return {kPositions, "positions.v1"}; }

DerivedStream derived(const StreamSetting& setting) {
  const auto found = find_derivation(setting.derivation);
  REQUIRE(found.has_value());
  return {setting.spec, found->derive, found->fold};
}

std::vector<DerivedStream> derived(const std::vector<StreamSetting>& settings) {
  std::vector<DerivedStream> out;
  for (const auto& s : settings) out.push_back(derived(s));
  return out;
}

// ---- one database

struct Db {
  testing::TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;

  Db() {
    pool = connect();
    for (const auto* m : {&eventstore::eventstore_migrations(), &external_streams_migrations()})
      REQUIRE(eventstore::apply_migrations(*pool, *m));
    store = std::make_unique<eventstore::EventStore>(*pool);
  }

  // Another process's pool on the same database.
  std::unique_ptr<eventstore::ConnectionPool> connect() const {
    eventstore::DatabaseOptions options;
    options.url = database.url();
    return std::make_unique<eventstore::ConnectionPool>(options);
  }

  std::string value(const std::string& sql) const { return database.query_value(sql); }

  std::vector<StreamRecord> register_all(const std::vector<StreamSetting>& settings) {
    auto registered = register_streams(*pool, settings);
    REQUIRE_MESSAGE(registered, (registered ? "" : registered.error().message));
    return *registered;
  }

  StreamRecord record(const std::string& stream) {
    auto records = pool->transact([](Transaction& tx) { return read_streams(tx); });
    REQUIRE(records);
    for (const auto& r : *records)
      if (r.name == stream) return r;
    FAIL("stream " << stream << " is not registered");
    return {};
  }

  bool append(const Append& a) {
    return store
        ->append(eventstore::StreamId{a.stream}, eventstore::ExpectedVersion::any(), a.events)
        .has_value();
  }

  // The subscription `name` until its checkpoint has reached the last event.
  void drain(eventstore::Subscription& subscription, const std::string& name) {
    const auto last = std::stoll(value("select coalesce(max(position), 0) from events"));
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      auto handled = subscription.poll_once();
      REQUIRE_MESSAGE(handled, (handled ? "" : handled.error().message));
      if (*handled > 0) continue;
      if (std::stoll(value("select coalesce((select position from subscription_checkpoints"
                           " where name = '" +
                           name + "'), 0)")) >= last)
        break;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(20ms);
    }
  }

  // Every message of a stream, in (partition, seq) order, each as one line of what a consumer
  // sees of it (all but occurred_at, the time of the run): with or without its event id and
  // stream name, to compare a stream with another of the same derivation.
  std::vector<std::string> messages(const std::string& stream, bool with_identity = true) {
    auto rows = pool->transact([&](Transaction& tx) -> eventstore::StoreResult<pqxx::result> {
      return tx.exec_params(
          "select event_id::text, stream, partition, seq, type, entity_key, data::text,"
          " source_event_id::text, correlation_id from external_events where stream = $1"
          " order by partition, seq",
          stream);
    });
    REQUIRE(rows);
    std::vector<std::string> out;
    for (const auto& row : *rows) {
      std::string line;
      for (int column = with_identity ? 0 : 2; column < 9; ++column)
        line += std::string(row[column].c_str()) + " | ";
      out.push_back(std::move(line));
    }
    return out;
  }

  // Source events that should have exactly one message on `stream` but have none or more,
  // plus messages from events that should have none. `expected` selects the events.
  std::string misderived(const std::string& stream, const std::string& expected) const {
    return value(
        "with expected as (select event_id from events e where " + expected +
        "), got as (select source_event_id, count(*) n from external_events where stream = '" +
        stream +
        "' group by 1) select count(*) from expected x full join got g"
        " on g.source_event_id = x.event_id where g.n is distinct from 1 or x.event_id is null");
  }

  // Partitions of `stream` whose seqs are not exactly 1..head.
  std::string gapped(const std::string& stream) const {
    return value(
        "select count(*) from (select s.partition, s.head, count(m.seq) n, coalesce(max(m.seq), 0) "
        "top from external_stream_seqs s left join external_events m on m.stream = s.stream and "
        "m.partition = s.partition where s.stream = '" +
        stream + "' group by 1, 2) x where n <> head or top <> head");
  }
};

// What each new stream derives from, in SQL over `events e`: payments.v2 every transfer
// status (a transfer's first pending answer only) and incoming payment; positions.v1 every
// settlement.
const std::string kV2Sources =
    "e.type in ('TransferSettled', 'TransferRejected', 'TransferUnderInvestigation',"
    " 'TransferResolvedManually', 'DuplicateTransferRequestRefused', 'IncomingPaymentRecorded')"
    " or (e.type = 'TransferAcceptedPending' and e.version = (select min(f.version) from events f"
    "     where f.stream_id = e.stream_id and f.type = e.type))";
const std::string kPositionSources =
    "e.type in ('TransferSettled', 'IncomingPaymentRecorded')"
    " or (e.type = 'TransferResolvedManually' and e.data->>'outcome' = 'succeeded')";

// Every day's last NetPositionChanged counts every settlement of that day once: a fold
// applied twice (or skipped) would show here even when no message is repeated.
std::string miscounted_days(const Db& db, const std::string& stream) {
  return db.value(
      "select count(*) from (select entity_key, count(*) n, max(seq) top from external_events"
      " where stream = '" +
      stream + "' group by 1) d join external_events m on m.stream = '" + stream +
      "' and m.entity_key = d.entity_key and m.seq = d.top"
      " where (m.data->>'count')::bigint <> d.n");
}

eventstore::Subscription live_derivation(Db& db, const std::vector<StreamSetting>& settings,
                                         std::size_t batch_size = 64) {
  return eventstore::Subscription(
      *db.store,
      eventstore::SubscriptionOptions{
          .name = std::string(kLiveDerivation), .batch_size = batch_size, .poll_interval = 20ms},
      make_derivation_handler(*db.store, derived(settings), {.live_streams_only = true}));
}

// Appends `appends` to the database, deriving live every `every` appends, then all of it.
void append_and_derive(Db& db, const std::vector<StreamSetting>& settings,
                       const std::vector<Append>& appends, std::size_t every = 50) {
  auto live = live_derivation(db, settings);
  for (std::size_t i = 0; i < appends.size(); ++i) {
    REQUIRE(db.append(appends[i]));
    if (i % every == every - 1) REQUIRE(live.poll_once());
  }
  db.drain(live, std::string(kLiveDerivation));
}

void wait_handed_over(const std::vector<Backfill*>& backfills) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  for (auto* b : backfills)
    while (!b->stats().handed_over) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                      b->stream() << " not handed over: " << b->stats().last_error);
      std::this_thread::sleep_for(10ms);
    }
}

BackfillOptions small_batches() {
  return BackfillOptions{.batch_size = 32, .idle_poll = 10ms, .yield_pause = 5ms};
}

void check_same(const std::vector<std::string>& got, const std::vector<std::string>& expected) {
  CHECK(got.size() == expected.size());
  for (std::size_t i = 0; i < std::min(got.size(), expected.size()); ++i)
    if (got[i] != expected[i]) {
      CHECK(got[i] == expected[i]);  // the first that differs, and no flood after it
      break;
    }
}

}  // namespace

TEST_CASE(
    "done when: payments.v2 and positions.v1 added to a store with 1,000 transfers on v1 are "
    "backfilled, while more are appended and derived live, to exactly the messages of a store that "
    "had all three streams from the start") {
  constexpr int kTransfers = 1000;
  const auto history = script(0, kTransfers);
  // Appended while the backfills run, until 200 appends after both handed over: the same
  // prefix of it goes to the second store.
  const auto later = script(kTransfers, 2000);
  std::size_t later_appended = 0;
  const std::vector<StreamSetting> all{v1(), v2(), positions()};

  // The upgraded store: payments.v1 alone for its first 1,000 transfers.
  Db upgraded;
  const auto before = upgraded.register_all({v1()});
  REQUIRE(before.size() == 1);
  CHECK(before[0].phase == StreamPhase::live);
  append_and_derive(upgraded, {v1()}, history);
  const auto v1_before = upgraded.value(
      "select count(*) from external_events where stream = 'adapter.dk.payments.v1'");

  // Restarted with the three streams: the two new ones backfill, v1 goes on live.
  upgraded.register_all(all);
  CHECK(upgraded.record(kV1.name).phase == StreamPhase::live);
  CHECK(upgraded.record(kV2.name).phase == StreamPhase::backfilling);
  CHECK(upgraded.record(kPositions.name).phase == StreamPhase::backfilling);
  CHECK(state_of(upgraded.record(kV2.name)) == StreamState::backfilling);
  CHECK(upgraded.value("select count(*) from external_events where stream <> "
                       "'adapter.dk.payments.v1'") == "0");
  {
    auto live = live_derivation(upgraded, all);
    Backfill backfill_v2(*upgraded.store, derived(v2()), small_batches());
    Backfill backfill_positions(*upgraded.store, derived(positions()), small_batches());
    std::atomic<bool> appended = false;
    std::atomic<int> append_failures = 0, after_hand_over = 0;
    backfill_v2.start();
    backfill_positions.start();
    std::thread appender([&] {
      for (const auto& a : later) {
        const bool over = backfill_v2.stats().handed_over && backfill_positions.stats().handed_over;
        if (!upgraded.append(a)) ++append_failures;
        ++later_appended;
        if (over && ++after_hand_over >= 200) break;
      }
      appended = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (!appended || !backfill_v2.stats().handed_over ||
           !backfill_positions.stats().handed_over) {
      auto handled = live.poll_once();
      if (!handled) FAIL_CHECK(handled.error().message);
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(5ms);
    }
    appender.join();
    REQUIRE(append_failures == 0);
    wait_handed_over({&backfill_v2, &backfill_positions});
    CHECK(after_hand_over == 200);  // events appended before and after the hand-over
    upgraded.drain(live, std::string(kLiveDerivation));
    CHECK(backfill_v2.stats().events_handled >= history.size());
    CHECK(backfill_v2.stats().last_error.empty());
    CHECK(backfill_positions.stats().last_error.empty());
    MESSAGE("backfill events handled: payments.v2 "
            << backfill_v2.stats().events_handled << ", positions.v1 "
            << backfill_positions.stats().events_handled
            << "; appends during the backfill and after " << later_appended);
  }
  for (const auto* name : {&kV2.name, &kPositions.name}) {
    const auto r = upgraded.record(*name);
    CHECK(r.phase == StreamPhase::live);
    CHECK(r.live_since.has_value());
  }
  CHECK(std::stoll(upgraded.value("select count(*) from external_events where stream = "
                                  "'adapter.dk.payments.v1'")) > std::stoll(v1_before));

  // The store that had all three from the start, the same events in the same order.
  Db fresh;
  for (const auto& r : fresh.register_all(all)) CHECK(r.phase == StreamPhase::live);
  auto everything = history;
  everything.insert(everything.end(), later.begin(),
                    later.begin() + static_cast<std::ptrdiff_t>(later_appended));
  append_and_derive(fresh, all, everything, 37);

  for (const auto& spec : {kV1, kV2, kPositions}) {
    CAPTURE(spec.name);
    const auto got = upgraded.messages(spec.name);
    const auto expected = fresh.messages(spec.name);
    CHECK(got.size() > static_cast<std::size_t>(kTransfers) / 2);
    check_same(got, expected);
  }
  // And the fresh store is itself right: each source event once, gapless, days counted.
  CHECK(fresh.misderived(kV2.name, kV2Sources) == "0");
  CHECK(fresh.misderived(kPositions.name, kPositionSources) == "0");
  CHECK(miscounted_days(fresh, kPositions.name) == "0");
  MESSAGE("messages compared: payments.v1 " << fresh.messages(kV1.name).size() << ", payments.v2 "
                                            << fresh.messages(kV2.name).size() << ", positions.v1 "
                                            << fresh.messages(kPositions.name).size());
}

TEST_CASE(
    "the hand-over is exact: with events appended throughout, the live derivation on its thread "
    "and the backfills on theirs, every source event has exactly one message on each new stream, "
    "seqs gapless") {
  Db db;
  db.register_all({v1()});
  append_and_derive(db, {v1()}, script(0, 300));
  const std::vector<StreamSetting> all{v1(), v2(), positions()};
  db.register_all(all);
  REQUIRE(db.record(kV2.name).phase == StreamPhase::backfilling);

  auto live = live_derivation(db, all, 16);
  Backfill backfill_v2(*db.store, derived(v2()),
                       BackfillOptions{.batch_size = 8, .idle_poll = 5ms, .yield_pause = 2ms});
  Backfill backfill_positions(*db.store, derived(positions()), small_batches());
  std::atomic<bool> stop = false;
  std::atomic<int> after_hand_over = 0, append_failures = 0;
  std::thread appender([&] {
    // Until both are handed over, and as many transfers again after it. At most one transfer
    // each 5 ms: a backfill hands over once it has caught the live derivation, so an appender
    // as fast as the machine could outrun a backfill of batches of 8 for ever (in one CI run it
    // did, 126,000 events in two minutes); 200 transfers a second still appends throughout.
    int next = 300;
    while (!stop) {
      const bool over = backfill_v2.stats().handed_over && backfill_positions.stats().handed_over;
      for (const auto& a : script(next, 1))
        if (!db.append(a)) ++append_failures;
      ++next;
      if (over && ++after_hand_over >= 60) break;
      std::this_thread::sleep_for(5ms);
    }
  });
  live.start();
  backfill_v2.start();
  backfill_positions.start();
  wait_handed_over({&backfill_v2, &backfill_positions});
  appender.join();
  stop = true;
  // The live derivation, still on its thread, reaches the last event.
  const auto last = db.value("select max(position) from events");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::stoll(db.value("select position from subscription_checkpoints where name = '" +
                             std::string(kLiveDerivation) + "'")) < std::stoll(last)) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, live.status().last_error);
    std::this_thread::sleep_for(10ms);
  }
  live.stop();

  REQUIRE(append_failures == 0);
  CHECK(after_hand_over >= 60);
  CHECK(db.misderived(kV2.name, kV2Sources) == "0");
  CHECK(db.misderived(kPositions.name, kPositionSources) == "0");
  CHECK(db.misderived(kV1.name,
                      "e.type in ('TransferSettled', 'TransferRejected', "
                      "'TransferUnderInvestigation', 'TransferResolvedManually', "
                      "'DuplicateTransferRequestRefused', 'IncomingPaymentRecorded')"
                      " or (e.type = 'TransferAcceptedPending' and e.version = (select "
                      "min(f.version) from events f where f.stream_id = e.stream_id and f.type = "
                      "e.type))") == "0");
  for (const auto& spec : {kV1, kV2, kPositions}) {
    CAPTURE(spec.name);
    CHECK(db.gapped(spec.name) == "0");
  }
  CHECK(miscounted_days(db, kPositions.name) == "0");
  // The backfill's checkpoint stopped where the live derivation took over.
  const auto progress = db.pool->transact([](Transaction& tx) { return read_stream_progress(tx); });
  REQUIRE(progress);
  for (const auto& p : *progress) {
    CAPTURE(p.record.name);
    CHECK(p.record.phase == StreamPhase::live);
    CHECK(p.position == p.live_position);
    CHECK(p.head == static_cast<std::int64_t>(db.messages(p.record.name).size()));
  }
}

TEST_CASE("two backfills of one stream (two adapter processes) never derive an event twice") {
  Db db;
  db.register_all({v1()});
  append_and_derive(db, {v1()}, script(0, 200));
  db.register_all({v1(), v2(), positions()});
  // A second process: its own pool and store on the same database.
  auto other_pool = db.connect();
  eventstore::EventStore other_store(*other_pool);
  Backfill first(*db.store, derived(positions()), small_batches());
  Backfill second(other_store, derived(positions()), small_batches());
  Backfill first_v2(*db.store, derived(v2()), small_batches());
  Backfill second_v2(other_store, derived(v2()), small_batches());
  for (auto* b : {&first, &second, &first_v2, &second_v2}) b->start();
  // Meanwhile the live derivation goes on over new events.
  auto live = live_derivation(db, {v1(), v2(), positions()});
  for (const auto& a : script(200, 40)) {
    REQUIRE(db.append(a));
    REQUIRE(live.poll_once());
  }
  wait_handed_over({&first, &second, &first_v2, &second_v2});
  db.drain(live, std::string(kLiveDerivation));
  for (auto* b : {&first, &second, &first_v2, &second_v2}) {
    CAPTURE(b->stream());
    CHECK(b->stats().last_error.empty());
  }
  // Both did part of the work, or one did it all: either way each event once.
  CHECK(first.stats().events_handled + second.stats().events_handled > 0);
  CHECK(db.misderived(kPositions.name, kPositionSources) == "0");
  CHECK(db.misderived(kV2.name, kV2Sources) == "0");
  CHECK(db.gapped(kPositions.name) == "0");
  CHECK(db.gapped(kV2.name) == "0");
  CHECK(miscounted_days(db, kPositions.name) == "0");
}

TEST_CASE("positions.v1 rebuilt from history gives the same messages as derived live") {
  Db db;
  // Live from the start, over transfers resolved by hand without a date among them.
  db.register_all({v1(), positions()});
  CHECK(db.record(kPositions.name).phase == StreamPhase::live);
  append_and_derive(db, {v1(), positions()}, script(0, 400, true), 23);
  // The same derivation under another name, added afterwards: rebuilt from the history.
  const StreamSetting rebuilt{{"adapter.dk.positions.v9", kPositions.partitions}, "positions.v1"};
  db.register_all({v1(), positions(), rebuilt});
  REQUIRE(db.record(rebuilt.spec.name).phase == StreamPhase::backfilling);
  auto handed_over = std::make_shared<std::atomic<bool>>(false);
  eventstore::Subscription backfill(
      *db.store,
      eventstore::SubscriptionOptions{.name = backfill_subscription_name(rebuilt.spec.name),
                                      .batch_size = 50},
      make_backfill_handler(*db.store, derived(rebuilt), {}, handed_over));
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    auto handled = backfill.poll_once();
    REQUIRE_MESSAGE(handled, (handled ? "" : handled.error().message));
    if (*handled == 0 || *handed_over) {
      auto live = hand_over_if_caught_up(*db.pool, rebuilt.spec.name);
      REQUIRE(live);
      if (*live) break;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
  CHECK(db.record(rebuilt.spec.name).phase == StreamPhase::live);
  const auto live_messages = db.messages(kPositions.name, false);
  CHECK(live_messages.size() > 200);
  check_same(db.messages(rebuilt.spec.name, false), live_messages);
  // Days without a settlement date in the manual resolution are among them.
  CHECK(std::stoll(db.value("select count(*) from events where type = 'TransferResolvedManually'"
                            " and data->>'outcome' = 'succeeded' and data->>'settlement_date' = "
                            "''")) > 0);
}

TEST_CASE("register_streams refuses what would change a registered stream, and changes nothing") {
  Db db;
  db.register_all({v1(), v2()});
  struct Case {
    std::string what;
    std::vector<StreamSetting> settings;
    RegistryErrc code;
    std::vector<std::string> says;
  };
  auto wider = v2();
  wider.spec.partitions = 8;
  auto other_derivation = v2();
  other_derivation.derivation = "payments.v1";
  auto born_retired = positions();
  born_retired.retired = true;
  const std::vector<Case> cases{
      {"another partition count",
       {v1(), wider},
       RegistryErrc::partitions_changed,
       {"stream adapter.dk.payments.v2", "registered with 4 partitions", "configured with 8",
        "new version"}},
      {"another derivation",
       {v1(), other_derivation},
       RegistryErrc::derivation_changed,
       {"stream adapter.dk.payments.v2", "derivation payments.v2", "configured with payments.v1",
        "new version"}},
      {"a new stream configured retired",
       {v1(), v2(), born_retired},
       RegistryErrc::born_retired,
       {"stream adapter.dk.positions.v1", "new and configured as retired"}},
      // A refusal after a stream that would be new: that one is not registered either.
      {"a new stream, then a refused one",
       {v1(), positions(), wider},
       RegistryErrc::partitions_changed,
       {"stream adapter.dk.payments.v2"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto refused = register_streams(*db.pool, c.settings);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == c.code);
    CHECK_FALSE(refused.error().retryable());
    for (const auto& part : c.says) {
      CAPTURE(part);
      CHECK(refused.error().message.find(part) != std::string::npos);
    }
    // Nothing changed.
    CHECK(db.value("select string_agg(stream || ':' || derivation || ':' || partitions || ':' ||"
                   " phase, ',' order by stream) from derived_streams") ==
          "adapter.dk.payments.v1:payments.v1:4:live,adapter.dk.payments.v2:payments.v2:4:live");
    CHECK(db.value("select count(*) from external_stream_seqs where stream = "
                   "'adapter.dk.payments.v2'") == "4");
    CHECK(db.value("select count(*) from external_stream_seqs where stream = "
                   "'adapter.dk.positions.v1'") == "0");
  }

  // Deprecated with a sunset, then retired: a retired stream cannot come back.
  auto deprecated = v2();
  deprecated.sunset = "2027-06-30";
  db.register_all({v1(), deprecated});
  CHECK(state_of(db.record(kV2.name)) == StreamState::deprecated);
  CHECK(db.record(kV2.name).sunset == std::optional<std::string>("2027-06-30"));
  CHECK(db.record(kV2.name).deprecated_at.has_value());
  auto retired = deprecated;
  retired.retired = true;
  db.register_all({v1(), retired});
  CHECK(state_of(db.record(kV2.name)) == StreamState::retired);
  const auto unretired = register_streams(*db.pool, std::vector<StreamSetting>{v1(), deprecated});
  REQUIRE_FALSE(unretired.has_value());
  CHECK(unretired.error().code == RegistryErrc::unretired);
  CHECK_FALSE(unretired.error().retryable());
  CHECK(unretired.error().message.find("stream adapter.dk.payments.v2 is retired") !=
        std::string::npos);
  CHECK(state_of(db.record(kV2.name)) == StreamState::retired);
  // A sunset taken off again: no longer deprecated.
  auto deprecated_v1 = v1();
  deprecated_v1.sunset = "2027-01-31";
  db.register_all({deprecated_v1, retired});
  CHECK(state_of(db.record(kV1.name)) == StreamState::deprecated);
  db.register_all({v1(), retired});
  CHECK(state_of(db.record(kV1.name)) == StreamState::live);
  CHECK_FALSE(db.record(kV1.name).deprecated_at.has_value());
}

TEST_CASE(
    "register_streams: a stream written before the registry existed is live; a new one on a store "
    "that has moved backfills from the beginning, or from backfill_from") {
  Db db;
  // The store as it stood before the registry: payments.v1 derived by the shared checkpoint.
  {
    const std::vector<StreamSpec> specs{kV1};
    REQUIRE(ensure_streams(*db.pool, specs));
    eventstore::Subscription old(
        *db.store,
        eventstore::SubscriptionOptions{.name = std::string(kLiveDerivation), .batch_size = 64},
        make_derivation_handler(*db.store, derived(std::vector<StreamSetting>{v1()})));
    for (const auto& a : script(0, 10)) REQUIRE(db.append(a));
    db.drain(old, std::string(kLiveDerivation));
  }
  REQUIRE(std::stoll(db.value("select sum(head) from external_stream_seqs")) > 0);
  REQUIRE(db.value("select count(*) from derived_streams") == "0");
  const auto first_batch_last = db.value("select max(position) from events");

  // A second batch of events, recorded after a pause: backfill_from points at its first.
  std::this_thread::sleep_for(50ms);
  const auto later = script(10, 10);
  for (const auto& a : later) REQUIRE(db.append(a));
  {
    auto live = live_derivation(db, {v1()});
    db.register_all({v1()});  // the registry's first start: v1 is live at once
    db.drain(live, std::string(kLiveDerivation));
  }
  const auto record = db.record(kV1.name);
  CHECK(record.phase == StreamPhase::live);
  CHECK(record.partitions == kV1.partitions);

  const auto from_ms =
      std::stoll(db.value("select floor(extract(epoch from recorded_at) * 1000)::bigint from "
                          "events where event_id = '" +
                          later[0].events[0].event_id.value() + "'"));
  auto from_later = positions();
  from_later.backfill_from = base::Timestamp{std::chrono::milliseconds{from_ms}};
  db.register_all({v1(), v2(), from_later});
  CHECK(db.record(kV2.name).phase == StreamPhase::backfilling);
  CHECK(db.record(kPositions.name).phase == StreamPhase::backfilling);
  // v2 from the beginning; positions.v1 after the last event recorded before the time.
  CHECK(db.value("select position from subscription_checkpoints where name = '" +
                 backfill_subscription_name(kV2.name) + "'") == "0");
  CHECK(db.value("select position from subscription_checkpoints where name = '" +
                 backfill_subscription_name(kPositions.name) + "'") == first_batch_last);

  // Registering again changes neither backfill's start.
  db.register_all({v1(), v2(), from_later});
  CHECK(db.value("select position from subscription_checkpoints where name = '" +
                 backfill_subscription_name(kPositions.name) + "'") == first_batch_last);

  Backfill backfill_v2(*db.store, derived(v2()), small_batches());
  Backfill backfill_positions(*db.store, derived(from_later), small_batches());
  backfill_v2.start();
  backfill_positions.start();
  wait_handed_over({&backfill_v2, &backfill_positions});
  CHECK(db.misderived(kV2.name, kV2Sources) == "0");
  CHECK(db.misderived(kPositions.name, "e.position > " + first_batch_last + " and (" +
                                           kPositionSources + ")") == "0");
  CHECK(std::stoll(db.value("select count(*) from external_events where stream = "
                            "'adapter.dk.positions.v1'")) > 0);

  // A stream from before the registry configured with another partition count is refused.
  Db other;
  const std::vector<StreamSpec> old_specs{kV1};
  REQUIRE(ensure_streams(*other.pool, old_specs));
  auto wider = v1();
  wider.spec.partitions = 8;
  const auto refused = register_streams(*other.pool, std::vector<StreamSetting>{wider});
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == RegistryErrc::partitions_changed);
  CHECK(refused.error().message.find("new version") != std::string::npos);
}

TEST_CASE("a retired stream derives nothing more; its history stays readable") {
  Db db;
  db.register_all({v1(), v2()});
  append_and_derive(db, {v1(), v2()}, script(0, 50));
  const auto before = db.messages(kV2.name);
  REQUIRE(before.size() > 50);
  const auto v1_before = db.messages(kV1.name).size();

  auto retired = v2();
  retired.sunset = "2026-12-01";
  retired.retired = true;
  db.register_all({v1(), retired});
  CHECK(state_of(db.record(kV2.name)) == StreamState::retired);
  append_and_derive(db, {v1(), retired}, script(50, 50));
  CHECK(db.messages(kV2.name) == before);
  CHECK(db.messages(kV1.name).size() > v1_before);

  // Its history through the catch-up API's read, partition by partition.
  std::size_t read = 0;
  for (std::int32_t partition = 0; partition < kV2.partitions; ++partition) {
    auto page = db.pool->transact(
        [&](Transaction& tx) { return read_catch_up(tx, kV2.name, partition, 1, 1000); });
    REQUIRE(page);
    CHECK(page->head == static_cast<std::int64_t>(page->events.size()));
    for (std::size_t i = 0; i < page->events.size(); ++i)
      CHECK(page->events[i].seq == static_cast<std::int64_t>(i + 1));
    read += page->events.size();
  }
  CHECK(read == before.size());
  const auto progress = db.pool->transact([](Transaction& tx) { return read_stream_progress(tx); });
  REQUIRE(progress);
  for (const auto& p : *progress)
    if (p.record.name == kV2.name) CHECK(p.head == static_cast<std::int64_t>(before.size()));
}
