#pragma once
// core-sim's handler of the adapter's stream (the consumer's InboundHandler), of either
// version: adapter.<cc>.payments.v1 (TransferSucceeded, TransferRejected, TransferPending,
// TransferUnderInvestigation) or adapter.<cc>.payments.v2 (TransferStatusChanged, read with
// payments::v2::decode_transfer_status_changed and turned by outcome_of() into the v1 outcome
// it stands for: PDNG -> TransferPending, or TransferUnderInvestigation with an
// investigation; ACSC -> TransferSucceeded; RJCT -> TransferRejected with reason.code), and
// IncomingPaymentReceived on both. Each applier reads one version (OutcomesVersion): the
// other version's outcome types are unknown types there. From here on, "an outcome" is the
// v1 meaning, whichever version carried it. Outcomes are set-wise: each message is
// validated and queued as it is applied, and the batch's work is done at its end
// (end_batch) with a handful of statements whatever the batch holds: one insert of the
// messages' source events (below), one locking read of the batch's transfers (in transfer
// id order), the account commands (one tail read, one append: account_commands.hpp), then
// one write each of the violations, the transfers' flags, the transfers' outcomes and the
// accounts' projection.
//
// Switching from v1 to v2 (CoreSimOptions::outcomes_version): each internal event of the
// adapter is handled once, whichever version brought it. Both versions are derived from
// the same internal events, and every message names its event (source_event_id): the
// table core_outcome_sources keeps the source event of every transfer message handled
// (applied, recorded, or a violation), written in the batch's transaction with the rest.
// A transfer message whose source event is there already is skipped: nothing applied,
// nothing recorded, no violation. So the switch is:
//   1. stop core-sim: the v1 consumer has applied each v1 partition up to a seq S_p (its
//      progress, committed with the batch's effects); nothing after S_p had any effect;
//   2. start it with outcomes_version v2: the v2 consumer has no progress on its stream,
//      so each v2 partition starts at seq 1. Every v2 message whose event v1 handled (those
//      up to S_p of v1 partition p) is skipped; the first one whose event v1 did not reach
//      is applied, and all after it. With the same partition count the skipped messages
//      are a prefix of each v2 partition (same keys, same events, same order): the switch
//      happens at a seq boundary per partition, without the core having to know it.
// Why it is right: an outcome reaches the accounts only through a batch that also inserts
// its source event, in one transaction, and the insert lets only a source event not yet
// there through (on conflict do nothing ... returning). So no internal event is applied
// twice, from one version or both (even both consumed at once, or back from v2 to v1),
// and none is lost: v2 is read from its seq 1, and every event v1 did not handle is in
// it. Two outcomes from two DIFFERENT internal events are still what they were: the
// account refuses the second one (violation_of), as before. Not keyed by transfer id, on
// purpose: that would hide a real second outcome. Costs: one indexed insert per batch and
// one row per transfer message; the v2 history is read once at the switch. Limit: the
// messages a core-sim older than that table (migration core_sim/0003) handled have no
// source kept, and the v2 replay would count their outcomes as second ones (violations):
// such a database is not switched.
// Messages without a source_event_id (only built in tests: the envelope requires one) are
// never skipped. A message whose copy in the other version was parked (unusable) is
// handled if usable; a message is parked whatever the other version brought (parking
// happens as it is read, before the batch's sources are known).
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

#include "clearing/base/trace_context.hpp"
#include "clearing/core_sim/account_commands.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/message.hpp"

namespace clearing::core_sim {

// Which version of adapter.<cc>.payments the applier reads.
enum class OutcomesVersion { v1, v2 };

class OutcomeApplier final : public external_streams::InboundHandler {
 public:
  OutcomeApplier(eventstore::EventStore& store, const AccountCache& cache,
                 BeforeAccountAppend before_append = {},
                 OutcomesVersion version = OutcomesVersion::v1);

  // A v1 outcome type (TransferSucceeded, TransferRejected, TransferPending,
  // TransferUnderInvestigation).
  static bool is_outcome(std::string_view type);
  // An outcome type of this applier's version (v2: TransferStatusChanged).
  bool reads_outcome(std::string_view type) const;

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

  // Validates and queues one outcome message of this applier's version. `tx` is used only
  // to tell a malformed rejection of an unknown transfer (a violation) from one of a known
  // transfer (parked).
  // `trace`: the context of the span consuming `m`, which the outcome's events keep.
  tl::expected<void, external_streams::MessageError> queue(
      eventstore::Transaction& tx, const external_streams::ExternalMessage& m,
      const base::TraceContext& trace);

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
    std::string source_event_id;
    std::string correlation_id;
    std::string reason_code;
    std::string clearing_reference;
    base::TraceContext trace;  // the consume span's: the outcome's events keep it
  };

  struct Plan;  // the batch's work, in message order (outcome_applier.cpp)
  void drop_handled_sources(eventstore::Transaction& tx);
  std::map<std::string, std::string> lock_transfers(eventstore::Transaction& tx) const;
  Plan plan(const std::map<std::string, std::string>& account_of) const;
  eventstore::StoreResult<void> command_accounts(eventstore::Transaction& tx, Plan& plan);

  eventstore::EventStore& store_;
  const AccountCache& cache_;
  BeforeAccountAppend before_append_;
  OutcomesVersion version_;
  std::vector<Queued> queued_;
};

// IncomingPaymentReceived: counted once per payment id (not set-wise: rare).
tl::expected<void, external_streams::MessageError> apply_incoming_payment(
    eventstore::Transaction& tx, const external_streams::ExternalMessage& m);

}  // namespace clearing::core_sim
