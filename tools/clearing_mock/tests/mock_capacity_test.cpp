// The capacity model (issue 20): a mainframe of `capacity` executors with a FIFO queue in
// front of it. The queue's rules on MockState without a network, then on the wire: the
// executors a burst of requests gets, the queue's overflow, and a stop with requests waiting.
// Timing is asserted only as lower bounds (sleeping cannot be faster).

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "clearing/clearing_mock/mock_server.hpp"
#include "raw_client.hpp"
#include "transfer_body.hpp"

using namespace clearing::clearing_mock;
using clearing::clearing_mock::testing::RawClient;
using clearing::clearing_mock::testing::transfer_body;
using nlohmann::json;

namespace {

constexpr int kPollTriesMax = 3'000;  // x 1 ms: a bound on each wait for the mock's state

FaultSettings capacity_model(int capacity, int service_ms, int queue_max = 10'000) {
  FaultSettings faults;
  faults.capacity = capacity;
  faults.service_ms = service_ms;
  faults.queue_max = queue_max;
  faults.service_jitter_permille = 0;
  return faults;
}

std::unique_ptr<MockServer> start(FaultSettings faults, int threads = 2) {
  MockOptions options;
  options.faults = faults;
  options.threads = threads;
  auto server = MockServer::start(options);
  REQUIRE(server);
  return std::move(*server);
}

// Waits until `ready` holds for the mock's stats; false after kPollTriesMax ms.
template <class Ready>
bool wait_for(MockServer& server, Ready ready) {
  for (int i = 0; i < kPollTriesMax; ++i) {
    if (ready(server.state().stats())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// `count` submits, each on its own connection, all sent before any answer is read; each
// must execute (201).
void submit_at_once(MockServer& server, int count) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < count; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    const auto key = "T-" + std::to_string(i);
    clients.back()->send("POST", "/v1/transfers", transfer_body(key), key);
  }
  for (auto& client : clients) {
    const auto reply = client->read();
    REQUIRE(reply);
    CHECK(reply->status == 201);
  }
}

}  // namespace

TEST_CASE("the queue is first come, first served: a freed executor goes to the longest waiter") {
  MockOptions options;
  options.faults = capacity_model(2, 100);
  MockState state(options);
  std::vector<int> woken;
  auto waiter = [&woken](int n) { return [&woken, n] { woken.push_back(n); }; };
  CHECK(state.admit(waiter(1)).kind == Admission::Kind::execute);
  CHECK(state.admit(waiter(2)).kind == Admission::Kind::execute);
  const auto third = state.admit(waiter(3));
  const auto fourth = state.admit(waiter(4));
  CHECK(third.kind == Admission::Kind::wait);
  CHECK(fourth.kind == Admission::Kind::wait);
  CHECK(woken.empty());
  CHECK(state.stats().executing_now == 2);
  CHECK(state.stats().queued_now == 2);

  state.finish_execution();
  CHECK(woken == std::vector<int>{3});
  // A newcomer does not overtake the one still waiting, even though nobody else queues.
  state.finish_execution();
  CHECK(woken == std::vector<int>{3, 4});
  CHECK(state.stats().queued_now == 0);
  CHECK(state.stats().executing_now == 2);
  CHECK_FALSE(state.leave_queue(third.ticket));  // it holds an executor now
  state.finish_execution();
  state.finish_execution();
  const auto stats = state.stats();
  CHECK(stats.executing_now == 0);
  CHECK(stats.executing_peak == 2);
  CHECK(stats.queued_peak == 2);
  CHECK(stats.overloaded_answers == 0);
}

TEST_CASE(
    "a full queue refuses; a waiter that leaves is no longer woken; capacity 0 never queues") {
  MockOptions options;
  options.faults = capacity_model(1, 100, 1);
  MockState state(options);
  int woken = 0;
  CHECK(state.admit([&] { ++woken; }).kind == Admission::Kind::execute);
  const auto waiting = state.admit([&] { ++woken; });
  CHECK(waiting.kind == Admission::Kind::wait);
  CHECK(state.admit([&] { ++woken; }).kind == Admission::Kind::overloaded);
  CHECK(state.stats().overloaded_answers == 1);
  const auto refused = state.overloaded_answer();
  CHECK(refused.status == 503);
  CHECK(json::parse(refused.body)["error"]["code"] == "OVERLOADED");
  REQUIRE(refused.headers.size() == 1);
  CHECK(refused.headers[0] == std::pair<std::string, std::string>{"Retry-After", "1"});

  CHECK(state.leave_queue(waiting.ticket));
  CHECK_FALSE(state.leave_queue(waiting.ticket));
  state.finish_execution();
  CHECK(woken == 0);
  CHECK(state.stats().executing_now == 0);

  MockState unlimited(MockOptions{});
  for (int i = 0; i < 50; ++i) CHECK(unlimited.admit([] {}).kind == Admission::Kind::execute);
  CHECK(unlimited.stats().queued_peak == 0);
  CHECK(unlimited.stats().executing_peak == 50);
  CHECK(unlimited.execution_ms() == 0);  // service_ms 0: the model adds no time
}

TEST_CASE("execution time grows with the queue by thrash_permille, and jitters by the seed") {
  MockOptions options;
  options.faults = capacity_model(2, 100);
  options.faults.thrash_permille = 1'000;
  MockState state(options);
  CHECK(state.execution_ms() == 100);  // nobody waits
  state.admit([] {});
  state.admit([] {});
  state.admit([] {});
  CHECK(state.execution_ms() == 150);  // 100 * (1 + 1.0 * 1/2)
  state.admit([] {});
  CHECK(state.execution_ms() == 200);  // 100 * (1 + 1.0 * 2/2)

  options.faults = capacity_model(0, 100);
  options.faults.service_jitter_permille = 100;
  MockState first(options);
  MockState second(options);
  std::vector<int> drawn;
  for (int i = 0; i < 200; ++i) {
    const int ms = first.execution_ms();
    CHECK(ms >= 90);
    CHECK(ms <= 110);
    CHECK(second.execution_ms() == ms);  // one seed, one sequence
    drawn.push_back(ms);
  }
  CHECK(*std::min_element(drawn.begin(), drawn.end()) < 95);
  CHECK(*std::max_element(drawn.begin(), drawn.end()) > 105);
}

TEST_CASE("the capacity settings are faults JSON keys; bad values are refused with a message") {
  MockState state(MockOptions{});
  const auto defaults = json::parse(faults_to_json(state.faults()));
  CHECK(defaults["capacity"] == 0);
  CHECK(defaults["service_ms"] == 0);
  CHECK(defaults["queue_max"] == 10'000);
  CHECK(defaults["thrash_permille"] == 0);
  CHECK(defaults["service_jitter_permille"] == 100);

  const auto set = state.put_faults(
      R"({"capacity": 8, "service_ms": 40, "queue_max": 100, "thrash_permille": 500})");
  CHECK(set.status == 200);
  CHECK(state.faults().capacity == 8);
  CHECK(state.faults().service_ms == 40);
  CHECK(state.faults().queue_max == 100);
  CHECK(state.faults().thrash_permille == 500);

  const std::pair<const char*, const char*> refused[] = {
      {R"({"capacity": -1})", "fault setting capacity must be an integer in [0, 100000]"},
      {R"({"capacity": "2"})", "fault setting capacity must be an integer in [0, 100000]"},
      {R"({"service_ms": 1.5})", "fault setting service_ms must be an integer in [0, 600000]"},
      {R"({"queue_max": 2000000})", "fault setting queue_max must be an integer in [0, 1000000]"},
      {R"({"thrash_permille": -5})",
       "fault setting thrash_permille must be an integer in [0, 100000]"},
      {R"({"service_jitter_permille": 1001})",
       "fault setting service_jitter_permille must be an integer in [0, 1000]"},
  };
  for (const auto& [body, message] : refused) {
    CAPTURE(body);
    const auto answer = state.put_faults(body);
    CHECK(answer.status == 400);
    CHECK(json::parse(answer.body)["error"]["message"] == message);
  }
  CHECK(state.faults().capacity == 8);  // unchanged by the refusals
  CHECK(state.faults().queue_max == 100);

  MockOptions options;
  options.faults.capacity = -1;
  CHECK_FALSE(validate_options(options));
}

TEST_CASE("six submits at once on capacity 2 run two at a time, in three rounds") {
  auto server = start(capacity_model(2, 100));
  const auto began = std::chrono::steady_clock::now();
  submit_at_once(*server, 6);
  const auto elapsed = std::chrono::steady_clock::now() - began;
  CHECK(elapsed >= std::chrono::milliseconds(290));  // 3 rounds of 100 ms, no jitter
  const auto stats = server->state().stats();
  CHECK(stats.executing_peak == 2);
  CHECK(stats.queued_peak >= 1);
  CHECK(stats.queued_peak <= 4);
  CHECK(stats.executions_total == 6);
  CHECK(stats.executing_now == 0);
  CHECK(stats.queued_now == 0);
  CHECK(stats.overloaded_answers == 0);
  const auto listed = json::parse(server->state().stats_json());
  CHECK(listed["executing_peak"] == 2);
  CHECK(listed["overloaded_answers"] == 0);
}

TEST_CASE("beyond queue_max: 503 OVERLOADED with Retry-After, and nothing executed") {
  auto server = start(capacity_model(1, 500, 1));
  RawClient first(server->port());
  RawClient second(server->port());
  RawClient third(server->port());
  first.send("POST", "/v1/transfers", transfer_body("T-1"), "T-1");
  REQUIRE(wait_for(*server, [](const MockStats& s) { return s.executing_now == 1; }));
  second.send("POST", "/v1/transfers", transfer_body("T-2"), "T-2");
  REQUIRE(wait_for(*server, [](const MockStats& s) { return s.queued_now == 1; }));
  third.send("POST", "/v1/transfers", transfer_body("T-3"), "T-3");
  const auto refused = third.read();
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->head.find("\r\nRetry-After: 1") != std::string::npos);
  CHECK(json::parse(refused->body)["error"]["code"] == "OVERLOADED");
  CHECK(server->state().stats().overloaded_answers == 1);

  const auto one = first.read();
  const auto two = second.read();
  REQUIRE(one);
  REQUIRE(two);
  CHECK(one->status == 201);
  CHECK(two->status == 201);
  third.send("GET", "/v1/transfers/T-3");
  const auto inquiry = third.read();
  REQUIRE(inquiry);
  CHECK(inquiry->status == 404);
  const auto ledger = server->state().ledger();
  REQUIRE(ledger.size() == 2);
  CHECK(ledger[0].reference == "T-1");
  CHECK(ledger[1].reference == "T-2");
  CHECK(server->state().stats().executions_total == 2);
}

TEST_CASE("capacity 0 queues nothing: twelve submits at once all execute at once") {
  auto server = start(FaultSettings{});
  submit_at_once(*server, 12);
  const auto stats = server->state().stats();
  CHECK(stats.executions_total == 12);
  CHECK(stats.queued_peak == 0);
  CHECK(stats.overloaded_answers == 0);
}

TEST_CASE("a stop with requests executing and waiting closes them and returns") {
  auto server = start(capacity_model(1, 60'000));
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RawClient>(server->port()));
    clients.back()->send("GET", "/v1/transfers/T-" + std::to_string(i));
  }
  REQUIRE(wait_for(*server, [](const MockStats& s) { return s.queued_now == 2; }));
  server->stop();  // would wait a minute for the executing one, and forever for the others
  for (auto& client : clients) CHECK_FALSE(client->read());
  CHECK(server->state().stats().queued_now == 0);
}
