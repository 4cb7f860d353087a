#include "clearing/external_streams/relay.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "kafka_internal.hpp"

namespace clearing::external_streams {
namespace {

// One produced message awaiting its delivery report.
struct Pending {
  std::int64_t seq = 0;
  std::atomic<int> state{0};  // 0 waiting, 1 delivered, 2 failed
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* pending = static_cast<Pending*>(message->_private);
  if (pending == nullptr) return;
  pending->error = message->err;
  pending->state = message->err ? 2 : 1;
}

using Clock = std::chrono::steady_clock;
using LockKey = std::int32_t;  // the second key of a partition's advisory lock

// Limits of the ownership options (RelayOptions).
constexpr std::chrono::milliseconds kOwnershipRefreshMax{10'000};
constexpr std::chrono::milliseconds kOwnerLossTimeoutMin{2'000};  // 1 s idle + one 1 s probe
constexpr std::chrono::milliseconds kOwnerLossTimeoutMax{600'000};
constexpr std::chrono::milliseconds kHandoverGraceMax{600'000};
// When an instance at its share takes a partition that stayed free for a grace (those below
// their share did not take it), it gives nothing for this many graces: an instance that does
// not take what it is given must not make a partition wait a grace again and again.
constexpr int kKeepExtrasGraces = 30;

// One look at the database's ownership: every partition by lock key (keys of two partitions
// may collide: then one lock guards both), who holds each key, and the live instances.
struct Survey {
  std::map<LockKey, std::vector<PartitionKey>> partitions;
  std::map<LockKey, int> holders;  // key -> backend pid of the session holding it
  std::set<int> members;           // backend pids of the instances' sessions
};

// The ownership session's statements. pg_locks shows the advisory locks of every session of
// the cluster: those of this database and the relay's classes (objsubid 2: the two-int form).
constexpr const char* kSurveySql =
    "with locks as ("
    "  select classid::bigint as class, objid::bigint as key, pid from pg_locks"
    "  where locktype = 'advisory' and granted and objsubid = 2"
    "    and database = (select oid from pg_database where datname = current_database())"
    "    and classid in ($1::int::oid, $2::int::oid))"
    " select"
    " (select coalesce(jsonb_agg(jsonb_build_array(s.stream, s.partition, hashtext(s.stream || '/' || s.partition))),"
    "   '[]'::jsonb) from external_stream_seqs s)::text,"
    " (select coalesce(jsonb_agg(jsonb_build_array(key, pid)), '[]'::jsonb) from locks where class = $1)::text,"
    " (select coalesce(jsonb_agg(pid), '[]'::jsonb) from locks where class = $2 and key = 0)::text";
constexpr const char* kSurveyStatement = "relay_ownership_survey";
constexpr const char* kTakeSql = "select k, pg_try_advisory_lock($1::int, k) from unnest($2::int[]) as k";
constexpr const char* kGiveSql = "select k, pg_advisory_unlock($1::int, k) from unnest($2::int[]) as k";

std::string int_array(const std::vector<LockKey>& keys) {
  std::string out = "{";
  for (std::size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + std::to_string(keys[i]);
  return out + "}";
}

// A libpq URI or key=value string with more parameters.
std::string with_parameters(const std::string& url, const std::vector<std::pair<std::string, std::string>>& params) {
  const bool uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  std::string out = url;
  for (const auto& [key, value] : params) {
    if (uri)
      out += (out.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
    else
      out += " " + key + "=" + value;
  }
  return out;
}

// The partitions this instance publishes: those whose lock its ownership session holds.
// Used on the relay's thread only (or run_once's caller's). Any error on the session closes
// it, and the server ends its locks with it: this side never holds a lock it does not know.
class Ownership {
 public:
  Ownership(const eventstore::DatabaseOptions& database, const RelayOptions& options,
            std::shared_ptr<spdlog::logger> log)
      : database_(database), options_(options), log_(std::move(log)) {}
  ~Ownership() { release(); }

  struct Change {
    std::int64_t taken = 0;  // partitions
    std::int64_t given = 0;
  };

  // At most every ownership_refresh: takes free partitions, gives extras, checks the session.
  tl::expected<Change, std::string> refresh_if_due() {
    const auto now = Clock::now();
    if (session_ && now < next_refresh_) return Change{};
    next_refresh_ = now + options_.ownership_refresh;
    try {
      if (!session_) open_session();
      return refresh(now);
    } catch (const std::exception& e) {
      const auto had = partitions_owned();
      close_session();
      return tl::unexpected("partition ownership: " + std::string(e.what()) + " (released " +
                            std::to_string(had) + " partitions)");
    }
  }

  // Graceful: every lock ends now, so the others take the partitions at their next refresh.
  std::int64_t release() {
    const auto had = partitions_owned();
    if (session_) {
      try {
        pqxx::nontransaction tx(*session_);
        tx.exec("select pg_advisory_unlock_all()");
      } catch (const std::exception& e) {
        log_->warn("relay ownership release error=\"{}\": the session is closed instead", e.what());
      }
    }
    close_session();
    if (had > 0) log_->info("relay partitions released partitions={}", had);
    return had;
  }

  std::vector<PartitionKey> partitions() const {
    std::vector<PartitionKey> out;
    for (const auto& [key, partitions] : owned_) out.insert(out.end(), partitions.begin(), partitions.end());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::int64_t partitions_owned() const {
    std::int64_t n = 0;
    for (const auto& [key, partitions] : owned_) n += static_cast<std::int64_t>(partitions.size());
    return n;
  }
  std::int64_t relays_seen() const { return session_ ? relays_seen_ : 0; }

 private:
  void open_session() {
    const auto timeout_s = std::max<std::int64_t>(
        2, std::chrono::duration_cast<std::chrono::seconds>(options_.owner_loss_timeout).count());
    const auto probes = std::to_string(timeout_s - 1);  // after 1 s idle, one a second
    const auto user_timeout_ms = std::to_string(options_.owner_loss_timeout.count());
    // This side: a silent server or network is noticed within the timeout.
    session_ = std::make_unique<pqxx::connection>(
        with_parameters(database_.url, {{"keepalives", "1"},
                                        {"keepalives_idle", "1"},
                                        {"keepalives_interval", "1"},
                                        {"keepalives_count", probes},
                                        {"tcp_user_timeout", user_timeout_ms},
                                        {"connect_timeout", std::to_string(timeout_s)}}));
    session_->prepare(kSurveyStatement, kSurveySql);  // at each refresh: 0.2 ms prepared, 0.44 ms planned
    pqxx::nontransaction tx(*session_);
    // The server's side: a silent client (its host lost power) ends this session, and its
    // locks, within the timeout; kept-alive sockets of Unix-domain connections ignore these.
    tx.exec("SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = " + probes +
            "; SET tcp_user_timeout = " + user_timeout_ms +
            "; SET statement_timeout = " + std::to_string(database_.statement_timeout.count()) +
            "; SET application_name = " + tx.quote(database_.application_name + "-relay-owner"));
    const auto joined = tx.exec_params("select pg_backend_pid(), pg_try_advisory_lock_shared($1::int, 0)",
                                       kRelayMemberLockClass);
    if (!joined[0][1].as<bool>()) throw std::runtime_error("the relays' member lock is held exclusively");
    backend_pid_ = joined[0][0].as<int>();
    free_since_.clear();
    log_->info("relay ownership session opened backend_pid={}", backend_pid_);
  }

  void close_session() {
    session_.reset();  // closing it ends the session's locks on the server
    owned_.clear();
    free_since_.clear();
    stuck_.clear();
    relays_seen_ = 0;
  }

  Survey survey(pqxx::nontransaction& tx) const {
    const auto row = tx.exec_prepared(kSurveyStatement, kRelayPartitionLockClass, kRelayMemberLockClass)[0];
    Survey out;
    for (const auto& p : nlohmann::json::parse(row[0].c_str()))
      out.partitions[p[2].get<LockKey>()].emplace_back(p[0].get<std::string>(), p[1].get<std::int32_t>());
    for (const auto& h : nlohmann::json::parse(row[1].c_str()))
      out.holders[static_cast<LockKey>(static_cast<std::uint32_t>(h[0].get<std::int64_t>()))] = h[1].get<int>();
    for (const auto& m : nlohmann::json::parse(row[2].c_str())) out.members.insert(m.get<int>());
    return out;
  }

  // What the server says this session holds must be what this side believes it owns.
  void check(const Survey& seen) const {
    if (!seen.members.count(backend_pid_)) throw std::runtime_error("the session lost its member lock");
    for (const auto& [key, pid] : seen.holders)
      if ((pid == backend_pid_) != (owned_.count(key) > 0))
        throw std::runtime_error("the session's locks differ from the partitions it owns");
    for (const auto& [key, partitions] : owned_)
      if (!seen.holders.count(key)) throw std::runtime_error("the session lost a partition's lock");
  }

  tl::expected<Change, std::string> refresh(Clock::time_point now) {
    pqxx::nontransaction tx(*session_);
    const auto seen = survey(tx);
    check(seen);
    relays_seen_ = static_cast<std::int64_t>(seen.members.size());
    const auto keys = seen.partitions.size();
    const auto share = (keys + seen.members.size() - 1) / seen.members.size();
    std::map<int, std::size_t> load;  // keys held, by member
    for (const int pid : seen.members) load[pid] = 0;
    for (const auto& [key, pid] : seen.holders)
      if (load.count(pid)) ++load[pid];
    for (auto it = stuck_.begin(); it != stuck_.end();) it = seen.members.count(*it) ? std::next(it) : stuck_.erase(it);

    // Take: below its share, every free key; at its share, those free for a grace already
    // (given to an instance that did not take them, or whose taker is gone).
    std::vector<LockKey> wanted;
    bool overdue = false;
    std::map<LockKey, Clock::time_point> still_free;
    for (const auto& [key, partitions] : seen.partitions) {
      if (seen.holders.count(key)) continue;
      const auto since = free_since_.count(key) ? free_since_.at(key) : now;
      still_free[key] = since;
      const bool long_free = now - since >= options_.handover_grace;
      if (owned_.size() < share || long_free) wanted.push_back(key);
      overdue = overdue || (long_free && owned_.size() >= share);
    }
    free_since_ = std::move(still_free);
    if (overdue) {
      // Those below their share did not take a free partition within the grace: give them
      // no more, and keep what is beyond this instance's share for a while.
      for (const auto& [pid, n] : load)
        if (pid != backend_pid_ && n < share) stuck_.insert(pid);
      keep_extras_until_ = now + kKeepExtrasGraces * options_.handover_grace;
    }
    Change change;
    if (!wanted.empty())
      for (const auto& row : tx.exec_params(kTakeSql, kRelayPartitionLockClass, int_array(wanted)))
        if (row[1].as<bool>()) {
          const auto key = row[0].as<LockKey>();
          owned_[key] = seen.partitions.at(key);
          free_since_.erase(key);
          change.taken += static_cast<std::int64_t>(owned_[key].size());
        }

    // Give: what is beyond its share, to the instances below theirs that take what they get.
    std::size_t deficit = 0;
    for (const auto& [pid, n] : load)
      if (pid != backend_pid_ && !stuck_.count(pid) && n < share) deficit += share - n;
    const auto extra = owned_.size() > share ? owned_.size() - share : 0;
    const auto giving = now >= keep_extras_until_ ? std::min(extra, deficit) : 0;
    if (giving > 0) {
      std::vector<LockKey> given;
      for (auto it = owned_.rbegin(); given.size() < giving; ++it) given.push_back(it->first);
      for (const auto& row : tx.exec_params(kGiveSql, kRelayPartitionLockClass, int_array(given))) {
        if (!row[1].as<bool>()) throw std::runtime_error("a partition's lock was not held when given");
        const auto key = row[0].as<LockKey>();
        change.given += static_cast<std::int64_t>(owned_.at(key).size());
        owned_.erase(key);
      }
    }
    if (change.taken > 0 || change.given > 0)
      log_->info("relay ownership changed partitions_owned={} taken={} given={} relays={} share_keys={}",
                 partitions_owned(), change.taken, change.given, relays_seen_, share);
    return change;
  }

  const eventstore::DatabaseOptions& database_;
  const RelayOptions& options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<pqxx::connection> session_;
  int backend_pid_ = 0;
  std::map<LockKey, std::vector<PartitionKey>> owned_;  // lock key -> the partitions it guards
  std::map<LockKey, Clock::time_point> free_since_;      // free keys, since when this side saw them free
  std::set<int> stuck_;                                   // members that did not take what they were given
  Clock::time_point next_refresh_{};
  Clock::time_point keep_extras_until_{};
  std::int64_t relays_seen_ = 0;
};

}  // namespace

struct Relay::Impl {
  eventstore::ConnectionPool& pool;
  RelayOptions options;
  rd_kafka_t* producer = nullptr;
  std::vector<std::vector<Pending>> graveyard;
  std::shared_ptr<spdlog::logger> log = base::module_logger("relay");
  Ownership ownership{pool.options(), options, log};

  std::thread thread;
  std::mutex wait_mutex;
  std::condition_variable wait_cv;
  bool stopping = false;

  mutable std::mutex stats_mutex;
  RelayStats stats;

  Impl(eventstore::ConnectionPool& p, RelayOptions o) : pool(p), options(std::move(o)) {}
  ~Impl() {
    if (producer) {
      rd_kafka_flush(producer, static_cast<int>(options.flush_timeout.count()));
      rd_kafka_destroy(producer);
    }
  }

  tl::expected<void, std::string> open_producer() {
    auto conf = make_conf(producer_settings(options.kafka));
    if (!conf) return tl::unexpected(conf.error());
    rd_kafka_conf_set_dr_msg_cb(*conf, on_delivery);
    char error[512];
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof error);
    if (!producer) {
      rd_kafka_conf_destroy(*conf);
      return tl::unexpected(std::string("kafka producer: ") + error);
    }
    return {};
  }

  // A fatal idempotence error (the producer's sequence state is broken) ends the
  // producer's life; a new one continues from the published marks.
  tl::expected<void, std::string> recover_if_fatal() {
    char reason[512];
    const auto fatal = rd_kafka_fatal_error(producer, reason, sizeof reason);
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    log->error("kafka producer fatal error={} reason={}: recreating it", rd_kafka_err2name(fatal), reason);
    rd_kafka_destroy(producer);
    producer = nullptr;
    return open_producer();
  }

  tl::expected<void, std::string> produce(const ExternalMessage& m, Pending& pending) {
    const auto value = m.to_json().dump();
    const auto seq = std::to_string(m.seq);
    const auto err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(m.stream.c_str()), RD_KAFKA_V_PARTITION(m.partition),
        RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("seq", seq.data(), static_cast<ssize_t>(seq.size())),
        RD_KAFKA_V_HEADER("type", m.type.data(), static_cast<ssize_t>(m.type.size())),
        RD_KAFKA_V_HEADER("event_id", m.event_id.data(), static_cast<ssize_t>(m.event_id.size())),
        RD_KAFKA_V_HEADER("source_event_id", m.source_event_id.data(), static_cast<ssize_t>(m.source_event_id.size())),
        RD_KAFKA_V_HEADER("correlation_id", m.correlation_id.data(), static_cast<ssize_t>(m.correlation_id.size())),
        RD_KAFKA_V_OPAQUE(&pending), RD_KAFKA_V_END);
    if (err) return tl::unexpected(std::string("produce: ") + rd_kafka_err2str(err));
    return {};
  }

  // One partition's share of a round.
  struct Batch {
    PartitionMark mark;
    std::vector<ExternalMessage> events;
    std::size_t first = 0;     // index of its first message in the round's pending records
    std::size_t produced = 0;  // how many of them were handed to the producer
  };

  // A round: one statement reads every partition's mark and unpublished messages; they
  // are produced, one flush waits for every delivery report, and one statement moves the
  // marks, each across its partition's contiguous delivered prefix only.
  // Returns the number of messages the marks moved over.
  tl::expected<int, std::string> run_once() {
    auto changed = ownership.refresh_if_due();
    const auto owned = ownership.partitions();
    {
      std::lock_guard lock(stats_mutex);
      stats.partitions_owned = static_cast<std::int64_t>(owned.size());
      stats.relays_seen = ownership.relays_seen();
      if (changed) {
        stats.partitions_taken += changed->taken;
        stats.partitions_given += changed->given;
      }
      if (!changed || owned.empty()) {  // a round without a read
        ++stats.rounds;
        stats.lag = 0;
        stats.last_error = changed ? std::string() : changed.error();
      }
    }
    if (!changed) return tl::unexpected(changed.error());
    if (owned.empty()) return 0;
    // The read and the marks are one statement each: no transaction block around them
    // (ConnectionPool::autocommit), one round trip each.
    auto read = pool.autocommit([&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::vector<Batch>> {
      auto unpublished =
          read_unpublished(tx, std::min<std::int64_t>(static_cast<std::int64_t>(options.batch_max), kCatchUpLimitMax),
                           std::span<const PartitionKey>(owned));
      if (!unpublished) return tl::unexpected(unpublished.error());
      std::vector<Batch> batches;
      for (auto& partition : *unpublished)
        batches.push_back(Batch{std::move(partition.mark), std::move(partition.events)});
      return batches;
    });
    if (!read) return tl::unexpected(read.error().message);
    auto& batches = *read;

    std::size_t total = 0;
    for (auto& b : batches) {
      b.first = total;
      total += b.events.size();
    }
    std::vector<Pending> pending(total);
    std::string produce_error;
    for (auto& b : batches) {
      for (std::size_t i = 0; i < b.events.size() && produce_error.empty(); ++i) {
        auto& p = pending[b.first + i];
        p.seq = b.events[i].seq;
        CLEARING_ASSERT(p.seq == b.mark.published + 1 + static_cast<std::int64_t>(i));
        auto ok = produce(b.events[i], p);
        if (!ok) {
          produce_error = ok.error();  // queue full or similar: publish the rest next round
          break;
        }
        ++b.produced;
      }
    }
    if (total > 0 &&
        rd_kafka_flush(producer, static_cast<int>(options.flush_timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Reports still owed point into `pending`: purge what is left so every message
      // reports (as failed) before `pending` goes away; they are republished next round.
      rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(producer, 5'000);
    }
    for (const auto& b : batches)
      for (std::size_t i = 0; i < b.produced; ++i)
        if (pending[b.first + i].state == 0) {
          // A report may still arrive: keep the records alive for it rather than risk it
          // writing into freed memory. Bounded: it takes a broken librdkafka to get here.
          graveyard.push_back(std::move(pending));
          return tl::unexpected(std::string("delivery reports missing after purge"));
        }

    // Everything produced has a report now: each mark moves across its contiguous
    // delivered prefix only.
    std::vector<std::int64_t> delivered_to(batches.size());
    int acknowledged = 0, failed = 0, moved = 0;
    std::int64_t produced = 0;
    for (std::size_t k = 0; k < batches.size(); ++k) {
      const auto& b = batches[k];
      delivered_to[k] = b.mark.published;
      produced += static_cast<std::int64_t>(b.produced);
      for (std::size_t i = 0; i < b.produced; ++i) {
        const auto& p = pending[b.first + i];
        if (p.state == 1) {
          ++acknowledged;
          if (delivered_to[k] == p.seq - 1) delivered_to[k] = p.seq;
        } else {
          ++failed;
          if (produce_error.empty())
            produce_error = b.mark.stream + "/" + std::to_string(b.mark.partition) + ": " +
                            (p.state == 2 ? std::string(rd_kafka_err2str(p.error))
                                          : std::string("no delivery report within the flush timeout"));
        }
      }
      moved += static_cast<int>(delivered_to[k] - b.mark.published);
    }
    std::string mark_error;
    if (moved > 0) {
      std::vector<PartitionMark> moves;
      for (std::size_t k = 0; k < batches.size(); ++k)
        if (delivered_to[k] != batches[k].mark.published)
          moves.push_back({batches[k].mark.stream, batches[k].mark.partition, batches[k].mark.head, delivered_to[k]});
      auto marked = pool.autocommit(
          [&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> { return mark_published(tx, moves); });
      if (!marked) {
        mark_error = marked.error().message;  // republished next round; consumers skip seqs they have
        moved = 0;
      }
    }
    std::int64_t lag = 0;
    for (std::size_t k = 0; k < batches.size(); ++k)
      lag += batches[k].mark.head - (mark_error.empty() ? delivered_to[k] : batches[k].mark.published);
    {
      std::lock_guard lock(stats_mutex);
      ++stats.rounds;
      stats.produced += produced;
      stats.acknowledged += acknowledged;
      stats.failed += failed;
      stats.lag = lag;
      stats.last_error = !mark_error.empty() ? mark_error : produce_error;
    }
    if (!mark_error.empty()) return tl::unexpected(mark_error);
    if (!produce_error.empty()) {
      auto recovered = recover_if_fatal();
      if (!recovered) return tl::unexpected(recovered.error());
      if (moved == 0) return tl::unexpected(produce_error);
    }
    return moved;
  }

  void run() {
    int failures = 0;
    for (;;) {
      const auto round_started = std::chrono::steady_clock::now();
      auto relayed = run_once();
      std::chrono::milliseconds wait = options.idle_poll;
      if (!relayed) {
        ++failures;
        log->warn("relay round failed error={} failures={}", relayed.error(), failures);
        wait = std::min(options.retry_backoff_max, options.idle_poll * (1 << std::min(failures, 10)));
      } else {
        failures = 0;
        if (*relayed > 0)
          wait = std::max(std::chrono::milliseconds(0),
                          options.round_interval_min - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                           std::chrono::steady_clock::now() - round_started));
      }
      std::unique_lock lock(wait_mutex);
      if (wait.count() > 0) wait_cv.wait_for(lock, wait, [&] { return stopping; });
      if (stopping) return;
    }
  }
};

tl::expected<std::unique_ptr<Relay>, std::string> Relay::create(eventstore::ConnectionPool& pool,
                                                                RelayOptions options) {
  if (options.batch_max < 1) return tl::unexpected(std::string("relay batch_max must be >= 1"));
  if (options.ownership_refresh.count() < 0 || options.ownership_refresh > kOwnershipRefreshMax)
    return tl::unexpected("relay ownership_refresh must be in [0, " + std::to_string(kOwnershipRefreshMax.count()) +
                          "] ms");
  if (options.owner_loss_timeout < kOwnerLossTimeoutMin || options.owner_loss_timeout > kOwnerLossTimeoutMax)
    return tl::unexpected("relay owner_loss_timeout must be in [" + std::to_string(kOwnerLossTimeoutMin.count()) +
                          ", " + std::to_string(kOwnerLossTimeoutMax.count()) + "] ms");
  if (options.handover_grace < 2 * options.ownership_refresh || options.handover_grace > kHandoverGraceMax)
    return tl::unexpected("relay handover_grace must be in [2 x ownership_refresh, " +
                          std::to_string(kHandoverGraceMax.count()) + "] ms");
  auto impl = std::make_unique<Impl>(pool, std::move(options));
  auto opened = impl->open_producer();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  CLEARING_ASSERT(!impl_->thread.joinable());
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void Relay::stop() {
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  const auto given = impl_->ownership.release();
  std::lock_guard lock(impl_->stats_mutex);
  impl_->stats.partitions_given += given;
  impl_->stats.partitions_owned = 0;
  impl_->stats.relays_seen = 0;
}

tl::expected<int, std::string> Relay::run_once() { return impl_->run_once(); }

RelayStats Relay::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::external_streams
