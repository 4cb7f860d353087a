// core-sim's set-wise account work against a real PostgreSQL server, as specifications:
// given accounts and reservations, when a batch of commands (the publisher's) or of
// outcome messages (the consumer's) is handled in one transaction, then these events,
// rejections, violations and read models. Includes accounts that move between the
// batch's read and its append (another transaction appends meanwhile).

#include <doctest/doctest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <thread>

#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/core_sim/core_sim_schema.hpp"
#include "clearing/core_sim/outcome_applier.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/payments_v2_codec.hpp"
#include "test_database.hpp"

using namespace clearing;
using namespace clearing::core_sim;
using eventstore::StoreResult;
using eventstore::Transaction;

namespace {

sagas::Money dkk(std::int64_t minor) { return sagas::Money{minor, *sagas::Currency::parse("DKK")}; }

AccountCommandRequest reserve(const std::string& account, const std::string& transfer,
                              std::int64_t minor) {
  return {account, ReserveFunds{transfer, dkk(minor)},
          eventstore::CommandContext{"corr-" + transfer, "", nullptr, "reserve|" + transfer}};
}

// A reservation in a transaction of its own, decided from the stream alone (an empty cache),
// as another publisher's would be.
StoreResult<AccountBatchResult> reserve_alone(eventstore::ConnectionPool& pool,
                                              eventstore::EventStore& store,
                                              const std::string& account,
                                              const std::string& transfer, std::int64_t minor) {
  AccountCache empty;
  AccountStates local;
  return pool.transact([&](Transaction& tx) -> StoreResult<AccountBatchResult> {
    return handle_account_commands(store, tx, std::vector{reserve(account, transfer, minor)}, empty,
                                   local);
  });
}

struct Fixture {
  testing::TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  AccountCache cache;

  Fixture() {
    pool = std::make_unique<eventstore::ConnectionPool>(
        eventstore::DatabaseOptions{.url = database.url()});
    for (const auto* m : {&eventstore::eventstore_migrations(), &core_sim_migrations()})
      REQUIRE(eventstore::apply_migrations(*pool, *m));
    store = std::make_unique<eventstore::EventStore>(*pool);
  }

  // Handles the commands in a transaction of their own and merges the states into the
  // cache once committed, as the publisher does.
  AccountBatchResult handle(const std::vector<AccountCommandRequest>& commands,
                            const BeforeAccountAppend& before_append = {}) {
    AccountStates local;
    auto done = pool->transact([&](Transaction& tx) -> StoreResult<AccountBatchResult> {
      local.clear();
      return handle_account_commands(*store, tx, commands, cache, local, before_append);
    });
    REQUIRE_MESSAGE(done, (done ? std::string() : done.error().message));
    cache.merge(local);
    return *done;
  }

  void open(const std::string& account, std::int64_t minor) {
    const auto done =
        handle({{account, OpenAccount{account, dkk(minor)},
                 eventstore::CommandContext{"corr-open", "", nullptr, "open|" + account}}});
    REQUIRE(done.results.front());
  }

  // A reservation and the transfer row the publisher would have written with it.
  void request(const std::string& account, const std::string& transfer, std::int64_t minor) {
    const auto done = handle({reserve(account, transfer, minor)});
    REQUIRE(done.results.front());
    database.exec(
        "insert into core_transfers (transfer_id, account_id, amount_minor, currency, "
        "correlation_id,"
        " reserved_event_id, stream_partition, stream_seq, request_batch, requested_at) values ('" +
        transfer + "', '" + account + "', " + std::to_string(minor) + ", 'DKK', 'corr-" + transfer +
        "', '" + done.results.front()->event_ids.front().value() + "', 0, 1, 'b', now())");
  }

  // Moves the account in a transaction of its own (another connection): a reservation.
  void move_concurrently(const std::string& account, const std::string& transfer,
                         std::int64_t minor) {
    const auto moved = reserve_alone(*pool, *store, account, transfer, minor);
    REQUIRE(moved);
    REQUIRE(moved->results.front());
  }

  std::string value(const std::string& sql) { return database.query_value(sql); }
};

external_streams::ExternalMessage outcome(const std::string& type, const std::string& transfer,
                                          std::int64_t seq,
                                          nlohmann::json extra = nlohmann::json::object()) {
  external_streams::ExternalMessage m;
  m.stream = "adapter.dk.payments.v1";
  m.partition = 0;
  m.seq = seq;
  m.event_id = base::new_uuid();
  m.type = type;
  m.correlation_id = "corr-" + transfer;
  m.data = std::move(extra);
  m.data["transfer_id"] = transfer;
  return m;
}

nlohmann::json rejected(const std::string& code) {
  return {{"reason_code", code}, {"reason", "test"}};
}

namespace v2 = external_streams::payments::v2;

// A TransferStatusChanged of adapter.dk.payments.v2 about a transfer of 1'000 DKK.
external_streams::ExternalMessage status_changed(const std::string& transfer, std::int64_t seq,
                                                 v2::TransferStatus status,
                                                 const std::string& reason_code = "") {
  v2::TransferStatusChanged event;
  event.transfer_id = transfer;
  event.status = status;
  event.amount = external_streams::payments::Amount{1'000, "DKK"};
  event.clearing_reference = "CR-" + transfer;
  if (status == v2::TransferStatus::rejected) event.reason = v2::StatusReason{reason_code, "test"};
  auto m = outcome("TransferStatusChanged", transfer, seq, v2::encode(event));
  m.stream = "adapter.dk.payments.v2";
  return m;
}

// The message with the adapter's internal event it was derived from.
external_streams::ExternalMessage from_event(external_streams::ExternalMessage m,
                                             const std::string& source_event_id) {
  m.source_event_id = source_event_id;
  return m;
}

// One consumer batch: begin, every message queued (errors returned in order), end; a
// failed end rolls back and the batch is tried again, as the consumer does.
struct ConsumerBatch {
  std::vector<bool> queued;
  int failed_tries = 0;
};
ConsumerBatch consume(Fixture& f, const std::vector<external_streams::ExternalMessage>& messages,
                      const BeforeAccountAppend& before_append = {},
                      OutcomesVersion version = OutcomesVersion::v1) {
  OutcomeApplier applier(*f.store, f.cache, before_append, version);
  ConsumerBatch out;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto done = f.pool->transact([&](Transaction& tx) -> StoreResult<int> {
      applier.begin_batch(tx);
      out.queued.clear();
      for (const auto& m : messages) out.queued.push_back(applier.apply(tx, m).has_value());
      auto ended = applier.end_batch(tx);
      if (!ended) return tl::unexpected(ended.error());
      return 0;
    });
    if (done) return out;
    ++out.failed_tries;
  }
  FAIL("the consumer batch failed every try");
  return out;
}

}  // namespace

TEST_CASE(
    "publisher batch: several reservations of one account chain on each other, in batch order") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.open("acct-b", 10'000);
  const auto done = f.handle({reserve("acct-a", "t1", 4'000), reserve("acct-b", "t2", 1'000),
                              reserve("acct-a", "t3", 4'000), reserve("acct-a", "t4", 4'000),
                              reserve("acct-a", "t5", 2'000)});
  REQUIRE(done.results.size() == 5);
  CHECK(done.conflict_rounds == 0);
  REQUIRE(done.results[0]);
  REQUIRE(done.results[1]);
  REQUIRE(done.results[2]);
  REQUIRE_FALSE(done.results[3]);  // 8'000 of 10'000 reserved by t1 and t3
  CHECK(done.results[3].error().code == AccountRejectionCode::insufficient_funds);
  REQUIRE(done.results[4]);
  CHECK(done.results[4]->state.reserved_minor == 10'000);
  CHECK(done.results[2]->state.reserved_minor == 8'000);

  // One append per account: versions follow batch order.
  CHECK(f.value("select string_agg(data->>'transfer_id', ',' order by version) from events"
                " where stream_id = 'account-acct-a'") ==
        "t1,t3,t5");  // AccountOpened has no transfer id
  // Event ids from the command's own seed and its own event index, as one command at a time.
  const auto stream = account_stream_name("acct-a");
  CHECK(done.results[4]->event_ids.front().value() ==
        base::derived_uuid("9b2e6c1a-4f7d-4a3b-8e5c-1d0f2a7b6c94", "reserve|t5|" + stream + "|0"));
  CHECK(f.value("select event_id::text from events where data->>'transfer_id' = 't5'") ==
        done.results[4]->event_ids.front().value());
  CHECK(f.cache.get(stream).version.value() == 4);

  // The same batch again: every reservation is done already, nothing new.
  const auto again = f.handle({reserve("acct-a", "t1", 4'000), reserve("acct-a", "t3", 4'000)});
  REQUIRE(again.results[0]);
  CHECK(again.results[0]->event_ids.empty());
  CHECK(again.results[1]->event_ids.empty());
  CHECK(f.value("select count(*) from events") == "6");
}

TEST_CASE("publisher batch: a cache behind the stream is caught up by the tail read") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.move_concurrently("acct-a", "elsewhere", 6'000);  // committed, not in the cache
  const auto done = f.handle({reserve("acct-a", "t1", 3'000), reserve("acct-a", "t2", 3'000)});
  CHECK(done.conflict_rounds == 0);
  REQUIRE(done.results[0]);
  REQUIRE_FALSE(done.results[1]);
  CHECK(done.results[1].error().code == AccountRejectionCode::insufficient_funds);
  CHECK(f.cache.get(account_stream_name("acct-a")).version.value() == 3);
}

TEST_CASE(
    "publisher batch: an account that moved between the read and the append is decided again") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.open("acct-b", 10'000);
  // Between the batch's read and its append, another transaction reserves 7'000 of acct-a.
  const auto done = f.handle({reserve("acct-b", "t0", 1'000), reserve("acct-a", "t1", 2'000),
                              reserve("acct-a", "t2", 2'000)},
                             [&](int round) {
                               if (round == 1) f.move_concurrently("acct-a", "moved", 7'000);
                             });
  CHECK(done.conflict_rounds == 1);
  REQUIRE(done.results[0]);
  REQUIRE(done.results[1]);  // 7'000 + 2'000 of 10'000
  REQUIRE_FALSE(done.results[2]);
  CHECK(done.results[2].error().code == AccountRejectionCode::insufficient_funds);
  CHECK(f.value("select string_agg(data->>'transfer_id', ',' order by version) from events"
                " where stream_id = 'account-acct-a'") == "moved,t1");
  CHECK(f.value("select count(*) from events where stream_id = 'account-acct-b'") == "2");
  const auto cached = f.cache.get(account_stream_name("acct-a"));
  CHECK(cached.version.value() == 3);
  CHECK(cached.state.reserved_minor == 9'000);
}

TEST_CASE("consumer batch: several outcomes for one account, in message order") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  f.request("acct-a", "t2", 2'000);
  f.request("acct-a", "t3", 3'000);
  const auto batch = consume(
      f,
      {outcome("TransferSucceeded", "t1", 1, {{"clearing_reference", "CR-1"}}),
       outcome("TransferPending", "t3", 2), outcome("TransferRejected", "t2", 3, rejected("AC04")),
       outcome("TransferUnderInvestigation", "t3", 4), outcome("TransferSucceeded", "t3", 5)});
  CHECK(batch.queued == std::vector<bool>(5, true));
  CHECK(batch.failed_tries == 0);
  CHECK(f.value("select string_agg(transfer_id || ':' || status || ':' || coalesce(reason_code, "
                "'') || ':' ||"
                " coalesce(clearing_reference, '') || ':' || pending_seen || ':' || "
                "under_investigation_seen,"
                " ',' order by transfer_id) from core_transfers") ==
        "t1:succeeded::CR-1:false:false,t2:rejected:AC04::false:false,t3:succeeded:::true:true");
  CHECK(f.value("select balance_minor || '/' || reserved_minor from core_accounts where account_id "
                "= 'acct-a'") == "6000/0");
  CHECK(f.value("select string_agg(type, ',' order by version) from events where stream_id = "
                "'account-acct-a'") ==
        "AccountOpened,FundsReserved,FundsReserved,FundsReserved,ReservationCompleted,"
        "ReservationReleased,"
        "ReservationCompleted");
  CHECK(f.value("select count(*) from core_violations") == "0");
  CHECK(f.value("select count(*) from core_transfers where outcome_at is not null") == "3");
}

TEST_CASE(
    "consumer batch: a second outcome for a transfer in the same batch is a violation, the first "
    "wins") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  const auto first = outcome("TransferSucceeded", "t1", 1);
  consume(f, {first, outcome("TransferRejected", "t1", 2, rejected("AC04")),
              outcome("TransferSucceeded", "t1", 3)});
  CHECK(f.value("select status || ':' || outcome_event_id from core_transfers") ==
        "succeeded:" + first.event_id);
  CHECK(f.value("select string_agg(kind || '@' || seq, ',' order by id) from core_violations") ==
        "release_after_completion@2,double_completion@3");
  CHECK(f.value("select count(*) from events where type in ('ReservationCompleted', "
                "'ReservationReleased')") == "1");
  CHECK(f.value("select balance_minor || '/' || reserved_minor from core_accounts") == "9000/0");
}

TEST_CASE(
    "consumer batch: unknown transfers are violations, DUPL releases nothing, a reasonless "
    "rejection is parked") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  const auto batch =
      consume(f, {outcome("TransferSucceeded", "stranger", 1),
                  outcome("TransferRejected", "t1", 2, rejected("DUPL")),
                  outcome("TransferRejected", "t1", 3, rejected("DUPL")),
                  outcome("TransferRejected", "t1", 4),          // no reason code: unusable
                  outcome("TransferRejected", "stranger-2", 5),  // unknown first: a violation
                  outcome("TransferPending", "stranger-3", 6)});
  CHECK(batch.queued == std::vector<bool>{true, true, true, false, true, true});
  CHECK(
      f.value(
          "select string_agg(transfer_id || ':' || kind, ',' order by id) from core_violations") ==
      "stranger:unknown_transfer,stranger-2:unknown_transfer,stranger-3:unknown_transfer");
  CHECK(f.value("select status || ':' || dupl_seen from core_transfers") == "open:2");
  CHECK(f.value("select count(*) from events where type = 'ReservationReleased'") == "0");
}

TEST_CASE(
    "consumer batch: its accounts are locked from its read to its commit; a publisher waits and "
    "decides again") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  f.request("acct-a", "t2", 2'000);
  // Between the consumer's read and its append: an append with a short lock timeout
  // cannot get through, and the publisher's batch (its own thread) waits for the commit.
  eventstore::ConnectionPool impatient(eventstore::DatabaseOptions{
      .url = f.database.url(), .lock_timeout = std::chrono::milliseconds(100)});
  eventstore::EventStore impatient_store(impatient);
  std::optional<StoreResult<AccountBatchResult>> blocked, publisher;
  std::thread publishing;
  const auto reserve_t9 = [](eventstore::ConnectionPool& pool, eventstore::EventStore& store) {
    return reserve_alone(pool, store, "acct-a", "t9", 4'000);
  };
  const auto batch = consume(f,
                             {outcome("TransferSucceeded", "t1", 1),
                              outcome("TransferRejected", "t2", 2, rejected("AM04"))},
                             [&](int) {
                               if (blocked) return;
                               blocked = reserve_t9(impatient, impatient_store);
                               publishing =
                                   std::thread([&] { publisher = reserve_t9(*f.pool, *f.store); });
                             });
  publishing.join();
  CHECK(batch.failed_tries == 0);
  REQUIRE(blocked.has_value());
  CHECK_FALSE(blocked->has_value());  // the lock held it off
  REQUIRE(publisher.has_value());
  REQUIRE(publisher->has_value());
  REQUIRE((*publisher)->results.front());  // 9'000 available after the consumer's batch
  CHECK(f.value("select string_agg(type || ':' || coalesce(data->>'transfer_id', "
                "data->>'account_id'), ','"
                " order by version) from events where stream_id = 'account-acct-a'") ==
        "AccountOpened:acct-a,FundsReserved:t1,FundsReserved:t2,ReservationCompleted:t1,"
        "ReservationReleased:t2,"
        "FundsReserved:t9");
  CHECK(f.value("select balance_minor || '/' || reserved_minor from core_accounts") == "9000/0");
  CHECK(f.value("select string_agg(status, ',' order by transfer_id) from core_transfers") ==
        "succeeded,rejected");
}

TEST_CASE(
    "consumer batch: account events get positions in message order per partition, accounts "
    "interleaved") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.open("acct-b", 10'000);
  for (const auto* t : {"a1", "a2", "a3"}) f.request("acct-a", t, 100);
  for (const auto* t : {"b1", "b2"}) f.request("acct-b", t, 100);
  auto on = [](std::int32_t partition, external_streams::ExternalMessage m) {
    m.partition = partition;
    return m;
  };
  // Partition 0: a1 b1 a2 b2 (a2 must follow b1); partition 1: a3 between them.
  consume(
      f,
      {on(0, outcome("TransferSucceeded", "a1", 1)), on(0, outcome("TransferSucceeded", "b1", 2)),
       on(1, outcome("TransferSucceeded", "a3", 1)), on(0, outcome("TransferSucceeded", "a2", 3)),
       on(0, outcome("TransferRejected", "b2", 4, rejected("AC04")))});
  CHECK(f.value("select string_agg(metadata->'source'->>'partition' || ':' || "
                "(metadata->'source'->>'seq'), ','"
                " order by transaction_id::text::bigint, position) from events where metadata ? "
                "'source'") == "0:1,1:1,0:2,0:3,0:4");
  CHECK(f.value("select string_agg(account_id || '=' || balance_minor || '/' || reserved_minor, "
                "',' order by account_id)"
                " from core_accounts") == "acct-a=9700/0,acct-b=9900/0");
}

TEST_CASE(
    "consumer batch, v2: each TransferStatusChanged is the v1 outcome it stands for; one that does "
    "not decode, or a v1 type, is unusable") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  f.request("acct-a", "t2", 2'000);
  f.request("acct-a", "t3", 3'000);
  auto investigating = status_changed("t3", 4, v2::TransferStatus::pending);
  investigating.data["investigation"] = {
      {"since", "2026-11-26T09:00:00.000Z"}, {"attempts", 5}, {"last_error", "timeout"}};
  auto no_status = status_changed("t2", 6, v2::TransferStatus::settled);
  no_status.data.erase("status");
  auto v1_type = outcome("TransferSucceeded", "t2", 7);
  v1_type.stream = "adapter.dk.payments.v2";
  const auto batch =
      consume(f,
              {status_changed("t1", 1, v2::TransferStatus::settled),
               status_changed("t3", 2, v2::TransferStatus::pending),
               status_changed("t2", 3, v2::TransferStatus::rejected, "AC04"), investigating,
               status_changed("t3", 5, v2::TransferStatus::settled), no_status, v1_type},
              {}, OutcomesVersion::v2);
  CHECK(batch.queued == std::vector<bool>{true, true, true, true, true, false, false});
  CHECK(f.value("select string_agg(transfer_id || ':' || status || ':' || coalesce(reason_code, "
                "'') || ':' || coalesce(clearing_reference, '') || ':' || pending_seen || ':' || "
                "under_investigation_seen, ',' order by transfer_id) from core_transfers") ==
        "t1:succeeded::CR-t1:false:false,t2:rejected:AC04:CR-t2:false:false,"
        "t3:succeeded::CR-t3:true:true");
  CHECK(f.value("select balance_minor || '/' || reserved_minor from core_accounts") == "6000/0");
  CHECK(f.value("select count(*) from core_violations") == "0");

  // The v1 applier does not read v2's type.
  OutcomeApplier v1(*f.store, f.cache);
  auto unread = f.pool->transact([&](Transaction& tx) -> StoreResult<bool> {
    return v1.apply(tx, status_changed("t1", 8, v2::TransferStatus::settled)).has_value();
  });
  REQUIRE(unread);
  CHECK_FALSE(*unread);
}

TEST_CASE(
    "consumer batch: a message of an internal event handled already, from v1 or v2, is skipped; "
    "another event's second outcome is still a violation") {
  Fixture f;
  f.open("acct-a", 10'000);
  f.request("acct-a", "t1", 1'000);
  f.request("acct-a", "t2", 2'000);
  // v1 brings four events of the adapter.
  consume(f, {from_event(outcome("TransferSucceeded", "t1", 1), "e1"),
              from_event(outcome("TransferPending", "t2", 2), "e2"),
              from_event(outcome("TransferRejected", "t2", 3, rejected("DUPL")), "e3"),
              from_event(outcome("TransferSucceeded", "stranger", 4), "e4")});
  // v2 brings the same four again, then two new ones: t2's rejection, and a second
  // completion of t1 from an event of its own.
  const auto batch =
      consume(f,
              {from_event(status_changed("t1", 1, v2::TransferStatus::settled), "e1"),
               from_event(status_changed("t2", 2, v2::TransferStatus::pending), "e2"),
               from_event(status_changed("t2", 3, v2::TransferStatus::rejected, "DUPL"), "e3"),
               from_event(status_changed("stranger", 4, v2::TransferStatus::settled), "e4"),
               from_event(status_changed("t2", 5, v2::TransferStatus::rejected, "AC04"), "e5"),
               from_event(status_changed("t1", 6, v2::TransferStatus::settled), "e6")},
              {}, OutcomesVersion::v2);
  CHECK(batch.queued == std::vector<bool>(6, true));
  CHECK(f.value("select string_agg(transfer_id || ':' || status || ':' || dupl_seen, ','"
                " order by transfer_id) from core_transfers") == "t1:succeeded:0,t2:rejected:1");
  CHECK(f.value("select string_agg(transfer_id || ':' || kind || '@' || stream, ',' order by id)"
                " from core_violations") ==
        "stranger:unknown_transfer@adapter.dk.payments.v1,"
        "t1:double_completion@adapter.dk.payments.v2");
  CHECK(f.value("select count(*) from events where type = 'ReservationCompleted'") == "1");
  CHECK(f.value("select string_agg(source_event_id || '@' || right(stream, 2) || ':' || seq, ','"
                " order by source_event_id) from core_outcome_sources") ==
        "e1@v1:1,e2@v1:2,e3@v1:3,e4@v1:4,e5@v2:5,e6@v2:6");
  CHECK(f.value("select balance_minor || '/' || reserved_minor from core_accounts") == "9000/0");

  // Back to v1 (its later seqs): the events v2 handled are skipped there too.
  consume(f, {from_event(outcome("TransferRejected", "t2", 5, rejected("AC04")), "e5")});
  CHECK(f.value("select count(*) from core_violations") == "2");
  CHECK(f.value("select count(*) from events where type = 'ReservationReleased'") == "1");
}
