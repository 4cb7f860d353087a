#include "hostile_core.hpp"

#include <librdkafka/rdkafka.h>

#include <array>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/clock.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/message.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/sagas/account.hpp"

namespace clearing::chaos {
namespace {

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;
using nlohmann::json;

constexpr std::int64_t kHostileAccountBalanceMinor = 1'000'000'000'000;
constexpr std::int64_t kHostileAmountMinor = 1'000;
constexpr std::size_t kRemittanceOverMax140 = 150;  // ISO 20022 Max140Text, refused FF01

rd_kafka_t* new_producer(const std::string& bootstrap, int message_timeout_ms, bool reports) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof error);
  rd_kafka_conf_set(conf, "message.timeout.ms", std::to_string(message_timeout_ms).c_str(), error,
                    sizeof error);
  rd_kafka_conf_set(conf, "log_level", "3", error,
                    sizeof error);  // errors only: outages are planned
  if (reports) {
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void*) {
      if (m->_private == nullptr) return;
      auto* delivery = static_cast<std::pair<bool, rd_kafka_resp_err_t>*>(m->_private);
      *delivery = {true, m->err};
    });
  }
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (!producer) throw std::runtime_error(std::string("hostile core's producer: ") + error);
  return producer;
}

// A transfer's data as streams.md shows it: valid in every field but the one a class spoils.
json transfer_data(const std::string& transfer_id) {
  return {
      {"transfer_id", transfer_id},
      {"account_id", kHostileAccount},
      {"amount", {{"minor_units", kHostileAmountMinor}, {"currency", "DKK"}}},
      {"debtor",
       {{"name", "Chaos Debtor"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Chaos Creditor"},
        {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
      {"remittance_info", "chaos: a hostile core"},
      {"requested_at", base::format_timestamp(base::SystemClock{}.now())}};
}

}  // namespace

struct HostileCore::Impl {
  std::string stream;
  int partitions = 1;
  eventstore::DatabaseOptions database;
  // A pool for each injection: PostgreSQL restarts during the run, and a pool keeps a broken
  // connection until its next use fails.
  std::unique_ptr<eventstore::ConnectionPool> pool_of_now;
  std::unique_ptr<eventstore::EventStore> store_of_now;
  rd_kafka_t* async_producer = nullptr;  // copies nothing waits for (120 s to deliver)
  rd_kafka_t* sync_producer = nullptr;   // copies delivered inside the core's transaction

  Impl(const std::string& bootstrap, const std::string& core_url, std::string s, int p)
      : stream(std::move(s)), partitions(p) {
    database.url = core_url;
    database.connections_max = 1;
    database.application_name = "clearing-chaos-hostile-core";
    async_producer = new_producer(bootstrap, 120'000, false);
    sync_producer = new_producer(bootstrap, kSyncDeliveryTimeoutMs, true);
  }

  void connect() {
    store_of_now.reset();
    pool_of_now = std::make_unique<eventstore::ConnectionPool>(database);
    store_of_now = std::make_unique<eventstore::EventStore>(*pool_of_now);
  }
  eventstore::ConnectionPool& pool() { return *pool_of_now; }
  eventstore::EventStore& store() { return *store_of_now; }
  ~Impl() {
    rd_kafka_flush(async_producer, 30'000);
    rd_kafka_destroy(async_producer);
    rd_kafka_flush(sync_producer, kSyncDeliveryTimeoutMs);
    rd_kafka_destroy(sync_producer);
  }

  external_streams::StreamSpec spec() const { return {stream, partitions}; }

  // A key of `partition` (the core's stream partitions by key): prefix + a fresh UUID.
  std::string key_on(int partition, const std::string& prefix) const {
    for (int i = 0; i < kKeyDrawsMax; ++i) {
      auto key = prefix + base::new_uuid();
      if (external_streams::partition_for(key, partitions) == partition) return key;
    }
    throw std::runtime_error("no key of partition " + std::to_string(partition));
  }

  std::string produce(rd_kafka_t* producer, int partition, const std::string& key,
                      const std::string& value, void* opaque) {
    const auto err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(stream.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    rd_kafka_poll(producer, 0);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(err);
  }

  // Delivered or failed for good once it returns (the producer's message timeout is shorter
  // than the wait), so a copy that failed can never arrive after the transaction rolled back.
  std::string produce_delivered(int partition, const std::string& key, const std::string& value) {
    std::pair<bool, rd_kafka_resp_err_t> delivery{false, RD_KAFKA_RESP_ERR_NO_ERROR};
    if (auto error = produce(sync_producer, partition, key, value, &delivery); !error.empty())
      return error;
    rd_kafka_flush(sync_producer, kSyncDeliveryTimeoutMs + 5'000);
    if (!delivery.first) return "the copy was not delivered in time";
    return delivery.second == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(delivery.second);
  }

  StoreResult<void> open_account() {
    return pool().transact([&](Transaction& tx) -> StoreResult<void> {
      core_sim::AccountCache cache;
      core_sim::AccountStates local;
      const core_sim::AccountCommandRequest open{
          kHostileAccount,
          core_sim::OpenAccount{kHostileAccount,
                                sagas::Money{kHostileAccountBalanceMinor,
                                             sagas::country_currency(sagas::Country::dk)}},
          eventstore::CommandContext{base::new_uuid(), "", nullptr,
                                     std::string("open|") + kHostileAccount}};
      auto handled =
          core_sim::handle_account_commands(store(), tx, std::span(&open, 1), cache, local);
      if (!handled) return tl::unexpected(handled.error());
      if (!handled->results[0])
        return tl::unexpected(
            StoreError{StoreErrc::invalid_argument, handled->results[0].error().message});
      core_sim::AccountProjection projection;
      projection.add(handled->results[0]->state);
      projection.write(tx);
      return {};
    });
  }

  // The core's request of a transfer, as core-sim makes it: funds reserved, the row, the
  // message. `on_kafka` may put another copy of the message on Kafka before the commit.
  template <class OnKafka>
  StoreResult<void> request(const std::string& transfer_id, const std::string& marker,
                            const json& data, OnKafka on_kafka) {
    return pool().transact([&](Transaction& tx) -> StoreResult<void> {
      core_sim::AccountCache cache;
      core_sim::AccountStates local;
      const core_sim::AccountCommandRequest reserve{
          kHostileAccount,
          core_sim::ReserveFunds{
              transfer_id,
              sagas::Money{kHostileAmountMinor, sagas::country_currency(sagas::Country::dk)}},
          eventstore::CommandContext{marker, "", nullptr, "reserve|" + transfer_id}};
      auto handled =
          core_sim::handle_account_commands(store(), tx, std::span(&reserve, 1), cache, local);
      if (!handled) return tl::unexpected(handled.error());
      const auto& reserved = handled->results[0];
      if (!reserved || reserved->event_ids.size() != 1)
        return tl::unexpected(
            StoreError{StoreErrc::invalid_argument, "the core refused its own reservation"});
      core_sim::AccountProjection projection;
      projection.add(reserved->state);
      projection.write(tx);
      eventstore::RecordedEvent source;
      source.event_id = reserved->event_ids.front();
      source.stream_id = eventstore::StreamId{core_sim::account_stream_name(kHostileAccount)};
      source.type = "FundsReserved";
      source.metadata.correlation_id = marker;
      source.recorded_at = base::SystemClock{}.now();
      auto appended = external_streams::append_external(
          tx, spec(),
          external_streams::Draft{"TransferRequested", transfer_id, data, false, marker}, source);
      if (!appended) return tl::unexpected(appended.error());
      const auto& m = **appended;
      tx.exec_params(
          "insert into core_transfers (transfer_id, account_id, amount_minor, currency, "
          "correlation_id,"
          " reserved_event_id, stream_partition, stream_seq, request_batch, expected_reason_code, "
          "requested_at)"
          " values ($1, $2, $3, 'DKK', $4, $5, $6, $7, 'chaos-hostile-core', 'FF01', "
          "clock_timestamp())",
          transfer_id, std::string(kHostileAccount), kHostileAmountMinor, marker,
          source.event_id.value(), m.partition, m.seq);
      if (auto error = on_kafka(m); !error.empty())
        return tl::unexpected(StoreError{StoreErrc::invalid_argument, "the Kafka copy: " + error});
      return {};
    });
  }

  // A message of the core's stream that no request of the core stands behind, caused by
  // an internal event saying why (as the run's faulty core does for its bad input).
  StoreResult<void> append_uncaused(const std::string& key, const std::string& marker, json data) {
    return pool().transact([&](Transaction& tx) -> StoreResult<void> {
      const auto cause_id = base::new_uuid();
      eventstore::Metadata metadata;
      metadata.correlation_id = marker;
      metadata.source = {{"injected_by", "clearing-chaos"}};
      const eventstore::EventData cause{eventstore::EventId(cause_id),
                                        "ChaosHostileInputInjected",
                                        {{"why", "the chaos run plays a hostile core"}},
                                        metadata};
      auto appended =
          store().append(tx, eventstore::StreamId("chaos-" + cause_id),
                         eventstore::ExpectedVersion::no_stream(), std::span(&cause, 1));
      if (!appended) return tl::unexpected(appended.error());
      eventstore::RecordedEvent source;
      source.event_id = cause.event_id;
      source.type = cause.type;
      source.metadata = metadata;
      source.recorded_at = base::SystemClock{}.now();
      auto external = external_streams::append_external(
          tx, spec(),
          external_streams::Draft{"TransferRequested", key, std::move(data), false, marker},
          source);
      if (!external) return tl::unexpected(external.error());
      return {};
    });
  }

  std::int64_t core_head(Transaction& tx, int partition) {
    const auto r = tx.exec_params(
        "select head from external_stream_heads where stream = $1 and partition = $2", stream,
        partition);
    return r.empty() ? 0 : r[0][0].as<std::int64_t>();
  }

  HostileRecord inject(HostileInput kind, int partition, int index) {
    connect();
    HostileRecord r{kind, partition, base::new_uuid(), "", "", ""};
    r.error = put_on_stream(r, index);
    return r;
  }

  // Puts the record's input on its partition and fills in its detail (and transfer_id when
  // the core requests the transfer). "" once done, else why not.
  std::string put_on_stream(HostileRecord& r, int index) {
    switch (r.kind) {
      case HostileInput::invalid_utf8:
        return invalid_utf8(r);
      case HostileInput::nul_in_field:
        return nul_in_field(r);
      case HostileInput::long_transfer_id:
        return long_transfer_id(r);
      case HostileInput::control_transfer_id:
        return control_transfer_id(r);
      case HostileInput::oversize_field:
        return oversize_field(r, index);
      case HostileInput::seq_jump:
        return seq_jump(r);
      case HostileInput::envelope_core_seq:
        return envelope_core_seq(r);
    }
    return "unknown class";
  }

  static std::string error_of(const StoreResult<void>& done) {
    return done ? "" : done.error().message;
  }

  // Not JSON, and bytes no UTF-8 decoder takes: a lone continuation byte, an overlong NUL, a
  // surrogate half, 0xff.
  std::string invalid_utf8(HostileRecord& r) {
    const std::string value = "chaos " + r.marker + " \x80\xc0\x80\xed\xa0\x80\xff{ not json";
    r.detail = "not JSON, invalid UTF-8";
    return produce(async_producer, r.partition, key_on(r.partition, "chaos-"), value, nullptr);
  }

  // The core's own copy of the seq is refused too (a remittance over Max140Text's 140
  // characters), so FF01 is the one right answer whichever copy the adapter reads: the
  // Kafka copy, or the stream's through the catch-up API when a gap repair reaches it first.
  std::string nul_in_field(HostileRecord& r) {
    r.transfer_id = key_on(r.partition, "");
    r.detail = "NUL in remittance_info of a requested transfer, seq taken from the core's stream";
    auto data = transfer_data(r.transfer_id);
    data["remittance_info"] = std::string(kRemittanceOverMax140, 'r');
    return error_of(
        request(r.transfer_id, r.marker, data, [&](const external_streams::ExternalMessage& m) {
          auto hostile = m.to_json();
          hostile["data"]["remittance_info"] = std::string("chaos: \0 a NUL", 14);
          return produce_delivered(r.partition, m.key, hostile.dump());
        }));
  }

  std::string long_transfer_id(HostileRecord& r) {
    const auto id = key_on(r.partition, std::string(kLongTransferIdBytes, 'L') + "-");
    r.detail = std::to_string(id.size()) + "-byte transfer_id";
    return error_of(append_uncaused(id, r.marker, transfer_data(id)));
  }

  std::string control_transfer_id(HostileRecord& r) {
    const auto id = key_on(r.partition, std::string("chaos-\x01\x07\x1b[2J\x7f-"));
    r.detail = "transfer_id with control characters";
    return error_of(append_uncaused(id, r.marker, transfer_data(id)));
  }

  // The field it fills rotates on `index`, the inputs of the class so far.
  std::string oversize_field(HostileRecord& r, int index) {
    r.transfer_id = key_on(r.partition, "");
    auto data = transfer_data(r.transfer_id);
    struct Field {
      const char* pointer;
      const char* name;
    };
    static constexpr std::array<Field, 4> kFields{{{"/debtor/name", "debtor.name"},
                                                   {"/account_id", "account_id"},
                                                   {"/creditor/account/id", "creditor.account.id"},
                                                   {"/remittance_info", "remittance_info"}}};
    const auto& field = kFields[static_cast<std::size_t>(index) % kFields.size()];
    data[json::json_pointer(field.pointer)] = std::string(kOversizeFieldBytes, 'O');
    r.detail = field.name;
    r.detail += " of " + std::to_string(kOversizeFieldBytes / 1024) + " KB in a requested transfer";
    return error_of(
        request(r.transfer_id, r.marker, data,
                [](const external_streams::ExternalMessage&) { return std::string(); }));
  }

  std::string seq_jump(HostileRecord& r) {
    std::int64_t head = -1;
    auto read = pool().transact([&](Transaction& tx) -> StoreResult<void> {
      head = core_head(tx, r.partition);
      return {};
    });
    if (!read) return read.error().message;
    external_streams::ExternalMessage m;
    m.stream = stream;
    m.partition = r.partition;
    m.seq = head + kSeqJump;
    m.event_id = base::new_uuid();
    m.type = "TransferRequested";
    m.occurred_at = base::format_timestamp(base::SystemClock{}.now());
    m.correlation_id = r.marker;
    m.source_event_id = base::new_uuid();
    m.key = key_on(r.partition, "");
    m.data = transfer_data(m.key);
    r.detail = "seq " + std::to_string(m.seq) + " where the core's head is " + std::to_string(head);
    return produce(async_producer, r.partition, m.key, m.to_json().dump(), nullptr);
  }

  std::string envelope_core_seq(HostileRecord& r) {
    r.detail = "data not an object, at the core's next seq";
    return error_of(append_uncaused(key_on(r.partition, "chaos-"), r.marker,
                                    json("chaos: data that is not an object " + r.marker)));
  }
};

HostileCore::HostileCore(const std::string& bootstrap, const std::string& core_url,
                         std::string stream, int partitions)
    : impl_(std::make_unique<Impl>(bootstrap, core_url, std::move(stream), partitions)) {
  impl_->connect();
  if (auto opened = impl_->open_account(); !opened)
    throw std::runtime_error("the hostile core's account: " + opened.error().message);
}

HostileCore::~HostileCore() = default;

HostileRecord HostileCore::inject(HostileInput kind, int partition, int index) {
  try {
    return impl_->inject(kind, partition, index);
  } catch (const std::exception& e) {
    HostileRecord r{kind, partition, "", "", "", e.what()};
    return r;
  }
}

}  // namespace clearing::chaos
