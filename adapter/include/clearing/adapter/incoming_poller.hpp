#pragma once
// Polls the clearing's incoming-payments feed. Each page is applied in one transaction:
// one IncomingPayment aggregate per clearing reference (a re-sent payment is a no-op),
// and an IncomingFeedAdvanced event on the feed stream that keeps the cursor. The cursor
// is therefore an event too, and two pollers cannot both apply a page: the second one's
// append to the feed stream fails on its expected version and its page rolls back.
//
// A payment that breaks the contract (classify_incoming's RejectedPayment) costs only
// itself: in the same transaction it is parked (parked_messages, source "clearing-feed",
// reason_code kInvalidPaymentReasonCode, its raw JSON as received) and the cursor moves past
// it, so the feed goes on. It is parked once: an IncomingFeedPaymentParked event on the
// stream kIncomingFeedParkedStream, whose id is derived from the payment's identity (its
// clearing reference when that is readable and valid, else its raw bytes), marks it, and a
// payment whose mark is stored already (the mainframe re-sent it) is not parked again.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "clearing/base/clock.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {

inline constexpr const char* kIncomingFeedStream = "incoming-feed";
inline constexpr const char* kIncomingFeedAdvanced = "IncomingFeedAdvanced";
inline constexpr const char* kIncomingFeedParkedStream = "incoming-feed-parked";
inline constexpr const char* kIncomingFeedPaymentParked = "IncomingFeedPaymentParked";
// parked_messages.reason_code of a feed payment that breaks the contract.
inline constexpr const char* kInvalidPaymentReasonCode = "invalid_payment";

struct IncomingPollerOptions {
  std::chrono::milliseconds interval{1000};
  int page_limit = 100;
  sagas::CountryRules rules;
};

// Counted when a page's transaction commits; each payment of a page in exactly one of
// recorded, resent and parked.
struct IncomingPollerStats {
  std::int64_t pages = 0;
  std::int64_t payments_recorded = 0;  // new: recorded as events (the aggregate's own parking too)
  std::int64_t payments_resent = 0;    // seen before (known reference, or parked before): no-op
  std::int64_t payments_parked = 0;    // kept in parked_messages: breaks the contract, or refused
  std::int64_t feed_requests = 0;      // requests of a page from the feed, answered or not
  std::int64_t feed_failures = 0;      // pages not taken (the envelope broken, no answer, ...)
  std::int64_t pages_not_applied = 0;  // polls the store failed (cursor, page, or the listing of
                                       // payments parked before 0008; tried again)
  bool running = false;                // its thread is between start() and stop()
  bool feed_failing = false;           // the last request of the feed failed
  bool store_failing = false;          // the last page taken could not be applied
};

eventstore::StreamId incoming_payment_stream(const std::string& clearing_reference);

// A payment the saga parked (IncomingPaymentParked) listed in parked_messages, in the
// transaction that records it: source kParkedPaymentSource, its reason code (AM03, AM02,
// AC01), the event's data as the raw (sealed like any raw), its payment id, and, beside the raw,
// its clearing reference, state open: one insert (park()). Once per payment.
eventstore::StoreResult<void> park_incoming_payment(eventstore::Transaction& tx,
                                                    const sagas::IncomingPaymentParked& parked,
                                                    const eventstore::DataProtector* protector);

class IncomingPoller {
 public:
  IncomingPoller(eventstore::EventStore& store, clearing_client::ClearingClient& client,
                 const base::Clock& clock, IncomingPollerOptions options);
  ~IncomingPoller();

  void start();
  void stop();

  // One page: the number of payments on it (good and parked), or the store error that
  // rolled it back. A feed failure is 0 payments (counted; the next poll tries again).
  eventstore::StoreResult<int> poll_once();

  // Lists in parked_messages the payments parked before it listed them (an upgrade): the
  // number listed. The thread runs it first, until it succeeds.
  eventstore::StoreResult<int> list_parked_payments();

  IncomingPollerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::adapter
