// Crash: the dispatcher runs in a child process that is SIGKILLed at random moments
// while clearing calls are in flight, then restarted. No transfer may be executed twice,
// and every transfer must still finish with the outcome the ledger shows.

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <random>
#include <thread>

#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/support/wait.hpp"

using namespace clearing;
using namespace clearing::testing;

namespace {

pid_t spawn_worker(const std::string& database_url, const std::string& clearing_url,
                   int generation) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::string owner = "worker-" + std::to_string(generation);
    execl(SAGA_WORKER_PATH, "saga_worker", database_url.c_str(), clearing_url.c_str(),
          owner.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE(
    "SIGKILL while requests are in flight, restart: no double execution, every transfer finishes") {
  SagaDatabase db;
  clearing_mock::MockOptions mock_options;
  mock_options.seed = 4242;
  mock_options.threads = 2;
  mock_options.faults.latency_ms = 40;  // calls are in flight most of the time
  mock_options.faults.timeout_after_execute = 0.05;
  mock_options.faults.close_after_execute = 0.05;
  mock_options.faults.http_504 = 0.05;
  mock_options.faults.hold_ms = 400;
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE(mock);

  base::SystemClock clock;
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) {
    auto command = make_initiate(i, RequestKind::valid, clock.now());
    ids.push_back(command.request.transfer_id);
    REQUIRE(db.transfers->execute(
        command, {command.correlation_id, "core-" + std::to_string(i), nullptr, ""}));
  }

  std::mt19937 rng(99);
  std::uniform_int_distribution<int> run_ms(80, 500);
  constexpr int kKills = 8;
  int kills = 0;
  for (int generation = 0; generation < kKills; ++generation) {
    const pid_t pid = spawn_worker(db.database.url(), (*mock)->base_url(), generation);
    std::this_thread::sleep_for(std::chrono::milliseconds(run_ms(rng)));
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    ++kills;
  }
  const int finished_before_last = db.terminal_count();

  const pid_t last = spawn_worker(db.database.url(), (*mock)->base_url(), kKills);
  // The worker's exit below is the assertion: it runs until all 400 finish or two minutes pass.
  (void)support::wait_until([&] { return db.terminal_count() >= 400; }, std::chrono::seconds(120));
  REQUIRE(kill(last, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(last, &status, 0) == last);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  for (const auto& violation : reconciliation.violations) FAIL_CHECK(violation);
  CHECK(reconciliation.executions_max == 1);
  CHECK(reconciliation.succeeded == 400);
  CHECK(kills == kKills);
  // The kills interrupted work: some transfers were still open when the last worker started.
  CHECK(finished_before_last < 400);
  const auto stats = (*mock)->state().stats();
  MESSAGE("kills=" << kills << " finished before the last restart=" << finished_before_last
                   << " submits=" << stats.requests.at("submit") << " replays=" << stats.replays
                   << " executions=" << stats.executions_total);
}
