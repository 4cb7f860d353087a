#pragma once
// Account commands set-wise: many commands over many accounts in the caller's
// transaction with a fixed number of statements, whatever their number (one tail read
// of all the accounts, one EventStore::append_batch), instead of a read and an append
// per command. Used by core-sim's publisher (reservations), its consumer (completions
// and releases) and the opening of accounts.
//
// Every command is answered as handling it alone, in batch order, would answer it: the
// commands of one account chain on the state the earlier ones reached, and the ids of
// a command's events are derived from its idempotency seed, its stream and the event's
// index among the command's own events (not among the account's appended events), so a
// batch retried after an unknown commit writes the same ids.
//
// Concurrency: the decisions start from the states read in the transaction; an account
// that moved between that read and the append (append_batch answers
// wrong_expected_version for it, writing nothing of it) has its tail read again and its
// commands decided again, at most kAccountConflictRoundsMax times. The append locks the
// account's version row, so a second round normally succeeds. Batches with order keys
// (see AccountCommandRequest) cannot redo an account in place (its events would land
// after the others'): they lock their accounts' version rows first (one statement, the
// lock append_batch takes, in its order), so only an account created meanwhile can
// conflict, and that fails the batch: the caller rolls back.
//
// Thread safety: AccountCache is thread safe; the functions are not (one transaction).

#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/core_sim/account_decider.hpp"
#include "clearing/eventstore/aggregate.hpp"  // Loaded, CommandContext
#include "clearing/eventstore/event_store.hpp"

namespace clearing::core_sim {

using LoadedAccount = eventstore::Loaded<AccountDecider>;
using AccountStates = std::map<std::string, LoadedAccount>;  // by stream name

inline constexpr int kAccountConflictRoundsMax = 5;
// Commands per append (each decides at most one event, so this also bounds the events
// of one stream in one append and the number of streams).
inline constexpr std::size_t kAccountCommandsPerAppendMax = 1000;
static_assert(kAccountCommandsPerAppendMax <= eventstore::kEventsPerAppendMax);
static_assert(kAccountCommandsPerAppendMax <= eventstore::kStreamsPerBatchMax);

// Account states known to be committed, each the fold of its stream's first `version`
// events. Aggregate::handle folds a whole stream per command, which makes a long run
// quadratic (every reservation reloads every earlier event of its account); here a
// batch starts from the cached states and folds only the tails read in its own
// transaction, so the cache can be behind but never wrong. Only states whose events are
// known to be committed (merged after the commit) enter it.
class AccountCache {
 public:
  LoadedAccount get(const std::string& stream) const;
  void merge(const AccountStates& committed);

 private:
  mutable std::mutex mutex_;
  AccountStates states_;
};

// The core_accounts read model: the last state each account reached in the transaction,
// written with one statement (in account order: the lock order).
class AccountProjection {
 public:
  void add(const AccountState& state);
  void clear() { rows_.clear(); }
  void write(eventstore::Transaction& tx) const;

 private:
  struct Row {
    std::string currency;
    std::int64_t balance_minor = 0;
    std::int64_t reserved_minor = 0;
  };
  std::map<std::string, Row> rows_;  // by account id
};

struct AccountCommandRequest {
  std::string account_id;
  AccountCommand command;
  eventstore::CommandContext context;
  // Commands with the same non-empty key get their events' positions (the commit order
  // readers see) in batch order, though append_batch writes an account's events
  // together: the consumer keys by the message's partition. Keyed batches take more
  // appends when accounts interleave, and lock their accounts before reading them.
  std::string order_key;
};

// A command that was decided: the ids of the events it wrote (empty: it was done
// already, nothing new) and the account's state after it.
struct AccountCommandDone {
  std::vector<eventstore::EventId> event_ids;
  AccountState state;
};
using AccountCommandResult = tl::expected<AccountCommandDone, AccountRejection>;

struct AccountBatchResult {
  std::vector<AccountCommandResult> results;  // one per command, in order
  int conflict_rounds = 0;                    // rounds redone because an account moved
};

// Called before each append, with the round (1, 2, ...): lets tests move an account
// between the read and the append. Empty in production.
using BeforeAccountAppend = std::function<void(int round)>;

// Handles `commands` in `tx`. `local` holds the states this transaction has reached
// (missing accounts start from `cache`) and receives the states after the commands: the
// caller merges it into the cache once the transaction committed, or drops it. A store
// error (wrong_expected_version after the last round included, retryable) means the
// transaction must roll back.
eventstore::StoreResult<AccountBatchResult> handle_account_commands(
    eventstore::EventStore& store, eventstore::Transaction& tx,
    std::span<const AccountCommandRequest> commands, const AccountCache& cache,
    AccountStates& local, const BeforeAccountAppend& before_append = {});

}  // namespace clearing::core_sim
