// Hostile input from the core's stream (issue 16, item 4), through the adapter's real
// inbound handler into a real PostgreSQL: every message below once stopped a whole
// country's flow for good. Each is now parked with a typed reason (and its transfer
// rejected FF01 with that reason where the id is readable), its seq counted, and the
// other partition flows in the same batch.

#include <doctest/doctest.h>

#include <limits>

#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/kafka.hpp"

using namespace clearing;
using namespace clearing::testing;
using external_streams::RawMessage;
using Json = nlohmann::json;

namespace {

const external_streams::StreamSpec kCore{"core.dk.payments.v1", 2};

Json request_data(const std::string& transfer_id) { return core_request_data(transfer_id); }

Json envelope(int partition, std::int64_t seq, Json data) {
  return core_envelope(kCore.name, partition, seq, std::move(data));
}

struct Inbound {
  SagaDatabase db;
  std::unique_ptr<external_streams::EmbeddedKafka> kafka;
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  std::int64_t head = 0;  // the core's head that the stub catch-up API reports
  std::int64_t offset = 0;

  Inbound() {
    auto started = external_streams::EmbeddedKafka::start(1);
    REQUIRE(started);
    kafka = std::move(*started);
    REQUIRE(kafka->create_topic(kCore.name, kCore.partitions));
    external_streams::ConsumerOptions options;
    options.kafka.bootstrap_servers = kafka->bootstrap_servers();
    options.kafka.client_id = "hostile-inbound";
    options.group_id = "hostile-inbound";
    options.topics = {kCore.name};
    static const base::SystemClock clock;
    // The core has nothing beyond its head to offer.
    external_streams::CatchUpFetcher fetcher = [this](const std::string&, std::int32_t,
                                                      std::int64_t, std::int64_t)
        -> tl::expected<external_streams::FetchedPage, external_streams::FetchError> {
      return external_streams::FetchedPage{{}, head};
    };
    auto made = external_streams::StreamConsumer::create(
        *db.pool, options,
        adapter::make_transfer_inbound(*db.transfers, clock, {dk_rules(), fast_policy()}), fetcher);
    REQUIRE_MESSAGE(made, (made ? "" : external_streams::message_of(made.error())));
    consumer = std::move(*made);
  }

  RawMessage raw(int partition, std::string value) {
    return {kCore.name, partition, offset++, "k", std::move(value)};
  }
  std::string query(const std::string& sql) { return db.database.query_value(sql); }
  std::string rejection_reason(const std::string& transfer_id) {
    return query(
        "select data->>'reason_code' || ' ' || (data->>'reason') from events where type = "
        "'TransferRejected'"
        " and stream_id = 'transfer-" +
        transfer_id + "'");
  }
};

}  // namespace

TEST_CASE(
    "every hostile message of the core's stream costs only itself: parked or rejected FF01 with "
    "its reason, its seq counted, the other partition flowing") {
  Inbound in;
  in.head = 8;
  const auto good = base::new_uuid(), nul_name = base::new_uuid(), huge_name = base::new_uuid(),
             no_correlation = base::new_uuid(), huge_amount = base::new_uuid(),
             last = base::new_uuid();
  auto with = [](const std::string& id, const char* field, Json value) {
    auto data = request_data(id);
    data[field] = std::move(value);
    return data;
  };
  auto named = [](const std::string& id, std::string name) {
    auto data = request_data(id);
    data["debtor"]["name"] = std::move(name);
    return data;
  };
  auto missing_correlation = envelope(0, 6, request_data(no_correlation));
  missing_correlation.erase("correlation_id");
  auto wide_partition = envelope(0, 7, request_data(base::new_uuid()));
  wide_partition["partition"] = std::uint64_t{1} << 32;
  const std::string not_utf8("\xFF\xFE not json \x00 at all", 20);

  std::vector<RawMessage> batch{
      in.raw(0, envelope(0, 1, request_data(good)).dump()),
      in.raw(0, not_utf8),  // not JSON, not UTF-8, a NUL
      in.raw(0, envelope(0, 2, named(nul_name, std::string("Ada\0Lovelace", 12)))
                    .dump()),  // \u0000 in a name
      in.raw(0, envelope(0, 3, with(std::string(300, 'x'), "account_id", "a"))
                    .dump()),  // transfer id over 200 bytes
      in.raw(0, envelope(0, 4, request_data("evil\nlevel=error forged"))
                    .dump()),  // control characters in the id
      in.raw(
          0,
          envelope(0, 5, named(huge_name, std::string(300 * 1024, 'N'))).dump()),  // a 300 KB name
      in.raw(0, missing_correlation.dump()),  // an envelope fault at seq 6
      in.raw(0, wide_partition.dump()),       // partition 2^32 is not partition 0
      in.raw(0, envelope(0, 1'000'000'000'007, request_data(base::new_uuid()))
                    .dump()),  // a seq jump of 10^12
      in.raw(0, envelope(0, 7,
                         with(huge_amount, "amount",
                              {{"minor_units", std::uint64_t{1} << 63}, {"currency", "DKK"}}))
                    .dump()),
      in.raw(0, envelope(0, 8, request_data(last)).dump()),
  };
  std::vector<std::string> flowing;
  for (int seq = 1; seq <= 3; ++seq) {
    flowing.push_back(base::new_uuid());
    batch.push_back(in.raw(1, envelope(1, seq, request_data(flowing.back())).dump()));
  }
  CHECK(in.consumer->apply(batch) == static_cast<int>(batch.size()));

  // Nothing is held; both partitions are at their last seq.
  CHECK(in.consumer->stats().held.empty());
  CHECK(in.query("select last_seq from inbound_stream_progress where partition = 0") == "8");
  CHECK(in.query("select last_seq from inbound_stream_progress where partition = 1") == "3");
  // The good ones became transfers, on both partitions.
  for (const auto& id : {good, last, flowing[0], flowing[1], flowing[2]})
    CHECK(in.query("select status from transfer_status where transfer_id = '" + id + "'") ==
          "initiated");
  // Each unusable one is rejected with what was wrong, never "missing field account_id".
  CHECK(in.rejection_reason(nul_name) ==
        "FF01 TransferRequested.debtor.name has control characters");
  CHECK(in.rejection_reason(huge_name) ==
        "FF01 TransferRequested.debtor.name is 307200 bytes, more than 1024");
  CHECK(in.rejection_reason(no_correlation) ==
        "FF01 field 'correlation_id' is missing or not a string");
  CHECK(in.rejection_reason(huge_amount) ==
        "FF01 TransferRequested.amount.minor_units is beyond 2^63-1");
  // Ids that cannot name a transfer are parked only: no transfer stream named after them.
  CHECK(in.query("select count(*) from events where stream_id like 'transfer-xxx%' or stream_id "
                 "like 'transfer-evil%'") == "0");
  // Everything unusable is kept, with its reason; the raw bytes exactly as they came.
  CHECK(in.query("select count(*) from parked_messages") == "9");
  CHECK(in.query("select count(*) from parked_messages where reason_code = 'invalid_data'") == "5");
  CHECK(in.query("select count(*) from parked_messages where reason_code = 'seq_beyond_head'") ==
        "1");
  CHECK(in.query("select count(*) from parked_messages where reason_code = 'missing_field'") ==
        "2");
  CHECK(in.query("select count(*) from parked_messages where reason_code = 'not_json'") == "1");
  CHECK(in.query("select octet_length(raw) from parked_messages where reason_code = 'not_json'") ==
        "20");
  CHECK(in.query("select encode(substring(raw from 1 for 2), 'hex') from parked_messages where "
                 "reason_code = 'not_json'") == "fffe");
  // Every parked reason is one storable line that names the field, never the value.
  CHECK(in.query("select count(*) from parked_messages where reason ~ '[[:cntrl:]]' or reason like "
                 "'%forged%'") == "0");
}

TEST_CASE(
    "a second, different request that reuses the first one's event_id is refused DUPL, not "
    "swallowed") {
  Inbound in;
  const auto id = base::new_uuid();
  auto first = envelope(1, 1, request_data(id));
  auto second = envelope(1, 2, request_data(id));
  second["event_id"] = first["event_id"];
  second["data"]["amount"]["minor_units"] = 999'999;
  CHECK(in.consumer->apply({in.raw(1, first.dump())}) == 1);
  CHECK(in.consumer->apply({in.raw(1, second.dump())}) == 1);
  CHECK(in.query("select count(*) from events where type = 'DuplicateTransferRequestRefused' and "
                 "stream_id = 'transfer-" +
                 id + "'") == "1");
  CHECK(in.query("select data->>'differing_fields' from events where type = "
                 "'DuplicateTransferRequestRefused'") == "[\"amount\"]");
  // TransferInitiated and the refusal; a redelivery of the first message is still a no-op.
  CHECK(in.consumer->apply({in.raw(1, first.dump())}) == 1);
  CHECK(in.query("select count(*) from events where stream_id = 'transfer-" + id + "'") == "2");
}

TEST_CASE("a name of 71 x 'Ø' (142 bytes, 71 characters) is a valid name") {
  Inbound in;
  const auto id = base::new_uuid();
  auto data = request_data(id);
  std::string name;
  for (int i = 0; i < 71; ++i) name += "\xC3\x98";
  data["creditor"]["name"] = name;
  CHECK(in.consumer->apply({in.raw(0, envelope(0, 1, data).dump())}) == 1);
  CHECK(in.query("select status from transfer_status where transfer_id = '" + id + "'") ==
        "initiated");
}

TEST_CASE(
    "a NUL in the remittance is refused FF01 before anything is written (the chaos run's "
    "nul_in_field)") {
  Inbound in;
  const auto id = base::new_uuid(), next = base::new_uuid();
  auto data = request_data(id);
  data["remittance_info"] = std::string("chaos: \0 here", 13);
  CHECK(in.consumer->apply({in.raw(0, envelope(0, 1, data).dump()),
                            in.raw(0, envelope(0, 2, request_data(next)).dump())}) == 2);
  CHECK(in.rejection_reason(id) == "FF01 TransferRequested.remittance_info has control characters");
  CHECK(in.query("select status from transfer_status where transfer_id = '" + next + "'") ==
        "initiated");
  CHECK(in.consumer->stats().held.empty());
}

TEST_CASE(
    "a message whose effects the database refuses is parked alone and its transfer rejected FF01; "
    "the rest of the batch is applied") {
  // Defence in depth behind the checks: here the events table itself refuses one request.
  Inbound in;
  in.db.database.exec(
      "alter table events add constraint no_poison check (coalesce(data->>'remittance_info', '') "
      "<> 'poison')");
  const auto poisoned = base::new_uuid(), before = base::new_uuid(), after = base::new_uuid();
  auto data = request_data(poisoned);
  data["remittance_info"] = "poison";
  CHECK(in.consumer->apply({in.raw(0, envelope(0, 1, request_data(before)).dump()),
                            in.raw(0, envelope(0, 2, data).dump()),
                            in.raw(0, envelope(0, 3, request_data(after)).dump())}) == 3);
  CHECK(in.consumer->stats().held.empty());
  CHECK(in.query("select last_seq from inbound_stream_progress where partition = 0") == "3");
  CHECK(in.query("select count(*) from parked_messages where reason_code = 'unstorable'") == "1");
  CHECK(in.rejection_reason(poisoned).rfind(
            "FF01 the database refused this message's effects (internal: ", 0) == 0);
  for (const auto& id : {before, after})
    CHECK(in.query("select status from transfer_status where transfer_id = '" + id + "'") ==
          "initiated");
}
