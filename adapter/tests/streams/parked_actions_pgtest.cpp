// Operator actions on parked messages (issue 22, items 4 and 5), through the adapter's API
// with an operator token, against a real PostgreSQL with personal data sealed: a message of
// the core's stream that was parked is replayed once after its cause was fixed and becomes
// exactly one transfer; one whose input still fails stays open and says why (422); a message
// is closed with a reason. Each action is an event naming the token's name and the reason,
// written with the message's state. Bad requests (unknown id, wrong state, missing reason,
// replay twice, a reader's token) change nothing: no event, no state.

#include <doctest/doctest.h>

#include <fstream>
#include <pqxx/pqxx>

#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/parked_actions.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "clearing/processes/process.hpp"

using namespace clearing;
using namespace clearing::testing;
using Json = nlohmann::json;

namespace {

constexpr const char* kOperatorToken = "operator-token-0123456789abcdef01";
constexpr const char* kReaderToken = "reader-token-0123456789abcdef0123";
constexpr const char* kTopic = "core.dk.payments.v1";

Json request_data(const std::string& transfer_id) { return core_request_data(transfer_id); }

Json envelope(std::int64_t seq, Json data) {
  return core_envelope(kTopic, 0, seq, std::move(data));
}

struct Api {
  SagaDatabase db;
  std::shared_ptr<privacy::Vault> vault = db.seal_personal_data();
  std::unique_ptr<http::HttpServer> server;
  base::SystemClock clock;

  Api() {
    auto created = http::HttpServer::create({.tokens = {{"operator", kOperatorToken, {"operator"}},
                                                        {"api", kReaderToken, {"reader"}}}});
    REQUIRE(created);
    server = std::move(*created);
    adapter::add_transfer_routes(*server, *db.pool, *db.transfers, routes_options());
    REQUIRE(server->start());
  }
  ~Api() { server->stop(); }

  // Parks `value` as the consumer does (the inbound handler's park), with `error`.
  std::int64_t park(const std::string& value, external_streams::MessageError error) {
    auto handler = adapter::make_transfer_inbound(*db.transfers, clock, routes_options().inbound);
    auto parsed = external_streams::parse_message(std::string_view(value));
    auto done =
        db.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
          handler->begin_batch(tx);
          return handler->park(tx, {kTopic, 0, 42, "k", value}, error,
                               parsed ? std::optional(*parsed) : std::nullopt);
        });
    REQUIRE_MESSAGE(done, (done ? "" : done.error().message));
    return std::stoll(query("select max(id) from parked_messages"));
  }

  http::ClientResponse post(const std::string& path, const std::string& body,
                            const std::string& token = kOperatorToken) {
    return post_json(server->port(), path, body, token);
  }
  Json get(const std::string& path) { return get_json(server->port(), path, kReaderToken); }
  std::string query(const std::string& sql) { return db.database.query_value(sql); }
  // Everything an action could change: the events and every message's state.
  std::string snapshot() { return parked_snapshot(db); }
};

// `clearing-adapter parked ACTION ID --reason TEXT` against the test's server, as the operator.
processes::Process command(Api& api, const std::string& action, std::int64_t id,
                           const std::string& reason) {
  const std::string config = "/tmp/parked-actions-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    std::ofstream(config) << nlohmann::json::parse(in).dump(2);
  }
  return processes::Process(
      {CLEARING_ADAPTER, "parked", action, std::to_string(id), "--reason", reason, "--config",
       config, "--api-url", "http://127.0.0.1:" + std::to_string(api.server->port())},
      {{"CLEARING_ADAPTER_DATABASE_URL", api.db.database.url()},
       {"CLEARING_ADAPTER_OPERATOR_TOKEN", kOperatorToken}});
}

}  // namespace

TEST_CASE(
    "a parked message replayed after its cause was fixed becomes exactly one transfer; one that "
    "still fails stays open and says why") {
  Api api;
  // The core's catch-up API reported a head below this message's seq (its defect): the
  // consumer parked the message only, nothing decided on it.
  const auto transfer_id = base::new_uuid();
  const auto beyond = api.park(
      envelope(3, request_data(transfer_id)).dump(),
      {external_streams::MessageErrc::seq_beyond_head, "seq 3 is beyond the producer's head"});
  const auto not_json = api.park("{not json", {external_streams::MessageErrc::not_json, "no"});
  CHECK(api.query("select bool_and(raw_sealed) from parked_messages") == "t");
  CHECK(api.query("select count(*) from transfer_status") == "0");
  for (const auto& row : api.get("/parked")["parked"]) CHECK(row["state"] == "open");

  // Input that still cannot be used: 422 with the reason, the message still open, no event.
  const auto before = api.snapshot();
  const auto still = api.post("/parked/" + std::to_string(not_json) + "/replay",
                              R"({"reason":"producer says it is fixed"})");
  CHECK(still.status == 422);
  CHECK(error_code(still) == "not_json");
  CHECK(api.snapshot() == before);

  // The producer's head is right again: the message goes back into the inbound path once.
  const auto path = "/parked/" + std::to_string(beyond) + "/replay";
  const auto replayed = api.post(path, R"({"reason":"core fixed its head, INC-7"})");
  REQUIRE_MESSAGE(replayed.status == 200, replayed.body);
  const auto body = Json::parse(replayed.body);
  CHECK(body["outcome"] == "initiated");
  CHECK(body["transfer_id"] == transfer_id);
  CHECK(body["operator"] == "operator");
  CHECK(body["state"] == "replayed");
  const auto initiated = [&] {
    return api.query(
        "select count(*) from events where type = 'TransferInitiated' and stream_id "
        "= 'transfer-" +
        transfer_id + "'");
  };
  CHECK(initiated() == "1");
  CHECK(api.query("select status from transfer_status where transfer_id = '" + transfer_id + "'") ==
        "initiated");
  // The replay event, in the message's stream, names the token's name and the reason.
  CHECK(api.query("select type || ' ' || (data->>'operator') || ' ' || (data->>'outcome') || ' ' "
                  "|| (data->>'reason') from events where stream_id = 'parked-" +
                  std::to_string(beyond) + "'") ==
        "ParkedMessageReplayed operator initiated core fixed its head, INC-7");
  // The transfer's events say it came from a replay, by whom.
  CHECK(api.query("select metadata->'extra'->>'operator' from events where type = "
                  "'TransferInitiated'") == "operator");
  CHECK(api.get("/parked/" + std::to_string(beyond))["state"] == "replayed");
  // The transfer's trace tells the replay, with the operator and the reason; so does the
  // parked message's.
  auto story = adapter::build_trace(*api.db.pool, *api.db.transfers, transfer_id);
  REQUIRE_MESSAGE(story, (story ? "" : story.error()));
  const auto told = adapter::render_trace(*story);
  CHECK_MESSAGE(told.find("ParkedMessageReplayed") != std::string::npos, told);
  CHECK(told.find("parked message " + std::to_string(beyond) +
                  " replayed (initiated) by operator: core fixed its head, INC-7") !=
        std::string::npos);
  auto parked_story =
      adapter::build_parked_trace(*api.db.pool, *api.db.store, std::to_string(beyond));
  REQUIRE_MESSAGE(parked_story, (parked_story ? "" : parked_story.error()));
  CHECK(parked_story->at("state") == "replayed");
  CHECK(adapter::render_parked_trace(*parked_story).find("by operator: core fixed its head") !=
        std::string::npos);

  // Twice: 409, nothing changes, still one transfer.
  const auto after = api.snapshot();
  const auto twice = api.post(path, R"({"reason":"again"})");
  CHECK(twice.status == 409);
  CHECK(error_code(twice) == "not_open");
  CHECK(api.snapshot() == after);
  // The command asks the same API: refused, exit 2, nothing changes.
  auto again = command(api, "replay", beyond, "again, from the command line");
  CHECK(again.wait() == 2);
  CHECK(again.stderr_text().find("refused (HTTP 409 not_open") != std::string::npos);
  CHECK(api.snapshot() == after);
  CHECK(initiated() == "1");
}

TEST_CASE("an operator closes a parked message with a reason; it is no longer open") {
  Api api;
  const auto id = api.park("{not json", {external_streams::MessageErrc::not_json, "no"});
  const auto path = "/parked/" + std::to_string(id) + "/close";
  const auto closed = api.post(path, R"({"reason":"test message from the core's staging"})");
  REQUIRE_MESSAGE(closed.status == 200, closed.body);
  CHECK(Json::parse(closed.body)["state"] == "closed");
  CHECK(api.query("select type || ' ' || (data->>'operator') || ' ' || (data->>'reason') || ' ' "
                  "|| (data->>'parked_id') from events where stream_id = 'parked-" +
                  std::to_string(id) + "'") ==
        "ParkedMessageClosed operator test message from the core's staging " + std::to_string(id));
  CHECK(api.get("/parked")["parked"][0]["state"] == "closed");
  CHECK(api.get("/parked/" + std::to_string(id))["state"] == "closed");
  // Closed is final: neither closed again nor replayed.
  const auto before = api.snapshot();
  CHECK(api.post(path, R"({"reason":"again"})").status == 409);
  CHECK(api.post("/parked/" + std::to_string(id) + "/replay", R"({"reason":"r"})").status == 409);
  CHECK(api.snapshot() == before);

  // The command closes another one, the token's name recorded.
  const auto other = api.park("[1,2", {external_streams::MessageErrc::not_json, "no"});
  auto closing = command(api, "close", other, "duplicate of an earlier test message");
  CHECK_MESSAGE(closing.wait() == 0, closing.stderr_text());
  CHECK(closing.read_all().find("parked message " + std::to_string(other) +
                                " closed by operator") != std::string::npos);
  CHECK(api.query("select data->>'reason' from events where stream_id = 'parked-" +
                  std::to_string(other) + "'") == "duplicate of an earlier test message");
}

TEST_CASE("POST /parked/{id}/close and /replay: bad requests are refused and change nothing") {
  Api api;
  const auto open = api.park(envelope(3, request_data(base::new_uuid())).dump(),
                             {external_streams::MessageErrc::seq_beyond_head, "beyond"});
  const auto id = std::to_string(open);
  struct Case {
    const char* what;
    std::string path;
    std::string body;
    int status;
    const char* code;
    const char* token = kOperatorToken;
  };
  std::vector<Case> cases;
  for (const std::string action : {"close", "replay"}) {
    const auto at = "/parked/" + id + "/" + action;
    cases.push_back({"unknown id", "/parked/999999/" + action, R"({"reason":"r"})", 404,
                     "unknown_parked_message"});
    cases.push_back({"bad id", "/parked/abc/" + action, R"({"reason":"r"})", 400, "bad_parked_id"});
    cases.push_back({"missing reason", at, "{}", 400, "missing_reason"});
    cases.push_back({"empty reason", at, R"({"reason":""})", 400, "missing_reason"});
    cases.push_back(
        {"operator in the body", at, R"({"reason":"r","operator":"someone"})", 400, "bad_body"});
    cases.push_back({"not JSON", at, "reason=r", 400, "bad_body"});
    cases.push_back({"reason not text", at, R"({"reason":5})", 400, "bad_body"});
    cases.push_back({"a reader's token", at, R"({"reason":"r"})", 403, "FORBIDDEN", kReaderToken});
  }
  const auto before = api.snapshot();
  for (const auto& c : cases) {
    CAPTURE(c.what);
    CAPTURE(c.path);
    const auto answer = api.post(c.path, c.body, c.token);
    CHECK(answer.status == c.status);
    if (c.status != 403) CHECK(error_code(answer) == c.code);
  }
  CHECK(api.snapshot() == before);
  CHECK(api.query("select state from parked_messages") == "open");
}
