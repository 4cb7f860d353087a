// Parked incoming payments (issue 22, items 4 and 5), against a real PostgreSQL with personal
// data sealed: the poller reads a feed (a scripted clearing) with a payment in EUR, one to an
// invalid account and a valid one; the saga parks the first two and they are listed in /parked
// beside the parked messages (kind incoming_payment). An operator books the EUR one in DKK
// through the API (exactly one IncomingPaymentReceived on the core's stream, the
// IncomingPaymentBookedByOperator naming the operator and the reason) and returns the other
// with the command. Bad requests (unknown id, wrong state, missing reason, book twice, a
// reader's token, a message that is no payment) change nothing: no event, no state.

#include <doctest/doctest.h>

#include <fstream>
#include <pqxx/pqxx>

#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/parked_actions.hpp"
#include "clearing/adapter/parking.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_api.hpp"
#include "clearing/eventstore/aggregate.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/server.hpp"
#include "clearing/processes/process.hpp"
#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"
#include "hostile_clearing_client.hpp"
#include "hostile_http_server.hpp"

using namespace clearing;
using namespace clearing::testing;
using Json = nlohmann::json;

namespace {

constexpr const char* kOperatorToken = "operator-token-0123456789abcdef01";
constexpr const char* kReaderToken = "reader-token-0123456789abcdef0123";

std::string payment(const std::string& reference, const std::string& currency,
                    const std::string& creditor_account) {
  return Json{{"cursor", "0000000000" + reference.substr(reference.size() - 2)},
              {"clearing_reference", reference},
              {"amount_minor", 6700},
              {"currency", currency},
              {"debtor_account", "DE89370400440532013000"},
              {"debtor_name", "Ada Lovelace"},
              {"creditor_account", creditor_account},
              {"creditor_name", "Charles Babbage"},
              {"remittance_info", "Invoice 42"},
              {"received_at", "2026-11-26T09:00:00Z"}}
      .dump();
}

// The feed: one page with the three payments, then nothing.
const std::string kPage = R"({"payments":[)" + payment("CR-EUR-01", "EUR", "5301-0001234567") +
                          "," + payment("CR-ACC-02", "DKK", "DK5000400440116244") + "," +
                          payment("CR-OKK-03", "DKK", "5301-0001234567") +
                          R"(],"next_cursor":"000000000003"})";

struct Service {
  SagaDatabase db;
  std::shared_ptr<privacy::Vault> vault = db.seal_personal_data();
  HostileHttpServer feed{[](const ScriptedRequest& request) {
    const bool first = request.target.find("after=") == std::string::npos;
    return ScriptedReply{http_response(200, first ? kPage : R"({"payments":[]})",
                                       "Content-Type: application/json\r\n")};
  }};
  std::unique_ptr<clearing_client::ClearingClient> client =
      start_hostile_client(feed, HostileConnections::own_per_call);
  base::SystemClock clock;
  adapter::IncomingPoller poller{
      *db.store, *client, clock, {std::chrono::milliseconds(10), 10, dk_rules()}};
  std::unique_ptr<http::HttpServer> server;

  Service() {
    auto created = http::HttpServer::create({.tokens = {{"operator", kOperatorToken, {"operator"}},
                                                        {"api", kReaderToken, {"reader"}}}});
    REQUIRE(created);
    server = std::move(*created);
    adapter::add_transfer_routes(*server, *db.pool, *db.transfers, routes_options());
    REQUIRE(server->start());
    auto polled = poller.poll_once();
    REQUIRE_MESSAGE(polled, (polled ? "" : polled.error().message));
    REQUIRE(*polled == 3);
  }
  ~Service() { server->stop(); }

  http::ClientResponse post(const std::string& path, const std::string& body,
                            const std::string& token = kOperatorToken) {
    return post_json(server->port(), path, body, token);
  }
  Json get(const std::string& path) { return get_json(server->port(), path, kReaderToken); }
  std::string query(const std::string& sql) { return db.database.query_value(sql); }
  std::string snapshot() { return parked_snapshot(db); }
  // The parked row of the payment with clearing reference `reference`.
  std::int64_t parked_id_of(const std::string& reference) {
    return std::stoll(query("select id from parked_messages where payment_id = '" +
                            sagas::incoming_payment_id(reference) + "'"));
  }
};

// `clearing-adapter parked ACTION ID --reason TEXT [extra...]` against the test's server.
processes::Process command(Service& service, const std::string& action, std::int64_t id,
                           const std::string& reason, std::vector<std::string> extra = {}) {
  const std::string config = "/tmp/parked-payments-dk-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    std::ofstream(config) << nlohmann::json::parse(in).dump(2);
  }
  std::vector<std::string> args{
      CLEARING_ADAPTER, "parked",
      action,           std::to_string(id),
      "--reason",       reason,
      "--config",       config,
      "--api-url",      "http://127.0.0.1:" + std::to_string(service.server->port())};
  args.insert(args.end(), extra.begin(), extra.end());
  return processes::Process(args, {{"CLEARING_ADAPTER_DATABASE_URL", service.db.database.url()},
                                   {"CLEARING_ADAPTER_OPERATOR_TOKEN", kOperatorToken}});
}

// Derives payments.v1 and settlements.v1 from every event so far, as the service does.
void derive(SagaDatabase& db) {
  const std::vector<external_streams::StreamSpec> streams{{"adapter.dk.payments.v1", 4},
                                                          {"adapter.dk.settlements.v1", 4}};
  REQUIRE(external_streams::ensure_streams(*db.pool, streams));
  eventstore::Subscription derivation(
      *db.store, {.name = "derive"},
      external_streams::make_derivation_handler(
          *db.store, {{streams[0], &external_streams::derive_payments_v1},
                      {streams[1], &external_streams::derive_settlements_v1}}));
  wait_for_horizon(db);
  while (*derivation.poll_once() > 0) {
  }
}

}  // namespace

TEST_CASE("parked incoming payments are listed in /parked beside the messages, sealed at rest") {
  Service s;
  CHECK(s.query("select count(*) from events where type = 'IncomingPaymentParked'") == "2");
  CHECK(s.query("select count(*) from events where type = 'IncomingPaymentRecorded'") == "1");
  // A message the feed could not use at all, beside them.
  REQUIRE(s.db.pool->transact([&](eventstore::Transaction& tx) {
    return adapter::park(tx, {"clearing-feed", "invalid_payment", "broken", "{oops"},
                         s.db.pool->protector());
  }));

  const auto listing = s.get("/parked")["parked"];
  REQUIRE(listing.size() == 3);
  std::map<std::string, Json> by_reason;
  for (const auto& row : listing) by_reason[row["reason_code"]] = row;
  CHECK(by_reason["invalid_payment"]["kind"] == "message");
  CHECK_FALSE(by_reason["invalid_payment"].contains("payment_id"));
  for (const auto& [code, reference] :
       {std::pair<std::string, std::string>{"AM03", "CR-EUR-01"}, {"AC01", "CR-ACC-02"}}) {
    CAPTURE(code);
    const auto& row = by_reason[code];
    CHECK(row["kind"] == "incoming_payment");
    CHECK(row["source"] == "incoming-payment");
    CHECK(row["state"] == "open");
    CHECK(row["payment_id"] == sagas::incoming_payment_id(reference));
    CHECK(row["correlation_id"] == sagas::incoming_payment_id(reference));
    // Its raw is the parked event's data, opened as any raw is.
    const auto raw = Json::parse(row["raw"].get<std::string>());
    CHECK(raw["clearing_reference"] == reference);
    CHECK(raw["creditor"]["name"] == "Charles Babbage");
    const auto one = s.get("/parked/" + std::to_string(row["id"].get<std::int64_t>()));
    CHECK(one["kind"] == "incoming_payment");
    CHECK(one["payment_id"] == row["payment_id"]);
  }
  // At rest, no name and no account in clear.
  CHECK(s.query("select bool_and(raw_sealed) from parked_messages") == "t");
  CHECK(s.query("select count(*) from parked_messages where position('Charles'::bytea in raw) > 0"
                " or position('5301-0001234567'::bytea in raw) > 0"
                " or position('Charles'::bytea in raw_preview) > 0") == "0");
  // The same payment re-sent by the feed lists nothing more.
  CHECK(s.query("select count(*) from parked_messages") == "3");
}

TEST_CASE(
    "an operator books a parked payment once, and it reaches the core's stream exactly once; "
    "another is returned; bad requests change nothing") {
  Service s;
  const auto eur = s.parked_id_of("CR-EUR-01");
  const auto account = s.parked_id_of("CR-ACC-02");
  REQUIRE(s.db.pool->transact([&](eventstore::Transaction& tx) {
    return adapter::park(tx, {"clearing-feed", "invalid_payment", "broken", "{oops"},
                         s.db.pool->protector());
  }));
  const auto message = std::stoll(s.query("select max(id) from parked_messages"));
  const auto book_path = "/parked/" + std::to_string(eur) + "/book";

  // Each refused: the answer's status and code, and nothing changed.
  const auto before = s.snapshot();
  struct Bad {
    const char* what;
    std::string path, body, token;
    int status;
    const char* code;
  };
  const std::vector<Bad> bad{
      {"unknown id", "/parked/999999/book", R"({"reason":"x","amount_minor_units":5})",
       kOperatorToken, 404, "unknown_parked_message"},
      {"unknown id (return)", "/parked/999999/return", R"({"reason":"x"})", kOperatorToken, 404,
       "unknown_parked_message"},
      {"bad id", "/parked/abc/book", R"({"reason":"x"})", kOperatorToken, 400, "bad_parked_id"},
      {"no reason", book_path, R"({"amount_minor_units":50000})", kOperatorToken, 400,
       "missing_reason"},
      {"empty reason", book_path, R"({"reason":"","amount_minor_units":50000})", kOperatorToken,
       400, "missing_reason"},
      {"no reason (return)", "/parked/" + std::to_string(account) + "/return", "{}", kOperatorToken,
       400, "missing_reason"},
      {"not a body", book_path, "reason", kOperatorToken, 400, "bad_body"},
      {"an unknown field", book_path, R"({"reason":"x","operator":"me"})", kOperatorToken, 400,
       "bad_body"},
      {"a bad amount", book_path, R"({"reason":"x","amount_minor_units":-5})", kOperatorToken, 400,
       "bad_body"},
      {"still in EUR", book_path, R"({"reason":"x"})", kOperatorToken, 422, "not_bookable"},
      {"an invalid account", "/parked/" + std::to_string(account) + "/book",
       R"({"reason":"x","creditor_account":"DK5000400440116245"})", kOperatorToken, 422,
       "not_bookable"},
      {"a reader", book_path, R"({"reason":"x","amount_minor_units":50000})", kReaderToken, 403,
       ""},
      {"a message booked", "/parked/" + std::to_string(message) + "/book", R"({"reason":"x"})",
       kOperatorToken, 409, "not_incoming_payment"},
      {"a message returned", "/parked/" + std::to_string(message) + "/return", R"({"reason":"x"})",
       kOperatorToken, 409, "not_incoming_payment"},
      {"a payment closed", "/parked/" + std::to_string(eur) + "/close", R"({"reason":"x"})",
       kOperatorToken, 409, "incoming_payment"},
      {"a payment replayed", "/parked/" + std::to_string(eur) + "/replay", R"({"reason":"x"})",
       kOperatorToken, 409, "incoming_payment"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.what);
    const auto answer = s.post(b.path, b.body, b.token);
    CHECK(answer.status == b.status);
    if (*b.code) CHECK(error_code(answer) == b.code);
    CHECK(s.snapshot() == before);
  }

  // Booked in DKK after conversion: one event naming the operator and the reason.
  const auto booked =
      s.post(book_path, R"({"reason":"converted at 7.46, INC-9","amount_minor_units":50000})");
  REQUIRE_MESSAGE(booked.status == 200, booked.body);
  const auto body = Json::parse(booked.body);
  CHECK(body["state"] == "booked");
  CHECK(body["operator"] == "operator");
  CHECK(body["payment_id"] == sagas::incoming_payment_id("CR-EUR-01"));
  CHECK(body["corrected_fields"] == Json::array({"amount"}));
  CHECK(s.query("select string_agg(type, ',' order by version) from events where stream_id = "
                "'incoming-payment-CR-EUR-01'") ==
        "IncomingPaymentParked,IncomingPaymentBookedByOperator");
  CHECK(s.query("select data->>'operator' || '|' || (data->>'reason') || '|' || "
                "(data->'amount'->>'minor_units') || (data->'amount'->>'currency') from events "
                "where type = 'IncomingPaymentBookedByOperator'") ==
        "operator|converted at 7.46, INC-9|50000DKK");
  CHECK(s.query("select event_id::text from events where type = "
                "'IncomingPaymentBookedByOperator'") == body["event_id"]);
  CHECK(s.query("select state from parked_messages where id = " + std::to_string(eur)) == "booked");

  // Twice, or returned after: 409, nothing written.
  const auto after_book = s.snapshot();
  for (const auto& path : {book_path, "/parked/" + std::to_string(eur) + "/return"}) {
    CAPTURE(path);
    const auto again = s.post(path, R"({"reason":"again","amount_minor_units":50000})");
    if (path == book_path) {
      CHECK(again.status == 409);
      CHECK(error_code(again) == "not_open");
    } else {
      CHECK(again.status == 400);  // return takes no amount
    }
    CHECK(s.snapshot() == after_book);
  }
  CHECK(s.post("/parked/" + std::to_string(eur) + "/return", R"({"reason":"again"})").status ==
        409);
  auto twice = command(s, "book", eur, "again", {"--amount-minor-units", "50000"});
  CHECK(twice.wait() == 2);
  CHECK(s.snapshot() == after_book);

  // Returned with the command: the operator's decision, said to be manual.
  auto returned = command(s, "return", account, "the creditor's bank asks it back, INC-10");
  CHECK_MESSAGE(returned.wait() == 0, returned.stderr_text());
  const auto out = returned.read_all();
  CHECK(out.find("returned by operator") != std::string::npos);
  CHECK(out.find("no return call") != std::string::npos);
  CHECK(s.query("select data->>'operator' || '|' || (data->>'reason') from events where type = "
                "'IncomingPaymentReturnedByOperator'") ==
        "operator|the creditor's bank asks it back, INC-10");
  CHECK(s.query("select state from parked_messages where id = " + std::to_string(account)) ==
        "returned");
  const auto after_return = s.snapshot();
  const auto book_returned = s.post("/parked/" + std::to_string(account) + "/book",
                                    R"({"reason":"x","creditor_account":"DK5000400440116243"})");
  CHECK(book_returned.status == 409);
  CHECK(s.snapshot() == after_return);
  // Open payments only in the listing's state; none left.
  for (const auto& row : s.get("/parked")["parked"])
    if (row["kind"] == "incoming_payment") CHECK(row["state"] != "open");

  // The core hears of the booked payment once, in DKK, as of a recorded one; never of the
  // returned one. Derived again: nothing more.
  derive(s.db);
  derive(s.db);
  const auto eur_id = sagas::incoming_payment_id("CR-EUR-01");
  CHECK(s.query("select count(*) from external_events where stream = 'adapter.dk.payments.v1' "
                "and type = 'IncomingPaymentReceived' and entity_key = '" +
                eur_id + "'") == "1");
  CHECK(s.query("select data->'amount'->>'minor_units' || (data->'amount'->>'currency') from "
                "external_events where stream = 'adapter.dk.payments.v1' and entity_key = '" +
                eur_id + "'") == "50000DKK");
  CHECK(
      s.query("select count(*) from external_events where stream = "
              "'adapter.dk.settlements.v1' and type = 'IncomingPaymentSettled' and entity_key = '" +
              eur_id + "'") == "1");
  CHECK(s.query("select count(*) from external_events where entity_key = '" +
                sagas::incoming_payment_id("CR-ACC-02") + "'") == "0");
  CHECK(s.query("select count(*) from external_events where type = 'IncomingPaymentReceived'") ==
        "2");  // the valid one and the booked one

  // trace tells each payment's story by its parked id or its payment id: parked, then the
  // operator's action with the reason, then what reached the core.
  for (const auto& key : {std::to_string(eur), eur_id}) {
    CAPTURE(key);
    auto story = adapter::build_parked_trace(*s.db.pool, *s.db.store, key);
    REQUIRE_MESSAGE(story, (story ? "" : story.error()));
    CHECK(story->at("state") == "booked");
    CHECK(story->at("payment_id") == eur_id);
    const auto told = adapter::render_parked_trace(*story);
    CHECK_MESSAGE(told.find("IncomingPaymentParked") < told.find("IncomingPaymentBookedByOperator"),
                  told);
    CHECK(told.find("booked (corrected: amount) by operator: converted at 7.46, INC-9") !=
          std::string::npos);
    CHECK(told.find("published adapter.dk.payments.v1") != std::string::npos);
    CHECK(told.find("Charles") == std::string::npos);  // the row, never its raw
  }
  auto returned_story =
      adapter::build_parked_trace(*s.db.pool, *s.db.store, std::to_string(account));
  REQUIRE(returned_story);
  CHECK(adapter::render_parked_trace(*returned_story)
            .find("by operator: the creditor's bank asks it back, INC-10") != std::string::npos);
  CHECK_FALSE(adapter::build_parked_trace(*s.db.pool, *s.db.store, "999999"));

  // The command, without the data key (the row is read, never the raw): the same story.
  const std::string config = "/tmp/parked-payments-trace-" + std::to_string(getpid()) + ".json";
  {
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    std::ofstream(config) << nlohmann::json::parse(in).dump(2);
  }
  processes::Process trace({CLEARING_ADAPTER, "trace", eur_id, "--config", config},
                           {{"CLEARING_ADAPTER_DATABASE_URL", s.db.database.url()}});
  CHECK_MESSAGE(trace.wait() == 0, trace.stderr_text());
  const auto printed = trace.read_all();
  CHECK_MESSAGE(printed.find("Parked incoming payment " + std::to_string(eur)) == 0, printed);
  CHECK(printed.find("by operator: converted at 7.46, INC-9") != std::string::npos);
}

TEST_CASE("payments parked before they were listed are listed when the poller starts, once") {
  Service s;
  // As a database of the previous version has them: events, no rows. None booked or returned:
  // those actions came with the rows (adapter/0008).
  s.db.database.exec("delete from parked_messages");
  auto listed = s.poller.list_parked_payments();
  REQUIRE_MESSAGE(listed, (listed ? "" : listed.error().message));
  CHECK(*listed == 2);
  CHECK(s.query("select string_agg(reason_code || '=' || state || '=' || clearing_reference, ','"
                " order by reason_code) from parked_messages") ==
        "AC01=open=CR-ACC-02,AM03=open=CR-EUR-01");
  CHECK(s.query("select bool_and(raw_sealed) from parked_messages") == "t");
  // A listed payment is booked as one the poller listed.
  const auto eur = s.parked_id_of("CR-EUR-01");
  REQUIRE(s.post("/parked/" + std::to_string(eur) + "/book",
                 R"({"reason":"converted","amount_minor_units":50000})")
              .status == 200);
  CHECK(s.query("select string_agg(reason_code || '=' || state, ',' order by reason_code) from "
                "parked_messages") == "AC01=open,AM03=booked");
  listed = s.poller.list_parked_payments();
  REQUIRE(listed);
  CHECK(*listed == 0);
  CHECK(s.query("select count(*) from parked_messages") == "2");
}

TEST_CASE(
    "book and return find the payment by the row's clearing reference, never by its sealed raw; "
    "a row without one (an older version's) takes it from the payment's event") {
  Service s;
  CHECK(s.query("select string_agg(reason_code || '=' || clearing_reference, ',' order by "
                "reason_code) from parked_messages") == "AC01=CR-ACC-02,AM03=CR-EUR-01");
  const auto eur = s.parked_id_of("CR-EUR-01");
  const auto account = s.parked_id_of("CR-ACC-02");
  // Both raws damaged where their sealed text's ciphertext is: they no longer open.
  s.db.database.exec(
      "update parked_messages set raw = overlay(raw placing (case when substring(raw from "
      "octet_length(raw) - 8 for 4) = 'AAAA'::bytea then 'BBBB' else 'AAAA' end)::bytea from "
      "octet_length(raw) - 8) where payment_id is not null");
  for (const auto id : {eur, account}) CHECK_THROWS(s.get("/parked/" + std::to_string(id)));
  // As a version before adapter/0009 writes the row: no clearing reference.
  s.db.database.exec("update parked_messages set clearing_reference = null where id = " +
                     std::to_string(account));

  const auto booked = s.post("/parked/" + std::to_string(eur) + "/book",
                             R"({"reason":"converted at 7.46","amount_minor_units":50000})");
  CHECK_MESSAGE(booked.status == 200, booked.body);
  CHECK(s.query("select string_agg(type, ',' order by version) from events where stream_id = "
                "'incoming-payment-CR-EUR-01'") ==
        "IncomingPaymentParked,IncomingPaymentBookedByOperator");
  const auto returned =
      s.post("/parked/" + std::to_string(account) + "/return", R"({"reason":"asked back"})");
  CHECK_MESSAGE(returned.status == 200, returned.body);
  CHECK(s.query("select string_agg(type, ',' order by version) from events where stream_id = "
                "'incoming-payment-CR-ACC-02'") ==
        "IncomingPaymentParked,IncomingPaymentReturnedByOperator");
  // Each row's state, and the reference the return took from the event, written with it.
  CHECK(s.query("select string_agg(reason_code || '=' || state || '=' || clearing_reference, ','"
                " order by reason_code) from parked_messages") ==
        "AC01=returned=CR-ACC-02,AM03=booked=CR-EUR-01");
}

TEST_CASE(
    "migration adapter/0009 gives payments parked before it their clearing reference from their "
    "events, not from the sealed raw, and such a row is booked") {
  TestDatabase database;
  eventstore::DatabaseOptions options;
  options.url = database.url();
  eventstore::ConnectionPool pool(options);
  const auto& all = adapter::adapter_migrations();
  REQUIRE(all.size() >= 9);
  REQUIRE(all[7].id == "adapter/0008_parked_payments");
  REQUIRE(all[8].id == "adapter/0009_parked_clearing_reference");
  REQUIRE(eventstore::apply_migrations(pool, eventstore::eventstore_migrations()));
  REQUIRE(eventstore::apply_migrations(pool, std::span(all).first(8)));
  REQUIRE(eventstore::apply_migrations(pool, privacy::privacy_migrations()));
  auto vault = privacy::Vault::create(
      {.database = pool.options(), .keys = privacy::KeyRing{privacy::random_key(), {}}});
  REQUIRE(vault);
  pool.set_protector(*vault);
  eventstore::EventStore store(pool);

  // A payment in EUR parked by the saga and listed as the version of adapter/0008 did: its
  // event, and its row by park() alone (sealed raw, payment id, no reference). A message beside.
  sagas::RecordIncomingPayment record;
  record.clearing_reference = "CR-OLD-07";
  record.cursor = "000000000007";
  record.amount.minor_units = 6700;
  record.amount.currency = *sagas::Currency::parse("EUR");
  record.debtor = {"Ada Lovelace", {sagas::AccountScheme::iban, "DE89370400440532013000"}};
  record.creditor = {"Charles Babbage", {sagas::AccountScheme::bban, "5301-0001234567"}};
  record.remittance_info = "Invoice 42";
  REQUIRE(base::parse_timestamp("2026-11-26T09:00:00Z", record.received_at));
  record.rules = dk_rules();
  const auto payment_id = sagas::incoming_payment_id(record.clearing_reference);
  eventstore::Aggregate<sagas::IncomingPaymentDecider, sagas::IncomingPaymentCodec> payments{store};
  auto parked = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
    // Today's park() writes the reference too: the column stands for this insert only and is
    // dropped below, which leaves 0008's schema and a row without its reference.
    tx.exec("alter table parked_messages add column clearing_reference text");
    auto decided = payments.handle(tx, adapter::incoming_payment_stream(record.clearing_reference),
                                   record, {payment_id, payment_id, nullptr, {}});
    const auto* event = decided && decided->events.size() == 1
                            ? std::get_if<sagas::IncomingPaymentParked>(&decided->events.front())
                            : nullptr;
    if (event == nullptr)
      return tl::unexpected(
          eventstore::StoreError{eventstore::StoreErrc::internal, "the saga did not park it"});
    if (auto row = adapter::park(
            tx,
            {std::string(adapter::kParkedPaymentSource), event->reason_code, event->reason,
             sagas::IncomingPaymentCodec::encode(*event).dump(), std::nullopt, std::nullopt,
             std::nullopt, event->payment_id, event->payment_id},
            pool.protector());
        !row)
      return row;
    auto message = adapter::park(tx, {"clearing-feed", "invalid_payment", "broken", "{oops"},
                                 pool.protector());
    tx.exec("alter table parked_messages drop column clearing_reference");
    return message;
  });
  REQUIRE_MESSAGE(parked, (parked ? "" : parked.error().message));
  REQUIRE(database.query_value("select string_agg(reason_code || '=' || raw_sealed::text, ',' "
                               "order by id) from parked_messages") ==
          "AM03=true,invalid_payment=true");

  auto migrated = eventstore::apply_migrations(pool, all);
  REQUIRE(migrated);
  CHECK(migrated->applied == std::vector<std::string>{"adapter/0009_parked_clearing_reference"});
  CHECK(database.query_value("select string_agg(reason_code || '=' || coalesce(clearing_reference, "
                             "'-'), ',' order by id) from parked_messages") ==
        "AM03=CR-OLD-07,invalid_payment=-");

  const auto id = database.query_value("select id from parked_messages where payment_id = '" +
                                       payment_id + "'");
  const auto booked = adapter::book_parked_payment(
      store, id, R"({"reason":"converted at 7.46","amount_minor_units":50000})", "operator",
      dk_rules());
  CHECK_MESSAGE(booked.status == 200, booked.body);
  CHECK(database.query_value("select state from parked_messages where id = " + id) == "booked");
  CHECK(database.query_value("select string_agg(type, ',' order by version) from events where "
                             "stream_id = 'incoming-payment-CR-OLD-07'") ==
        "IncomingPaymentParked,IncomingPaymentBookedByOperator");
}
