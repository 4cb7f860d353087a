// EventStore::append_batch against a real PostgreSQL server: many streams in two
// statements, each stream answered as a single append would answer it, malformed
// batches refused whole, and concurrent batches over the same streams in opposite
// orders waiting for each other instead of deadlocking.

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "store_test_support.hpp"

using namespace clearing::eventstore;
using namespace clearing::eventstore::testing;

namespace {

StreamAppend to(std::string stream, ExpectedVersion expected, std::vector<EventData> events) {
  return StreamAppend{StreamId{std::move(stream)}, expected, std::move(events)};
}

std::vector<StoreResult<AppendResult>> batch(StoreFixture& f,
                                             const std::vector<StreamAppend>& appends) {
  auto r =
      f.pool->transact([&](Transaction& tx) -> StoreResult<std::vector<StoreResult<AppendResult>>> {
        return f.store->append_batch(tx, appends);
      });
  REQUIRE_MESSAGE(r, (r ? std::string() : r.error().message));
  return *r;
}

std::string count_events(StoreFixture& f) {
  return f.database.query_value("select count(*) from events");
}

// append_batch in a transaction of its own.
StoreResult<std::vector<StoreResult<AppendResult>>> append_batch_alone(
    StoreFixture& f, const std::vector<StreamAppend>& batch) {
  return f.pool->transact([&](Transaction& tx) { return f.store->append_batch(tx, batch); });
}

}  // namespace

TEST_CASE("a batch writes new and existing streams, numbered from their versions, in batch order") {
  StoreFixture f;
  REQUIRE(f.store->append(StreamId{"old"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("Opened")}));
  auto old_event = make_event("Moved", {{"n", 2}});
  auto fresh = std::vector{make_event("Born", {{"n", 1}}), make_event("Grew", {{"n", 2}})};
  auto results = batch(f, {to("new", ExpectedVersion::no_stream(), fresh),
                           to("old", ExpectedVersion::exactly(StreamVersion{1}), {old_event})});
  REQUIRE(results.size() == 2);
  REQUIRE(results[0]);
  REQUIRE(results[1]);
  CHECK(results[0]->next_expected_version == StreamVersion{2});
  CHECK(results[1]->next_expected_version == StreamVersion{2});
  CHECK_FALSE(results[0]->already_appended);
  // Written in batch order: the first stream's events get the lower positions.
  CHECK(results[0]->first_position.value() > 0);
  CHECK(results[0]->first_position < results[1]->first_position);

  auto read_new = f.store->read_stream(StreamId{"new"});
  REQUIRE(read_new->size() == 2);
  CHECK((*read_new)[0].type == "Born");
  CHECK((*read_new)[0].version == StreamVersion{1});
  CHECK((*read_new)[1].version == StreamVersion{2});
  CHECK((*read_new)[1].event_id == fresh[1].event_id);
  CHECK((*read_new)[1].metadata.correlation_id == "corr-1");
  auto read_old = f.store->read_stream(StreamId{"old"});
  REQUIRE(read_old->size() == 2);
  CHECK(read_old->back().type == "Moved");
  CHECK(read_old->back().data["n"] == 2);
  CHECK(f.database.query_value("select version from event_streams where stream_id = 'new'") == "2");
  CHECK(f.database.query_value("select version from event_streams where stream_id = 'old'") == "2");
}

TEST_CASE(
    "each stream of a batch gets the answer a single append would give; only the ones that hold "
    "are written") {
  StoreFixture f;
  auto stored = std::vector{make_event("A"), make_event("B")};
  REQUIRE(f.store->append(StreamId{"done"}, ExpectedVersion::no_stream(), stored));
  REQUIRE(f.store->append(StreamId{"moved"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("A"), make_event("B")}));
  REQUIRE(f.store->append(StreamId{"exists"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("A")}));
  auto half_stored = make_event("A");
  REQUIRE(
      f.store->append(StreamId{"half"}, ExpectedVersion::no_stream(), std::vector{half_stored}));
  const auto before = std::stoll(count_events(f));

  auto results =
      batch(f, {
                   to("done", ExpectedVersion::no_stream(), stored),  // a retry: no-op
                   to("moved", ExpectedVersion::exactly(StreamVersion{1}),
                      {make_event("Stale")}),  // stale version
                   to("exists", ExpectedVersion::no_stream(), {make_event("Again")}),  // not new
                   to("missing", ExpectedVersion::exactly(StreamVersion{3}),
                      {make_event("Nowhere")}),  // no such stream
                   to("half", ExpectedVersion::exactly(StreamVersion{1}),
                      {half_stored, make_event("New")}),  // some ids stored
                   to("good", ExpectedVersion::no_stream(), {make_event("Fine")}),
               });
  REQUIRE(results.size() == 6);
  REQUIRE(results[0]);
  CHECK(results[0]->already_appended);
  CHECK(results[0]->next_expected_version == StreamVersion{2});
  for (std::size_t i : {1u, 2u, 3u}) {
    REQUIRE_FALSE(results[i]);
    CHECK(results[i].error().code == StoreErrc::wrong_expected_version);
    CHECK(results[i].error().is_retryable());
  }
  CHECK(results[1].error().message.find("moved is at version 2, expected 1") != std::string::npos);
  REQUIRE_FALSE(results[4]);
  CHECK(results[4].error().code == StoreErrc::partially_appended);
  REQUIRE(results[5]);
  CHECK(results[5]->next_expected_version == StreamVersion{1});

  CHECK(std::stoll(count_events(f)) == before + 1);
  CHECK(f.store->read_stream(StreamId{"good"})->size() == 1);
  CHECK(f.store->read_stream(StreamId{"moved"})->size() == 2);
  CHECK(f.database.query_value("select count(*) from event_streams where stream_id = 'missing'") ==
        "0");
}

TEST_CASE("a malformed batch is refused whole before the database is touched") {
  StoreFixture f;
  const auto good = to("good", ExpectedVersion::no_stream(), {make_event("A")});

  SUBCASE("the same stream twice") {
    auto r = append_batch_alone(
        f, std::vector{good,
                       to("good", ExpectedVersion::exactly(StreamVersion{1}), {make_event("B")})});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::invalid_argument);
    CHECK(r.error().message.find("twice") != std::string::npos);
  }
  SUBCASE("expected version any") {
    auto r = append_batch_alone(
        f, std::vector{good, to("other", ExpectedVersion::any(), {make_event("B")})});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::invalid_argument);
  }
  SUBCASE("one event id in two streams") {
    auto shared = make_event("S");
    auto r = append_batch_alone(f, std::vector{to("a", ExpectedVersion::no_stream(), {shared}),
                                               to("b", ExpectedVersion::no_stream(), {shared})});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::invalid_argument);
  }
  SUBCASE("an invalid event in one stream") {
    auto r =
        append_batch_alone(f, std::vector{good, to("bad", ExpectedVersion::no_stream(),
                                                   {make_event("A", nlohmann::json::array())})});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::invalid_argument);
    CHECK(r.error().message.find("not a JSON object") != std::string::npos);
  }
  SUBCASE("a stream with no events") {
    auto r =
        append_batch_alone(f, std::vector{good, to("empty", ExpectedVersion::no_stream(), {})});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::invalid_argument);
  }
  SUBCASE("more streams than the limit") {
    std::vector<StreamAppend> many;
    for (std::size_t i = 0; i <= kStreamsPerBatchMax; ++i)
      many.push_back(to("s" + std::to_string(i), ExpectedVersion::no_stream(), {make_event("A")}));
    auto r = append_batch_alone(f, many);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::payload_too_large);
  }
  CHECK(count_events(f) == "0");
  CHECK(f.database.query_value("select count(*) from event_streams") == "0");
}

TEST_CASE("an empty batch answers nothing and touches nothing") {
  StoreFixture f;
  auto r = f.pool->transact(
      [&](Transaction& tx) { return f.store->append_batch(tx, std::vector<StreamAppend>{}); });
  REQUIRE(r);
  CHECK(r->empty());
}

TEST_CASE(
    "two batches over the same streams in opposite orders: the second waits, then loses, and "
    "nobody deadlocks") {
  StoreFixture f;
  for (const auto* s : {"a", "b", "c"})
    REQUIRE(f.store->append(StreamId{s}, ExpectedVersion::no_stream(),
                            std::vector{make_event("Opened")}));
  const auto at1 = ExpectedVersion::exactly(StreamVersion{1});
  HeldTransaction<bool> holder(
      *f.pool,
      [&](Transaction& tx) -> StoreResult<bool> {
        auto written = f.store->append_batch(tx, std::vector{to("a", at1, {make_event("First")}),
                                                             to("b", at1, {make_event("First")})});
        if (!written) return tl::unexpected(written.error());
        return (*written)[0].has_value() && (*written)[1].has_value();
      },
      [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); });
  holder.wait_until_worked();
  // c first, then b and a: the locks are taken in stream id order whatever the batch's.
  auto second = f.pool->transact([&](Transaction& tx) {
    return f.store->append_batch(
        tx, std::vector{to("c", at1, {make_event("Second")}), to("b", at1, {make_event("Second")}),
                        to("a", at1, {make_event("Second")})});
  });
  const auto first = holder.result();
  REQUIRE(first);
  CHECK(*first);
  REQUIRE(second);
  REQUIRE((*second)[0]);
  CHECK((*second)[0]->next_expected_version == StreamVersion{2});
  for (std::size_t i : {1u, 2u}) {
    REQUIRE_FALSE((*second)[i]);
    CHECK((*second)[i].error().code == StoreErrc::wrong_expected_version);
  }
  CHECK(f.store->read_stream(StreamId{"a"})->back().type == "First");
  CHECK(f.store->read_stream(StreamId{"b"})->back().type == "First");
  CHECK(f.store->read_stream(StreamId{"c"})->back().type == "Second");
}

TEST_CASE(
    "a new stream created by another transaction after the batch looked is a conflict, not an "
    "error") {
  StoreFixture f;
  std::atomic<bool> looked{false};
  HeldTransaction<AppendResult> creator(
      *f.pool,
      [&](Transaction& tx) {
        return f.store->append(tx, StreamId{"race"}, ExpectedVersion::no_stream(),
                               std::vector{make_event("Creator")});
      },
      [&] {
        wait_for(looked);
        std::this_thread::sleep_for(
            std::chrono::milliseconds(200));  // the batch is waiting on our row by now
      });
  creator.wait_until_worked();
  // The creator has not committed: the batch's first statement cannot see its row.
  auto r = f.pool->transact([&](Transaction& tx) {
    looked = true;
    return f.store->append_batch(
        tx, std::vector{to("race", ExpectedVersion::no_stream(), {make_event("Batch")}),
                        to("calm", ExpectedVersion::no_stream(), {make_event("Batch")})});
  });
  CHECK(creator.result());
  REQUIRE(r);
  REQUIRE_FALSE((*r)[0]);
  CHECK((*r)[0].error().code == StoreErrc::wrong_expected_version);
  CHECK((*r)[0].error().message.find("created concurrently") != std::string::npos);
  REQUIRE((*r)[1]);
  auto race = f.store->read_stream(StreamId{"race"});
  REQUIRE(race->size() == 1);
  CHECK(race->front().type == "Creator");
  CHECK(f.store->read_stream(StreamId{"calm"})->size() == 1);
}

TEST_CASE(
    "an event id stored in another stream, appended to a new stream, fails the batch: a caller "
    "bug, not a no-op") {
  StoreFixture f;
  auto stored = make_event("A");
  REQUIRE(f.store->append(StreamId{"first"}, ExpectedVersion::no_stream(), std::vector{stored}));
  auto r = f.pool->transact([&](Transaction& tx) {
    return f.store->append_batch(
        tx, std::vector{to("calm", ExpectedVersion::no_stream(), {make_event("B")}),
                        to("second", ExpectedVersion::no_stream(), {stored})});
  });
  REQUIRE_FALSE(r);
  // A unique violation, which the store reads as a concurrent writer of the same ids.
  CHECK(r.error().code == StoreErrc::transient);
  CHECK(r.error().message.find("events_event_id") != std::string::npos);
  CHECK(count_events(f) == "1");
  CHECK(f.database.query_value("select count(*) from event_streams") == "1");
}

TEST_CASE("lock_streams holds off every other append to the streams until the transaction ends") {
  StoreFixture f;
  REQUIRE(f.store->append(StreamId{"held"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("Opened")}));
  std::atomic<bool> release{false};
  HeldTransaction<void> holder(
      *f.pool,
      [&](Transaction& tx) {
        return f.store->lock_streams(tx, std::vector{StreamId{"held"}, StreamId{"absent"}});
      },
      [&] { wait_for(release); });
  holder.wait_until_worked();
  auto blocked = f.pool->transact([&](Transaction& tx) -> StoreResult<AppendResult> {
    tx.exec("set local lock_timeout = '100ms'");
    return f.store->append(tx, StreamId{"held"}, ExpectedVersion::exactly(StreamVersion{1}),
                           std::vector{make_event("Late")});
  });
  REQUIRE_FALSE(blocked);
  CHECK(blocked.error().code == StoreErrc::transient);  // the lock timeout
  release = true;
  CHECK(holder.result());
  auto after = f.store->append(StreamId{"held"}, ExpectedVersion::exactly(StreamVersion{1}),
                               std::vector{make_event("Late")});
  REQUIRE(after);
  CHECK(after->next_expected_version == StreamVersion{2});
}

TEST_CASE(
    "the batch insert's cached plan, made on empty tables, still probes event_streams by key after "
    "they grew") {
  StoreFixture f(1);  // one connection: the statement's cached plan is this connection's
  // Eight batches on empty tables: past the five custom plans after which PostgreSQL may
  // keep a generic one.
  for (int i = 0; i < 8; ++i) {
    auto results = batch(f, {to("early-" + std::to_string(i), ExpectedVersion::no_stream(),
                                {make_event("Opened")})});
    REQUIRE(results[0]);
  }
  // The tables grow without an analyze (autovacuum's first comes up to a minute later).
  f.database.exec(
      "insert into event_streams (stream_id, version) select 'grown-' || g, 1 from "
      "generate_series(1, 50000) g");
  auto plan = f.pool->transact([](Transaction& tx) -> StoreResult<std::string> {
    std::string text;
    for (const auto& row : tx.exec(
             "explain execute "
             "eventstore_append_batch_write('[{\"stream\":\"grown-7\",\"mode\":\"exact\","
             "\"expected\":1,\"n\":1,\"events\":[{\"id\":\"00000000-0000-4000-8000-000000000007\","
             "\"type\":\"T\",\"data\":{},\"metadata\":{}}]}]')"))
      text += row[0].as<std::string>() + "\n";
    auto stats = tx.exec(
        "select generic_plans from pg_prepared_statements where name = "
        "'eventstore_append_batch_write'");
    text += "generic plans " + (stats.empty() ? std::string("?") : stats[0][0].as<std::string>());
    return text;
  });
  REQUIRE(plan);
  INFO(*plan);
  CHECK(plan->find("Index Scan using event_streams_pkey on event_streams") != std::string::npos);
  CHECK(plan->find("Seq Scan on event_streams") == std::string::npos);
  CHECK(plan->find("generic plans 0") == std::string::npos);  // the cache did keep a generic plan
  // And the batch still writes.
  auto results =
      batch(f, {to("grown-7", ExpectedVersion::exactly(StreamVersion{1}), {make_event("Moved")})});
  REQUIRE(results[0]);
  CHECK(results[0]->next_expected_version == StreamVersion{2});
}
