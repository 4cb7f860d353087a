#pragma once
// The chaos run's hostile core (issue 16, item 4): the inbound messages that once stopped
// every partition of a country, put on the core's stream as a faulty core would (see
// HostileInput in schedule.hpp for each class). Where the core requests the transfer
// (nul_in_field, oversize_field) it does what core-sim does for a request, in one
// transaction of the core's database: funds reserved on an account of its own
// (kHostileAccount), the core_transfers row, the TransferRequested appended to its stream;
// the adapter must answer that transfer FF01, and the core then releases the funds.
// Everything else carries no transfer the core knows, and must end parked.
//
// Every message carries a marker, a fresh UUID: its correlation id (the envelope's first
// field as it is written, so a parked copy cut short keeps it), or, for bytes that are not
// JSON, in the bytes. The accounting finds the parked copy by it.
//
// Not thread safe: the run's main loop calls it.

#include <cstdint>
#include <memory>
#include <string>

#include "schedule.hpp"

namespace clearing::chaos {

inline constexpr const char* kHostileAccount = "acct-chaos-hostile";
inline constexpr std::int64_t kSeqJump = 1'000'000'000'000;     // 10^12
inline constexpr std::size_t kOversizeFieldBytes = 300 * 1024;  // over the 256 KB event limit
inline constexpr std::size_t kLongTransferIdBytes = 300;        // over the 200-byte limit
inline constexpr int kSyncDeliveryTimeoutMs = 10'000;           // message.timeout.ms of the copies
inline constexpr int kKeyDrawsMax = 10'000;                     // keys tried to land on a partition

struct HostileRecord {
  HostileInput kind = HostileInput::invalid_utf8;
  int partition = 0;
  std::string marker;       // the UUID the parked copy is found by
  std::string transfer_id;  // of the transfer the core requested ("" when none)
  std::string detail;       // which field, which seq: for the report
  std::string error;        // the injection failed: nothing to account for
  bool core_requested() const { return !transfer_id.empty(); }
};

class HostileCore {
 public:
  // Opens kHostileAccount at the core (idempotent); throws when the core's database or
  // Kafka cannot be reached.
  HostileCore(const std::string& bootstrap, const std::string& core_url, std::string stream,
              int partitions);
  ~HostileCore();
  HostileCore(const HostileCore&) = delete;
  HostileCore& operator=(const HostileCore&) = delete;

  // `index` counts the inputs of the class so far (oversize_field rotates its field on it).
  // Never throws: a failure is the record's error.
  HostileRecord inject(HostileInput kind, int partition, int index);

  // Whether nul_in_field must wait: its Kafka copy is delivered inside the core's
  // transaction, which must not wait for a broker the run has taken down.
  static bool needs_all_brokers(HostileInput kind) { return kind == HostileInput::nul_in_field; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::chaos
