// Subscriptions against a real PostgreSQL server: the checkpoint commits with the
// handler's writes, restart resumes, a failing handler stalls and recovers by itself,
// live wake-up, two instances of one subscription never both handle an event.

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "clearing/base/logging.hpp"
#include "clearing/eventstore/subscription.hpp"
#include "store_test_support.hpp"

using namespace clearing::eventstore;
using namespace clearing::eventstore::testing;

namespace {

// Appends events n = from .. to-1, then waits until a poll can see them all.
void append_numbered(EventStore& store, int from, int to) {
  for (int i = from; i < to; ++i)
    REQUIRE(store.append(StreamId{"s-" + std::to_string(i % 3)}, ExpectedVersion::any(),
                         std::vector{make_event("Numbered", {{"n", i}})}));
  wait_for_horizon(store.pool());
}

// The handler's own write: a row per handled event, in the handler's transaction.
HandlerResult record(Transaction& tx, const RecordedEvent& e) {
  tx.exec_params("insert into side_effects (n) values ($1)", e.data["n"].get<int>());
  return {};
}

template <class Predicate>
bool eventually(Predicate p, std::chrono::milliseconds within = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return p();
}

// Options for a subscription that meets a failing handler: it polls rarely and retries fast,
// its backoff growing from 5 ms to `retry_backoff_max`.
SubscriptionOptions retrying_fast(std::string name, std::size_t batch_size,
                                  std::chrono::milliseconds retry_backoff_max) {
  return {.name = std::move(name),
          .batch_size = batch_size,
          .poll_interval = std::chrono::milliseconds(100),
          .retry_backoff_initial = std::chrono::milliseconds(5),
          .retry_backoff_max = retry_backoff_max};
}

// A handler that refuses event n = 1 with `refusal` while `broken` holds, and records every
// event it handles.
EventHandler refusing_event_1_while(const std::atomic<bool>& broken, std::string refusal) {
  return [&broken, refusal](Transaction& tx, const RecordedEvent& e) -> HandlerResult {
    if (broken && e.data["n"] == 1) return tl::unexpected(refusal);
    return record(tx, e);
  };
}

struct SubscriptionFixture : StoreFixture {
  SubscriptionFixture() { database.exec("create table side_effects (n int not null)"); }
  std::string count() const { return database.query_value("select count(*) from side_effects"); }
  std::string distinct() const {
    return database.query_value("select count(distinct n) from side_effects");
  }
};

}  // namespace

TEST_CASE(
    "a handler that throws after its write leaves neither the write nor the checkpoint, and the "
    "event is handled again") {
  SubscriptionFixture f;
  append_numbered(*f.store, 0, 10);
  int calls_for_event_5 = 0;
  Subscription sub(*f.store, {.name = "crashy", .batch_size = 100},
                   [&](Transaction& tx, const RecordedEvent& e) -> HandlerResult {
                     auto written = record(tx, e);  // the side write happens first
                     if (e.data["n"] == 5 && ++calls_for_event_5 == 1)
                       throw std::runtime_error("killed mid-batch");
                     return written;
                   });

  auto first = sub.poll_once();
  REQUIRE_FALSE(first);
  CHECK(first.error().code == StoreErrc::handler_failed);
  CHECK(first.error().message.find("killed mid-batch") != std::string::npos);
  // The whole batch rolled back: no side write (not even for events 0..5), no checkpoint.
  CHECK(f.count() == "0");
  auto checkpoint = Subscription::stored_checkpoint(*f.pool, "crashy");
  REQUIRE(checkpoint);
  CHECK(*checkpoint == Checkpoint{});

  // Retrying goes one event per transaction through the failed batch, so it handles
  // event 5 again (this time it passes) and everything once.
  for (int i = 0; i < 20 && f.count() != "10"; ++i) REQUIRE(sub.poll_once());
  CHECK(calls_for_event_5 == 2);
  CHECK(f.count() == "10");
  CHECK(f.distinct() == "10");
  CHECK(sub.poll_once().value() == 0);
}

TEST_CASE("a new subscription with the same name resumes after its checkpoint") {
  SubscriptionFixture f;
  append_numbered(*f.store, 0, 7);
  {
    Subscription first(*f.store, {.name = "resumable"}, record);
    REQUIRE(first.poll_once().value() == 7);
  }
  append_numbered(*f.store, 7, 10);
  std::vector<int> seen;
  Subscription second(*f.store, {.name = "resumable"},
                      [&](Transaction& tx, const RecordedEvent& e) {
                        seen.push_back(e.data["n"].get<int>());
                        return record(tx, e);
                      });
  REQUIRE(second.poll_once().value() == 3);
  CHECK(seen == std::vector<int>{7, 8, 9});
  CHECK(f.count() == "10");

  // Another name starts from the beginning.
  Subscription other(*f.store, {.name = "other"},
                     [](Transaction&, const RecordedEvent&) { return HandlerResult{}; });
  CHECK(other.poll_once().value() == 10);
}

TEST_CASE(
    "a failing handler stalls the subscription with its error, and it goes on by itself once the "
    "cause is gone") {
  SubscriptionFixture f;
  append_numbered(*f.store, 0, 3);
  std::atomic<bool> broken{true};
  Subscription sub(*f.store, retrying_fast("stalls", 10, std::chrono::milliseconds(40)),
                   refusing_event_1_while(broken, "downstream unavailable"));
  sub.start();
  REQUIRE(eventually([&] {
    return sub.status().state == SubscriptionState::stalled && sub.status().failures >= 3;
  }));
  const auto stalled = sub.status();
  CHECK(stalled.last_error.find("downstream unavailable") != std::string::npos);
  CHECK(f.count() == "1");  // event 0 committed on its own, event 1 never skipped
  CHECK(stalled.events_handled == 1);

  broken = false;
  REQUIRE(eventually([&] { return f.count() == "3"; }));
  REQUIRE(eventually([&] { return sub.status().state == SubscriptionState::live; }));
  CHECK(sub.status().last_error.empty());

  // Live: a new event arrives through the notification.
  append_numbered(*f.store, 3, 4);
  REQUIRE(eventually([&] { return f.count() == "4"; }));
  sub.stop();
  CHECK(sub.status().state == SubscriptionState::stopped);
  CHECK(f.distinct() == "4");
}

TEST_CASE(
    "a stall is logged once when it starts and once when it ends, with the event and the class of "
    "the error, not its text") {
  std::ostringstream lines;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
  sink->set_pattern("%l %v");
  auto logger = clearing::base::module_logger("subscription");
  logger->sinks().push_back(sink);
  struct Unhook {
    std::shared_ptr<spdlog::logger> logger;
    ~Unhook() { logger->sinks().pop_back(); }
  } unhook{logger};

  SubscriptionFixture f;
  append_numbered(*f.store, 0, 3);
  std::atomic<bool> broken{true};
  Subscription sub(*f.store, retrying_fast("stall-log", 1, std::chrono::milliseconds(20)),
                   refusing_event_1_while(broken, "account DK5000400440116243"));
  sub.start();
  REQUIRE(eventually([&] { return sub.status().failures >= 5; }));
  broken = false;
  REQUIRE(eventually([&] { return f.count() == "3"; }));
  sub.stop();
  sink->flush();
  const auto log = lines.str();
  const auto count = [&log](const std::string& text) {
    std::size_t n = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  };
  // Five failures or more, one line: the stalled subscription, the error's class and the
  // event it is stuck on (its type and stream); then one line when it moves again.
  CHECK_MESSAGE(
      count("warning subscription stalled name=stall-log cause=handler_failed event_id=") == 1,
      log);
  CHECK(count("type=Numbered stream=s-1 failures=1\n") == 1);
  CHECK(count("info subscription moving again name=stall-log failures=") == 1);
  CHECK(log.find("subscription stalled") < log.find("subscription moving again"));
  CHECK(log.find("DK5000400440116243") == std::string::npos);
}

TEST_CASE("without notifications, polling still delivers") {
  SubscriptionFixture f;
  // Appends through a pool that never notifies: only polling can find them.
  DatabaseOptions silent;
  silent.url = f.database.url();
  silent.notify_after_commit = false;
  ConnectionPool silent_pool(silent);
  EventStore silent_store(silent_pool);
  Subscription sub(*f.store, {.name = "poller", .poll_interval = std::chrono::milliseconds(50)},
                   record);
  sub.start();
  append_numbered(silent_store, 0, 5);
  REQUIRE(eventually([&] { return f.count() == "5"; }));
  sub.stop();
}

TEST_CASE("two instances of one subscription (two processes) never handle an event twice") {
  SubscriptionFixture f;
  auto options = SubscriptionOptions{
      .name = "shared", .batch_size = 7, .poll_interval = std::chrono::milliseconds(50)};
  Subscription a(*f.store, options, record);
  Subscription b(*f.store, options, record);
  a.start();
  b.start();
  std::thread writer([&] { append_numbered(*f.store, 0, 300); });
  writer.join();
  REQUIRE(eventually([&] { return f.count() == "300"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  a.stop();
  b.stop();
  CHECK(f.count() == "300");
  CHECK(f.distinct() == "300");
  CHECK(a.status().events_handled + b.status().events_handled == 300);
}

TEST_CASE("stop is graceful and prompt while waiting for events") {
  SubscriptionFixture f;
  Subscription sub(*f.store, {.name = "idle", .poll_interval = std::chrono::seconds(30)}, record);
  sub.start();
  REQUIRE(eventually([&] { return sub.status().state == SubscriptionState::live; }));
  const auto before = std::chrono::steady_clock::now();
  sub.stop();
  // Waiting is sliced, so stop does not wait for the 30 s poll interval.
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(10));
  CHECK(sub.status().state == SubscriptionState::stopped);
}

TEST_CASE(
    "a batch handler gets each batch whole, in commit order; after a failure it gets one event per "
    "call") {
  SubscriptionFixture f;
  append_numbered(*f.store, 0, 10);
  std::vector<std::size_t> sizes;
  std::vector<int> order;
  bool fail_on_7 = true;
  Subscription sub(
      *f.store, {.name = "batched", .batch_size = 100},
      BatchHandler([&](Transaction& tx, std::span<const RecordedEvent> events) -> HandlerResult {
        sizes.push_back(events.size());
        for (const auto& e : events) {
          if (e.data["n"] == 7 && fail_on_7) return tl::unexpected(std::string("seven refused"));
          order.push_back(e.data["n"].get<int>());
          if (auto ok = record(tx, e); !ok) return ok;
        }
        return {};
      }));
  auto failed = sub.poll_once();
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == StoreErrc::handler_failed);
  CHECK(failed.error().message == "handler failed on a batch of 10 events: seven refused");
  CHECK(f.count() == "0");  // the batch rolled back whole
  CHECK(sizes == std::vector<std::size_t>{10});

  // One per call now: 0..6 commit, then 7 fails alone and is named.
  order.clear();
  for (int i = 0; i < 7; ++i) CHECK(sub.poll_once().value() == 1);
  auto named = sub.poll_once();
  REQUIRE_FALSE(named);
  CHECK(named.error().message.find("handler failed on event ") == 0);
  CHECK(named.error().message.find("(Numbered in s-1): seven refused") != std::string::npos);
  CHECK(f.count() == "7");

  // The cause gone, the rest follows (the careful run ends at the failed batch's end).
  fail_on_7 = false;
  for (int i = 0; i < 20 && f.count() != "10"; ++i) REQUIRE(sub.poll_once());
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(f.count() == "10");
  CHECK(f.distinct() == "10");
}

TEST_CASE("a per-event handler run as a batch names the event that failed") {
  SubscriptionFixture f;
  append_numbered(*f.store, 0, 4);
  Subscription sub(*f.store, {.name = "per-event"},
                   [&](Transaction& tx, const RecordedEvent& e) -> HandlerResult {
                     if (e.data["n"] == 2) return tl::unexpected(std::string("two refused"));
                     return record(tx, e);
                   });
  auto failed = sub.poll_once();
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.find("handler failed on a batch of 4 events: event ") == 0);
  CHECK(failed.error().message.find("(Numbered in s-2): two refused") != std::string::npos);
  CHECK(f.count() == "0");
}
