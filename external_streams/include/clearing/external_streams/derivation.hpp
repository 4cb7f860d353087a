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
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>
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
// A stream that keeps running totals (positions.v1): each draft its derivation returns is
// a change of the state of its entity key, folded, in event order, into that state (kept in
// derived_stream_state, moved in the deriving transaction); what the fold returns is
// published. A refusal fails the batch.
using FoldFn = tl::expected<Draft, std::string> (*)(const Draft& change, nlohmann::json& state);

struct Derivation {
  std::string name;  // what config names: "payments.v1", "settlements.v1", ...
  DerivationFn derive;
  FoldFn fold = nullptr;
};

// adapter.<cc>.payments.v1 (docs/streams.md): TransferPending (first only),
// TransferUnderInvestigation, TransferSucceeded, TransferRejected (also DUPL),
// IncomingPaymentReceived.
std::vector<Draft> derive_payments_v1(const eventstore::RecordedEvent& event,
                                      const DerivationContext& context);
// adapter.<cc>.settlements.v1: only money that moved, with amount and settlement date.
std::vector<Draft> derive_settlements_v1(const eventstore::RecordedEvent& event,
                                         const DerivationContext& context);
// adapter.<cc>.payments.v2: TransferStatusChanged (payments_v2_codec.hpp) for each status a
// transfer takes (its first pending answer only), IncomingPaymentReceived as in v1.
std::vector<Draft> derive_payments_v2(const eventstore::RecordedEvent& event,
                                      const DerivationContext& context);
// adapter.<cc>.positions.v1: a PositionDelta per settlement, folded into the day's
// NetPositionChanged (positions_codec.hpp).
std::vector<Draft> derive_positions_v1(const eventstore::RecordedEvent& event,
                                       const DerivationContext& context);

const std::vector<Derivation>& derivations();
std::optional<Derivation> find_derivation(const std::string& name);

struct DerivedStream {
  StreamSpec spec;
  DerivationFn derive;
  FoldFn fold = nullptr;
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
  // The live derivation of a registry (stream_registry.hpp): each batch derives only the
  // streams the registry has live, read in the batch's transaction. Off: every stream.
  bool live_streams_only = false;
};

// The subscription handler for a set of derived streams: a batch of events is derived
// and appended with a few statements (append_external_batch). Called by one subscription,
// one batch at a time.
eventstore::BatchHandler make_derivation_handler(eventstore::EventStore& store,
                                                 std::vector<DerivedStream> streams,
                                                 DerivationOptions options = {});

// The handler of one stream's backfill subscription (backfill_subscription_name). Each batch
// locks the live derivation's checkpoint row and derives the stream from the events up to
// that checkpoint; on an event beyond it, it hands the stream over to the live derivation
// (hand_over), which derives it from there on. The lock keeps the live derivation from
// moving meanwhile, so every event is derived for the stream exactly once.
// A batch that finds the stream no longer backfilling (another instance handed it over)
// derives nothing. `handed_over` (when set) turns true once a batch hands over; the
// caller confirms with hand_over_if_caught_up, since that batch may yet roll back.
eventstore::BatchHandler make_backfill_handler(
    eventstore::EventStore& store, DerivedStream stream, DerivationOptions options = {},
    std::shared_ptr<std::atomic<bool>> handed_over = nullptr);

}  // namespace clearing::external_streams
