#pragma once
// Derivations: internal events -> external messages. Each outgoing stream is one pure
// derivation function; adding a stream (or a .v2 of one) is one function and one entry
// in derivations(). A derivation handler runs as a subscription on the internal events
// and appends what the functions derive in the subscription's transaction: the messages
// and the checkpoint commit together, so each is derived exactly once.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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
  std::function<std::optional<eventstore::RecordedEvent>(const std::string& stream,
                                                         const std::string& type)>
      first_of_type;
};

using DerivationFn = std::vector<Draft> (*)(const eventstore::RecordedEvent&,
                                            const DerivationContext&);

struct Derivation {
  std::string name;  // what config names: "payments.v1", "settlements.v1"
  DerivationFn derive;
};

// adapter.<cc>.payments.v1 (docs/streams.md): TransferPending (first only),
// TransferUnderInvestigation, TransferSucceeded, TransferRejected (also DUPL),
// IncomingPaymentReceived.
std::vector<Draft> derive_payments_v1(const eventstore::RecordedEvent& event,
                                      const DerivationContext& context);
// adapter.<cc>.settlements.v1: only money that moved, with amount and settlement date.
std::vector<Draft> derive_settlements_v1(const eventstore::RecordedEvent& event,
                                         const DerivationContext& context);

const std::vector<Derivation>& derivations();
std::optional<DerivationFn> find_derivation(const std::string& name);

struct DerivedStream {
  StreamSpec spec;
  DerivationFn derive;
};

// How a derivation handler answered its look-ups (DerivationContext::first_of_type).
struct DerivationLookups {
  std::atomic<std::uint64_t> remembered{0};  // answered from an opening event the handler had seen
  std::atomic<std::uint64_t> streams_read{0};  // streams read from the store instead
};

struct DerivationOptions {
  // The handler sees every internal event in commit order, each stream's first (version 1)
  // among them, before any later event of that stream. It keeps the first events of the
  // last `openings_kept` streams it saw, and answers a look-up of a stream's first event
  // of a type from them when the stream's first event is of that type (a transfer's
  // TransferInitiated, for its amount): no read. Anything else (a stream opened before
  // this process started, or by a batch another instance handled, or dropped from the
  // window) is read from the store as before. Events never change, so what is kept is
  // never stale. 0 keeps none.
  std::size_t openings_kept = 4096;
  std::shared_ptr<DerivationLookups> lookups;  // counted here when set
};

// The subscription handler for a set of derived streams: a batch of events is derived
// and appended with a few statements (append_external_batch). Called by one subscription,
// one batch at a time.
eventstore::BatchHandler make_derivation_handler(eventstore::EventStore& store,
                                                 std::vector<DerivedStream> streams,
                                                 DerivationOptions options = {});

}  // namespace clearing::external_streams
