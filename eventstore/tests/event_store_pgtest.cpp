// The event store against a real PostgreSQL server: append, read, optimistic
// concurrency, idempotent append, typed errors for malformed input.

#include <doctest/doctest.h>

#include <barrier>
#include <chrono>
#include <thread>

#include "clearing/eventstore/prepared.hpp"
#include "store_test_support.hpp"

using namespace clearing::eventstore;
using namespace clearing::eventstore::testing;

TEST_CASE("migrations apply once; applying again is a no-op") {
  StoreFixture f;  // applied once here
  auto again = apply_migrations(*f.pool, eventstore_migrations());
  REQUIRE(again);
  CHECK(again->applied.empty());
  CHECK(again->already_applied == eventstore_migrations().size());
  CHECK(f.database.query_value("select count(*) from schema_migrations") ==
        std::to_string(eventstore_migrations().size()));
}

TEST_CASE("append to a new stream, then read it back with metadata") {
  StoreFixture f;
  const StreamId stream{"transfer-1"};
  std::vector<EventData> events{make_event("A", {{"n", 1}}), make_event("B", {{"n", 2}})};
  events[0].metadata.source = {{"stream", "core.dk.payments.v1"}, {"partition", 0}, {"seq", 41}};

  auto appended = f.store->append(stream, ExpectedVersion::no_stream(), events);
  REQUIRE(appended);
  CHECK(appended->next_expected_version == StreamVersion{2});
  CHECK_FALSE(appended->already_appended);
  CHECK(appended->first_position.value() > 0);

  auto read = f.store->read_stream(stream);
  REQUIRE(read);
  REQUIRE(read->size() == 2);
  CHECK((*read)[0].type == "A");
  CHECK((*read)[0].version == StreamVersion{1});
  CHECK((*read)[1].version == StreamVersion{2});
  CHECK((*read)[0].event_id == events[0].event_id);
  CHECK((*read)[1].data["n"] == 2);
  CHECK((*read)[0].metadata.correlation_id == "corr-1");
  CHECK((*read)[0].metadata.causation_id == "cause-1");
  CHECK((*read)[0].metadata.source["seq"] == 41);
  CHECK((*read)[1].metadata.source.is_null());
  CHECK((*read)[0].position < (*read)[1].position);
}

TEST_CASE("expected version: exact, no_stream and any") {
  StoreFixture f;
  const StreamId stream{"s"};
  REQUIRE(f.store->append(stream, ExpectedVersion::no_stream(), std::vector{make_event("A")}));

  SUBCASE("no_stream on an existing stream is a conflict") {
    auto r = f.store->append(stream, ExpectedVersion::no_stream(), std::vector{make_event("B")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::wrong_expected_version);
    CHECK(r.error().is_retryable());
  }
  SUBCASE("a stale exact version is a conflict and writes nothing") {
    REQUIRE(f.store->append(stream, ExpectedVersion::exactly(StreamVersion{1}),
                            std::vector{make_event("B")}));
    auto r = f.store->append(stream, ExpectedVersion::exactly(StreamVersion{1}),
                             std::vector{make_event("C")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::wrong_expected_version);
    CHECK(f.store->read_stream(stream)->size() == 2);
  }
  SUBCASE("an exact version on a stream that does not exist is a conflict") {
    auto r = f.store->append(StreamId{"missing"}, ExpectedVersion::exactly(StreamVersion{3}),
                             std::vector{make_event("B")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == StoreErrc::wrong_expected_version);
  }
  SUBCASE("any appends after whatever is there") {
    auto r = f.store->append(stream, ExpectedVersion::any(),
                             std::vector{make_event("B"), make_event("C")});
    REQUIRE(r);
    CHECK(r->next_expected_version == StreamVersion{3});
    auto fresh =
        f.store->append(StreamId{"fresh"}, ExpectedVersion::any(), std::vector{make_event("X")});
    REQUIRE(fresh);
    CHECK(fresh->next_expected_version == StreamVersion{1});
  }
}

TEST_CASE("re-appending stored event ids is a no-op reported as already appended") {
  StoreFixture f;
  const StreamId stream{"s"};
  std::vector<EventData> events{make_event("A"), make_event("B")};
  REQUIRE(f.store->append(stream, ExpectedVersion::no_stream(), events));

  // The same append again, with the expected version it had the first time: a retry
  // after a lost commit acknowledgement looks exactly like this.
  auto again = f.store->append(stream, ExpectedVersion::no_stream(), events);
  REQUIRE(again);
  CHECK(again->already_appended);
  CHECK(again->next_expected_version == StreamVersion{2});
  CHECK(f.database.query_value("select count(*) from events") == "2");

  // Some ids stored, others not: a caller bug, reported as such, nothing written.
  std::vector<EventData> mixed{events[0], make_event("C")};
  auto partial = f.store->append(stream, ExpectedVersion::exactly(StreamVersion{2}), mixed);
  REQUIRE_FALSE(partial);
  CHECK(partial.error().code == StoreErrc::partially_appended);
  CHECK(f.database.query_value("select count(*) from events") == "2");
}

TEST_CASE(
    "two writers, one expected version: exactly one wins, the loser gets the typed conflict") {
  StoreFixture f;
  const StreamId stream{"contended"};
  REQUIRE(f.store->append(stream, ExpectedVersion::no_stream(), std::vector{make_event("Opened")}));

  for (int writers : {2, 8}) {
    const auto version = f.store->read_stream(stream)->back().version;
    std::barrier start(writers);
    std::vector<StoreResult<AppendResult>> results(
        writers, tl::unexpected(StoreError{StoreErrc::internal, ""}));
    std::vector<std::thread> threads;
    for (int i = 0; i < writers; ++i)
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        results[i] = f.store->append(stream, ExpectedVersion::exactly(version),
                                     std::vector{make_event("Raced", {{"writer", i}})});
      });
    for (auto& t : threads) t.join();

    int wins = 0, conflicts = 0;
    for (const auto& r : results) {
      if (r)
        ++wins;
      else if (r.error().code == StoreErrc::wrong_expected_version)
        ++conflicts;
    }
    CHECK(wins == 1);
    CHECK(conflicts == writers - 1);
    CHECK(f.store->read_stream(stream)->back().version == StreamVersion{version.value() + 1});
  }
}

TEST_CASE("a conflicting writer holding its transaction open blocks the other, who then loses") {
  StoreFixture f;
  const StreamId stream{"held"};
  REQUIRE(f.store->append(stream, ExpectedVersion::no_stream(), std::vector{make_event("Opened")}));
  HeldTransaction<AppendResult> holder(
      *f.pool,
      [&](Transaction& tx) {
        return f.store->append(tx, stream, ExpectedVersion::exactly(StreamVersion{1}),
                               std::vector{make_event("First")});
      },
      [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); });
  holder.wait_until_worked();
  const auto second = f.store->append(stream, ExpectedVersion::exactly(StreamVersion{1}),
                                      std::vector{make_event("Second")});
  CHECK(holder.result());
  REQUIRE_FALSE(second);
  CHECK(second.error().code == StoreErrc::wrong_expected_version);
  auto read = f.store->read_stream(stream);
  REQUIRE(read->size() == 2);
  CHECK(read->back().type == "First");
}

TEST_CASE("malformed input gets a typed error and writes nothing") {
  StoreFixture f;
  auto ok = make_event("A");

  auto empty_stream = f.store->append(StreamId{""}, ExpectedVersion::any(), std::vector{ok});
  REQUIRE_FALSE(empty_stream);
  CHECK(empty_stream.error().code == StoreErrc::invalid_argument);
  CHECK_FALSE(empty_stream.error().is_retryable());

  auto long_stream = f.store->append(StreamId{std::string(kStreamIdBytesMax + 1, 's')},
                                     ExpectedVersion::any(), std::vector{ok});
  REQUIRE_FALSE(long_stream);
  CHECK(long_stream.error().code == StoreErrc::payload_too_large);

  auto array_data = make_event("A", nlohmann::json::array({1, 2}));
  auto not_object = f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{array_data});
  REQUIRE_FALSE(not_object);
  CHECK(not_object.error().code == StoreErrc::invalid_argument);
  CHECK(not_object.error().message.find("not a JSON object") != std::string::npos);

  auto huge = make_event("A", {{"blob", std::string(kEventDataBytesMax, 'x')}});
  auto too_large = f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{huge});
  REQUIRE_FALSE(too_large);
  CHECK(too_large.error().code == StoreErrc::payload_too_large);

  auto bad_id = ok;
  bad_id.event_id = EventId{"not-a-uuid"};
  auto not_uuid = f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{bad_id});
  REQUIRE_FALSE(not_uuid);
  CHECK(not_uuid.error().code == StoreErrc::invalid_argument);

  auto no_type = make_event("");
  CHECK(f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{no_type}).error().code ==
        StoreErrc::invalid_argument);

  CHECK(f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector<EventData>{})
            .error()
            .code == StoreErrc::invalid_argument);
  CHECK(f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{ok, ok}).error().code ==
        StoreErrc::invalid_argument);

  std::vector<EventData> too_many;
  for (std::size_t i = 0; i <= kEventsPerAppendMax; ++i) too_many.push_back(make_event("A"));
  CHECK(f.store->append(StreamId{"s"}, ExpectedVersion::any(), too_many).error().code ==
        StoreErrc::payload_too_large);

  CHECK(f.database.query_value("select count(*) from events") == "0");
}

TEST_CASE("read_all_after returns committed events in order, after the checkpoint") {
  StoreFixture f;
  for (int i = 0; i < 5; ++i)
    REQUIRE(f.store->append(StreamId{"s" + std::to_string(i % 2)}, ExpectedVersion::any(),
                            std::vector{make_event("E", {{"i", i}})}));
  wait_for_horizon(*f.pool);
  auto all = f.store->read_all_after(Checkpoint{}, 100);
  REQUIRE(all);
  REQUIRE(all->size() == 5);
  for (int i = 0; i < 5; ++i) CHECK((*all)[i].data["i"] == i);
  auto rest = f.store->read_all_after(Checkpoint::after((*all)[2]), 100);
  REQUIRE(rest);
  REQUIRE(rest->size() == 2);
  CHECK((*rest)[0].data["i"] == 3);

  // An open transaction's events are not visible, and nothing after it either (the
  // horizon stops at the oldest running transaction).
  std::atomic<bool> release{false};
  HeldTransaction<AppendResult> open(
      *f.pool,
      [&](Transaction& tx) {
        return f.store->append(tx, StreamId{"open"}, ExpectedVersion::any(),
                               std::vector{make_event("Late")});
      },
      [&] { wait_for(release); });
  open.wait_until_worked();
  REQUIRE(
      f.store->append(StreamId{"after"}, ExpectedVersion::any(), std::vector{make_event("Later")}));
  auto during = f.store->read_all_after(Checkpoint::after(all->back()), 100);
  REQUIRE(during);
  CHECK(during->empty());
  release = true;
  CHECK(open.result());
  wait_for_horizon(*f.pool);
  auto after = f.store->read_all_after(Checkpoint::after(all->back()), 100);
  REQUIRE(after);
  REQUIRE(after->size() == 2);
  CHECK((*after)[0].type == "Late");
  CHECK((*after)[1].type == "Later");
}

TEST_CASE("read_event finds an event by id") {
  StoreFixture f;
  auto e = make_event("A", {{"k", "v"}});
  REQUIRE(f.store->append(StreamId{"s"}, ExpectedVersion::any(), std::vector{e}));
  auto found =
      f.pool->transact([&](Transaction& tx) { return f.store->read_event(tx, e.event_id); });
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->data["k"] == "v");
  auto missing = f.pool->transact([&](Transaction& tx) {
    return f.store->read_event(tx, EventId{clearing::base::new_uuid()});
  });
  REQUIRE(missing);
  CHECK_FALSE(missing->has_value());
}

TEST_CASE(
    "exec_prepared_here: a statement is prepared once per connection, and runs with its "
    "arguments") {
  StoreFixture f(1);  // one connection: every transaction below runs on it
  constexpr PreparedSql kDouble{"test_double", "select $1::int * 2"};
  for (int i = 1; i <= 3; ++i) {
    auto answer = f.pool->transact([&](Transaction& tx) -> StoreResult<int> {
      return exec_prepared_here(tx, kDouble, i)[0][0].as<int>();
    });
    REQUIRE(answer);
    CHECK(*answer == 2 * i);
  }
  auto prepared = f.pool->transact([](Transaction& tx) -> StoreResult<std::string> {
    return tx
        .exec(
            "select count(*)::text || ' ' || string_agg(statement, '') from pg_prepared_statements"
            " where name = 'test_double'")[0][0]
        .as<std::string>();
  });
  REQUIRE(prepared);
  CHECK(*prepared == "1 select $1::int * 2");
  // First prepared in a transaction that rolls back: the server keeps it (prepared at
  // protocol level, not by SQL), and libpqxx's record of it stays true.
  constexpr PreparedSql kTriple{"test_triple", "select $1::int * 3"};
  auto failed = f.pool->transact([&](Transaction& tx) -> StoreResult<int> {
    CHECK(exec_prepared_here(tx, kTriple, 5)[0][0].as<int>() == 15);
    return tl::unexpected(StoreError{StoreErrc::invalid_argument, "roll back"});
  });
  CHECK_FALSE(failed);
  auto again = f.pool->transact([&](Transaction& tx) -> StoreResult<int> {
    return exec_prepared_here(tx, kTriple, 14)[0][0].as<int>();
  });
  REQUIRE(again);
  CHECK(*again == 42);
}

TEST_CASE(
    "exec_prepared_here: a statement is prepared again on its connection once its plan is due") {
  StoreFixture f(1);  // one connection: every transaction below runs on it
  set_replan_after_max(std::chrono::milliseconds(300));
  constexpr PreparedSql kQuadruple{"test_quadruple", "select $1::int * 4"};
  // When the server prepared it (pg_prepared_statements), and how many it holds by that name.
  const auto run_and_look = [&](int n) {
    auto seen = f.pool->transact([&](Transaction& tx) -> StoreResult<std::string> {
      CHECK(exec_prepared_here(tx, kQuadruple, n)[0][0].as<int>() == 4 * n);
      return tx
          .exec(
              "select count(*)::text || ' ' || (extract(epoch from max(prepare_time)) * "
              "1000000)::bigint::text"
              " from pg_prepared_statements"
              " where name = 'test_quadruple'")[0][0]
          .as<std::string>();
    });
    REQUIRE(seen);
    return *seen;
  };
  const auto first = run_and_look(1);
  CHECK(first.starts_with("1 "));
  CHECK(run_and_look(2) == first);  // within its interval: the same preparation
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  const auto second = run_and_look(3);
  CHECK(second.starts_with("1 "));  // deallocated before it was prepared again: one, not two
  CHECK(second > first);            // microseconds since 1970, 16 digits: text order is time order
  CHECK(run_and_look(4) == second);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  const auto third = run_and_look(5);
  CHECK(third > second);
  set_replan_after_max(std::chrono::milliseconds(60'000));
}

TEST_CASE("autocommit: each statement commits by itself; transact: all or nothing") {
  StoreFixture f(1);
  f.database.exec("create table autocommit_probe (n int not null)");
  // Two statements: two transactions in autocommit, one in transact.
  const auto xact_ids = [](Transaction& tx) -> StoreResult<bool> {
    const auto first = tx.exec("select pg_current_xact_id()::text")[0][0].as<std::string>();
    const auto second = tx.exec("select pg_current_xact_id()::text")[0][0].as<std::string>();
    return first == second;
  };
  auto separate = f.pool->autocommit(xact_ids);
  REQUIRE(separate);
  CHECK_FALSE(*separate);
  auto shared = f.pool->transact(xact_ids);
  REQUIRE(shared);
  CHECK(*shared);
  // An error returned after a write: transact rolls it back, autocommit has committed it.
  const auto write_then_fail = [](int n) {
    return [n](Transaction& tx) -> StoreResult<void> {
      tx.exec_params("insert into autocommit_probe (n) values ($1)", n);
      return tl::unexpected(StoreError{StoreErrc::invalid_argument, "after the write"});
    };
  };
  CHECK_FALSE(f.pool->transact(write_then_fail(1)));
  CHECK_FALSE(f.pool->autocommit(write_then_fail(2)));
  CHECK(f.database.query_value("select string_agg(n::text, ',') from autocommit_probe") == "2");
  // A failing statement is a typed error, as in transact, and the connection is usable after it.
  auto bad = f.pool->autocommit([](Transaction& tx) -> StoreResult<void> {
    tx.exec("insert into autocommit_probe (n) values (null)");
    return {};
  });
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code != StoreErrc::connection_failed);
  auto after = f.pool->autocommit(
      [](Transaction& tx) -> StoreResult<int> { return tx.exec("select 7")[0][0].as<int>(); });
  REQUIRE(after);
  CHECK(*after == 7);
}

TEST_CASE("the pool's connections run without JIT, whatever the server's default") {
  StoreFixture f(1);
  CHECK(f.database.query_value("show jit") ==
        "on");  // the test server's default: the setting is the pool's
  auto jit = f.pool->transact([](Transaction& tx) -> StoreResult<std::string> {
    return tx.exec("show jit")[0][0].as<std::string>();
  });
  REQUIRE(jit);
  CHECK(*jit == "off");
}

TEST_CASE("each event's schema version is stored beside it and read back by every reader") {
  StoreFixture f;
  auto first = make_event("A");  // the default: version 1
  auto second = make_event("B");
  second.schema_version = SchemaVersion{2};
  REQUIRE(
      f.store->append(StreamId{"s-1"}, ExpectedVersion::no_stream(), std::vector{first, second}));
  auto batched = make_event("C");
  batched.schema_version = SchemaVersion{3};
  auto batch = f.pool->transact([&](Transaction& tx) {
    return f.store->append_batch(
        tx, std::vector{StreamAppend{StreamId{"s-2"}, ExpectedVersion::no_stream(), {batched}}});
  });
  REQUIRE(batch);
  REQUIRE((*batch)[0]);

  CHECK(f.database.query_value(
            "select string_agg(type || schema_version, ',' order by type) from events") ==
        "A1,B2,C3");
  auto stream = f.store->read_stream(StreamId{"s-1"});
  REQUIRE(stream);
  REQUIRE(stream->size() == 2);
  CHECK((*stream)[0].schema_version == SchemaVersion{1});
  CHECK((*stream)[1].schema_version == SchemaVersion{2});
  wait_for_horizon(*f.pool);
  auto all = f.store->read_all_after(Checkpoint{}, 10);
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK(all->back().schema_version == SchemaVersion{3});
  auto by_id =
      f.pool->transact([&](Transaction& tx) { return f.store->read_event(tx, batched.event_id); });
  REQUIRE(by_id);
  REQUIRE(by_id->has_value());
  CHECK((*by_id)->schema_version == SchemaVersion{3});
  auto many = f.pool->transact([&](Transaction& tx) {
    return f.store->read_streams(tx, std::vector{StreamId{"s-1"}, StreamId{"s-2"}});
  });
  REQUIRE(many);
  REQUIRE(many->size() == 3);
  CHECK((*many)[1].schema_version == SchemaVersion{2});

  for (const std::int32_t out_of_range : {0, -1, kSchemaVersionMax + 1}) {
    auto bad = make_event("A");
    bad.schema_version = SchemaVersion{out_of_range};
    auto refused = f.store->append(StreamId{"s-3"}, ExpectedVersion::any(), std::vector{bad});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == StoreErrc::invalid_argument);
    CHECK(refused.error().message == "schema version of A must be 1..1000");
  }
  CHECK_THROWS(f.database.exec("update events set schema_version = 0"));  // the column's check
}

TEST_CASE("events stored before the schema version column existed read as version 1") {
  clearing::testing::TestDatabase database;
  DatabaseOptions options;
  options.url = database.url();
  ConnectionPool pool(options);
  const auto& all = eventstore_migrations();
  REQUIRE(all.back().id == "eventstore/0004_schema_version");
  REQUIRE(apply_migrations(pool, std::span(all).first(all.size() - 1)));
  // Written as the store wrote it before: no schema_version column at all.
  database.exec(
      "insert into event_streams values ('old-1', 1);"
      "insert into events (stream_id, version, event_id, type, data, metadata) values"
      " ('old-1', 1, '0b9e4c1e-8f1a-4c2b-9d3e-5f6a7b8c9d0e', 'A', '{}', '{}')");
  auto applied = apply_migrations(pool, all);
  REQUIRE(applied);
  CHECK(applied->applied == std::vector<std::string>{"eventstore/0004_schema_version"});
  EventStore store(pool);
  auto read = store.read_stream(StreamId{"old-1"});
  REQUIRE(read);
  REQUIRE(read->size() == 1);
  CHECK(read->front().schema_version == kFirstSchemaVersion);
}

TEST_CASE(
    "outbox hooks run after the commit of a transaction that wrote outbox rows, and only then") {
  StoreFixture f(2);
  f.database.exec("create table outbox_probe (n int not null)");
  std::vector<std::string> seen;  // at each call: the committed rows, read on another connection
  const auto hook = f.pool->add_outbox_hook([&] {
    seen.push_back(
        f.database.query_value("select coalesce(string_agg(n::text, ',' order by n), '') from "
                               "outbox_probe"));
  });
  const auto write = [](int n, bool outbox, bool fail) {
    return [=](Transaction& tx) -> StoreResult<void> {
      tx.exec_params("insert into outbox_probe (n) values ($1)", n);
      if (outbox) note_outbox_written();
      if (fail) return tl::unexpected(StoreError{StoreErrc::invalid_argument, "after the write"});
      return {};
    };
  };
  REQUIRE(f.pool->transact(write(1, true, false)));
  REQUIRE(seen == std::vector<std::string>{"1"});       // called once, the row committed before it
  CHECK_FALSE(f.pool->transact(write(2, true, true)));  // rolled back: no call
  REQUIRE(f.pool->transact(write(3, false, false)));    // no outbox row: no call
  CHECK(seen.size() == 1);
  // A transaction nested in another's work on the same thread keeps the outer one's note.
  REQUIRE(f.pool->transact([&](Transaction& tx) -> StoreResult<void> {
    note_outbox_written();
    tx.exec("insert into outbox_probe (n) values (4)");
    if (auto inner = f.pool->transact(write(5, false, false)); !inner) return inner;
    return {};
  }));
  CHECK(seen == std::vector<std::string>{"1", "1,3,4,5"});
  REQUIRE(f.pool->autocommit(write(6, true, false)));  // autocommit too
  CHECK(seen.size() == 3);
  f.pool->remove_outbox_hook(hook);
  REQUIRE(f.pool->transact(write(7, true, false)));
  CHECK(seen.size() == 3);
}

TEST_CASE("a protector's failure thrown inside a transaction comes back as its StoreError") {
  StoreFixture f;
  // As TransferService::encode_submit_request throws it when the vault cannot reach its keys.
  auto result = f.pool->transact([](Transaction& tx) -> StoreResult<int> {
    tx.exec("select 1");
    throw StoreFailure(StoreError{StoreErrc::connection_failed, "keys out of reach"});
  });
  REQUIRE_FALSE(result);
  CHECK(result.error().code == StoreErrc::connection_failed);
  CHECK(result.error().message == "keys out of reach");
  // The connection went back to the pool, usable.
  auto after = f.pool->transact(
      [](Transaction& tx) -> StoreResult<int> { return tx.exec("select 2")[0][0].as<int>(); });
  REQUIRE(after);
  CHECK(*after == 2);
}
