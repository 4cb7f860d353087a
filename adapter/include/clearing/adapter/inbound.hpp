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

// The inbound consumer's handler: each TransferRequested is checked and queued by apply,
// and end_batch initiates the batch's queue with one append for all new transfers
// (TransferService::execute_batch); park runs the queue before it parks, so effects keep
// the messages' order. A database failure is returned as the batch's rollback (its
// StoreError decides: hold and retry, or narrow down to the message), never thrown.
std::unique_ptr<external_streams::InboundHandler> make_transfer_inbound(TransferService& transfers,
                                                                        const base::Clock& clock,
                                                                        InboundRules rules);

}  // namespace clearing::adapter
