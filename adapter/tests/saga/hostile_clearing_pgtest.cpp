// The Transfer saga against a hostile clearing (issue 16): the dispatcher and the clearing
// client over a real PostgreSQL, pointed at a scripted raw-TCP server. No money moves on an
// answer the clearing never gave for that transfer, and an answer that breaks the contract is
// recorded like any unknown outcome (its cause, the attempt counted), never left unrecorded.

#include <doctest/doctest.h>

#include <atomic>
#include <map>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/clearing_client/client.hpp"
#include "hostile_clearing_client.hpp"
#include "hostile_http_server.hpp"

using namespace clearing;
using namespace clearing::testing;

namespace {

std::unique_ptr<clearing_client::ClearingClient> make_client(const HostileHttpServer& server) {
  return start_hostile_client(server, HostileConnections::one_reused);
}

adapter::DispatcherOptions dispatcher_options(const char* owner) {
  adapter::DispatcherOptions options;
  options.owner = owner;
  options.policy = fast_policy();
  return options;
}

std::string acsc(std::string_view clearing_reference, std::string_view date = "2026-11-26") {
  return R"({"status":"ACSC","clearing_reference":")" + std::string(clearing_reference) +
         R"(","settlement_date":")" + std::string(date) + R"("})";
}
std::string pdng(std::string_view clearing_reference) {
  return R"({"status":"PDNG","clearing_reference":")" + std::string(clearing_reference) +
         R"(","settlement_date":"2026-11-27"})";
}

std::string initiate(SagaDatabase& db, int index, base::Clock& clock) {
  auto command = make_initiate(index, RequestKind::valid, clock.now());
  REQUIRE(db.transfers->execute(
      command, {command.correlation_id, "core-" + std::to_string(index), nullptr, ""}));
  return command.request.transfer_id;
}

sagas::TransferState state_of(SagaDatabase& db, const std::string& id) {
  auto loaded =
      db.pool->transact([&](eventstore::Transaction& tx) { return db.transfers->load(tx, id); });
  REQUIRE_MESSAGE(loaded, (loaded ? "" : loaded.error().message));
  return loaded->state;
}

}  // namespace

TEST_CASE(
    "answers that break the contract are recorded as unknown outcomes with their cause, the "
    "attempt counted") {
  SagaDatabase db;
  base::SystemClock clock;
  // What the clearing answers each transfer's submission: each of these used to fail the
  // append (NUL, 1 MB: the transfer stayed initiated with no attempt recorded, for ever) or
  // to be taken as an outcome (a date that is none, a reason code that is none).
  const std::vector<std::pair<std::string, std::pair<int, std::string>>> cases = {
      {"NUL in clearing_reference", {201, acsc(R"(A\u0000B)")}},
      {"1 MB clearing_reference", {201, acsc(std::string(1'000'000, 'A'))}},
      {"settlement_date not a date", {201, acsc("CLR-1", "2026-02-30")}},
      {"reason_code not ISO 20022",
       {200, R"({"status":"RJCT","reason_code":"ac04","reason":"closed"})"}},
      {"NUL in reason",
       {200, R"({"status":"RJCT","reason_code":"AC04","reason":"closed\u0000account"})"}},
      {"pending with NUL in clearing_reference", {202, pdng(R"(P\u0000)")}},
  };
  std::map<std::string, std::pair<int, std::string>> answers;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    ids.push_back(initiate(db, static_cast<int>(i), clock));
    answers[ids.back()] = cases[i].second;
  }
  HostileHttpServer server([&answers](const ScriptedRequest& request) -> ScriptedReply {
    const auto it = answers.find(request.idempotency_key);
    if (request.method != "POST" || it == answers.end()) return {http_response(500, "{}"), false};
    return {http_response(it->second.first, it->second.second), false};
  });
  auto client = make_client(server);
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, dispatcher_options("contract"));
  REQUIRE(dispatcher.run_once());
  CHECK(dispatcher.stats().calls_started == static_cast<std::int64_t>(cases.size()));
  CHECK(dispatcher.stats().record_failures == 0);
  CHECK(client->stats().contract_violations == static_cast<std::int64_t>(cases.size()));

  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].first);
    const auto& id = ids[i];
    const auto state = state_of(db, id);
    CHECK(state.status == sagas::TransferStatus::outcome_unknown);
    CHECK(state.clearing_reference.empty());
    CHECK(state.unknown_outcomes == 1);
    CHECK(state.attempt == 2);  // the first attempt recorded, the next one scheduled
    CHECK(transfer_event_types(db, id) ==
          "TransferInitiated,ClearingOutcomeUnknown,RetryScheduled");
    const auto events = transfer_events(db, id);
    REQUIRE(events.size() == 3);
    CHECK(events[1].data.value("cause", "") ==
          "contract_violation (HTTP " + std::to_string(cases[i].second.first) + ")");
    CHECK(events[1].data.value("attempt", 0) == 1);
    CHECK(db.database.query_value("select attempt from transfer_work where transfer_id = '" + id +
                                  "'") == "2");
  }
  CHECK(db.statuses() ==
        std::map<std::string, int>{{"outcome_unknown", static_cast<int>(cases.size())}});
}

TEST_CASE(
    "a stray response after the answer on a kept-alive connection never decides the next "
    "transfer") {
  struct Script {
    std::string name;
    std::string first_answer;  // to whichever request comes first: an answer, then one more
    sagas::TransferStatus first_status;
  };
  const std::vector<Script> scripts = {
      {"503, then a stray 201 ACSC",
       http_response(503, R"({"error":{"code":"MAINTENANCE"}})", "Retry-After: 0\r\n") +
           http_response(201, acsc("STRAY-ACSC")),
       sagas::TransferStatus::submitting},  // maintenance: submitted again after Retry-After
      {"201 ACSC, then a stray 200 RJCT AC04",
       http_response(201, acsc("REAL-1")) +
           http_response(200, R"({"status":"RJCT","reason_code":"AC04","reason":"closed"})"),
       sagas::TransferStatus::succeeded},
  };
  for (const auto& script : scripts) {
    CAPTURE(script.name);
    SagaDatabase db;
    base::SystemClock clock;
    const auto a = initiate(db, 1, clock);
    const auto b = initiate(db, 2, clock);
    std::atomic<int> requests{0};
    HostileHttpServer server([&](const ScriptedRequest&) -> ScriptedReply {
      const int n = ++requests;
      if (n == 1) return {script.first_answer, false};
      return {http_response(202, pdng("REAL-" + std::to_string(n))), false};
    });
    auto client = make_client(server);
    adapter::Dispatcher dispatcher(*db.transfers, *client, clock, dispatcher_options("stray"));
    REQUIRE(dispatcher.run_once());
    CHECK(dispatcher.stats().calls_started == 2);
    CHECK(dispatcher.stats().record_failures == 0);
    // Which transfer went first is the claim's order: find it by its first answer's event.
    const auto first =
        transfer_event_types(db, a).find("TransferAcceptedPending") == std::string::npos ? a : b;
    const auto second = first == a ? b : a;
    CHECK(state_of(db, first).status == script.first_status);
    const auto state = state_of(db, second);
    CHECK(state.status == sagas::TransferStatus::pending_settlement);  // its own, real answer
    CHECK(state.clearing_reference == "REAL-2");
    CHECK(server.connections_accepted() == 2);
    CHECK(client->stats().connections_discarded_unread +
              client->stats().idle_connections_discarded ==
          1);
  }
}

TEST_CASE("a stray response sent while the connection sits idle never decides the next transfer") {
  SagaDatabase db;
  base::SystemClock clock;
  const auto a = initiate(db, 1, clock);
  std::atomic<int> requests{0};
  HostileHttpServer server([&](const ScriptedRequest&) -> ScriptedReply {
    const int n = ++requests;
    if (n == 1) return {http_response(503, "", "Retry-After: 60\r\n"), false};
    return {http_response(202, pdng("REAL-" + std::to_string(n))), false};
  });
  auto client = make_client(server);
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, dispatcher_options("idle-stray"));
  REQUIRE(dispatcher.run_once());
  CHECK(transfer_event_types(db, a) == "TransferInitiated,ClearingUnavailable,RetryScheduled");
  // The connection is idle in the client's pool; the clearing (or a proxy) sends one more.
  REQUIRE(server.send_on_connection(1, http_response(201, acsc("STRAY-ACSC"))));
  const auto b = initiate(db, 2, clock);
  REQUIRE(dispatcher.run_once());  // a's retry is a minute away: only b is called
  const auto state = state_of(db, b);
  CHECK(state.status == sagas::TransferStatus::pending_settlement);
  CHECK(state.clearing_reference == "REAL-2");
  CHECK(client->stats().idle_connections_discarded == 1);
  CHECK(server.connections_accepted() == 2);
}

TEST_CASE(
    "an answer naming another transfer's reference is an unknown outcome and an alarm, never a "
    "settlement") {
  SagaDatabase db;
  base::SystemClock clock;
  const auto id = initiate(db, 1, clock);
  HostileHttpServer server([](const ScriptedRequest&) -> ScriptedReply {
    return {http_response(
                201, R"({"status":"ACSC","clearing_reference":"C9","settlement_date":"2026-11-26",)"
                     R"("reference":"another-transfer"})"),
            false};
  });
  auto client = make_client(server);
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, dispatcher_options("mismatch"));
  REQUIRE(dispatcher.run_once());
  const auto state = state_of(db, id);
  CHECK(state.status == sagas::TransferStatus::outcome_unknown);
  CHECK(state.clearing_reference.empty());
  const auto events = transfer_events(db, id);
  REQUIRE(events.size() == 3);
  CHECK(events[1].type == "ClearingOutcomeUnknown");
  CHECK(events[1].data.value("cause", "") == "reference_mismatch (HTTP 201)");
  CHECK(client->stats().reference_mismatches == 1);
}
