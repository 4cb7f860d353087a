#pragma once
// A realistic internal history for tests of the derived streams: the internal events of N
// transfers and some incoming payments, as the sagas' codec writes them, with the same event
// ids in every database (so two databases fed the same script derive identical messages).
// Transfers settle, wait pending first (some answered pending twice), are rejected, are
// investigated and resolved by hand, or are asked for again with another body (DUPL).

#include <string>
#include <vector>

#include "clearing/eventstore/types.hpp"

namespace clearing::external_streams::sample_history {

// One append: events of one internal stream ("transfer-<id>", "incoming-payment-<ref>").
struct Append {
  std::string stream;
  std::vector<eventstore::EventData> events;
};

// The appends of transfers [first, first + n), interleaved as a running adapter records
// them: a transfer is initiated while earlier ones get their answers. `undated`: the
// transfers resolved by hand as settled name no settlement date.
std::vector<Append> script(int first, int n, bool undated = false);

// The two events of one transfer that settled at once (TransferInitiated for 12.50 DKK,
// TransferSettled on 2026-11-26, clearing reference "CR-<id>"), with fresh event ids, for
// the stream "transfer-<id>".
std::vector<eventstore::EventData> settled_transfer(const std::string& id);

}  // namespace clearing::external_streams::sample_history
