#pragma once
// Where the core's transfers come from: a JSONL file (one TransferRequested `data` object
// per line, as docs/streams.md shows) or a seeded generator of valid and invalid requests.
// Pure: no I/O but the stream or file handed in, no clock (time is an argument).

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/base/clock.hpp"
#include "clearing/sagas/account.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::core_sim {

inline constexpr std::size_t kJsonlLineBytesMax = 64 * 1024;  // longer lines are skipped
inline constexpr std::int64_t kJsonlLinesMax = 10'000'000;    // the rest of a file is not read
inline constexpr std::size_t kSkippedLinesKeptMax = 100;      // reasons kept for the report
inline constexpr int kGeneratorDrawAttemptsMax = 10'000;      // bounded rejection sampling

// One transfer the core is asked to request: the wire `data`, plus the fields the core
// needs from it to reserve the funds.
struct TransferRequest {
  std::string transfer_id;
  std::string account_id;  // the core's account to debit
  sagas::Money amount;
  nlohmann::json data;  // published as is on core.<cc>.payments.v1
  // Generator only: the reason code the adapter should answer ("" = should succeed).
  // nullopt when nobody knows (JSONL).
  std::optional<std::string> expected_reason_code;
};

// What the core needs of a `data` object: transfer_id and account_id (non-empty strings),
// amount.minor_units (integer) and amount.currency (ISO 4217). The rest is the adapter's
// business (it parks and rejects FF01 what it cannot read) and is passed through as is.
tl::expected<TransferRequest, std::string> request_from_json(nlohmann::json data);

struct SkippedLine {
  std::int64_t line_number = 0;  // from 1
  std::string reason;            // never the line's content (it may hold account numbers)
};

struct JsonlSource {
  std::vector<TransferRequest> requests;
  std::int64_t lines_read = 0;       // blank lines included
  std::int64_t lines_skipped = 0;    // not JSON, not an object, unusable, too long
  std::vector<SkippedLine> skipped;  // the first kSkippedLinesKeptMax of them
};

// Reads every line; never throws on content. Blank lines are ignored (not skipped).
JsonlSource parse_jsonl(std::istream& in);
// The same from a file; an error only when the file cannot be opened.
tl::expected<JsonlSource, std::string> read_jsonl_file(const std::string& path);

// ---- the seeded generator ----

enum class RequestKind {
  valid,
  bad_checksum,
  wrong_currency,
  over_limit,
  closed_account,
  blocked_account
};
inline constexpr int kInvalidKinds = 5;
const char* to_string(RequestKind kind) noexcept;
// The reason code the adapter answers for this kind ("" for valid): AC01, AM03, AM02, AC04, AC06.
std::string_view expected_reason_code(RequestKind kind) noexcept;

struct GeneratorOptions {
  sagas::Country country = sagas::Country::dk;
  std::uint64_t seed = 1;
  double invalid_share = 0.05;  // 0..1, split evenly over the invalid kinds
  int accounts = 100;           // the core's accounts in the country's currency
  // The highest amount limit in play (adapter config and clearing mock): over-limit
  // requests exceed it, valid ones stay far below it.
  std::int64_t amount_limit_minor = 1'000'000'000;
};

// The core's accounts the generator debits: "acct-0001".."acct-<accounts>" in the
// country's currency, and one EUR account for the wrong-currency requests (SEK,
// "acct-sek-0001", in a euro country: foreign_currency and foreign_account_id).
std::string generated_account_id(int index);  // index from 1
inline constexpr const char* kForeignAccountId = "acct-eur-0001";
inline constexpr std::string_view kForeignCurrency = "EUR";
inline constexpr const char* kForeignAccountIdOfEuro = "acct-sek-0001";
inline constexpr std::string_view kForeignCurrencyOfEuro = "SEK";
std::string_view foreign_currency(sagas::Country country);
std::string foreign_account_id(sagas::Country country);

struct GeneratedRequest {
  TransferRequest request;
  RequestKind kind = RequestKind::valid;
};

// The index-th request (from 0) of the sequence of `options`: the same options and index
// always give the same request (transfer id included), except requested_at = now. So a
// restarted core regenerates exactly what it published before.
GeneratedRequest generate_request(const GeneratorOptions& options, std::int64_t index,
                                  base::Timestamp now);

// Account numbers, exposed for tests. All are checked with sagas::validate_account.
// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state, one add and three mixes a
// draw. The generator makes two per-request sources per transfer (random_for); seeding a
// std::mt19937_64 through std::seed_seq fills 312 words each time, which was 7% of
// core-sim's CPU in bench/e2e. The same seed always gives the same sequence.
class Random {
 public:
  using result_type = std::uint64_t;
  explicit Random(std::uint64_t seed) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix(state_);
  }
  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};
// A valid account of the country, IBAN or BBAN, whose id ends neither in 0004 nor 0006.
sagas::Account valid_account(sagas::Country country, sagas::AccountScheme scheme, Random& random);
// A valid BBAN whose id ends with `suffix` (4 digits): the clearing mock's closed/blocked accounts.
sagas::Account bban_ending_with(sagas::Country country, std::string_view suffix, Random& random);
// An IBAN of the country with wrong check digits (fails MOD-97).
sagas::Account iban_with_bad_checksum(sagas::Country country, Random& random);

}  // namespace clearing::core_sim
