#pragma once
// The Transfer handler: runs a command on a transfer's stream and, in the same
// transaction, keeps the two projections the rest of the service reads:
//   transfer_work    the clearing call due for each transfer (next_action of its state),
//                    claimed by dispatchers with FOR UPDATE SKIP LOCKED;
//   transfer_status  each transfer's current state name, for metrics and look-ups.
// Because both are written with the events, a crash can never leave a transfer whose
// events say "retry at T" without the work row that makes the retry happen.

#include <optional>
#include <string>

#include "clearing/eventstore/aggregate.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/sagas/transfer_codec.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {

using TransferAggregate = eventstore::Aggregate<sagas::TransferDecider, sagas::TransferCodec>;
using TransferResult = eventstore::CommandResult<sagas::TransferDecider>;

// The adapter's own tables (work queue, status, parked messages, ...).
const std::vector<eventstore::Migration>& adapter_migrations();

eventstore::StreamId transfer_stream(const std::string& transfer_id);

class TransferService {
 public:
  explicit TransferService(eventstore::EventStore& store);

  // Inside the caller's transaction (a consumer's, with its checkpoint).
  TransferResult execute(eventstore::Transaction& tx, const sagas::TransferCommand& command,
                         const eventstore::CommandContext& context);
  // In a transaction of its own, retried on retryable errors.
  TransferResult execute(const sagas::TransferCommand& command,
                         const eventstore::CommandContext& context);

  eventstore::StoreResult<eventstore::Loaded<sagas::TransferDecider>> load(
      eventstore::Transaction& tx, const std::string& transfer_id);

  eventstore::EventStore& store() { return store_; }

 private:
  void sync_projections(eventstore::Transaction& tx, const std::string& transfer_id,
                        const eventstore::Decision<sagas::TransferDecider>& decision,
                        const eventstore::CommandContext& context);

  eventstore::EventStore& store_;
  TransferAggregate aggregate_;
};

std::string transfer_id_of(const sagas::TransferCommand& command);

}  // namespace clearing::adapter
