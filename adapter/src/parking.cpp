#include "clearing/adapter/parking.hpp"

#include <pqxx/pqxx>

namespace clearing::adapter {

void park(eventstore::Transaction& tx, const ParkedMessage& m) {
  tx.exec_params(
      "insert into parked_messages (source, reason_code, reason, raw, topic, kafka_partition,"
      " kafka_offset, correlation_id) values ($1, $2, $3, $4, $5, $6, $7, $8)",
      m.source, m.reason_code, m.reason, m.raw, m.topic, m.partition, m.offset, m.correlation_id);
}

}  // namespace clearing::adapter
