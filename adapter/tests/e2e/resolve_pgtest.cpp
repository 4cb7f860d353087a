// `clearing-adapter resolve` and POST /transfers/{id}/resolve: the one way people correct a
// transfer under investigation, through the adapter's API with an operator token (issue 21).
// A transfer whose outcome stays unknown past its deadline is resolved by an operator; the
// correcting event names what it corrects and, as its operator, the name of the token that
// asked (never text from the request), flows to the core like any outcome, and a second
// resolution of the now terminal transfer is refused without a second event. Bad requests
// (unknown id, wrong state, missing reason, bad outcome, a token without the operator role)
// change nothing.

#include <doctest/doctest.h>

#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/adapter/personal_data.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "clearing/privacy/vault.hpp"
#include "clearing/processes/process.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;

namespace {

constexpr const char* kOperatorToken = "operator-token-0123456789abcdef01";
constexpr const char* kReaderToken = "reader-token-0123456789abcdef0123";

// A transfer put under investigation by the saga: timeouts past its deadline.
std::string under_investigation(SagaDatabase& db, base::ManualClock& clock, int n) {
  auto policy = fast_policy();
  policy.deadline_ms = 1000;
  auto initiate = make_initiate(n, RequestKind::valid, clock.now(), policy);
  REQUIRE(db.transfers->execute(
      initiate, {initiate.correlation_id, "core-event-" + std::to_string(n), nullptr, ""}));
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
  return initiate.request.transfer_id;
}

// The adapter's transfer routes on a server of their own, with an operator and a reader token;
// with a vault, the erasure route too.
std::unique_ptr<http::HttpServer> serve_transfers(SagaDatabase& db,
                                                  const privacy::Vault* vault = nullptr) {
  auto server = http::HttpServer::create(
      {.tokens = {{"operator", kOperatorToken, {"operator"}}, {"api", kReaderToken, {"reader"}}}});
  REQUIRE(server);
  adapter::add_transfer_routes(**server, *db.pool, *db.transfers, routes_options());
  if (vault != nullptr) adapter::add_erasure_route(**server, *db.store, *vault);
  REQUIRE((*server)->start());
  return std::move(*server);
}

http::ClientResponse post_resolve(std::uint16_t port, const std::string& id,
                                  const std::string& body, const std::string& token) {
  return post_json(port, "/transfers/" + id + "/resolve", body, token);
}

}  // namespace

TEST_CASE("an operator resolves a transfer under investigation; a terminal one is refused") {
  SagaDatabase db;
  base::ManualClock clock{base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}}};
  const auto id = under_investigation(db, clock, 1);
  REQUIRE(db.database.query_value("select status from transfer_status") == "under_investigation");
  auto server = serve_transfers(db);
  const auto port = std::to_string(server->port());

  // The adapter's config, pointing at this test's database.
  const std::string config = "/tmp/resolve-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    auto cfg = nlohmann::json::parse(in);
    std::ofstream(config) << cfg.dump(2);
  }
  const std::map<std::string, std::string> env{{"CLEARING_ADAPTER_DATABASE_URL", db.database.url()},
                                               {"CLEARING_ADAPTER_OPERATOR_TOKEN", kOperatorToken}};
  const auto events = [&db] { return db.database.query_value("select count(*) from events"); };
  const auto before = events();

  // A token without the operator role is refused, through the API and through the command.
  CHECK(post_resolve(server->port(), id,
                     R"({"outcome":"succeeded","reason":"r","clearing_reference":"CR"})",
                     kReaderToken)
            .status == 403);
  Process as_reader(
      {CLEARING_ADAPTER, "resolve", id, "--config", config, "--api-url", "http://127.0.0.1:" + port,
       "--outcome", "succeeded", "--reason", "r", "--clearing-reference", "CR"},
      {{"CLEARING_ADAPTER_DATABASE_URL", db.database.url()},
       {"CLEARING_ADAPTER_OPERATOR_TOKEN", kReaderToken}});
  CHECK(as_reader.wait() == 2);
  CHECK(as_reader.stderr_text().find("refused the operator token (HTTP 403") != std::string::npos);
  CHECK(as_reader.stderr_text().find("CLEARING_ADAPTER_OPERATOR_TOKEN") != std::string::npos);
  // Without an operator token the command does not even ask.
  Process no_token(
      {CLEARING_ADAPTER, "resolve", id, "--config", config, "--api-url", "http://127.0.0.1:" + port,
       "--outcome", "succeeded", "--reason", "r", "--clearing-reference", "CR"},
      {{"CLEARING_ADAPTER_DATABASE_URL", db.database.url()}});
  CHECK(no_token.wait() == 2);
  CHECK(no_token.stderr_text().find("no operator token: set CLEARING_ADAPTER_OPERATOR_TOKEN") !=
        std::string::npos);
  // --operator is gone: the command says why instead of recording a name from the command line.
  Process named({CLEARING_ADAPTER, "resolve", id, "--config", config, "--api-url",
                 "http://127.0.0.1:" + port, "--outcome", "succeeded", "--reason", "r",
                 "--clearing-reference", "CR", "--operator", "someone-else"},
                env);
  CHECK(named.wait() == 2);
  CHECK(named.stderr_text().find("--operator is no longer taken") != std::string::npos);
  CHECK(events() == before);

  const auto settles_before =
      config::format_date(routes_options().country.settlement_date(base::SystemClock{}.now()));
  Process resolve({CLEARING_ADAPTER, "resolve", id, "--config", config, "--api-url",
                   "http://127.0.0.1:" + port, "--outcome", "succeeded", "--reason",
                   "confirmed by phone with the clearing", "--clearing-reference", "CR-MANUAL-1"},
                  env);
  CHECK_MESSAGE(resolve.wait() == 0, resolve.stderr_text());
  CHECK(resolve.read_all().find("resolved as succeeded by operator") != std::string::npos);
  CHECK(db.database.query_value("select status from transfer_status") == "succeeded");
  const auto corrects = db.database.query_value(
      "select jsonb_array_length(metadata->'extra'->'corrects') from events where type = "
      "'TransferResolvedManually'");
  CHECK(std::stoi(corrects) >= 4);  // the unknown outcomes and the investigation it settles
  // The operator is the token's name, in the metadata and in the event.
  CHECK(db.database.query_value("select metadata->'extra'->>'operator' from events where type = "
                                "'TransferResolvedManually'") == "operator");
  CHECK(db.database.query_value("select data->>'operator_name' from events where type = "
                                "'TransferResolvedManually'") == "operator");
  CHECK(db.database.query_value("select data->>'reason' from events where type = "
                                "'TransferResolvedManually'") ==
        "confirmed by phone with the clearing");

  // The command named no settlement date: the event has the day the country's calendar
  // settles a transfer accepted now (a business day, today or later), never "".
  const auto date = db.database.query_value(
      "select data->>'settlement_date' from events where type = 'TransferResolvedManually'");
  const auto parsed_date = base::parse_date(date);
  REQUIRE_MESSAGE(parsed_date, "settlement_date '" << date << "'");
  CHECK(date.size() == 10);
  const std::chrono::year_month_day today{
      std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now())};
  CHECK(*parsed_date >= today);
  const auto country = routes_options().country;
  CHECK(country.is_business_day(*parsed_date));
  const auto settles_now = config::format_date(country.settlement_date(base::SystemClock{}.now()));
  CHECK((date == settles_now || date == settles_before));

  // It flows to the core like any outcome, with that date on both streams.
  const std::vector<external_streams::StreamSpec> streams{{"adapter.dk.payments.v1", 4},
                                                          {"adapter.dk.settlements.v1", 4}};
  REQUIRE(external_streams::ensure_streams(*db.pool, streams));
  eventstore::Subscription derive(
      *db.store, {.name = "derive"},
      external_streams::make_derivation_handler(
          *db.store, {{streams[0], &external_streams::derive_payments_v1},
                      {streams[1], &external_streams::derive_settlements_v1}}));
  wait_for_horizon(db);
  while (*derive.poll_once() > 0) {
  }
  CHECK(db.database.query_value("select string_agg(type, ',' order by seq) from external_events "
                                "where stream = 'adapter.dk.payments.v1'") ==
        "TransferUnderInvestigation,TransferSucceeded");
  CHECK(
      db.database.query_value("select data->>'resolved_manually' from external_events where type = "
                              "'TransferSucceeded'") == "true");
  CHECK(db.database.query_value("select data->>'settlement_date' from external_events where "
                                "stream = 'adapter.dk.payments.v1' and type = "
                                "'TransferSucceeded'") == date);
  CHECK(db.database.query_value("select data->>'settlement_date' from external_events where "
                                "stream = 'adapter.dk.settlements.v1' and type = "
                                "'OutgoingTransferSettled'") == date);

  // A terminal transfer cannot be resolved again: 409 through the API and the command, and no
  // second event.
  const auto after = events();
  Process again(
      {CLEARING_ADAPTER, "resolve", id, "--config", config, "--api-url", "http://127.0.0.1:" + port,
       "--outcome", "rejected", "--reason", "changed my mind", "--reason-code", "AC04"},
      env);
  CHECK(again.wait() == 2);
  CHECK(again.stderr_text().find("refused (HTTP 409 already_terminal") != std::string::npos);
  const auto twice = post_resolve(server->port(), id,
                                  R"({"outcome":"rejected","reason":"again","reason_code":"AC04"})",
                                  kOperatorToken);
  CHECK(twice.status == 409);
  CHECK(error_code(twice) == "already_terminal");
  CHECK(db.database.query_value(
            "select count(*) from events where type = 'TransferResolvedManually'") == "1");
  CHECK(events() == after);
}

TEST_CASE("POST /transfers/{id}/resolve: bad requests are refused and change nothing") {
  SagaDatabase db;
  base::ManualClock clock{base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}}};
  const auto investigated = under_investigation(db, clock, 1);
  // One still handled automatically: initiated, its first call due.
  auto initiate = make_initiate(2, RequestKind::valid, clock.now(), fast_policy());
  REQUIRE(db.transfers->execute(initiate, {initiate.correlation_id, "core-event-2", nullptr, ""}));
  auto server = serve_transfers(db);
  const auto events = [&db] { return db.database.query_value("select count(*) from events"); };
  const auto before = events();
  const std::string good_rest = R"("reason":"r","clearing_reference":"CR")";
  struct Case {
    const char* what;
    std::string id;
    std::string body;
    int status;
    const char* code;
  };
  const Case cases[] = {
      {"unknown id", "no-such-transfer", R"({"outcome":"succeeded",)" + good_rest + "}", 404,
       "unknown_transfer"},
      {"wrong state", initiate.request.transfer_id, R"({"outcome":"succeeded",)" + good_rest + "}",
       409, "not_under_investigation"},
      {"missing reason", investigated, R"({"outcome":"succeeded","clearing_reference":"CR"})", 400,
       "missing_reason"},
      {"empty reason", investigated,
       R"({"outcome":"succeeded","reason":"","clearing_reference":"CR"})", 400, "missing_reason"},
      {"bad outcome", investigated, R"({"outcome":"settled",)" + good_rest + "}", 400,
       "bad_outcome"},
      {"no outcome", investigated, "{" + good_rest + "}", 400, "bad_outcome"},
      {"success without reference", investigated, R"({"outcome":"succeeded","reason":"r"})", 400,
       "missing_clearing_reference"},
      {"rejection without code", investigated, R"({"outcome":"rejected","reason":"r"})", 400,
       "missing_reason_code"},
      {"bad settlement date", investigated,
       R"({"outcome":"succeeded","settlement_date":"2027-02-30",)" + good_rest + "}", 400,
       "bad_settlement_date"},
      // The operator is the token's name: the body cannot name one.
      {"operator in the body", investigated,
       R"({"outcome":"succeeded","operator":"someone-else",)" + good_rest + "}", 400, "bad_body"},
      {"not JSON", investigated, "outcome=succeeded", 400, "bad_body"},
      {"not text", investigated, R"({"outcome":"succeeded","reason":5,"clearing_reference":"CR"})",
       400, "bad_body"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto answer = post_resolve(server->port(), c.id, c.body, kOperatorToken);
    CHECK(answer.status == c.status);
    CHECK(error_code(answer) == c.code);
  }
  CHECK(events() == before);
  CHECK(db.database.query_value("select count(*) from transfer_status where status = "
                                "'under_investigation'") == "1");
  // The good request, with a settlement date, then goes through.
  const auto good =
      post_resolve(server->port(), investigated,
                   R"({"outcome":"succeeded","settlement_date":"2027-01-15",)" + good_rest + "}",
                   kOperatorToken);
  CHECK(good.status == 200);
  CHECK(nlohmann::json::parse(good.body) == nlohmann::json{{"transfer_id", investigated},
                                                           {"outcome", "succeeded"},
                                                           {"operator", "operator"}});
  CHECK(db.database.query_value("select data->>'settlement_date' from events where type = "
                                "'TransferResolvedManually'") == "2027-01-15");
}

namespace {

http::ClientResponse post_erase(std::uint16_t port, const std::string& body,
                                const std::string& token) {
  return post_json(port, "/subjects/erase", body, token);
}

}  // namespace

TEST_CASE("an operator erases a subject: [erased] everywhere, the events still fold") {
  SagaDatabase db;
  const auto vault = db.seal_personal_data();
  base::ManualClock clock{base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}}};
  const auto id = under_investigation(db, clock, 7);  // account acct-7, Debtor 7, Creditor 7
  auto server = serve_transfers(db, vault.get());
  const auto port = server->port();

  // Nothing personal in clear in any table: names, accounts, remittance text.
  for (const std::string clear : {"Debtor 7", "Creditor 7", "1234-0000012345", "Invoice 7"})
    CHECK_MESSAGE(tables_holding(db.database.url(), clear).empty(), clear);
  const auto story = [&] {
    auto answer = http::get("http://127.0.0.1:" + std::to_string(port) + "/transfers/" + id,
                            kReaderToken, 10'000);
    REQUIRE(answer);
    REQUIRE(answer->status == 200);
    return answer->body;
  };
  CHECK(story().find("Debtor 7") != std::string::npos);  // opened for the API

  const auto erased_events = [&db] {
    return db.database.query_value("select count(*) from events where type = 'SubjectErased'");
  };
  // Refused, changing nothing: unfinished transfers, a reader's token, bad bodies.
  const auto open =
      post_erase(port, R"({"subject":"acct-7","reason":"customer asked"})", kOperatorToken);
  CHECK(open.status == 409);
  CHECK(error_code(open) == "unfinished_transfers");
  CHECK(post_erase(port, R"({"subject":"acct-7","reason":"r"})", kReaderToken).status == 403);
  for (const char* body :
       {R"({"subject":"acct-7"})", R"({"reason":"r"})", R"([1])",
        R"({"subject":"acct-7","reason":"r","operator":"me"})", R"({"subject":7,"reason":"r"})"})
    CHECK_MESSAGE(post_erase(port, body, kOperatorToken).status == 400, body);
  CHECK(erased_events() == "0");
  CHECK(story().find("Debtor 7") != std::string::npos);

  // Decided, then erased: every key of the subject destroyed, one event naming who and why.
  REQUIRE(post_resolve(port, id,
                       R"({"outcome":"succeeded","reason":"confirmed by phone",)"
                       R"("clearing_reference":"CR-7"})",
                       kOperatorToken)
              .status == 200);
  const auto erased =
      post_erase(port, R"({"subject":"acct-7","reason":"customer asked"})", kOperatorToken);
  REQUIRE(erased.status == 200);
  const auto answer = nlohmann::json::parse(erased.body);
  CHECK(answer["keys_destroyed"].get<int>() >= 1);
  CHECK(answer["operator"] == "operator");
  CHECK(answer["subject_ref"] == vault->subject_ref("acct-7"));
  CHECK(erased_events() == "1");
  const auto event = nlohmann::json::parse(
      db.database.query_value("select data::text from events where type = 'SubjectErased'"));
  CHECK(event["reason"] == "customer asked");
  CHECK(event["operator"] == "operator");
  CHECK(event.dump().find("acct-7") == std::string::npos);  // named by reference only

  // [erased] where the adapter serves it, and the stream still folds.
  const auto after = story();
  CHECK(after.find("[erased]") != std::string::npos);
  for (const char* clear : {"Debtor 7", "Creditor 7", "1234-0000012345", "Invoice 7"})
    CHECK_MESSAGE(after.find(clear) == std::string::npos, clear);
  auto loaded =
      db.pool->transact([&](eventstore::Transaction& tx) { return db.transfers->load(tx, id); });
  REQUIRE(loaded);
  CHECK(loaded->state.request.debtor.name == "[erased]");
  CHECK(loaded->state.request.creditor.account.id == "[erased]");
  CHECK(std::string(sagas::state_name(loaded->state)) == "succeeded");

  // Again: nothing left to destroy, still recorded. Through the command, as an operator.
  const std::string config = "/tmp/erase-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    std::ofstream(config) << nlohmann::json::parse(in).dump(2);
  }
  Process command({CLEARING_ADAPTER, "erase", "--subject", "acct-7", "--reason", "asked twice",
                   "--config", config, "--api-url", "http://127.0.0.1:" + std::to_string(port)},
                  {{"CLEARING_ADAPTER_DATABASE_URL", db.database.url()},
                   {"CLEARING_ADAPTER_OPERATOR_TOKEN", kOperatorToken}});
  CHECK(command.wait() == 0);
  CHECK(command.read_all().find("erased by operator: 0 data key(s) destroyed") !=
        std::string::npos);
  CHECK(erased_events() == "2");
  std::remove(config.c_str());
}
