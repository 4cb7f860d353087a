#pragma once
// Partition ownership through PostgreSQL: which instance works which
// partitions, for the relay (one publisher per outbound partition) and the inbound consumer
// (one reader per inbound partition, without a Kafka consumer group). An instance owns a
// partition while its ownership session, a PostgreSQL connection of its own, holds the
// partition's session-level advisory lock; every live instance also holds a shared member
// lock, so each sees how many share the work and takes ceil(partitions / members). When an
// instance dies its session ends (at once for a killed process, within owner_loss_timeout for
// a vanished host) and with it its locks, which the others take at their next refresh.
//
// Lock keys, two-int advisory locks of the database the session connects to:
//   (partition_lock_class, hashtext(scope || stream || '/' || partition))  a partition's owner
//   (member_lock_class, hashtext(scope)), shared                          every live instance
//
// With no partitions to share, an instance holds its member lock only: a liveness
// session, which the dispatcher's leases use (a lease counts while its owner's session lives).
//
// Not thread safe: one thread (the relay's, the consumer's) uses an instance. Any error on the
// session closes it, and the server ends its locks with it: this side never holds a lock it
// does not know. The session cannot go through a transaction-mode pooler (PgBouncer).

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/errors.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::external_streams {

struct OwnershipOptions {
  std::int32_t partition_lock_class = 0;
  std::int32_t member_lock_class = 0;
  std::string scope;  // separates groups of instances in one database ("" for the relays)
  // The partitions to share out; nullopt: every partition of the outbound streams registered
  // in this database (external_stream_seqs), read at each refresh.
  std::optional<std::vector<PartitionKey>> partitions;
  std::string role;  // "relay", "consumer": log lines and the session's application_name
  std::chrono::milliseconds refresh{100};
  std::chrono::milliseconds owner_loss_timeout{3'000};
  std::chrono::milliseconds handover_grace{1'000};
};

// Limits of the ownership options.
inline constexpr std::chrono::milliseconds kOwnershipRefreshMax{10'000};
inline constexpr std::chrono::milliseconds kOwnerLossTimeoutMin{2'000};  // 1 s idle + one 1 s probe
inline constexpr std::chrono::milliseconds kOwnerLossTimeoutMax{600'000};
inline constexpr std::chrono::milliseconds kHandoverGraceMax{600'000};

// The option out of its range (named as OwnershipOptions names it) with a clear message, or
// nothing when valid.
tl::expected<void, OptionsError> validate_ownership_options(const OwnershipOptions& options);

// Why a refresh failed. Every failure closes the session, and the server ends its locks
// with it: the instance owns nothing until a later refresh opens a new one. Retryable: that
// later refresh can succeed by itself. Not retryable: the database refuses the session's
// statements, which only a person can mend (a role without the right, a wrong database).
enum class OwnershipErrc {
  unreachable,  // the session could not be opened, or broke, or timed out
  locks_lost,   // the server's locks differ from what this side believed it held
  refused,      // the database refused the session's statements
};

constexpr bool is_retryable(OwnershipErrc code) noexcept { return code != OwnershipErrc::refused; }

inline constexpr base::NameTable<OwnershipErrc, 3> kOwnershipErrcNames{{
    {OwnershipErrc::unreachable, "unreachable"},
    {OwnershipErrc::locks_lost, "locks_lost"},
    {OwnershipErrc::refused, "refused"},
}};
static_assert(base::lists_every_enumerator(kOwnershipErrcNames, OwnershipErrc::refused));

constexpr std::string_view to_string(OwnershipErrc code) noexcept {
  return base::name_in(kOwnershipErrcNames, code).value_or("unknown");
}

// The message: what failed, and how many partitions were released with the session.
using OwnershipError = CodedError<OwnershipErrc>;

class PartitionOwnership {
 public:
  using LockKey = std::int32_t;  // the second key of a partition's advisory lock

  PartitionOwnership(eventstore::DatabaseOptions database, OwnershipOptions options,
                     std::shared_ptr<spdlog::logger> log)
      : database_(std::move(database)), options_(std::move(options)), log_(std::move(log)) {}
  ~PartitionOwnership() { release(); }
  PartitionOwnership(const PartitionOwnership&) = delete;
  PartitionOwnership& operator=(const PartitionOwnership&) = delete;

  struct Change {
    std::int64_t taken = 0;  // partitions
    std::int64_t given = 0;
  };

  // At most every `refresh`: takes free partitions, gives extras, checks the session.
  tl::expected<Change, OwnershipError> refresh_if_due();

  // Graceful: every lock ends now, so the others take the partitions at their next refresh.
  // Returns how many partitions this instance owned.
  std::int64_t release();

  std::vector<PartitionKey> partitions() const;  // owned now, sorted
  std::int64_t partitions_owned() const;
  std::int64_t members_seen() const { return session_ ? members_seen_ : 0; }
  bool has_session() const { return session_ != nullptr; }

 private:
  struct Survey;
  void open_session();
  void close_session();
  Survey survey(pqxx::nontransaction& tx) const;
  void check(const Survey& seen) const;
  Change refresh(std::chrono::steady_clock::time_point now);  // throws: see refresh_if_due

  eventstore::DatabaseOptions database_;
  OwnershipOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<pqxx::connection> session_;
  int backend_pid_ = 0;
  std::map<LockKey, std::vector<PartitionKey>> owned_;  // lock key -> the partitions it guards
  std::map<LockKey, std::chrono::steady_clock::time_point>
      free_since_;       // free keys, since when seen free
  std::set<int> stuck_;  // members that did not take what they were given
  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point keep_extras_until_{};
  std::int64_t members_seen_ = 0;
};

}  // namespace clearing::external_streams
