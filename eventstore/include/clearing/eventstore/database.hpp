#pragma once
// A bounded pool of PostgreSQL connections and the one way to run a transaction.
// Thread safe. Every connection gets a statement_timeout (no call without a deadline)
// and the statements registered with `prepare` before it is used.
// libpqxx exceptions never leave this module: they become StoreErrors here.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "clearing/eventstore/protector.hpp"
#include "clearing/eventstore/types.hpp"

namespace clearing::eventstore {

struct DatabaseOptions {
  std::string url;  // libpq URI
  std::size_t connections_max = 16;
  std::chrono::milliseconds statement_timeout{30'000};
  std::chrono::milliseconds lock_timeout{10'000};
  std::chrono::milliseconds acquire_timeout{30'000};
  std::string application_name = "clearing-adapter";
  // After a transaction that appended events commits, wake live subscriptions (in any
  // process) with NOTIFY on a connection of its own, coalesced: at most one in flight.
  bool notify_after_commit = true;
};

// The channel subscriptions listen on.
inline constexpr const char* kEventsChannel = "clearing_events";

// Called by EventStore::append inside a transaction: the pool notifies after commit.
void note_events_appended() noexcept;

// Called inside a transaction that wrote outbox rows (the external streams' messages): once
// it has committed, the pool calls its outbox hooks (ConnectionPool::add_outbox_hook), so
// that a relay in this process publishes them at once instead of at its next poll. Other
// processes are not told: they find the rows when they poll.
void note_outbox_written() noexcept;

// Translates whatever a database call threw into a typed error. Exposed for the other
// modules' own SQL (external streams, adapter projections).
StoreError translate_exception(std::exception_ptr error);

class ConnectionPool {
 public:
  explicit ConnectionPool(DatabaseOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  const DatabaseOptions& options() const { return options_; }

  // Registers a prepared statement for every connection (present and future).
  void prepare(std::string name, std::string sql);

  // Runs fn(tx) in one read-committed transaction. Commits when fn returns a value,
  // rolls back when it returns an error or throws. Database exceptions become a
  // StoreError; any other exception propagates after the rollback.
  template <class F>
  auto transact(F&& fn) -> std::invoke_result_t<F&, Transaction&> {
    return run(fn, Block::transaction);
  }

  // Runs fn(tx) outside a transaction block: each statement commits on its own, as in
  // psql's autocommit. For work of one statement (a read, or a write that must be
  // atomic only by itself): it saves the BEGIN and COMMIT round trips of transact(),
  // two of the three round trips of a lone read. Statements of fn do not share a
  // snapshot, and an error returned by fn rolls nothing back.
  template <class F>
  auto autocommit(F&& fn) -> std::invoke_result_t<F&, Transaction&> {
    return run(fn, Block::none);
  }

  // transact(), retried while the error is retryable, at most attempts_max times, with a
  // short exponential pause between attempts. fn must be safe to run again.
  template <class F>
  auto transact_with_retry(F&& fn, int attempts_max = 5) -> std::invoke_result_t<F&, Transaction&> {
    for (int attempt = 1;; ++attempt) {
      auto result = transact(fn);
      if (result || !result.error().is_retryable() || attempt >= attempts_max) return result;
      pause_before_retry(attempt);
    }
  }

  // Sends the wake-up now (coalesced); normally the pool does this after commit.
  void notify_subscribers();

  // Connections currently open (idle + leased), for metrics.
  std::size_t connections_open() const;

  // A hook called after each commit on this pool of a transaction that called
  // note_outbox_written(), on the committing thread: keep it short (wake a thread). Never
  // for a rollback. Returns the id that removes it; remove_outbox_hook returns once no call
  // of it is running, and every hook is removed before the pool is destroyed.
  // Personal data at rest (protector.hpp): set once, before the pool is shared between
  // threads; null (the default) stores documents as they are.
  void set_protector(std::shared_ptr<const DataProtector> protector) {
    protector_ = std::move(protector);
  }
  const DataProtector* protector() const { return protector_.get(); }

  std::uint64_t add_outbox_hook(std::function<void()> hook);
  void remove_outbox_hook(std::uint64_t id);

 private:
  struct Impl;
  enum class Block { transaction, none };
  template <class F>
  auto run(F& fn, Block block) -> std::invoke_result_t<F&, Transaction&> {
    using Result = std::invoke_result_t<F&, Transaction&>;
    std::optional<Result> out;
    auto status = transact_erased(
        [&](Transaction& tx) -> StoreResult<void> {
          out.emplace(fn(tx));
          if (!*out) return tl::unexpected(out->error());
          return {};
        },
        block);
    if (!status) return tl::unexpected(status.error());
    return std::move(*out);
  }
  StoreResult<void> transact_erased(const std::function<StoreResult<void>(Transaction&)>& fn,
                                    Block block);
  static void pause_before_retry(int attempt);
  void call_outbox_hooks();

  DatabaseOptions options_;
  std::shared_ptr<const DataProtector> protector_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::eventstore
