// The transfers of one run: see request_source.hpp.

#include "request_source.hpp"

#include <set>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"

namespace clearing::core_sim {

tl::expected<RequestSource, std::string> RequestSource::load(const CoreSimOptions& options,
                                                             sagas::Country country) {
  const auto log = base::module_logger("core_sim");
  RequestSource source;
  if (options.jsonl_path) {
    auto read = read_jsonl_file(*options.jsonl_path);
    if (!read) return tl::unexpected(read.error());
    source.jsonl_ = std::move(*read);
    const auto& jsonl = *source.jsonl_;
    source.planned_ = static_cast<std::int64_t>(jsonl.requests.size());
    source.lines_skipped_ = jsonl.lines_skipped;
    for (const auto& skipped : jsonl.skipped)
      log->warn("source line skipped line={} reason=\"{}\"", skipped.line_number, skipped.reason);
    log->info("source jsonl lines={} usable={} skipped={}", jsonl.lines_read, source.planned_,
              jsonl.lines_skipped);
    return source;
  }
  source.generator_ = GeneratorOptions{country, options.seed, options.invalid_share,
                                       options.accounts, options.amount_limit_minor};
  source.planned_ = options.transfers;
  log->info("source generator transfers={} seed={} invalid_share={}", source.planned_, options.seed,
            options.invalid_share);
  return source;
}

TransferRequest RequestSource::at(std::int64_t index) const {
  CLEARING_ASSERT(index >= 0 && index < planned_);
  if (jsonl_) return jsonl_->requests[static_cast<std::size_t>(index)];
  return generate_request(generator_, index, base::SystemClock{}.now()).request;
}

std::vector<std::pair<std::string, sagas::Currency>> RequestSource::accounts_to_open() const {
  std::vector<std::pair<std::string, sagas::Currency>> out;
  if (jsonl_) {
    std::set<std::string> seen;
    for (const auto& r : jsonl_->requests)
      if (seen.insert(r.account_id).second) out.emplace_back(r.account_id, r.amount.currency);
    return out;
  }
  for (int i = 1; i <= generator_.accounts; ++i)
    out.emplace_back(generated_account_id(i), sagas::country_currency(generator_.country));
  if (generator_.invalid_share > 0)
    out.emplace_back(foreign_account_id(generator_.country),
                     *sagas::Currency::parse(foreign_currency(generator_.country)));
  return out;
}

}  // namespace clearing::core_sim
