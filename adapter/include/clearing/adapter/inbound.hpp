#pragma once
// The core's stream into the saga: TransferRequested -> InitiateTransfer, in the
// consumer's transaction (with the partition's seq), a batch's transfers initiated together. Bad
// input is parked with its raw message and reason; where the transfer id is readable and the
// transfer is not known yet, the transfer is rejected with FF01 so the core is never left waiting.

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/payments_codec.hpp"

namespace clearing::adapter {

struct InboundRules {
  sagas::CountryRules rules;
  sagas::RetryPolicy policy;
};

// Reads a TransferRequested's data (external_streams::payments, every check of the contract)
// into the command; invalid_data names the field.
tl::expected<sagas::InitiateTransfer, external_streams::MessageError> parse_transfer_requested(
    const external_streams::ExternalMessage& message, const InboundRules& rules,
    base::Timestamp now);

// A TransferRequested as the command that initiates its transfer, with the context its place
// in the stream gives (causation, source, event ids derived from stream, partition and seq, so
// that a redelivery writes the same ids). unknown_type for any other type; invalid_data as
// parse_transfer_requested. What the handler's apply runs, and a replay.
struct Initiation {
  sagas::InitiateTransfer command;
  eventstore::CommandContext context;
};
tl::expected<Initiation, external_streams::MessageError> initiation_of(
    const external_streams::ExternalMessage& message, const InboundRules& rules,
    base::Timestamp now);

// A parked message of the core's stream, run again through the inbound path (an operator's
// replay, parked_actions.hpp): its raw value read as the consumer reads it (parse_message,
// the envelope's stream and partition those it came on when known), initiation_of, and the
// command executed in the caller's transaction, `extra` in the events' metadata. The error:
// why the input still cannot be used (nothing written).
struct ReplayedMessage {
  std::string raw;
  std::optional<std::string> topic;
  std::optional<std::int32_t> partition;
};
tl::expected<TransferResult, external_streams::MessageError> replay_inbound(
    eventstore::Transaction& tx, TransferService& transfers, const InboundRules& rules,
    base::Timestamp now, const ReplayedMessage& message, const nlohmann::json& extra);

// The inbound consumer's handler: each TransferRequested is checked and queued by apply,
// and end_batch initiates the batch's queue with one append for all new transfers
// (TransferService::execute_batch); park runs the queue before it parks, so effects keep
// the messages' order. A database failure is returned as the batch's rollback (its
// StoreError decides: hold and retry, or narrow down to the message), never thrown.
std::unique_ptr<external_streams::InboundHandler> make_transfer_inbound(TransferService& transfers,
                                                                        const base::Clock& clock,
                                                                        InboundRules rules);

}  // namespace clearing::adapter
