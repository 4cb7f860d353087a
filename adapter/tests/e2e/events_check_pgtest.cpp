// `clearing-adapter events check` (issue 19, item 6): every stored event is read with the
// reader of its stream's kind; an event no reader takes is reported by id, type, version and
// the decoder's error, never by its data, and the exit status says whether all read.

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "clearing/adapter/events_check.hpp"
#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/personal_data.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/processes/process.hpp"
#include "golden_events.hpp"  // sagas/tests: one of each event type, at each stored version

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;
using eventstore::SchemaVersion;
using Json = nlohmann::json;

namespace {

eventstore::EventData event(std::string type, Json data, SchemaVersion version = SchemaVersion{1}) {
  return eventstore::EventData{eventstore::EventId{base::new_uuid()}, std::move(type),
                               std::move(data),
                               eventstore::Metadata{"corr", "cause", nullptr, nullptr}, version};
}

void store(SagaDatabase& db, const std::string& stream, const eventstore::EventData& e) {
  REQUIRE(db.store->append(eventstore::StreamId{stream}, eventstore::ExpectedVersion::any(),
                           std::vector{e}));
}

// The goldens' stored texts, each at the version it was stored at: every event type the
// adapter's codecs know, and IncomingPaymentRecorded at versions 1 and 2; and one event of
// each of the incoming feed's two streams.
void store_goldens(SagaDatabase& db) {
  for (const auto& g : sagas::golden::transfer_goldens())
    store(db, "transfer-t-1", event(std::string(g.type), Json::parse(g.text), g.version));
  for (const auto& g : sagas::golden::incoming_payment_goldens())
    store(db, "incoming-payment-CR-IN-17",
          event(std::string(g.type), Json::parse(g.text), g.version));
  store(db, adapter::kIncomingFeedStream,
        event(adapter::kIncomingFeedAdvanced,
              {{"from_cursor", ""}, {"next_cursor", "000000000017"}, {"payments", 1}}));
  store(db, adapter::kIncomingFeedParkedStream,
        event(adapter::kIncomingFeedPaymentParked, {{"index", 0}, {"reason", "r"}}));
}

struct Corrupt {
  eventstore::EventData event;
  std::string stream;
  std::string stream_kind;
  std::string error;
};

// One of each way an event can fail to read. Their data holds a name and an account, which
// no report may print.
std::vector<Corrupt> corrupt_events() {
  auto initiated = Json::parse(sagas::golden::transfer_goldens()[0].text);
  initiated["amount"]["currency"] = "dkk";
  auto settled = Json::parse(sagas::golden::transfer_goldens()[4].text);
  settled.erase("clearing_reference");
  settled["note"] = "Ada Lovelace DK5000400440116243";
  const auto parked = Json::parse(sagas::golden::incoming_payment_goldens()[2].text);
  return {
      {event("TransferInitiated", initiated), "transfer-t-2", "transfer",
       "TransferInitiated: invalid field amount"},
      {event("TransferSettled", settled), "transfer-t-2", "transfer",
       "TransferSettled: missing field clearing_reference"},
      {event("TransferTeleported", {{"debtor", "Ada Lovelace"}}), "transfer-t-3", "transfer",
       "unknown event type TransferTeleported"},
      {event("IncomingPaymentParked", parked, SchemaVersion{2}), "incoming-payment-CR-IN-18",
       "incoming-payment",
       "IncomingPaymentParked: unknown schema version 2, this build reads 1 to 1"},
      {event(adapter::kIncomingFeedAdvanced, {{"next_cursor", 17}}), adapter::kIncomingFeedStream,
       "incoming-feed", "IncomingFeedAdvanced: invalid field next_cursor"},
      {event("LedgerBooked", {{"name", "Ada Lovelace"}}), "ledger-1", "unknown",
       "no reader for the stream of this event (unknown stream kind)"},
  };
}

// Until every event written so far is below the horizon under which the store hands events
// out in commit order: a test beside this one on the same server can hold it back a moment.
std::string write_config(const std::string& name) {
  const std::string path = "/tmp/events-check-" + name + "-" + std::to_string(getpid()) + ".json";
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  std::ofstream(path) << Json::parse(in).dump(2);
  return path;
}

}  // namespace

TEST_CASE("events check reads every stored event, reports those it cannot read, and says so") {
  SagaDatabase db;
  // An event written by the adapter itself, through the Transfer aggregate.
  const auto now = base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}};
  auto initiate = make_initiate(1, RequestKind::valid, now);
  REQUIRE(db.transfers->execute(initiate, {initiate.correlation_id, "core-event-1", nullptr, ""}));
  store_goldens(db);
  const std::int64_t good = std::stoll(db.database.query_value("select count(*) from events"));
  const auto corrupt = corrupt_events();
  for (const auto& c : corrupt) store(db, c.stream, c.event);
  const auto total = good + static_cast<std::int64_t>(corrupt.size());
  wait_for_horizon(db);

  std::vector<std::pair<std::int64_t, std::int64_t>> progress;
  adapter::EventsCheckOptions options;
  options.page_size = 3;
  options.progress_every = 5;
  options.progress = [&](std::int64_t read, std::int64_t failures) {
    progress.emplace_back(read, failures);
  };
  auto report = adapter::check_events(*db.store, options);
  REQUIRE(report);
  CHECK(report->events_read == total);
  CHECK(report->failures == static_cast<std::int64_t>(corrupt.size()));
  CHECK(report->exit_code() == 1);
  REQUIRE(report->failures_listed.size() == corrupt.size());
  for (std::size_t i = 0; i < corrupt.size(); ++i) {
    const auto& listed = report->failures_listed[i];  // in commit order: as stored
    CAPTURE(corrupt[i].error);
    CHECK(listed.event_id == corrupt[i].event.event_id.value());
    CHECK(listed.type == corrupt[i].event.type);
    CHECK(listed.schema_version == corrupt[i].event.schema_version);
    CHECK(listed.stream_kind == corrupt[i].stream_kind);
    CHECK(listed.error == corrupt[i].error);
  }
  // Counted per type and version: the old and the new IncomingPaymentRecorded both.
  const auto& per_type = report->per_type;
  CHECK(per_type.at({"IncomingPaymentRecorded", 1}) == 1);
  CHECK(per_type.at({"IncomingPaymentRecorded", 2}) == 1);
  CHECK(per_type.at({"TransferInitiated", 1}) == 3);  // the saga's, the golden, the corrupt
  CHECK(per_type.at({"IncomingPaymentParked", 2}) == 1);
  std::int64_t counted = 0;
  for (const auto& [key, n] : per_type) counted += n;
  CHECK(counted == total);
  // Every 5 events, then once at the end.
  REQUIRE(progress.size() == static_cast<std::size_t>(total / 5 + 1));
  CHECK(progress[0].first == 5);
  CHECK(progress.back() == std::pair{total, static_cast<std::int64_t>(corrupt.size())});

  const auto text = adapter::render_events_check(*report);
  CHECK(text.find("events read: " + std::to_string(total) + "\n") == 0);
  CHECK(text.find("events this build cannot read: 6\n") != std::string::npos);
  CHECK(text.find("event_id=" + corrupt[1].event.event_id.value() +
                  " stream_kind=transfer type=TransferSettled schema_version=1 "
                  "error=\"TransferSettled: missing field clearing_reference\"") !=
        std::string::npos);
  CHECK(text.find("Ada") == std::string::npos);
  CHECK(text.find("6243") == std::string::npos);

  SUBCASE("listing is bounded; every failure is still counted") {
    options.failures_listed_max = 2;
    auto bounded = adapter::check_events(*db.store, options);
    REQUIRE(bounded);
    CHECK(bounded->failures == 6);
    CHECK(bounded->failures_listed.size() == 2);
    CHECK(adapter::render_events_check(*bounded).find("(4 more not listed)") != std::string::npos);
  }

  SUBCASE("once the corrupt events are gone, every event reads") {
    for (const auto& c : corrupt)
      db.database.exec("delete from events where event_id = '" + c.event.event_id.value() + "'");
    auto clean = adapter::check_events(*db.store, options);
    REQUIRE(clean);
    CHECK(clean->events_read == good);
    CHECK(clean->failures == 0);
    CHECK(clean->exit_code() == 0);
    CHECK(adapter::render_events_check(*clean).find("every event reads with this build") !=
          std::string::npos);
  }
}

TEST_CASE("clearing-adapter events check: exit 0 when all read, 1 when some do not, 2 on error") {
  SagaDatabase db;
  store_goldens(db);
  wait_for_horizon(db);
  const auto config = write_config("cli");
  const std::map<std::string, std::string> env{
      {"CLEARING_ADAPTER_DATABASE_URL", db.database.url()}};
  {
    Process all_read({CLEARING_ADAPTER, "events", "check", "--config", config}, env);
    CHECK_MESSAGE(all_read.wait() == 0, all_read.stderr_text());
    const auto out = all_read.read_all();
    CHECK(out.find("every event reads with this build") != std::string::npos);
    CHECK(out.find("IncomingPaymentRecorded") != std::string::npos);
    CHECK(all_read.stderr_text().find("events check: ") != std::string::npos);  // progress
  }
  const auto corrupt = corrupt_events();
  store(db, corrupt[1].stream, corrupt[1].event);
  wait_for_horizon(db);
  {
    Process some_fail({CLEARING_ADAPTER, "events", "check", "--config", config}, env);
    CHECK_MESSAGE(some_fail.wait() == 1, some_fail.stderr_text());
    const auto out = some_fail.read_all();
    CHECK(out.find("event_id=" + corrupt[1].event.event_id.value()) != std::string::npos);
    CHECK(out.find("Ada") == std::string::npos);
  }
  {
    auto unreachable = env;
    unreachable["CLEARING_ADAPTER_DATABASE_URL"] =
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2";
    Process no_database({CLEARING_ADAPTER, "events", "check", "--config", config}, unreachable);
    CHECK(no_database.wait() == 2);
    CHECK(no_database.stderr_text().find("clearing-adapter: ") != std::string::npos);
  }
  std::remove(config.c_str());
}

TEST_CASE("events check reads the privacy streams: erasures, expiries and rewraps") {
  SagaDatabase db;
  const auto vault = db.seal_personal_data();
  const auto now = base::Timestamp{std::chrono::milliseconds{1'800'000'000'000}};
  auto initiate = make_initiate(3, RequestKind::valid, now);
  REQUIRE(db.transfers->execute(initiate, {initiate.correlation_id, "core-event-3", nullptr, ""}));
  // A subject with nothing stored: erased all the same, and recorded.
  auto erased = adapter::erase_subject(*db.store, *vault, "acct-without-data", "operator",
                                       "asked before any transfer");
  REQUIRE(erased);
  CHECK(erased->keys_destroyed == 0);
  // Keys of this year: the oldest year kept is this one, so none expires, and no event.
  const int year = std::stoi(db.database.query_value("select max(period) from privacy_data_keys"));
  CHECK(adapter::apply_retention(*db.store, *vault, 5, year + 5) == 0);
  CHECK(adapter::apply_retention(*db.store, *vault, 5, year + 6) == 1);
  // One this build cannot read.
  store(db, "privacy-keys",
        event(std::string(adapter::kDataKeysExpiredType), Json{{"first_kept_year", 2020}}));
  wait_for_horizon(db);

  auto report = adapter::check_events(*db.store, {});
  REQUIRE(report);
  CHECK(report->per_type.at({"SubjectErased", 1}) == 1);
  CHECK(report->per_type.at({"DataKeysExpired", 1}) == 2);
  CHECK(report->failures == 1);
  REQUIRE(report->failures_listed.size() == 1);
  CHECK(report->failures_listed[0].stream_kind == "privacy");
  CHECK(report->failures_listed[0].error == "DataKeysExpired: missing field retention_years");
  // The transfer whose key expired still reads (no failure above) and folds: [erased].
  auto loaded = db.pool->transact([&](eventstore::Transaction& tx) {
    return db.transfers->load(tx, initiate.request.transfer_id);
  });
  REQUIRE(loaded);
  CHECK(loaded->state.request.debtor.name == "[erased]");
  CHECK(loaded->state.request.amount == initiate.request.amount);
}
