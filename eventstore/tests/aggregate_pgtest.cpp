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
  struct Incremented { int by; };
  using Event = Incremented;
  struct Increment { int by; int ceiling; };
  using Command = Increment;
  struct State { int value = 0; };
  struct Rejection { std::string reason; };

  static State initial_state() { return {}; }
  static State evolve(const State& s, const Event& e) { return {s.value + e.by}; }
  static tl::expected<std::vector<Event>, Rejection> decide(const Command& c, const State& s) {
    if (c.by == 0) return std::vector<Event>{};
    if (s.value + c.by > c.ceiling) return tl::unexpected(Rejection{"over the ceiling"});
    return std::vector<Event>{Incremented{c.by}};
  }
};
static_assert(Decider<Counter>);

struct CounterCodec {
  static std::string_view event_type(const Counter::Event&) { return "Incremented"; }
  static nlohmann::json encode(const Counter::Event& e) { return {{"by", e.by}}; }
  static tl::expected<Counter::Event, std::string> decode(std::string_view type, const nlohmann::json& j) {
    if (type != "Incremented" || !j.contains("by")) return tl::unexpected(std::string("unknown event"));
    return Counter::Incremented{j["by"].get<int>()};
  }
};

using CounterAggregate = Aggregate<Counter, CounterCodec>;

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
        if (!counter.handle(stream, Counter::Increment{1, 1000}, {"corr", "cause", nullptr, ""})) ++failures;
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
  CommandContext context{"corr", "cause", {{"stream", "core.dk.payments.v1"}, {"seq", 7}}, "message-7"};

  auto first = counter.handle(stream, Counter::Increment{2, 10}, context);
  REQUIRE(first);
  REQUIRE(first->event_ids.size() == 1);
  // Replay the exact append a retry after an unknown commit would make.
  std::vector<EventData> again{{first->event_ids[0], "Incremented", {{"by", 2}}, {"corr", "cause", nullptr, nullptr}}};
  auto replay = f.store->append(stream, ExpectedVersion::no_stream(), again);
  REQUIRE(replay);
  CHECK(replay->already_appended);

  auto stored = f.store->read_stream(stream);
  REQUIRE(stored);
  REQUIRE(stored->size() == 1);
  CHECK(stored->front().metadata.source["seq"] == 7);
  CHECK(stored->front().metadata.correlation_id == "corr");
}

TEST_CASE("an event the codec cannot read is a typed corrupt_data error, not a crash") {
  StoreFixture f;
  CounterAggregate counter(*f.store);
  REQUIRE(f.store->append(StreamId{"counter-4"}, ExpectedVersion::no_stream(),
                          std::vector{make_event("SomethingElse", {{"x", 1}})}));
  auto result = counter.handle(StreamId{"counter-4"}, Counter::Increment{1, 10}, {"c", "c", nullptr, ""});
  REQUIRE_FALSE(result);
  REQUIRE(std::holds_alternative<StoreError>(result.error()));
  CHECK(std::get<StoreError>(result.error()).code == StoreErrc::corrupt_data);
}
