// `clearing-adapter resolve`: the one way people correct a transfer under investigation.
// A transfer whose outcome stays unknown past its deadline is resolved by an operator;
// the correcting event names what it corrects and who did it, flows to the core like
// any outcome, and a second resolution of the now terminal transfer is refused.

#include <doctest/doctest.h>

#include <fstream>
#include <pqxx/pqxx>

#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/processes/process.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;

TEST_CASE("an operator resolves a transfer under investigation; a terminal one is refused") {
  SagaDatabase db;
  base::ManualClock clock{base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}}};
  auto policy = fast_policy();
  policy.deadline_ms = 1000;
  auto initiate = make_initiate(1, RequestKind::valid, clock.now(), policy);
  REQUIRE(db.transfers->execute(initiate, {initiate.correlation_id, "core-event-1", nullptr, ""}));
  // Timeouts until past the deadline: the saga puts it under investigation, never rejects it.
  for (int attempt = 1; attempt <= 4; ++attempt) {
    clock.advance(std::chrono::milliseconds(400));
    sagas::RecordClearingAnswer answer;
    answer.transfer_id = initiate.request.transfer_id;
    auto loaded = db.pool->transact([&](eventstore::Transaction& tx) {
      return db.transfers->load(tx, initiate.request.transfer_id);
    });
    REQUIRE(loaded);
    REQUIRE(loaded->state.scheduled.has_value());
    answer.attempt = loaded->state.scheduled->attempt;
    answer.kind = loaded->state.scheduled->action;
    answer.cls = sagas::ClearingAnswerClass::unknown;
    answer.cause = "timeout";
    answer.now = clock.now();
    answer.policy = policy;
    REQUIRE(db.transfers->execute(answer, {initiate.correlation_id, "", nullptr, ""}));
  }
  REQUIRE(db.database.query_value("select status from transfer_status") == "under_investigation");

  // The adapter's config, pointing at this test's database.
  const std::string config = "/tmp/resolve-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    auto cfg = nlohmann::json::parse(in);
    std::ofstream(config) << cfg.dump(2);
  }
  const std::map<std::string, std::string> env{
      {"CLEARING_ADAPTER_DATABASE_URL", db.database.url()}};
  Process resolve({CLEARING_ADAPTER, "resolve", initiate.request.transfer_id, "--config", config,
                   "--outcome", "succeeded", "--reason", "confirmed by phone with the clearing",
                   "--operator", "operator-7", "--clearing-reference", "CR-MANUAL-1"},
                  env);
  CHECK_MESSAGE(resolve.wait() == 0, resolve.stderr_text());
  CHECK(resolve.read_all().find("resolved as succeeded") != std::string::npos);
  CHECK(db.database.query_value("select status from transfer_status") == "succeeded");
  const auto corrects = db.database.query_value(
      "select jsonb_array_length(metadata->'extra'->'corrects') from events where type = "
      "'TransferResolvedManually'");
  CHECK(std::stoi(corrects) >= 4);  // the unknown outcomes and the investigation it settles
  CHECK(db.database.query_value("select metadata->'extra'->>'operator' from events where type = "
                                "'TransferResolvedManually'") == "operator-7");

  // It flows to the core like any outcome.
  const std::vector<external_streams::StreamSpec> streams{{"adapter.dk.payments.v1", 4}};
  REQUIRE(external_streams::ensure_streams(*db.pool, streams));
  eventstore::Subscription derive(
      *db.store, {.name = "derive"},
      external_streams::make_derivation_handler(
          *db.store, {{streams[0], &external_streams::derive_payments_v1}}));
  while (*derive.poll_once() > 0) {
  }
  CHECK(db.database.query_value("select string_agg(type, ',' order by seq) from external_events") ==
        "TransferUnderInvestigation,TransferSucceeded");
  CHECK(
      db.database.query_value("select data->>'resolved_manually' from external_events where type = "
                              "'TransferSucceeded'") == "true");

  // A terminal transfer cannot be resolved again.
  Process again({CLEARING_ADAPTER, "resolve", initiate.request.transfer_id, "--config", config,
                 "--outcome", "rejected", "--reason", "changed my mind", "--operator", "operator-8",
                 "--reason-code", "AC04"},
                env);
  CHECK(again.wait() == 2);
  CHECK(again.stderr_text().find("refused") != std::string::npos);
  CHECK(db.database.query_value(
            "select count(*) from events where type = 'TransferResolvedManually'") == "1");
}
