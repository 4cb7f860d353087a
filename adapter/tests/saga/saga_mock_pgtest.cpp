// The Transfer saga end to end inside one process: the dispatcher, the clearing client
// and the clearing mock with every fault class switched on, over a real PostgreSQL.
// Invariants (DESIGN.md section 7): each transfer executed at most once in the ledger,
// every transfer reaches exactly one terminal outcome that agrees with the ledger, and
// no rejection comes from a timeout.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/answer_mapping.hpp"
#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_client/classify.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "clearing/support/wait.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::support::wait_until;

namespace {

clearing_mock::FaultSettings every_fault(double p) {
  clearing_mock::FaultSettings f;
  f.delay = 0.1;
  f.delay_ms_min = 1;
  f.delay_ms_max = 20;
  f.timeout_before_execute = p;
  f.timeout_after_execute = p;
  f.close_after_execute = p;
  f.reset_before_execute = p;
  f.http_500 = p;
  f.http_502 = p;
  f.http_504 = p;
  f.error_body_200 = p;
  f.malformed_json = p;
  f.maintenance_503 = p;
  f.hold_ms = 400;  // past the client's deadline below
  f.retry_after_s = 0;
  return f;
}

std::unique_ptr<clearing_client::ClearingClient> make_client(const std::string& url) {
  clearing_client::ClientOptions options;
  options.base_url = url;
  options.bearer_token = "mock-token";
  options.request_timeout_ms = 250;
  options.connect_timeout_ms = 250;
  options.in_flight_max = 64;
  auto client = clearing_client::ClearingClient::start(options);
  REQUIRE_MESSAGE(client, (client ? "" : client.error().message));
  return std::move(*client);
}

std::int64_t to_ms(base::Timestamp t) { return t.time_since_epoch().count(); }

// A TransferRequested of the core's stream, as the consumer hands it to the applier.
external_streams::ExternalMessage transfer_requested(const std::string& transfer_id,
                                                     std::int64_t amount_minor) {
  external_streams::ExternalMessage m;
  m.stream = "core.dk.payments.v1";
  m.partition = 0;
  m.seq = 1;
  m.event_id = base::new_uuid();
  m.type = "TransferRequested";
  m.occurred_at = "2026-11-26T09:00:00.000Z";
  m.correlation_id = "corr-" + transfer_id;
  m.source_event_id = base::new_uuid();
  m.key = transfer_id;
  m.data = {
      {"transfer_id", transfer_id},
      {"account_id", "acct-1"},
      {"amount", {{"minor_units", amount_minor}, {"currency", "DKK"}}},
      {"debtor", {{"name", "Ada"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Charles"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0000100011"}}}}},
      {"remittance_info", "Invoice"},
      {"requested_at", "2026-11-26T09:00:00Z"}};
  return m;
}

// Records `count` valid transfers (indices 0..count-1) as the core would; their ids.
std::vector<std::string> initiate_valid(SagaDatabase& db, int count, const base::Clock& clock) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    auto command = make_initiate(i, RequestKind::valid, clock.now());
    ids.push_back(command.request.transfer_id);
    REQUIRE(db.transfers->execute(command, {command.correlation_id, "core", nullptr, ""}));
  }
  return ids;
}

// A dispatcher's options in these tests: its owner and the fast retry policy.
adapter::DispatcherOptions fast_options(const char* owner) {
  adapter::DispatcherOptions options;
  options.owner = owner;
  options.policy = fast_policy();
  return options;
}

// Runs a dispatcher (fast_options) until `count` transfers are terminal; its stats once it
// has stopped.
adapter::DispatcherStats dispatch_until_terminal(SagaDatabase& db,
                                                 clearing_client::ClearingClient& client,
                                                 const base::Clock& clock, const char* owner,
                                                 int count) {
  adapter::Dispatcher dispatcher(*db.transfers, client, clock, fast_options(owner));
  dispatcher.start();
  REQUIRE(wait_until([&] { return db.terminal_count() == count; }, std::chrono::seconds(60)));
  dispatcher.stop();
  return dispatcher.stats();
}

}  // namespace

TEST_CASE(
    "1,000 transfers through every fault class: executed at most once, one outcome each, agreeing "
    "with the ledger") {
  SagaDatabase db;
  clearing_mock::MockOptions mock_options;
  mock_options.seed = 20261126;
  mock_options.threads = 2;
  mock_options.faults = every_fault(0.03);
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE_MESSAGE(mock, (mock ? "" : mock.error()));
  auto client = make_client((*mock)->base_url());

  base::SystemClock clock;
  std::vector<std::string> ids;
  int invalid = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto kind = i % 50 == 7    ? RequestKind::invalid_account
                      : i % 50 == 13 ? RequestKind::wrong_currency
                      : i % 50 == 21 ? RequestKind::closed_account
                                     : RequestKind::valid;
    invalid += kind != RequestKind::valid;
    auto command = make_initiate(i, kind, clock.now());
    ids.push_back(command.request.transfer_id);
    auto result = db.transfers->execute(
        command, {command.correlation_id, "core-event-" + std::to_string(i), nullptr, ""});
    REQUIRE(result);
  }

  adapter::DispatcherOptions options;
  options.owner = "test-dispatcher";
  options.in_flight_max = 48;
  options.lease = std::chrono::milliseconds(2000);
  options.policy = fast_policy();
  options.jitter_seed = 7;
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, options);
  dispatcher.start();
  const bool finished =
      wait_until([&] { return db.terminal_count() == 1000; }, std::chrono::seconds(240));
  dispatcher.stop();
  CHECK_MESSAGE(
      finished, "statuses: " << [&] {
        std::string s;
        for (auto& [k, v] : db.statuses()) s += k + "=" + std::to_string(v) + " ";
        return s;
      }());

  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  for (const auto& violation : reconciliation.violations) FAIL_CHECK(violation);
  CHECK(reconciliation.executions_max == 1);
  CHECK(reconciliation.succeeded + reconciliation.rejected == 1000);
  CHECK(reconciliation.rejected >= invalid);  // validation rejections, and the clearing's AC04

  // Every fault class really was met.
  const auto stats = (*mock)->state().stats();
  for (const char* fault : {"timeout_before_execute", "timeout_after_execute",
                            "close_after_execute", "reset_before_execute", "http_500", "http_502",
                            "http_504", "error_body_200", "malformed_json", "maintenance_503"}) {
    CAPTURE(fault);
    CHECK(stats.faults.count(fault) == 1);
    if (stats.faults.count(fault)) CHECK(stats.faults.at(fault) > 0);
  }
  auto dispatched = dispatcher.stats();
  CHECK(dispatched.answers_by_class["unknown"] > 0);
  MESSAGE("succeeded=" << reconciliation.succeeded << " rejected=" << reconciliation.rejected
                       << " calls=" << dispatched.calls_started
                       << " stale=" << dispatched.answers_stale);
}

TEST_CASE("after the cut-off, transfers are pending and settle on a later status inquiry") {
  SagaDatabase db;
  clearing_mock::MockOptions mock_options;
  mock_options.always_after_cutoff = true;
  mock_options.settle_after_inquiries = 2;
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::SystemClock clock;
  const auto ids = initiate_valid(db, 20, clock);
  const auto dispatched = dispatch_until_terminal(db, *client, clock, "cutoff", 20);
  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  CHECK(reconciliation.violations.empty());
  CHECK(reconciliation.succeeded == 20);
  // Each went through pending: the stream holds a TransferAcceptedPending before the settlement.
  auto events = db.store->read_stream(adapter::transfer_stream(ids[0]));
  REQUIRE(events);
  std::vector<std::string> types;
  for (const auto& e : *events) types.push_back(e.type);
  CHECK(std::find(types.begin(), types.end(), "TransferAcceptedPending") != types.end());
  CHECK(types.back() == "TransferSettled");
  CHECK(dispatched.answers_by_class.at("pending") >= 20);
}

TEST_CASE("two dispatchers sharing one database never make the same attempt at once") {
  SagaDatabase db;
  clearing_mock::MockOptions mock_options;
  mock_options.faults.latency_ms = 20;
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE(mock);
  auto client_a = make_client((*mock)->base_url());
  auto client_b = make_client((*mock)->base_url());
  base::SystemClock clock;
  const auto ids = initiate_valid(db, 200, clock);
  adapter::DispatcherOptions a_options, b_options;
  a_options.owner = "a";
  b_options.owner = "b";
  a_options.policy = b_options.policy = fast_policy();
  adapter::Dispatcher a(*db.transfers, *client_a, clock, a_options);
  adapter::Dispatcher b(*db.transfers, *client_b, clock, b_options);
  a.start();
  b.start();
  REQUIRE(wait_until([&] { return db.terminal_count() == 200; }, std::chrono::seconds(60)));
  a.stop();
  b.stop();
  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  CHECK(reconciliation.violations.empty());
  // No fault, no lease expiry: with claims exclusive, the clearing saw each key exactly once.
  const auto stats = (*mock)->state().stats();
  CHECK(stats.replays == 0);
  CHECK(stats.in_progress_answers == 0);
  CHECK(a.stats().calls_started + b.stats().calls_started == 200);
  CHECK(a.stats().calls_started > 0);
  CHECK(b.stats().calls_started > 0);
}

TEST_CASE(
    "the incoming feed: each payment recorded once although the mainframe re-sends, the cursor "
    "kept as events") {
  SagaDatabase db;
  clearing_mock::MockOptions mock_options;
  mock_options.incoming_generated = 57;
  mock_options.incoming_resend_probability = 0.5;
  auto mock = clearing_mock::MockServer::start(mock_options);
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::SystemClock clock;
  adapter::IncomingPoller poller(*db.store, *client, clock,
                                 {std::chrono::milliseconds(10), 10, dk_rules()});
  int pages = 0;
  for (; pages < 30; ++pages) {
    auto polled = poller.poll_once();
    REQUIRE(polled);
    if (*polled == 0) break;
  }
  const auto stats = poller.stats();
  CHECK(stats.payments_recorded == 57);
  CHECK(stats.payments_resent > 0);
  CHECK(db.database.query_value("select count(distinct stream_id) from events where stream_id like "
                                "'incoming-payment-%'") == "57");
  // The cursor is an event: a new poller resumes where the first stopped.
  adapter::IncomingPoller again(*db.store, *client, clock,
                                {std::chrono::milliseconds(10), 10, dk_rules()});
  auto more = again.poll_once();
  REQUIRE(more);
  CHECK(again.stats().payments_recorded == 0);
  CHECK(
      db.database.query_value("select count(*) from events where type = 'IncomingFeedAdvanced'") ==
      std::to_string(stats.pages));
}

TEST_CASE(
    "an answer the saga refuses is parked with its reason and the call postponed, not made again "
    "at once") {
  SagaDatabase db;
  auto mock = clearing_mock::MockServer::start({});
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::ManualClock clock(base::SystemClock{}.now());
  auto command = make_initiate(1, RequestKind::valid, clock.now());
  REQUIRE(db.transfers->execute(command, {command.correlation_id, "core", nullptr, ""}));
  // A work row that disagrees with its transfer (a defect): the saga scheduled a submit
  // for attempt 1, the row asks for an inquiry.
  db.database.exec("update transfer_work set action = 'inquiry' where transfer_id = '" +
                   command.request.transfer_id + "'");

  auto options = fast_options("refusals");
  options.refused_retry_delay = std::chrono::minutes(5);
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, options);
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 1);
  CHECK(dispatcher.stats().answers_refused == 1);
  CHECK(dispatcher.stats().record_failures == 0);

  // Parked with its reason and what the clearing said; the transfer itself unchanged.
  const std::string parked = "from parked_messages where source = 'dispatcher'";
  CHECK(db.database.query_value("select count(*) " + parked) == "1");
  CHECK(db.database.query_value("select reason_code " + parked) == "answer_kind_mismatch");
  CHECK(db.database.query_value("select correlation_id " + parked) == command.correlation_id);
  const std::string raw = "select convert_from(raw, 'UTF8')::jsonb";  // raw is bytea
  CHECK(db.database.query_value(raw + "->>'transfer_id' " + parked) == command.request.transfer_id);
  CHECK(db.database.query_value(raw + "->>'answer_class' " + parked) == "not_found");
  CHECK(db.database.query_value("select version from event_streams where stream_id = 'transfer-" +
                                command.request.transfer_id + "'") == "1");
  // Postponed by the delay, the lease released.
  const std::string row =
      " from transfer_work where transfer_id = '" + command.request.transfer_id + "'";
  CHECK(db.database.query_value("select due_at_ms" + row) ==
        std::to_string(to_ms(clock.now()) + 300'000));
  CHECK(db.database.query_value("select lease_owner is null" + row) == "t");

  // Not claimed again before it is due, however often the dispatcher looks...
  for (int round = 0; round < 5; ++round) REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 1);
  // ...and made again once it is.
  clock.advance(std::chrono::minutes(5));
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == 2);
  CHECK(dispatcher.stats().answers_refused == 2);
  CHECK(db.database.query_value("select count(*) " + parked) == "2");
}

TEST_CASE(
    "the submit body is kept on the work row; a row without it (written before it was kept) is "
    "submitted from the stream") {
  SagaDatabase db;
  auto mock = clearing_mock::MockServer::start({});
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::SystemClock clock;
  std::vector<std::string> ids;
  std::vector<sagas::InitiateTransfer> commands;
  for (int i = 0; i < 4; ++i) {
    commands.push_back(make_initiate(i, RequestKind::valid, clock.now()));
    ids.push_back(commands.back().request.transfer_id);
    REQUIRE(db.transfers->execute(commands.back(),
                                  {commands.back().correlation_id, "core", nullptr, ""}));
  }
  // What the row holds is the contract's body for the transfer's request.
  auto loaded = db.pool->transact(
      [&](eventstore::Transaction& tx) { return db.transfers->load(tx, ids[0]); });
  REQUIRE(loaded);
  const auto expected = nlohmann::json::parse(
      clearing_client::encode_submit_body(adapter::to_submit_request(loaded->state.request)));
  CHECK(nlohmann::json::parse(db.database.query_value(
            "select submit_request::text from transfer_work where transfer_id = '" + ids[0] +
            "'")) == expected);
  // Two rows as an older adapter wrote them, or damaged: the request comes from the stream.
  db.database.exec("update transfer_work set submit_request = null where transfer_id = '" + ids[1] +
                   "'");
  db.database.exec(
      "update transfer_work set submit_request = '{\"reference\": \"someone-else\"}' where "
      "transfer_id = '" +
      ids[2] + "'");

  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, fast_options("bodies"));
  for (int round = 0; round < 20 && db.terminal_count() < 4; ++round)
    REQUIRE(dispatcher.run_once());
  REQUIRE(db.terminal_count() == 4);
  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  for (const auto& violation : reconciliation.violations) FAIL_CHECK(violation);
  CHECK(reconciliation.succeeded == 4);
  // The clearing got the same body whichever way it was read: one execution each, no 422.
  CHECK(dispatcher.stats().answers_by_class["settled"] == 4);
  for (const auto& entry : (*mock)->state().ledger()) {
    const auto it = std::find(ids.begin(), ids.end(), entry.reference);
    REQUIRE(it != ids.end());
    const auto& c = commands[static_cast<std::size_t>(it - ids.begin())];
    CHECK(entry.amount_minor == c.request.amount.minor_units);
    CHECK(entry.currency == "DKK");
    CHECK(entry.execution_count == 1);
  }
}

TEST_CASE(
    "the inbound applier: a new transfer is initiated; a redelivery and a copy are no-ops; another "
    "request under a used id is refused DUPL") {
  SagaDatabase db;
  base::SystemClock clock;
  const adapter::InboundRules rules{dk_rules(), fast_policy()};
  auto inbound = adapter::make_transfer_inbound(*db.transfers, clock, rules);
  // As the consumer runs a batch of one message: begin, apply, end.
  auto apply = [&](const external_streams::ExternalMessage& m) {
    auto done =
        db.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
          inbound->begin_batch(tx);
          auto applied = inbound->apply(tx, m);
          if (!applied) throw std::runtime_error(applied.error().message());
          auto ended = inbound->end_batch(tx);
          if (!ended) throw std::runtime_error(ended.error().message);
          return {};
        });
    REQUIRE_MESSAGE(done, (done ? "" : done.error().message));
  };
  const auto id = base::new_uuid();
  const std::string stream = "transfer-" + id;
  auto version = [&] {
    return db.database.query_value("select version from event_streams where stream_id = '" +
                                   stream + "'");
  };
  auto types = [&] {
    return db.database.query_value(
        "select string_agg(type, ',' order by version) from events where stream_id = '" + stream +
        "'");
  };

  const auto first = transfer_requested(id, 1234);
  apply(first);
  CHECK(types() == "TransferInitiated");
  CHECK(db.database.query_value("select status from transfer_status where transfer_id = '" + id +
                                "'") == "initiated");
  CHECK(db.database.query_value(
            "select submit_request->>'amount_minor' from transfer_work where transfer_id = '" + id +
            "'") == "1234");

  apply(first);  // the same message again (its event ids are derived from it)
  CHECK(version() == "1");
  auto copy = transfer_requested(id, 1234);  // the same request in another message
  apply(copy);
  CHECK(version() == "1");

  auto other = transfer_requested(id, 999);  // another request under the same transfer id
  apply(other);
  CHECK(types() == "TransferInitiated,DuplicateTransferRequestRefused");
  apply(other);
  CHECK(version() == "2");
  CHECK(db.database.query_value("select status from transfer_status where transfer_id = '" + id +
                                "'") == "initiated");
}

TEST_CASE(
    "the inbound batch: a consumer batch's transfers are initiated together, in message order with "
    "what is parked") {
  SagaDatabase db;
  base::SystemClock clock;
  const adapter::InboundRules rules{dk_rules(), fast_policy()};
  auto inbound = adapter::make_transfer_inbound(*db.transfers, clock, rules);
  const auto a = base::new_uuid(), b = base::new_uuid(), c = base::new_uuid(),
             known = base::new_uuid();
  auto stream_types = [&](const std::string& id) {
    return db.database.query_value(
        "select coalesce(string_agg(type, ',' order by version), '') from events"
        " where stream_id = 'transfer-" +
        id + "'");
  };
  auto status_of = [&](const std::string& id) {
    return db.database.query_value("select status from transfer_status where transfer_id = '" + id +
                                   "'");
  };
  // A transfer known before the batch, which the batch requests again with another amount.
  auto before =
      db.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
        inbound->begin_batch(tx);
        REQUIRE(inbound->apply(tx, transfer_requested(known, 500)));
        REQUIRE(inbound->end_batch(tx));
        return {};
      });
  REQUIRE(before);

  // c's second message is unusable; c's first, valid one came before it in the batch.
  auto broken_c = transfer_requested(c, 300);
  broken_c.data.erase("amount");
  const external_streams::RawMessage raw_c{broken_c.stream, 0, 17, c, broken_c.to_json().dump()};
  auto batch = db.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
    inbound->begin_batch(tx);
    REQUIRE(inbound->apply(tx, transfer_requested(a, 100)));
    REQUIRE(inbound->apply(tx, transfer_requested(b, 200)));
    REQUIRE(inbound->apply(tx, transfer_requested(known, 999)));  // another request under a used id
    REQUIRE(inbound->apply(tx, transfer_requested(c, 300)));
    REQUIRE(inbound->apply(tx, transfer_requested(a, 100)));  // the same request again in the batch
    auto error = inbound->apply(tx, broken_c);
    REQUIRE_FALSE(error);
    REQUIRE(inbound->park(tx, raw_c, error.error().reason(), broken_c));
    REQUIRE(inbound->end_batch(tx));
    return {};
  });
  REQUIRE_MESSAGE(batch, (batch ? "" : batch.error().message));
  CHECK(stream_types(a) == "TransferInitiated");
  CHECK(stream_types(b) == "TransferInitiated");
  CHECK(stream_types(known) == "TransferInitiated,DuplicateTransferRequestRefused");
  // c was initiated by its valid message before the broken one was parked: not rejected FF01.
  CHECK(stream_types(c) == "TransferInitiated");
  CHECK(db.database.query_value(
            "select count(*) from parked_messages where reason_code = 'invalid_data'") == "1");
  for (const auto& [id, amount] : {std::pair{a, "100"}, {b, "200"}, {c, "300"}, {known, "500"}}) {
    CHECK(status_of(id) == "initiated");
    CHECK(db.database.query_value(
              "select action || ':' || attempt || ':' || (submit_request->>'amount_minor')"
              " from transfer_work where transfer_id = '" +
              id + "'") == std::string("submit:1:") + amount);
  }
  // The work rows name the event that scheduled them.
  CHECK(db.database.query_value(
            "select count(*) from transfer_work w join events e on e.event_id = w.caused_by"
            " and e.stream_id = 'transfer-' || w.transfer_id") == "4");

  // A batch that fails is tried again from its beginning: what an earlier try queued is dropped.
  const auto d = base::new_uuid();
  auto failed = db.pool->transact([&](eventstore::Transaction& tx)
                                      -> eventstore::StoreResult<void> {
    inbound->begin_batch(tx);
    REQUIRE(inbound->apply(tx, transfer_requested(d, 400)));
    return tl::unexpected(eventstore::StoreError{eventstore::StoreErrc::transient, "rolled back"});
  });
  REQUIRE_FALSE(failed);
  const auto e = base::new_uuid();
  REQUIRE(db.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
    inbound->begin_batch(tx);
    REQUIRE(inbound->apply(tx, transfer_requested(e, 500)));
    REQUIRE(inbound->end_batch(tx));
    return {};
  }));
  CHECK(stream_types(d).empty());
  CHECK(stream_types(e) == "TransferInitiated");
}

TEST_CASE(
    "the unfinished transfers by state: counted through the index of unfinished ones; finished "
    "ones leave it") {
  SagaDatabase db;
  auto mock = clearing_mock::MockServer::start(clearing_mock::MockOptions{});
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::SystemClock clock;
  const std::vector<RequestKind> kinds{RequestKind::valid, RequestKind::invalid_account,
                                       RequestKind::valid, RequestKind::wrong_currency,
                                       RequestKind::valid};
  for (int i = 0; i < static_cast<int>(kinds.size()); ++i) {
    auto command = make_initiate(i, kinds[static_cast<std::size_t>(i)], clock.now());
    REQUIRE(db.transfers->execute(command, {command.correlation_id, "core", nullptr, ""}));
  }
  auto unfinished = [&] {
    auto rows = db.pool->transact([](eventstore::Transaction& tx) {
      return adapter::TransferService::unfinished_by_status(tx);
    });
    REQUIRE(rows);
    return *rows;
  };
  using Counts = std::vector<std::pair<std::string, std::int64_t>>;
  // The two invalid requests are rejected at once: finished, not counted.
  CHECK(db.statuses() == std::map<std::string, int>{{"initiated", 3}, {"rejected", 2}});
  CHECK(unfinished() == Counts{{"initiated", 3}});

  // The statement's predicate is the partial index's: the planner can take it (the
  // table is too small for it to choose it unless told not to scan).
  db.database.exec(
      "create function plan_without_seqscan(query text) returns text language plpgsql as $$"
      " declare line text; plan text := ''; begin set local enable_seqscan = off;"
      " for line in execute 'explain ' || query loop plan := plan || line || chr(10); end loop;"
      " return plan; end $$");
  std::string quoted;  // the query as an SQL literal
  for (const char* c = adapter::TransferService::kUnfinishedByStatusQuery; *c != 0; ++c)
    quoted += *c == '\'' ? std::string("''") : std::string(1, *c);
  const auto plan = db.database.query_value("select plan_without_seqscan('" + quoted + "')");
  CHECK(plan.find("transfer_status_unfinished") != std::string::npos);
  CHECK(db.database.query_value(
            "select count(*) from pg_indexes where indexname = 'transfer_status_status'") == "0");

  dispatch_until_terminal(db, *client, clock, "unfinished", 5);
  CHECK(db.statuses() == std::map<std::string, int>{{"rejected", 2}, {"succeeded", 3}});
  CHECK(unfinished().empty());
}

TEST_CASE("a woken dispatcher claims new work at once; unwoken it waits for its idle poll") {
  SagaDatabase db;
  auto mock = clearing_mock::MockServer::start(clearing_mock::MockOptions{});
  REQUIRE(mock);
  auto client = make_client((*mock)->base_url());
  base::SystemClock clock;
  auto options = fast_options("woken");
  options.idle_poll = std::chrono::hours(1);
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, options);
  dispatcher.start();
  // Its first claim, at start, finds nothing: the next one is an hour away.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto ids = initiate_valid(db, 5, clock);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(dispatcher.stats().calls_started == 0);
  CHECK(db.terminal_count() == 0);

  dispatcher.wake();
  REQUIRE(wait_until([&] { return db.terminal_count() == 5; }, std::chrono::seconds(30)));
  dispatcher.stop();
  CHECK(dispatcher.stats().calls_started == 5);
  const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
  CHECK(reconciliation.violations.empty());
  CHECK(reconciliation.succeeded == 5);
}

TEST_CASE(
    "lease_by_session: a dead dispatcher's claimed call is claimed again at once; a live one's is "
    "not") {
  SagaDatabase db;
  // A clearing that accepts connections and never answers: the call stays in flight.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 16) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  clearing_client::ClientOptions client_options;
  client_options.base_url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  client_options.bearer_token = "silent-clearing-token";
  client_options.request_timeout_ms = 60'000;
  auto client = clearing_client::ClearingClient::start(client_options);
  REQUIRE_MESSAGE(client, (client ? "" : client.error().message));

  // The clock never moves: a lease can only end with its owner's session, not by time.
  base::ManualClock clock(base::SystemClock{}.now());
  auto command = make_initiate(1, RequestKind::valid, clock.now());
  REQUIRE(db.transfers->execute(command, {command.correlation_id, "core", nullptr, ""}));
  const std::string owner_of =
      "select coalesce(lease_owner, '') from transfer_work where transfer_id = '" +
      command.request.transfer_id + "'";
  auto options_for = [](const char* owner) {
    auto options = fast_options(owner);
    options.lease_by_session = true;
    options.stop_grace = std::chrono::milliseconds(0);
    return options;
  };
  auto wait_for = [&](const std::function<bool()>& done) {
    REQUIRE(support::wait_until(done, std::chrono::seconds(30), std::chrono::milliseconds(10)));
  };
  adapter::Dispatcher a(*db.transfers, **client, clock, options_for("dispatcher-a"));
  a.start();
  wait_for([&] { return db.database.query_value(owner_of) == "dispatcher-a"; });
  adapter::Dispatcher b(*db.transfers, **client, clock, options_for("dispatcher-b"));
  b.start();
  std::this_thread::sleep_for(
      std::chrono::milliseconds(500));  // b looks many times (idle_poll 20 ms)
  CHECK(db.database.query_value(owner_of) == "dispatcher-a");
  CHECK(b.stats().calls_started == 0);

  // a dies as a killed process would: its liveness session ends on the server.
  CHECK(db.database.query_value("select count(pg_terminate_backend(pid)) from pg_locks where "
                                "locktype = 'advisory' and granted"
                                " and objsubid = 2 and classid = " +
                                std::to_string(adapter::kDispatcherLivenessLockClass) +
                                "::oid and objid = ((hashtext('dispatcher-a')::bigint + "
                                "4294967296) % 4294967296)::oid") == "1");
  const auto killed_at = std::chrono::steady_clock::now();
  wait_for([&] { return db.database.query_value(owner_of) == "dispatcher-b"; });
  MESSAGE("claimed again " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - killed_at)
                                  .count()
                           << " ms after its owner's session ended (the lease had 30 s to run)");
  CHECK(b.stats().calls_started == 1);
  b.stop();
  a.stop();
  ::close(listener);
}

// Issue 20: with an adaptive client, the dispatcher claims no more calls than the client's
// limit lets on the wire plus half a claim batch, so that leases do not run while calls wait
// in the client's queue. The same run with a fixed window claims up to its in_flight_max.
TEST_CASE("the dispatcher's window follows the client's concurrency limit when told to") {
  auto leased_peak = [](bool follows) {
    SagaDatabase db;
    clearing_mock::MockOptions mock_options;
    mock_options.faults.delay = 1.0;
    mock_options.faults.delay_ms_min = 30;
    mock_options.faults.delay_ms_max = 30;
    auto mock = clearing_mock::MockServer::start(mock_options);
    REQUIRE(mock);
    clearing_client::ClientOptions client_options;
    client_options.base_url = (*mock)->base_url();
    client_options.bearer_token = "mock-token";
    client_options.request_timeout_ms = 5'000;
    client_options.in_flight_max = 4;  // adaptive within [4, 4]: a limit that stays at 4
    client_options.adaptive_concurrency = true;
    client_options.concurrency_initial = 4;
    client_options.concurrency_min = 4;
    auto client = clearing_client::ClearingClient::start(client_options);
    REQUIRE(client);
    base::SystemClock clock;
    const auto ids = initiate_valid(db, 150, clock);
    auto options = fast_options("window-dispatcher");
    options.in_flight_max = 64;
    options.claim_batch_max = 16;  // half a batch: 8, so the window is 4 + 8
    options.window_follows_client_limit = follows;
    adapter::Dispatcher dispatcher(*db.transfers, **client, clock, options);
    pqxx::connection probe(db.database.url());
    dispatcher.start();
    std::int64_t peak = 0;
    const bool finished = wait_until(
        [&] {
          pqxx::nontransaction tx(probe);
          peak = std::max(peak, tx.exec1("select count(*) from transfer_work "
                                         "where lease_owner is not null")[0]
                                    .as<std::int64_t>());
          return db.terminal_count() == 150;
        },
        std::chrono::seconds(60));
    dispatcher.stop();
    CHECK(finished);
    const auto reconciliation = reconcile(db, ids, (*mock)->state().ledger());
    for (const auto& violation : reconciliation.violations) FAIL_CHECK(violation);
    CHECK((*client)->stats().in_flight_peak <= 4);
    return peak;
  };
  const auto following = leased_peak(true);
  CHECK(following >= 4);
  CHECK(following <= 12);
  const auto fixed = leased_peak(false);
  CHECK(fixed > 12);
  CHECK(fixed <= 64);
  MESSAGE("calls leased at once, at most: " << following << " following the limit, " << fixed
                                            << " with a fixed window of 64");
}
