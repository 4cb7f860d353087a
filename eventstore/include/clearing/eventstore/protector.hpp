#pragma once
// Personal data at rest (crypto-shredding, DESIGN.md section 7 and docs/personal-data.md).
// A ConnectionPool carries at most one DataProtector; every store that writes or reads
// documents holding personal data through that pool seals them on the way in and opens them
// on the way out: the event store (events.data), the external streams' store
// (external_events.data), the adapter's parked messages (raw) and its work queue
// (transfer_work.submit_request). Without one (core-sim, most tests) documents are stored as
// they are. The implementation, with its keys, is clearing/privacy/vault.hpp.
//
// Contract:
// - seal replaces each personal field of a JSON document (privacy/personal_fields.hpp names
//   them) with sealed text, under the data key of the document's subject; other fields are
//   untouched. Sealing twice is harmless: sealed text is sealed again.
// - open replaces each sealed field by its text, or by kErased when its key has been
//   destroyed (the subject erased, or its retention passed). Text that is not sealed (rows
//   written before the protector was on) is left as it is.
// - seal_bytes / open_bytes do the same for a whole byte string (a parked Kafka value).
// - Errors: a StoreError (connection_failed / transient when the key table could not be
//   reached: retryable; corrupt_data when sealed text does not open with its key).

#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "clearing/eventstore/types.hpp"

namespace clearing::eventstore {

// What an erased personal field reads as, everywhere the adapter serves it.
inline constexpr std::string_view kErased = "[erased]";

// A protector's failure thrown out of code that cannot return it (a projection written inside
// a command's transaction): ConnectionPool's transact turns it back into its StoreError.
struct StoreFailure : std::runtime_error {
  explicit StoreFailure(StoreError e) : std::runtime_error(e.message), error(std::move(e)) {}
  StoreError error;
};

class DataProtector {
 public:
  virtual ~DataProtector() = default;
  // `subject`: whose data this is; empty: found in the document (personal_fields.hpp).
  virtual StoreResult<void> seal(Transaction& tx, nlohmann::json& document,
                                 std::string_view subject = {}) const = 0;
  virtual StoreResult<void> open(Transaction& tx, nlohmann::json& document) const = 0;
  virtual StoreResult<std::string> seal_bytes(Transaction& tx, std::string_view bytes,
                                              std::string_view subject) const = 0;
  virtual StoreResult<std::string> open_bytes(Transaction& tx, std::string_view stored) const = 0;
};

}  // namespace clearing::eventstore
