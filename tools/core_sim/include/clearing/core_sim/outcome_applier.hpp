#pragma once
// core-sim's handler of the adapter's stream (the consumer's InboundHandler). Outcomes
// (TransferSucceeded, TransferRejected, TransferPending, TransferUnderInvestigation) are
// set-wise: each message is validated and queued as it is applied, and the batch's work is
// done at its end (end_batch) with a handful of statements whatever the batch holds: one locking
// read of the batch's transfers (in transfer id order), the account commands (one tail
// read, one append: account_commands.hpp), then one write each of the violations, the
// transfers' flags, the transfers' outcomes and the accounts' projection.
//
// What each message means, in message order, as if applied one at a time:
// - an outcome for a transfer the core never requested: violation unknown_transfer;
// - TransferPending / TransferUnderInvestigation: recorded on the transfer;
// - TransferRejected with DUPL: about a second request under the id, which this core
//   never sends: counted on the transfer, nothing released;
// - TransferSucceeded completes the reservation, TransferRejected releases it; an
//   account that refuses (second outcome, ...) makes it a violation (violation_of). The
//   first outcome per transfer is the transfer's outcome.
// IncomingPaymentReceived is counted at once (apply_incoming_payment). Unusable messages
// (another type; no transfer_id; a TransferRejected without reason_code for a known
// transfer) are unusable errors of `apply`: the consumer parks them (park: the table
// core_parked_messages).
//
// The account events get positions (the commit order readers see) in message order per
// partition, as applying one message at a time gave them; interleaved accounts cost more
// appends. Accounts start from the cache (read only: the consumer's transaction commits
// out of this class's sight). An error from end_batch (a database failure, an account that
// moved between the batch's read and its append) means the batch must roll back; it is
// tried again from begin_batch, on a fresh read.
// Thread safety: one consumer thread.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/core_sim/account_commands.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/message.hpp"

namespace clearing::core_sim {

class OutcomeApplier final : public external_streams::InboundHandler {
 public:
  OutcomeApplier(eventstore::EventStore& store, const AccountCache& cache,
                 BeforeAccountAppend before_append = {});

  static bool is_outcome(std::string_view type);

  // A new batch (also a failed batch tried again): drops what an earlier try gathered.
  void begin_batch(eventstore::Transaction& tx) override;
  // An outcome is queued, IncomingPaymentReceived counted, anything else unusable.
  tl::expected<void, external_streams::ApplyError> apply(
      eventstore::Transaction& tx, const external_streams::ExternalMessage& m) override;
  // Keeps an unusable message in core_parked_messages.
  eventstore::StoreResult<void> park(
      eventstore::Transaction& tx, const external_streams::RawMessage& raw,
      const external_streams::MessageError& reason,
      const std::optional<external_streams::ExternalMessage>& parsed) override;
  // Applies what was queued.
  eventstore::StoreResult<void> end_batch(eventstore::Transaction& tx) override;

  // Validates and queues one outcome message. `tx` is used only to tell a malformed
  // rejection of an unknown transfer (a violation) from one of a known transfer (parked).
  tl::expected<void, external_streams::MessageError> queue(
      eventstore::Transaction& tx, const external_streams::ExternalMessage& m);

 private:
  enum class Kind { pending, under_investigation, duplicate_request, succeeded, rejected };
  struct Queued {
    Kind kind;
    std::string transfer_id;
    std::string type;
    std::string stream;
    std::int32_t partition = 0;
    std::int64_t seq = 0;
    std::string event_id;
    std::string correlation_id;
    std::string reason_code;
    std::string clearing_reference;
  };

  struct Plan;  // the batch's work, in message order (outcome_applier.cpp)
  std::map<std::string, std::string> lock_transfers(eventstore::Transaction& tx) const;
  Plan plan(const std::map<std::string, std::string>& account_of) const;
  eventstore::StoreResult<void> command_accounts(eventstore::Transaction& tx, Plan& plan);

  eventstore::EventStore& store_;
  const AccountCache& cache_;
  BeforeAccountAppend before_append_;
  std::vector<Queued> queued_;
};

// IncomingPaymentReceived: counted once per payment id (not set-wise: rare).
tl::expected<void, external_streams::MessageError> apply_incoming_payment(
    eventstore::Transaction& tx, const external_streams::ExternalMessage& m);

}  // namespace clearing::core_sim
