// Known maintenance windows of the clearing (issue 23, item 3): the dispatcher, the clearing
// client and the clearing mock over a real PostgreSQL, on an injected clock. A submission due
// inside a window is not sent: its transfer records one SubmissionDeferred naming the window
// and its end, the mock sees no call during the window, and the transfer succeeds once the
// window is over.

#include <doctest/doctest.h>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/clearing_mock/mock_server.hpp"

using namespace clearing;
using namespace clearing::testing;

namespace {

std::unique_ptr<clearing_client::ClearingClient> make_client(const std::string& url) {
  clearing_client::ClientOptions options;
  options.base_url = url;
  options.bearer_token = "mock-token";
  options.request_timeout_ms = 2'000;
  options.connect_timeout_ms = 1'000;
  auto client = clearing_client::ClearingClient::start(options);
  REQUIRE_MESSAGE(client, (client ? "" : client.error().message));
  return std::move(*client);
}

std::int64_t to_ms(base::Timestamp t) { return t.time_since_epoch().count(); }

}  // namespace

TEST_CASE(
    "a submission inside a maintenance window is deferred to its end: one SubmissionDeferred, "
    "no call at the clearing during the window, success after it") {
  SagaDatabase db;
  // 2026-12-24T20:30:00Z: inside the dated window of the example config.
  base::Timestamp start{};
  REQUIRE(base::parse_timestamp("2026-12-24T20:30:00Z", start));
  base::ManualClock clock(start);
  base::Timestamp window_start{}, window_end{};
  REQUIRE(base::parse_timestamp("2026-12-24T20:00:00Z", window_start));
  REQUIRE(base::parse_timestamp("2026-12-25T02:00:00Z", window_end));

  auto mock = clearing_mock::MockServer::start(clearing_mock::MockOptions{});
  REQUIRE_MESSAGE(mock, (mock ? "" : mock.error()));
  auto client = make_client((*mock)->base_url());

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto command = make_initiate(i, RequestKind::valid, clock.now());
    REQUIRE(db.transfers->execute(
        command, {command.correlation_id, "core-" + std::to_string(i), nullptr, ""}));
    ids.push_back(command.request.transfer_id);
  }

  adapter::DispatcherOptions options;
  options.owner = "maintenance";
  options.policy = fast_policy();
  options.maintenance.dated.push_back({.start = window_start, .end = window_end});
  // A weekly window that does not hold the test's times: it must change nothing.
  options.maintenance.weekly.push_back({.weekday = std::chrono::Monday,
                                        .start = std::chrono::hours{1},
                                        .end = std::chrono::hours{3}});
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, options);

  // Inside the window: claimed, deferred, not called.
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 0);
  CHECK(dispatcher.stats().calls_deferred == 3);
  CHECK((*mock)->state().stats().requests_total == 0);
  CHECK((*mock)->state().ledger().empty());
  const std::string end_ms = std::to_string(to_ms(window_end));
  for (const auto& id : ids) {
    CAPTURE(id);
    CHECK(transfer_event_types(db, id) == "TransferInitiated,SubmissionDeferred");
    const auto deferred = transfer_events(db, id).back();
    CHECK(deferred.data.value("until", "") == "2026-12-25T02:00:00.000Z");
    CHECK(deferred.data.value("window", "") == "2026-12-24T20:00:00.000Z/2026-12-25T02:00:00.000Z");
    CHECK(deferred.data.value("action", "") == "submit");
    CHECK(deferred.data.value("attempt", 0) == 1);
    // The work row waits for the window's end, unleased, same attempt.
    CHECK(db.database.query_value(
              "select due_at_ms::text || '/' || attempt || '/' || coalesce(lease_owner, '-') "
              "from transfer_work where transfer_id = '" +
              id + "'") == end_ms + "/1/-");
    CHECK(db.database.query_value("select status from transfer_status where transfer_id = '" + id +
                                  "'") == "initiated");
  }
  // `trace` shows it.
  auto trace = adapter::build_trace(*db.pool, *db.transfers, ids[0]);
  REQUIRE_MESSAGE(trace, (trace ? "" : trace.error()));
  const auto text = adapter::render_trace(*trace);
  CHECK(text.find("SubmissionDeferred") != std::string::npos);
  CHECK(text.find("submit attempt 1 deferred until 2026-12-25T02:00:00.000Z: maintenance window "
                  "2026-12-24T20:00:00.000Z/2026-12-25T02:00:00.000Z") != std::string::npos);

  // Later in the window: nothing is due. A row made due again by hand (as a lost update of
  // the row would) is claimed, not deferred a second time, and not called either.
  clock.advance(std::chrono::hours{1});
  REQUIRE(dispatcher.run_once());
  db.database.exec("update transfer_work set due_at_ms = " + std::to_string(to_ms(clock.now())) +
                   " where transfer_id = '" + ids[1] + "'");
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 0);
  CHECK(dispatcher.stats().calls_deferred == 3);
  CHECK((*mock)->state().stats().requests_total == 0);
  CHECK(transfer_event_types(db, ids[1]) == "TransferInitiated,SubmissionDeferred");
  CHECK(db.database.query_value("select due_at_ms::text from transfer_work where transfer_id = '" +
                                ids[1] + "'") == end_ms);

  // At the window's end: the calls are made, once each, and the transfers succeed.
  clock.set(window_end);
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 3);
  CHECK(dispatcher.stats().calls_deferred == 3);
  const auto ledger = (*mock)->state().ledger();
  REQUIRE(ledger.size() == 3);
  for (const auto& row : ledger) CHECK(row.execution_count == 1);
  for (const auto& id : ids) {
    CAPTURE(id);
    CHECK(transfer_event_types(db, id) == "TransferInitiated,SubmissionDeferred,TransferSettled");
  }
  CHECK(db.terminal_count() == 3);
  const auto check = reconcile(db, ids, ledger);
  CHECK(check.violations.empty());
  CHECK(check.succeeded == 3);
}
