#pragma once
// The Transfer handler: runs a command on a transfer's stream and, in the same
// transaction, keeps the two projections the rest of the service reads:
//   transfer_work    the clearing call due for each transfer (next_action of its state),
//                    claimed by dispatchers with FOR UPDATE SKIP LOCKED;
//   transfer_status  each transfer's current state name, for metrics and look-ups.
// Because both are written with the events, a crash can never leave a transfer whose
// events say "retry at T" without the work row that makes the retry happen.

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clearing/eventstore/aggregate.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/sagas/transfer_codec.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {

using TransferAggregate = eventstore::Aggregate<sagas::TransferDecider, sagas::TransferCodec>;
using TransferResult = eventstore::CommandResult<sagas::TransferDecider>;
using TransferLoaded = eventstore::Loaded<sagas::TransferDecider>;

// The adapter's own tables (work queue, status, parked messages, ...).
const std::vector<eventstore::Migration>& adapter_migrations();

eventstore::StreamId transfer_stream(const std::string& transfer_id);

class TransferService {
 public:
  explicit TransferService(eventstore::EventStore& store);

  // Inside the caller's transaction (a consumer's, with its checkpoint).
  TransferResult execute(eventstore::Transaction& tx, const sagas::TransferCommand& command,
                         const eventstore::CommandContext& context);
  // Deciding first on `assumed` instead of loading the stream (Aggregate::handle with an
  // assumption: checked by the append's expected version, never trusted). For a caller
  // that read many transfers at once (load_many), or knows the stream is new.
  TransferResult execute(eventstore::Transaction& tx, const sagas::TransferCommand& command,
                         const eventstore::CommandContext& context, const TransferLoaded& assumed);
  // Many commands in the caller's transaction (Aggregate::handle_batch: one append for
  // the transfers whose assumption holds, the others one by one), answered in order, and
  // the projections of every transfer that moved written with one statement, from its
  // last state.
  struct BatchCommand {
    sagas::TransferCommand command;
    eventstore::CommandContext context;
    const TransferLoaded* assumed = nullptr;  // null: load the stream
  };
  std::vector<TransferResult> execute_batch(eventstore::Transaction& tx,
                                            std::span<const BatchCommand> commands);
  // In a transaction of its own, retried on retryable errors.
  TransferResult execute(const sagas::TransferCommand& command,
                         const eventstore::CommandContext& context);

  eventstore::StoreResult<eventstore::Loaded<sagas::TransferDecider>> load(
      eventstore::Transaction& tx, const std::string& transfer_id);
  // Many transfers with one read, by transfer id; one left out must be loaded on its own
  // (Aggregate::load_many).
  eventstore::StoreResult<std::map<std::string, TransferLoaded>> load_many(
      eventstore::Transaction& tx, const std::vector<std::string>& transfer_ids);

  // How many transfers are in each unfinished state (neither succeeded nor rejected),
  // through an index of the unfinished ones only: the cost follows the open work, not
  // the history. The statement's predicate is the partial index's, word for word.
  static constexpr const char* kUnfinishedByStatusQuery =
      "select status, count(*) from transfer_status where status not in ('succeeded', 'rejected')"
      " group by status order by status";
  static eventstore::StoreResult<std::vector<std::pair<std::string, std::int64_t>>>
  unfinished_by_status(eventstore::Transaction& tx);

  eventstore::EventStore& store() { return store_; }

 private:
  void sync_projections(eventstore::Transaction& tx, const std::string& transfer_id,
                        const eventstore::Decision<sagas::TransferDecider>& decision,
                        const eventstore::CommandContext& context);
  // One transfer's projection rows, as sync_projections writes them.
  struct ProjectionRow;
  // The row's submit body as stored, once: sealed when the pool has a protector (throws its
  // failure as eventstore::StoreFailure, which the pool's transact returns as a StoreError).
  void encode_submit_request(eventstore::Transaction& tx, ProjectionRow& row);
  static ProjectionRow projection_row(const std::string& transfer_id,
                                      const eventstore::Decision<sagas::TransferDecider>& decision,
                                      const eventstore::CommandContext& context);

  eventstore::EventStore& store_;
  TransferAggregate aggregate_;
};

std::string transfer_id_of(const sagas::TransferCommand& command);

}  // namespace clearing::adapter
