#include "bad_input_injector.hpp"

#include <stdexcept>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/message.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::chaos {

BadInputInjector::BadInputInjector(const std::string& bootstrap, const std::string& core_url,
                                   std::string stream, int partitions)
    : core_url_(core_url), stream_(std::move(stream)), partitions_(partitions) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof error);
  rd_kafka_conf_set(conf, "message.timeout.ms", "120000", error, sizeof error);
  rd_kafka_conf_set(conf, "log_level", "3", error,
                    sizeof error);  // errors only: outages are planned
  producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (!producer_) throw std::runtime_error(std::string("injector producer: ") + error);
}

BadInputInjector::~BadInputInjector() {
  rd_kafka_flush(producer_, 30'000);
  rd_kafka_destroy(producer_);
}

std::string BadInputInjector::inject(BadInput kind, int partition) {
  switch (kind) {
    case BadInput::not_json:
      return produce(partition, "chaos: this is not JSON {");
    case BadInput::missing_field: {
      auto j = envelope(partition);
      j.erase("seq");
      j.erase("event_id");
      return produce(partition, j.dump());
    }
    case BadInput::bad_seq: {
      auto j = envelope(partition);
      j["seq"] = -7;
      return produce(partition, j.dump());
    }
    case BadInput::wrong_stream: {
      auto j = envelope(partition);
      j["partition"] = (partition + 1) % partitions_;
      return produce(partition, j.dump());
    }
    case BadInput::unknown_type:
      return append_to_core("TransferAmended", {{"note", "chaos: a type nobody knows"}});
    case BadInput::invalid_data:
      return append_to_core("TransferRequested",
                            {{"amount", {{"minor_units", "lots"}, {"currency", 7}}}});
  }
  return "unknown class";
}

// A well-formed envelope for the envelope faults to spoil.
nlohmann::json BadInputInjector::envelope(int partition) const {
  external_streams::ExternalMessage m;
  m.stream = stream_;
  m.partition = partition;
  m.seq = 1;
  m.event_id = base::new_uuid();
  m.type = "TransferRequested";
  m.occurred_at = "2026-11-26T10:00:00Z";
  m.correlation_id = base::new_uuid();
  m.source_event_id = base::new_uuid();
  m.key = base::new_uuid();
  m.data = {{"note", "chaos"}};  // no transfer_id: nothing for the adapter to reject back
  return m.to_json();
}

std::string BadInputInjector::produce(int partition, const std::string& value) {
  const auto err = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(stream_.c_str()), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  rd_kafka_poll(producer_, 0);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(err);
}

std::string BadInputInjector::append_to_core(const std::string& type, nlohmann::json data) {
  try {
    eventstore::DatabaseOptions o;
    o.url = core_url_;
    o.connections_max = 1;
    eventstore::ConnectionPool pool(o);
    eventstore::EventStore store(pool);
    const auto cause_id = base::new_uuid();
    eventstore::Metadata metadata;
    metadata.correlation_id = base::new_uuid();
    metadata.source = {{"injected_by", "clearing-chaos"}};
    const eventstore::EventData cause{
        eventstore::EventId(cause_id),
        "ChaosBadInputInjected",
        {{"type", type}, {"why", "the chaos run plays a faulty core"}},
        metadata};
    auto done = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<bool> {
      auto appended = store.append(tx, eventstore::StreamId("chaos-" + cause_id),
                                   eventstore::ExpectedVersion::no_stream(), std::span(&cause, 1));
      if (!appended) return tl::unexpected(appended.error());
      eventstore::RecordedEvent source;
      source.event_id = cause.event_id;
      source.type = cause.type;
      source.data = cause.data;
      source.metadata = metadata;
      external_streams::Draft draft{type, base::new_uuid(), std::move(data)};
      auto external = external_streams::append_external(tx, {stream_, partitions_}, draft, source);
      if (!external) return tl::unexpected(external.error());
      return true;
    });
    return done ? "" : done.error().message;
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace clearing::chaos
