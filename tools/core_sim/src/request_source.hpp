#pragma once
// Private to core-sim: the transfers of one run, from the JSONL file of
// CoreSimOptions::jsonl_path or else from the seeded generator, by index, and the accounts
// they debit. The same options always give the same transfers (ids included), which is
// what lets a restarted core republish nothing it requested before.
//
// Thread safety: immutable once loaded; the const functions may run on any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "clearing/core_sim/core_sim.hpp"
#include "clearing/core_sim/transfer_source.hpp"

namespace clearing::core_sim {

class RequestSource {
 public:
  RequestSource() = default;  // no transfers
  // Reads the JSONL file (an error only when it cannot be opened; bad lines are skipped,
  // logged and counted), or sets up the generator for `options.transfers` transfers.
  static tl::expected<RequestSource, std::string> load(const CoreSimOptions& options,
                                                       sagas::Country country);

  std::int64_t planned() const { return planned_; }              // usable lines, or N
  std::int64_t lines_skipped() const { return lines_skipped_; }  // JSONL lines not usable
  // The index-th transfer, index in [0, planned()).
  TransferRequest at(std::int64_t index) const;
  // The accounts the source debits, each in the currency it is first debited in.
  std::vector<std::pair<std::string, sagas::Currency>> accounts_to_open() const;

 private:
  std::optional<JsonlSource> jsonl_;  // set: the JSONL requests; else the generator
  GeneratorOptions generator_;
  std::int64_t planned_ = 0;
  std::int64_t lines_skipped_ = 0;
};

}  // namespace clearing::core_sim
