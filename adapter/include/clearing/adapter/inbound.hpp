#pragma once
// The core's stream into the saga: TransferRequested -> InitiateTransfer, in the
// consumer's transaction (with the partition's seq). Bad input is parked with its raw
// message and reason; where the transfer id is readable and the transfer is not known
// yet, the transfer is rejected with FF01 so the core is never left waiting.

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/external_streams/consumer.hpp"

namespace clearing::adapter {

struct InboundRules {
  sagas::CountryRules rules;
  sagas::RetryPolicy policy;
};

// Reads a TransferRequested's data into the command; invalid_data names the field.
tl::expected<sagas::InitiateTransfer, external_streams::MessageError> parse_transfer_requested(
    const external_streams::ExternalMessage& message, const InboundRules& rules, base::Timestamp now);

external_streams::MessageApplier make_transfer_applier(TransferService& transfers, const base::Clock& clock,
                                                       InboundRules rules);
external_streams::MessageParker make_transfer_parker(TransferService& transfers, const base::Clock& clock,
                                                     InboundRules rules);

}  // namespace clearing::adapter
