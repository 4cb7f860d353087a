// The decider helpers against a real store: load by folding, decide, append with the
// expected version, retry on conflict, rejections as values, idempotent event ids.

#include <doctest/doctest.h>

#include <thread>

#include "clearing/eventstore/aggregate.hpp"
#include "store_test_support.hpp"

using namespace clearing::eventstore;
using namespace clearing::eventstore::testing;

namespace {

// A counter with a ceiling: the smallest decider that can be rejected.
struct Counter {
  struct Incremented {
    int by;
  };
  using Event = Incremented;
  struct Increment {
    int by;
    int ceiling;
  };
  using Command = Increment;
  struct State {
    int value = 0;
  };
  struct Rejection {
    std::string reason;
  };

  static State initial_state() { return {}; }
  static State evolve(const State& s, const Event& e) { return {s.value + e.by}; }
  static tl::expected<std::vector<Event>, Rejection> decide(const Command& c, const State& s) {
    if (c.by == 0) return std::vector<Event>{};
    if (s.value + c.by > c.ceiling) return tl::unexpected(Rejection{"over the ceiling"});
    return std::vector<Event>{Incremented{c.by}};
  }
};
static_assert(Decider<Counter>);

// Incremented is at version 2 ({"by"}); version 1 named the field "n".
struct CounterCodec {
  static std::string_view event_type(const Counter::Event&) { return "Incremented"; }
  static SchemaVersion schema_version(const Counter::Event&) { return SchemaVersion{2}; }
  static nlohmann::json encode(const Counter::Event& e) { return {{"by", e.by}}; }
  static tl::expected<Counter::Event, DecodeError> decode(std::string_view type,
                                                          SchemaVersion version,
                                                          const nlohmann::json& j) {
    if (type != "Incremented")
      return tl::unexpected(DecodeError{DecodeErrc::unknown_type, "", "unknown event"});
    if (version != SchemaVersion{1} && version != SchemaVersion{2})
      return tl::unexpected(DecodeError{DecodeErrc::unknown_version, "", "unknown version"});
    const char* field = version == SchemaVersion{1} ? "n" : "by";
    if (!j.contains(field))
      return tl::unexpected(DecodeError{DecodeErrc::missing_field, field, "missing field"});
    return Counter::Incremented{j[field].get<int>()};
  }
};

using CounterAggregate = Aggregate<Counter, CounterCodec>;

// handle with an assumed state, in a transaction of its own.
CommandResult<Counter> handle_assuming(StoreFixture& f, CounterAggregate& counter,
                                       const StreamId& stream, Counter::Increment command,
                                       const CommandContext& context,
                                       const Loaded<Counter>& assumed) {
  CommandResult<Counter> out =
      tl::unexpected(CommandFailure<Counter>{StoreError{StoreErrc::internal, "not run"}});
  auto status = f.pool->transact([&](Transaction& tx) -> StoreResult<void> {
    out = counter.handle(tx, stream, command, context, assumed);
    return {};
  });
  REQUIRE(status);
  return out;
}

}  // namespace

TEST_CASE("handle folds, decides and appends; a rejection is a value and writes nothing") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId stream{"counter-1"};
  CommandContext context{"corr", "cause", nullptr, ""};

  auto first = counter.handle(stream, Counter::Increment{3, 10}, context);
  REQUIRE(first);
  CHECK(first->state.value == 3);
  CHECK(first->version == StreamVersion{1});
  CHECK(first->events.size() == 1);

  auto rejected = counter.handle(stream, Counter::Increment{8, 10}, context);
  REQUIRE_FALSE(rejected);
  REQUIRE(std::holds_alternative<Counter::Rejection>(rejected.error()));
  CHECK(std::get<Counter::Rejection>(rejected.error()).reason == "over the ceiling");

  auto nothing = counter.handle(stream, Counter::Increment{0, 10}, context);
  REQUIRE(nothing);
  CHECK(nothing->events.empty());
  CHECK(nothing->version == StreamVersion{1});

  auto loaded = f.pool->transact([&](Transaction& tx) { return counter.load(tx, stream); });
  REQUIRE(loaded);
  CHECK(loaded->state.value == 3);
  CHECK(loaded->version == StreamVersion{1});
}

TEST_CASE("concurrent commands on one aggregate are retried on conflict, none lost") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId stream{"counter-2"};
  constexpr int kThreads = 4, kEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        if (!counter.handle(stream, Counter::Increment{1, 1000}, {"corr", "cause", nullptr, ""}))
          ++failures;
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  auto loaded = f.pool->transact([&](Transaction& tx) { return counter.load(tx, stream); });
  REQUIRE(loaded);
  CHECK(loaded->state.value == kThreads * kEach);
}

TEST_CASE("a command with an idempotency seed writes the same event ids when retried") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId stream{"counter-3"};
  CommandContext context{
      "corr", "cause", {{"stream", "core.dk.payments.v1"}, {"seq", 7}}, "message-7"};

  auto first = counter.handle(stream, Counter::Increment{2, 10}, context);
  REQUIRE(first);
  REQUIRE(first->event_ids.size() == 1);
  // Replay the exact append a retry after an unknown commit would make.
  std::vector<EventData> again{
      {first->event_ids[0], "Incremented", {{"by", 2}}, {"corr", "cause", nullptr, nullptr}}};
  auto replay = f.store->append(stream, ExpectedVersion::no_stream(), again);
  REQUIRE(replay);
  CHECK(replay->already_appended);

  auto stored = f.store->read_stream(stream);
  REQUIRE(stored);
  REQUIRE(stored->size() == 1);
  CHECK(stored->front().metadata.source["seq"] == 7);
  CHECK(stored->front().metadata.correlation_id == "corr");
}

TEST_CASE("the codec's schema version is written, and each stored event decodes at its own") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId stream{"counter-versions"};
  auto old = make_event("Incremented", {{"n", 4}});  // as version 1 wrote it
  REQUIRE(f.store->append(stream, ExpectedVersion::no_stream(), std::vector{old}));
  auto done = counter.handle(stream, Counter::Increment{3, 100}, {"corr", "cause", nullptr, ""});
  REQUIRE(done);
  CHECK(done->state.value == 7);
  CHECK(f.database.query_value("select string_agg(schema_version::text, ',' order by version) "
                               "from events where stream_id = 'counter-versions'") == "1,2");
  auto loaded = f.pool->transact([&](Transaction& tx) { return counter.load(tx, stream); });
  REQUIRE(loaded);
  CHECK(loaded->state.value == 7);

  auto future = make_event("Incremented", {{"by", 1}});
  future.schema_version = SchemaVersion{3};  // written by a later release
  REQUIRE(f.store->append(stream, ExpectedVersion::any(), std::vector{future}));
  auto refused = f.pool->transact([&](Transaction& tx) { return counter.load(tx, stream); });
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == StoreErrc::corrupt_data);
  CHECK(refused.error().message ==
        "cannot decode Incremented at counter-versions@3: unknown version");
}

TEST_CASE("an event the codec cannot read is a typed corrupt_data error, not a crash") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  REQUIRE(f.store->append(StreamId{"counter-4"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("SomethingElse", {{"x", 1}})}));
  auto result =
      counter.handle(StreamId{"counter-4"}, Counter::Increment{1, 10}, {"c", "c", nullptr, ""});
  REQUIRE_FALSE(result);
  REQUIRE(std::holds_alternative<StoreError>(result.error()));
  CHECK(std::get<StoreError>(result.error()).code == StoreErrc::corrupt_data);
}

TEST_CASE(
    "read_streams reads several streams in one statement, in (stream id, version) order, at most "
    "limit") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  // Ids with the characters a text[] literal must quote.
  const std::vector<StreamId> streams{StreamId{"b-stream"}, StreamId{"a, \"quoted\" {stream}\\"},
                                      StreamId{"none"}};
  for (int i = 0; i < 3; ++i)
    REQUIRE(counter.handle(streams[0], Counter::Increment{1, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(counter.handle(streams[1], Counter::Increment{5, 100}, {"c", "c", nullptr, ""}));

  auto all = f.pool->transact([&](Transaction& tx) { return f.store->read_streams(tx, streams); });
  REQUIRE(all);
  REQUIRE(all->size() == 4);
  CHECK((*all)[0].stream_id == streams[1]);
  CHECK((*all)[1].stream_id == streams[0]);
  CHECK((*all)[1].version == StreamVersion{1});
  CHECK((*all)[3].version == StreamVersion{3});
  auto two =
      f.pool->transact([&](Transaction& tx) { return f.store->read_streams(tx, streams, 2); });
  REQUIRE(two);
  CHECK(two->size() == 2);
  auto none = f.pool->transact([&](Transaction& tx) { return f.store->read_streams(tx, {}); });
  REQUIRE(none);
  CHECK(none->empty());
  // A stream named twice is read once.
  const std::vector<StreamId> twice{streams[0], streams[0]};
  auto once = f.pool->transact([&](Transaction& tx) { return f.store->read_streams(tx, twice); });
  REQUIRE(once);
  CHECK(once->size() == 3);
}

TEST_CASE(
    "load_many folds several streams at once; an unknown stream is empty; one that does not decode "
    "is left out") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId a{"many-a"}, b{"many-b"}, empty{"many-empty"}, corrupt{"many-corrupt"};
  REQUIRE(counter.handle(a, Counter::Increment{2, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(counter.handle(a, Counter::Increment{3, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(counter.handle(b, Counter::Increment{7, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(f.store->append(corrupt, ExpectedVersion::no_stream(),
                          std::vector{make_event("SomethingElse", {{"x", 1}})}));

  const std::vector<StreamId> streams{a, b, empty, corrupt};
  auto loaded = f.pool->transact([&](Transaction& tx) { return counter.load_many(tx, streams); });
  REQUIRE(loaded);
  CHECK(loaded->size() == 3);
  CHECK(loaded->at(a).state.value == 5);
  CHECK(loaded->at(a).version == StreamVersion{2});
  CHECK(loaded->at(b).state.value == 7);
  CHECK(loaded->at(empty).version == StreamVersion{0});
  CHECK(loaded->count(corrupt) == 0);
}

TEST_CASE(
    "handle with an assumed state: used when it holds, and checked, never trusted, when the stream "
    "moved") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const StreamId stream{"assumed-1"};
  const CommandContext context{"c", "c", nullptr, ""};
  using Known = Loaded<Counter>;

  // A new stream: decided on the empty state, appended with no_stream.
  auto created = handle_assuming(f, counter, stream, Counter::Increment{3, 10}, context,
                                 Known{{0}, StreamVersion{0}});
  REQUIRE(created);
  CHECK(created->version == StreamVersion{1});
  CHECK(created->state.value == 3);

  // Stale (the stream is at 1 with value 3): the append conflicts; decided again on a load.
  auto appended = handle_assuming(f, counter, stream, Counter::Increment{4, 10}, context,
                                  Known{{0}, StreamVersion{0}});
  REQUIRE(appended);
  CHECK(appended->state.value == 7);
  CHECK(appended->version == StreamVersion{2});

  // Stale and rejected on the assumption (9 + 2 > 10): the stream moved, so decided on a
  // load (7 + 2 <= 10) instead of refused.
  auto accepted = handle_assuming(f, counter, stream, Counter::Increment{2, 10}, context,
                                  Known{{9}, StreamVersion{1}});
  REQUIRE(accepted);
  CHECK(accepted->state.value == 9);
  CHECK(accepted->version == StreamVersion{3});

  // Stale and "nothing to do": reported with the stream's real state and version.
  auto nothing = handle_assuming(f, counter, stream, Counter::Increment{0, 10}, context,
                                 Known{{0}, StreamVersion{0}});
  REQUIRE(nothing);
  CHECK(nothing->events.empty());
  CHECK(nothing->state.value == 9);
  CHECK(nothing->version == StreamVersion{3});

  // Holding: a rejection on a true assumption is the rejection.
  auto refused = handle_assuming(f, counter, stream, Counter::Increment{5, 10}, context,
                                 Known{{9}, StreamVersion{3}});
  REQUIRE_FALSE(refused);
  CHECK(std::holds_alternative<Counter::Rejection>(refused.error()));

  // The same seeded command again on the empty assumption: its ids are stored, so it is
  // decided again on a load, and the store's idempotent append writes nothing.
  const CommandContext seeded{"c", "c", nullptr, "message-1"};
  const StreamId other{"assumed-2"};
  auto once = handle_assuming(f, counter, other, Counter::Increment{1, 10}, seeded,
                              Known{{0}, StreamVersion{0}});
  REQUIRE(once);
  auto twice = handle_assuming(f, counter, other, Counter::Increment{1, 10}, seeded,
                               Known{{0}, StreamVersion{0}});
  REQUIRE(twice);
  CHECK(twice->events.empty());
  CHECK(twice->version == StreamVersion{1});
  auto stored = f.store->read_stream(other);
  REQUIRE(stored);
  CHECK(stored->size() == 1);
}

TEST_CASE(
    "handle_batch answers each command as handle would, with one append for the assumptions that "
    "hold") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  // Each command its own seed, as each message or answer has: the same seed and stream
  // derive the same event ids.
  auto seeded = [](int i) {
    return CommandContext{"corr", "cause", nullptr, "seed-" + std::to_string(i)};
  };
  // Streams as they stand: a at 1 (value 5), b at 2 (value 2), c and d absent.
  REQUIRE(counter.handle(StreamId{"a"}, Counter::Increment{5, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(counter.handle(StreamId{"b"}, Counter::Increment{1, 100}, {"c", "c", nullptr, ""}));
  REQUIRE(counter.handle(StreamId{"b"}, Counter::Increment{1, 100}, {"c", "c", nullptr, ""}));
  const Loaded<Counter> a_at_1{{5}, StreamVersion{1}};
  const Loaded<Counter> stale_b{{1}, StreamVersion{1}};  // b moved on since
  const Loaded<Counter> fresh{{0}, StreamVersion{0}};

  std::vector<BatchCommand<Counter>> commands{
      {StreamId{"a"}, {2, 100}, seeded(0), &a_at_1},   // 0: holds, batched
      {StreamId{"b"}, {3, 100}, seeded(1), &stale_b},  // 1: stale, decided again on a load
      {StreamId{"c"}, {4, 100}, seeded(2), &fresh},    // 2: new stream, batched
      {StreamId{"a"},
       {1, 100},
       seeded(3),
       &a_at_1},  // 3: a second command of a: after 0, on a load
      {StreamId{"d"},
       {7, 5},
       seeded(4),
       &fresh},  // 4: rejected on its assumption (checked: d is empty)
      {StreamId{"c"}, {0, 100}, seeded(5), nullptr},  // 5: nothing to do, no assumption
      {StreamId{"a"},
       {9, 100},
       seeded(6),
       &fresh},  // 6: a third command of a, on a wrong assumption
  };
  std::vector<CommandResult<Counter>> results;
  REQUIRE(f.pool->transact([&](Transaction& tx) -> StoreResult<void> {
    results = counter.handle_batch(tx, commands);
    return {};
  }));
  REQUIRE(results.size() == commands.size());
  REQUIRE(results[0]);
  CHECK(results[0]->state.value == 7);
  CHECK(results[0]->version == StreamVersion{2});
  REQUIRE(results[1]);
  CHECK(results[1]->state.value == 5);  // 2 + 3: decided on the real state, not the stale one
  CHECK(results[1]->version == StreamVersion{3});
  REQUIRE(results[2]);
  CHECK(results[2]->version == StreamVersion{1});
  REQUIRE(results[3]);
  CHECK(results[3]->state.value == 8);
  CHECK(results[3]->version == StreamVersion{3});
  REQUIRE_FALSE(results[4]);
  CHECK(std::holds_alternative<Counter::Rejection>(results[4].error()));
  REQUIRE(results[5]);
  CHECK(results[5]->events.empty());
  CHECK(results[5]->state.value == 4);
  REQUIRE(results[6]);
  CHECK(results[6]->state.value == 17);
  CHECK(results[6]->version == StreamVersion{4});

  auto value_of = [&](const char* stream) {
    return f.database.query_value(
        "select coalesce(sum((data->>'by')::int), 0) from events where stream_id = '" +
        std::string(stream) + "'");
  };
  CHECK(value_of("a") == "17");
  CHECK(value_of("b") == "5");
  CHECK(value_of("c") == "4");
  CHECK(value_of("d") == "0");

  // A batched event carries the id handle derives from the command's seed: the same
  // command handled alone again is a no-op.
  auto again = counter.handle(StreamId{"c"}, Counter::Increment{4, 100}, seeded(2));
  REQUIRE(again);
  CHECK(again->events.empty());
  CHECK(value_of("c") == "4");
}

TEST_CASE(
    "handle_batch with commands the store refuses as a batch falls back to one by one, each with "
    "its own error") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  const Loaded<Counter> fresh{{0}, StreamVersion{0}};
  const CommandContext plain{"corr", "cause", nullptr, ""};
  std::vector<BatchCommand<Counter>> commands{
      {StreamId{"fine"}, {1, 10}, plain, &fresh},
      {StreamId{std::string(kStreamIdBytesMax + 1, 'x')},
       {1, 10},
       plain,
       &fresh},  // too long a stream id
  };
  std::vector<CommandResult<Counter>> results;
  REQUIRE(f.pool->transact([&](Transaction& tx) -> StoreResult<void> {
    results = counter.handle_batch(tx, commands);
    return {};
  }));
  REQUIRE(results[0]);
  CHECK(results[0]->version == StreamVersion{1});
  REQUIRE_FALSE(results[1]);
  REQUIRE(std::holds_alternative<StoreError>(results[1].error()));
  CHECK(std::get<StoreError>(results[1].error()).code == StoreErrc::payload_too_large);
  CHECK(f.database.query_value("select count(*) from events") == "1");
}
