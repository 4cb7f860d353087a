#pragma once
// Polls the clearing's incoming-payments feed. Each page is applied in one transaction:
// one IncomingPayment aggregate per clearing reference (a re-sent payment is a no-op),
// and an IncomingFeedAdvanced event on the feed stream that keeps the cursor. The cursor
// is therefore an event too, and two pollers cannot both apply a page: the second one's
// append to the feed stream fails on its expected version and its page rolls back.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "clearing/base/clock.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {

inline constexpr const char* kIncomingFeedStream = "incoming-feed";
inline constexpr const char* kIncomingFeedAdvanced = "IncomingFeedAdvanced";

struct IncomingPollerOptions {
  std::chrono::milliseconds interval{1000};
  int page_limit = 100;
  sagas::CountryRules rules;
};

struct IncomingPollerStats {
  std::int64_t pages = 0;
  std::int64_t payments_recorded = 0;   // new payments (recorded or parked)
  std::int64_t payments_resent = 0;     // already known: no-op
  std::int64_t payments_parked = 0;     // kept in parked_messages (no usable reference)
  std::int64_t feed_failures = 0;
};

eventstore::StreamId incoming_payment_stream(const std::string& clearing_reference);

class IncomingPoller {
 public:
  IncomingPoller(eventstore::EventStore& store, clearing_client::ClearingClient& client,
                 const base::Clock& clock, IncomingPollerOptions options);
  ~IncomingPoller();

  void start();
  void stop();

  // One page: the number of payments on it, or the store error that rolled it back.
  // A feed failure is 0 payments (counted; the next poll tries again).
  eventstore::StoreResult<int> poll_once();

  IncomingPollerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::adapter
