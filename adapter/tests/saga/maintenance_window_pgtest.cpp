// Known maintenance windows of the clearing (issue 23, item 3): the dispatcher, the clearing
// client and the clearing mock over a real PostgreSQL, on an injected clock. A submission due
// inside a window is not sent: its transfer records one SubmissionDeferred naming the window
// and its end, the mock sees no call during the window, and the transfer succeeds once the
// window is over. A deferral the saga refuses is parked with its reason and counted; one whose
// transaction fails is counted, and the calls are deferred once the database takes them again
// (commit d7da43a). service_metrics.hpp is internal to adapter/src: its folder is on this
// test's include path.

#include <doctest/doctest.h>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "service_metrics.hpp"

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

base::Timestamp at(const std::string& text) {
  base::Timestamp out{};
  REQUIRE(base::parse_timestamp(text, out));
  return out;
}

// A database, the clearing mock and a client, and a clock half an hour into the dated window
// of the example config, 2026-12-24T20:00:00Z/2026-12-25T02:00:00Z.
struct InsideWindow {
  SagaDatabase db;
  base::Timestamp window_start = at("2026-12-24T20:00:00Z");
  base::Timestamp window_end = at("2026-12-25T02:00:00Z");
  base::ManualClock clock{at("2026-12-24T20:30:00Z")};
  std::unique_ptr<clearing_mock::MockServer> mock = start_mock();
  std::unique_ptr<clearing_client::ClearingClient> client = make_client(mock->base_url());

  static std::unique_ptr<clearing_mock::MockServer> start_mock() {
    auto mock = clearing_mock::MockServer::start(clearing_mock::MockOptions{});
    REQUIRE_MESSAGE(mock, (mock ? "" : mock.error()));
    return std::move(*mock);
  }

  adapter::DispatcherOptions options() const {
    adapter::DispatcherOptions options;
    options.owner = "maintenance";
    options.policy = fast_policy();
    options.maintenance.dated.push_back({.start = window_start, .end = window_end});
    return options;
  }

  // The i-th valid transfer, initiated now: its id.
  std::string initiate(int i) {
    auto command = make_initiate(i, RequestKind::valid, clock.now());
    REQUIRE(db.transfers->execute(
        command, {command.correlation_id, "core-" + std::to_string(i), nullptr, ""}));
    return command.request.transfer_id;
  }

  // A work row's due time, attempt and lease holder ("-" for none): "<ms>/1/-".
  std::string work_row(const std::string& id) const {
    return db.database.query_value(
        "select due_at_ms::text || '/' || attempt || '/' || coalesce(lease_owner, '-') "
        "from transfer_work where transfer_id = '" +
        id + "'");
  }
};

// The service's /metrics with only `dispatcher` among its parts.
struct DispatcherMetrics {
  base::metrics::Registry registry;
  std::unique_ptr<eventstore::ConnectionPool> no_pool;
  std::unique_ptr<clearing_client::ClearingClient> no_client;
  std::unique_ptr<adapter::IncomingPoller> no_poller;
  std::unique_ptr<eventstore::Subscription> no_derivation;
  std::shared_ptr<external_streams::DerivationLookups> lookups =
      std::make_shared<external_streams::DerivationLookups>();
  std::unique_ptr<external_streams::StreamConsumer> no_consumer;

  DispatcherMetrics(const std::unique_ptr<adapter::Dispatcher>& dispatcher,
                    const base::Clock& clock) {
    adapter::register_service_metrics(
        registry,
        {no_pool, no_client, dispatcher, no_poller, no_derivation, lookups, no_consumer, clock},
        base::module_logger("test"));
  }

  // The value of an unlabelled series, or nullopt when it is not rendered.
  std::optional<double> value(const std::string& series) {
    const auto text = registry.render();
    const auto found = text.find("\n" + series + " ");
    if (found == std::string::npos) return std::nullopt;
    return std::strtod(text.c_str() + found + series.size() + 2, nullptr);
  }
};

}  // namespace

TEST_CASE(
    "a submission inside a maintenance window is deferred to its end: one SubmissionDeferred, "
    "no call at the clearing during the window, success after it") {
  InsideWindow w;
  auto& db = w.db;
  auto& clock = w.clock;
  const auto window_end = w.window_end;
  auto& mock = w.mock;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(w.initiate(i));

  auto options = w.options();
  // A weekly window that does not hold the test's times: it must change nothing.
  options.maintenance.weekly.push_back({.weekday = std::chrono::Monday,
                                        .start = std::chrono::hours{1},
                                        .end = std::chrono::hours{3}});
  adapter::Dispatcher dispatcher(*db.transfers, *w.client, clock, options);

  // Inside the window: claimed, deferred, not called.
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 0);
  CHECK(dispatcher.stats().calls_deferred == 3);
  CHECK(mock->state().stats().requests_total == 0);
  CHECK(mock->state().ledger().empty());
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
    CHECK(w.work_row(id) == end_ms + "/1/-");
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
  CHECK(mock->state().stats().requests_total == 0);
  CHECK(transfer_event_types(db, ids[1]) == "TransferInitiated,SubmissionDeferred");
  CHECK(db.database.query_value("select due_at_ms::text from transfer_work where transfer_id = '" +
                                ids[1] + "'") == end_ms);

  // At the window's end: the calls are made, once each, and the transfers succeed.
  clock.set(window_end);
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 3);
  CHECK(dispatcher.stats().calls_deferred == 3);
  const auto ledger = mock->state().ledger();
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

TEST_CASE(
    "a deferral the saga refuses is parked with its reason and counted; no SubmissionDeferred, no "
    "call, and the work row waits for the window's end; the batch's other calls are deferred") {
  InsideWindow w;
  const auto odd = w.initiate(1), healthy = w.initiate(2);
  // The work row says inquiry where the transfer's attempt 1 is a submission. No code writes
  // such a row (the row is the stream's projection, written in the same transaction): it
  // stands for the defect, or the hand edit, that the refusal is there to catch. The saga
  // refuses DeferClearingCall for no reachable state otherwise: a closed transfer, or a row
  // behind its transfer, gives no events (not a refusal).
  w.db.database.exec("update transfer_work set action = 'inquiry' where transfer_id = '" + odd +
                     "'");
  const auto odd_correlation = w.db.database.query_value(
      "select correlation_id from transfer_work where transfer_id = '" + odd + "'");

  auto dispatcher =
      std::make_unique<adapter::Dispatcher>(*w.db.transfers, *w.client, w.clock, w.options());
  DispatcherMetrics metrics(dispatcher, w.clock);
  CHECK(metrics.value("clearing_dispatcher_deferrals_refused_total") == 0.0);
  CHECK(metrics.value("clearing_dispatcher_calls_deferred_total") == 0.0);

  REQUIRE(dispatcher->run_once());
  CHECK(metrics.value("clearing_dispatcher_deferrals_refused_total") == 1.0);
  CHECK(metrics.value("clearing_dispatcher_calls_deferred_total") == 1.0);
  CHECK(metrics.value("clearing_dispatcher_deferral_failures_total") == 0.0);
  CHECK(dispatcher->stats().calls_started == 0);
  CHECK(w.mock->state().stats().requests_total == 0);

  // Parked with the saga's reason, and what it was about.
  REQUIRE(w.db.database.query_value("select count(*) from parked_messages") == "1");
  CHECK(w.db.database.query_value(
            "select source || '|' || reason_code || '|' || reason || '|' || correlation_id "
            "from parked_messages") ==
        "dispatcher|answer_kind_mismatch|deferral kind differs from the scheduled action of the "
        "attempt|" +
            odd_correlation);
  const auto raw = nlohmann::json::parse(
      w.db.database.query_value("select convert_from(raw, 'UTF8') from parked_messages"));
  CHECK(raw.value("transfer_id", "") == odd);
  CHECK(raw.value("action", "") == "inquiry");
  CHECK(raw.value("attempt", 0) == 1);
  CHECK(raw.value("deferred_by", "") == "2026-12-24T20:00:00.000Z/2026-12-25T02:00:00.000Z");
  CHECK(raw.value("until", "") == "2026-12-25T02:00:00.000Z");

  // Nothing appended for the refused one; its work row is kept (the transfer is not lost),
  // postponed to the window's end and unleased, as it was otherwise; its transfer is as it was.
  const std::string end_ms = std::to_string(to_ms(w.window_end));
  CHECK(transfer_event_types(w.db, odd) == "TransferInitiated");
  CHECK(w.work_row(odd) == end_ms + "/1/-");
  CHECK(w.db.database.query_value("select action from transfer_work where transfer_id = '" + odd +
                                  "'") == "inquiry");
  CHECK(w.db.database.query_value("select status from transfer_status where transfer_id = '" + odd +
                                  "'") == "initiated");
  // The other call of the batch is deferred as usual.
  CHECK(transfer_event_types(w.db, healthy) == "TransferInitiated,SubmissionDeferred");
  CHECK(w.work_row(healthy) == end_ms + "/1/-");

  // Nothing is due again within the window: no second refusal, no second parked row.
  w.clock.advance(std::chrono::hours{1});
  REQUIRE(dispatcher->run_once());
  CHECK(metrics.value("clearing_dispatcher_deferrals_refused_total") == 1.0);
  CHECK(w.db.database.query_value("select count(*) from parked_messages") == "1");
  CHECK(w.mock->state().stats().requests_total == 0);
}

TEST_CASE(
    "a deferral whose transaction fails is counted, appends nothing and makes no call; once the "
    "database takes it again the calls are deferred exactly once and succeed after the window") {
  InsideWindow w;
  const std::vector<std::string> ids{w.initiate(1), w.initiate(2)};
  const std::string due_ms = std::to_string(to_ms(w.clock.now()));
  // The fault, on the PostgreSQL side: the events table refuses SubmissionDeferred, so the
  // deferral's append fails and its transaction rolls back.
  w.db.database.exec(
      "alter table events add constraint no_deferral check (type <> 'SubmissionDeferred')");

  auto dispatcher =
      std::make_unique<adapter::Dispatcher>(*w.db.transfers, *w.client, w.clock, w.options());
  DispatcherMetrics metrics(dispatcher, w.clock);
  CHECK(metrics.value("clearing_dispatcher_deferral_failures_total") == 0.0);

  REQUIRE(dispatcher->run_once());
  // One per call, as calls_deferred and record_failures count: the batch's two.
  CHECK(metrics.value("clearing_dispatcher_deferral_failures_total") == 2.0);
  CHECK(metrics.value("clearing_dispatcher_calls_deferred_total") == 0.0);
  CHECK(metrics.value("clearing_dispatcher_deferrals_refused_total") == 0.0);
  CHECK(dispatcher->stats().calls_started == 0);
  CHECK(w.mock->state().stats().requests_total == 0);
  CHECK(w.db.database.query_value("select count(*) from parked_messages") == "0");
  for (const auto& id : ids) {
    CAPTURE(id);
    CHECK(transfer_event_types(w.db, id) == "TransferInitiated");
    // Still claimed by this dispatcher, due as before: the lease keeps it until it lapses.
    CHECK(w.work_row(id) == due_ms + "/1/maintenance");
  }

  // The fault lifted, once the leases have lapsed: claimed again and deferred, once each.
  w.db.database.exec("alter table events drop constraint no_deferral");
  w.clock.advance(w.options().lease + std::chrono::seconds{1});
  REQUIRE(dispatcher->run_once());
  CHECK(metrics.value("clearing_dispatcher_deferral_failures_total") == 2.0);
  CHECK(metrics.value("clearing_dispatcher_calls_deferred_total") == 2.0);
  CHECK(w.mock->state().stats().requests_total == 0);
  const std::string end_ms = std::to_string(to_ms(w.window_end));
  for (const auto& id : ids) {
    CAPTURE(id);
    CHECK(transfer_event_types(w.db, id) == "TransferInitiated,SubmissionDeferred");
    CHECK(w.work_row(id) == end_ms + "/1/-");
  }

  // At the window's end: one call each, executed once, and the transfers succeed.
  w.clock.set(w.window_end);
  REQUIRE(dispatcher->run_once());
  CHECK(dispatcher->stats().calls_started == 2);
  CHECK(metrics.value("clearing_dispatcher_calls_deferred_total") == 2.0);
  const auto ledger = w.mock->state().ledger();
  REQUIRE(ledger.size() == 2);
  for (const auto& row : ledger) CHECK(row.execution_count == 1);
  for (const auto& id : ids) {
    CAPTURE(id);
    CHECK(transfer_event_types(w.db, id) == "TransferInitiated,SubmissionDeferred,TransferSettled");
  }
  const auto check = reconcile(w.db, ids, ledger);
  CHECK(check.violations.empty());
  CHECK(check.succeeded == 2);
}
