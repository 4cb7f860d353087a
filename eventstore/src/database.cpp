#include "clearing/eventstore/database.hpp"

#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/name_table.hpp"

namespace clearing::eventstore {

namespace {

// A log field and part of error messages: each name is spelled once, here.
constexpr base::NameTable<StoreErrc, 10> kStoreErrcNames{{
    {StoreErrc::wrong_expected_version, "wrong_expected_version"},
    {StoreErrc::invalid_argument, "invalid_argument"},
    {StoreErrc::payload_too_large, "payload_too_large"},
    {StoreErrc::partially_appended, "partially_appended"},
    {StoreErrc::connection_failed, "connection_failed"},
    {StoreErrc::transient, "transient"},
    {StoreErrc::commit_unknown, "commit_unknown"},
    {StoreErrc::corrupt_data, "corrupt_data"},
    {StoreErrc::handler_failed, "handler_failed"},
    {StoreErrc::internal, "internal"},
}};
static_assert(base::lists_every_enumerator(kStoreErrcNames, StoreErrc::internal));

}  // namespace

// The table's names are string literals, so data() is null-terminated.
const char* to_string(StoreErrc code) noexcept {
  return base::name_in(kStoreErrcNames, code).value_or("unknown").data();
}

StoreError translate_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const pqxx::in_doubt_error& e) {
    return {StoreErrc::commit_unknown, e.what()};
  } catch (const pqxx::broken_connection& e) {
    return {StoreErrc::connection_failed, e.what()};
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    // 40001 serialization, 40P01 deadlock, 55P03 lock timeout, 57014 statement
    // timeout/cancel, 23505 unique violation (a concurrent idempotent append),
    // 57P01..57P03 admin shutdown / crash / cannot connect now, 08* connection.
    if (state == "40001" || state == "40P01" || state == "55P03" || state == "23505" ||
        state == "57014")
      return {StoreErrc::transient, e.what()};
    if (state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0)
      return {StoreErrc::connection_failed, e.what()};
    if (state == "22P02" || state == "22023" || state == "22001")
      return {StoreErrc::invalid_argument, e.what()};
    return {StoreErrc::internal, std::string(e.what()) + " (sqlstate " + state + ")"};
  } catch (const pqxx::failure& e) {
    return {StoreErrc::connection_failed, e.what()};
  } catch (const StoreFailure& e) {
    return e.error;
  } catch (const std::exception& e) {
    return {StoreErrc::internal, e.what()};
  }
}

namespace {
// Set by append() while a transaction of this thread is open; read after its commit.
thread_local bool t_events_appended = false;
// Set by an outbox write while a transaction of this thread is open; read after its commit.
thread_local bool t_outbox_written = false;
}  // namespace

void note_events_appended() noexcept { t_events_appended = true; }

void note_outbox_written() noexcept { t_outbox_written = true; }

// Sends NOTIFY on a connection of its own, off the committing threads: one in flight at
// most, later rings folded into the next one. Asynchronous commit on this connection:
// a lost notification costs only a poll interval of latency.
class Notifier {
 public:
  explicit Notifier(std::string url) : url_(std::move(url)) {}
  ~Notifier() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void ring() {
    {
      std::lock_guard lock(mutex_);
      rung_ = true;
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_ptr<pqxx::connection> connection;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return rung_ || stopping_; });
        if (stopping_) return;
        rung_ = false;
      }
      try {
        if (!connection) {
          connection = std::make_unique<pqxx::connection>(url_);
          pqxx::nontransaction setup(*connection);
          setup.exec("SET synchronous_commit = off; SET application_name = 'clearing-notifier'");
        }
        pqxx::nontransaction tx(*connection);
        tx.exec(std::string("select pg_notify('") + kEventsChannel + "', '')");
      } catch (const std::exception&) {
        connection.reset();  // subscribers poll meanwhile; the next ring reconnects
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
      }
    }
  }

  std::string url_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  bool rung_ = false;
  bool stopping_ = false;
};

struct ConnectionPool::Impl {
  struct Connection {
    std::unique_ptr<pqxx::connection> conn;
    std::size_t statements_prepared = 0;
  };
  std::mutex mutex;
  std::condition_variable available;
  std::vector<Connection> idle;
  std::size_t open = 0;
  std::vector<std::pair<std::string, std::string>> statements;
  std::unique_ptr<Notifier> notifier;
  // Held while the hooks run, so that a removed hook is never called after its removal.
  std::mutex outbox_hooks_mutex;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> outbox_hooks;
  std::uint64_t outbox_hook_next = 1;
};

ConnectionPool::ConnectionPool(DatabaseOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  CLEARING_ASSERT(options_.connections_max > 0);
  if (options_.notify_after_commit) impl_->notifier = std::make_unique<Notifier>(options_.url);
}

void ConnectionPool::notify_subscribers() {
  if (impl_->notifier) impl_->notifier->ring();
}

ConnectionPool::~ConnectionPool() { CLEARING_ASSERT(impl_->outbox_hooks.empty()); }

std::uint64_t ConnectionPool::add_outbox_hook(std::function<void()> hook) {
  std::lock_guard lock(impl_->outbox_hooks_mutex);
  const auto id = impl_->outbox_hook_next++;
  impl_->outbox_hooks.emplace_back(id, std::move(hook));
  return id;
}

void ConnectionPool::remove_outbox_hook(std::uint64_t id) {
  std::lock_guard lock(impl_->outbox_hooks_mutex);
  std::erase_if(impl_->outbox_hooks, [id](const auto& hook) { return hook.first == id; });
}

void ConnectionPool::call_outbox_hooks() {
  std::lock_guard lock(impl_->outbox_hooks_mutex);
  for (const auto& [id, hook] : impl_->outbox_hooks) hook();
}

void ConnectionPool::prepare(std::string name, std::string sql) {
  std::lock_guard lock(impl_->mutex);
  for (const auto& [existing, text] : impl_->statements)
    if (existing == name) return;
  impl_->statements.emplace_back(std::move(name), std::move(sql));
}

std::size_t ConnectionPool::connections_open() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->open;
}

void ConnectionPool::pause_before_retry(int attempt) {
  const int shift = std::min(attempt, 6);
  std::this_thread::sleep_for(std::chrono::milliseconds(5 << shift));
}

StoreResult<void> ConnectionPool::transact_erased(
    const std::function<StoreResult<void>(Transaction&)>& fn, Block block) {
  Impl::Connection connection;
  std::vector<std::pair<std::string, std::string>> statements;
  {
    std::unique_lock lock(impl_->mutex);
    const bool ready = impl_->available.wait_for(lock, options_.acquire_timeout, [&] {
      return !impl_->idle.empty() || impl_->open < options_.connections_max;
    });
    if (!ready)
      return tl::unexpected(StoreError{StoreErrc::transient,
                                       "no database connection free within the acquire timeout"});
    if (!impl_->idle.empty()) {
      connection = std::move(impl_->idle.back());
      impl_->idle.pop_back();
    } else {
      ++impl_->open;
    }
    // Only those this connection has not prepared yet: usually none.
    statements.assign(
        impl_->statements.begin() + static_cast<std::ptrdiff_t>(connection.statements_prepared),
        impl_->statements.end());
  }
  auto give_back = [&](bool healthy) {
    std::lock_guard lock(impl_->mutex);
    if (healthy && connection.conn && connection.conn->is_open()) {
      impl_->idle.push_back(std::move(connection));
    } else {
      --impl_->open;
    }
    impl_->available.notify_one();
  };

  try {
    if (!connection.conn) {
      connection.conn = std::make_unique<pqxx::connection>(options_.url);
      pqxx::nontransaction setup(*connection.conn);
      // Appended in place, and quoted here rather than with pqxx's quote(): `"'" + std::string`
      // (inside quote() too) makes g++ 12 at -O3 report a false -Wrestrict in libstdc++
      // (GCC bug 105329), an error with CLEARING_WERROR. esc() and the quotes are what quote()
      // does for a string that is never null.
      std::string session_settings = "SET statement_timeout = ";
      session_settings += std::to_string(options_.statement_timeout.count());
      session_settings += "; SET lock_timeout = ";
      session_settings += std::to_string(options_.lock_timeout.count());
      session_settings += "; SET idle_in_transaction_session_timeout = 60000";
      // No JIT: our statements are short, and a cost estimate over jit_above_cost
      // (a table grown past its last analyze) made PostgreSQL compile one at every
      // call, 15-36 ms each: core-sim's account reads fell to half their rate for
      // 20 s of each bench/e2e window, until autovacuum's first analyze.
      session_settings += "; SET jit = off";
      session_settings += "; SET application_name = '";
      session_settings += setup.esc(options_.application_name);
      session_settings += '\'';
      setup.exec(session_settings);
    }
    for (const auto& [name, sql] : statements) {
      connection.conn->prepare(name, sql);
      ++connection.statements_prepared;
    }
    StoreResult<void> result;
    const bool outer_appended = t_events_appended;  // a transaction nested in another's handler
    const bool outer_outbox = t_outbox_written;
    t_events_appended = false;
    t_outbox_written = false;
    if (block == Block::transaction) {
      pqxx::work tx(*connection.conn);
      result = fn(tx);
      if (result) tx.commit();
    } else {
      pqxx::nontransaction tx(*connection.conn);
      result = fn(tx);
    }
    give_back(true);
    if (result && t_events_appended) notify_subscribers();
    if (result && t_outbox_written) call_outbox_hooks();
    t_events_appended = outer_appended;
    t_outbox_written = outer_outbox;
    return result;
  } catch (const pqxx::failure&) {
    t_events_appended = false;
    t_outbox_written = false;
    auto error = translate_exception(std::current_exception());
    give_back(error.code != StoreErrc::connection_failed &&
              error.code != StoreErrc::commit_unknown);
    return tl::unexpected(std::move(error));
  } catch (const StoreFailure& failure) {
    // A protector's failure inside the transaction (protector.hpp): its StoreError, like a
    // pqxx failure's. The connection goes back only if it is still open.
    t_events_appended = false;
    t_outbox_written = false;
    give_back(true);
    return tl::unexpected(failure.error);
  } catch (...) {
    t_events_appended = false;
    t_outbox_written = false;
    give_back(true);
    throw;
  }
}

}  // namespace clearing::eventstore
