#pragma once
// Derivations: internal events -> external messages. Each outgoing stream is one pure
// derivation function; adding a stream (or a .v2 of one) is one function and one entry
// in derivations(). A derivation handler runs as a subscription on the internal events
// and appends what the functions derive in the subscription's transaction: the messages
// and the checkpoint commit together, so each is derived exactly once.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "clearing/eventstore/subscription.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::external_streams {

// Read access to other internal events, for derivations that need more than the event
// in hand (the settlement stream needs the transfer's amount).
struct DerivationContext {
  // The first event of `type` in `stream`, if any.
  std::function<std::optional<eventstore::RecordedEvent>(const std::string& stream, const std::string& type)>
      first_of_type;
};

using DerivationFn = std::vector<Draft> (*)(const eventstore::RecordedEvent&, const DerivationContext&);

struct Derivation {
  std::string name;  // what config names: "payments.v1", "settlements.v1"
  DerivationFn derive;
};

// adapter.<cc>.payments.v1 (docs/streams.md): TransferPending (first only),
// TransferUnderInvestigation, TransferSucceeded, TransferRejected (also DUPL),
// IncomingPaymentReceived.
std::vector<Draft> derive_payments_v1(const eventstore::RecordedEvent& event, const DerivationContext& context);
// adapter.<cc>.settlements.v1: only money that moved, with amount and settlement date.
std::vector<Draft> derive_settlements_v1(const eventstore::RecordedEvent& event, const DerivationContext& context);

const std::vector<Derivation>& derivations();
std::optional<DerivationFn> find_derivation(const std::string& name);

struct DerivedStream {
  StreamSpec spec;
  DerivationFn derive;
};

// The subscription handler for a set of derived streams: a batch of events is derived
// and appended with a few statements (append_external_batch).
eventstore::BatchHandler make_derivation_handler(eventstore::EventStore& store, std::vector<DerivedStream> streams);

}  // namespace clearing::external_streams
