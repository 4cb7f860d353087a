#include "clearing/external_streams/ownership.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace clearing::external_streams {
namespace {

using Clock = std::chrono::steady_clock;
using LockKey = PartitionOwnership::LockKey;
// When an instance at its share takes a partition that stayed free for a grace (those below
// their share did not take it), it gives nothing for this many graces: an instance that does
// not take what it is given must not make a partition wait a grace again and again.
constexpr int kKeepExtrasGraces = 30;

// The server's locks are not what this side believed: the session is given up.
struct LocksLost : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a refresh threw, typed: a lost lock, or the database's error by its class.
OwnershipErrc code_of(std::exception_ptr thrown) {
  try {
    std::rethrow_exception(thrown);
  } catch (const LocksLost&) {
    return OwnershipErrc::locks_lost;
  } catch (...) {
    return eventstore::translate_exception(std::current_exception()).is_retryable()
               ? OwnershipErrc::unreachable
               : OwnershipErrc::refused;
  }
}

// One look at the database's ownership: every partition by lock key (keys of two partitions
// may collide: then one lock guards both), who holds each key, and the live instances.
}  // namespace

struct PartitionOwnership::Survey {
  std::map<LockKey, std::vector<PartitionKey>> partitions;
  std::map<LockKey, int> holders;  // key -> backend pid of the session holding it
  std::set<int> members;           // backend pids of the instances' sessions
};

namespace {

// The ownership session's statements. pg_locks shows the advisory locks of every session of
// the cluster: those of this database and the relay's classes (objsubid 2: the two-int form).
// $3: the partitions to share out as [[stream, partition], ...], or null for every partition
// of the outbound streams registered here; $4: the scope, prefixed to each partition's key.
constexpr const char* kSurveySql =
    "with locks as ("
    "  select classid::bigint as class, objid::bigint as key, pid from pg_locks"
    "  where locktype = 'advisory' and granted and objsubid = 2"
    "    and database = (select oid from pg_database where datname = current_database())"
    "    and classid in ($1::int::oid, $2::int::oid)),"
    " universe as ("
    "  select stream, partition from external_stream_seqs where $3::jsonb is null"
    "  union all select e->>0, (e->>1)::int from jsonb_array_elements(coalesce($3::jsonb, '[]')) e)"
    " select"
    " (select coalesce(jsonb_agg(jsonb_build_array(u.stream, u.partition, hashtext($4 || u.stream "
    "|| '/' || u.partition))),"
    "   '[]'::jsonb) from universe u)::text,"
    " (select coalesce(jsonb_agg(jsonb_build_array(key, pid)), '[]'::jsonb) from locks where class "
    "= $1)::text,"
    " (select coalesce(jsonb_agg(pid), '[]'::jsonb) from locks where class = $2"
    "   and key = (hashtext($4)::bigint + 4294967296) % 4294967296)::text";
constexpr const char* kSurveyStatement = "partition_ownership_survey";
constexpr const char* kTakeSql =
    "select k, pg_try_advisory_lock($1::int, k) from unnest($2::int[]) as k";
constexpr const char* kGiveSql =
    "select k, pg_advisory_unlock($1::int, k) from unnest($2::int[]) as k";

std::string int_array(const std::vector<LockKey>& keys) {
  std::string out = "{";
  for (std::size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + std::to_string(keys[i]);
  return out + "}";
}

// A libpq URI or key=value string with more parameters.
std::string with_parameters(const std::string& url,
                            const std::vector<std::pair<std::string, std::string>>& params) {
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

}  // namespace

tl::expected<void, OptionsError> validate_ownership_options(const OwnershipOptions& options) {
  if (options.refresh.count() < 0 || options.refresh > kOwnershipRefreshMax)
    return tl::unexpected(
        OptionsError{"refresh", options.role + " ownership refresh must be in [0, " +
                                    std::to_string(kOwnershipRefreshMax.count()) + "] ms"});
  if (options.owner_loss_timeout < kOwnerLossTimeoutMin ||
      options.owner_loss_timeout > kOwnerLossTimeoutMax)
    return tl::unexpected(OptionsError{"owner_loss_timeout",
                                       options.role + " owner_loss_timeout must be in [" +
                                           std::to_string(kOwnerLossTimeoutMin.count()) + ", " +
                                           std::to_string(kOwnerLossTimeoutMax.count()) + "] ms"});
  if (options.handover_grace < 2 * options.refresh || options.handover_grace > kHandoverGraceMax)
    return tl::unexpected(
        OptionsError{"handover_grace", options.role + " handover_grace must be in [2 x refresh, " +
                                           std::to_string(kHandoverGraceMax.count()) + "] ms"});
  return {};
}

tl::expected<PartitionOwnership::Change, OwnershipError> PartitionOwnership::refresh_if_due() {
  const auto now = Clock::now();
  if (session_ && now < next_refresh_) return Change{};
  next_refresh_ = now + options_.refresh;
  try {
    if (!session_) open_session();
    return refresh(now);
  } catch (const std::exception& e) {
    const auto code = code_of(std::current_exception());
    const auto had = partitions_owned();
    close_session();
    return tl::unexpected(OwnershipError{code, "partition ownership: " + std::string(e.what()) +
                                                   " (released " + std::to_string(had) +
                                                   " partitions)"});
  }
}

// Graceful: every lock ends now, so the others take the partitions at their next refresh.
std::int64_t PartitionOwnership::release() {
  const auto had = partitions_owned();
  if (session_) {
    try {
      pqxx::nontransaction tx(*session_);
      tx.exec("select pg_advisory_unlock_all()");
    } catch (const std::exception& e) {
      log_->warn("{} ownership release error=\"{}\": the session is closed instead", options_.role,
                 e.what());
    }
  }
  close_session();
  if (had > 0) log_->info("{} partitions released partitions={}", options_.role, had);
  return had;
}

std::vector<PartitionKey> PartitionOwnership::partitions() const {
  std::vector<PartitionKey> out;
  for (const auto& [key, partitions] : owned_)
    out.insert(out.end(), partitions.begin(), partitions.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t PartitionOwnership::partitions_owned() const {
  std::int64_t n = 0;
  for (const auto& [key, partitions] : owned_) n += static_cast<std::int64_t>(partitions.size());
  return n;
}

void PartitionOwnership::open_session() {
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
  session_->prepare(kSurveyStatement,
                    kSurveySql);  // at each refresh: 0.2 ms prepared, 0.44 ms planned
  pqxx::nontransaction tx(*session_);
  // The server's side: a silent client (its host lost power) ends this session, and its
  // locks, within the timeout; kept-alive sockets of Unix-domain connections ignore these.
  tx.exec(
      "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = " +
      probes + "; SET tcp_user_timeout = " + user_timeout_ms + "; SET statement_timeout = " +
      std::to_string(database_.statement_timeout.count()) + "; SET application_name = " +
      tx.quote(database_.application_name + "-" + options_.role + "-owner"));
  const auto joined =
      tx.exec_params("select pg_backend_pid(), pg_try_advisory_lock_shared($1::int, hashtext($2))",
                     options_.member_lock_class, options_.scope);
  if (!joined[0][1].as<bool>())
    throw LocksLost("the " + options_.role + " member lock is held exclusively");
  backend_pid_ = joined[0][0].as<int>();
  free_since_.clear();
  log_->info("{} ownership session opened backend_pid={}", options_.role, backend_pid_);
}

void PartitionOwnership::close_session() {
  session_.reset();  // closing it ends the session's locks on the server
  owned_.clear();
  free_since_.clear();
  stuck_.clear();
  members_seen_ = 0;
}

PartitionOwnership::Survey PartitionOwnership::survey(pqxx::nontransaction& tx) const {
  std::optional<std::string> universe;
  if (options_.partitions) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [stream, partition] : *options_.partitions)
      list.push_back({stream, partition});
    universe = list.dump();
  }
  const auto row = tx.exec_prepared(kSurveyStatement, options_.partition_lock_class,
                                    options_.member_lock_class, universe, options_.scope)[0];
  Survey out;
  for (const auto& p : nlohmann::json::parse(row[0].c_str()))
    out.partitions[p[2].get<LockKey>()].emplace_back(p[0].get<std::string>(),
                                                     p[1].get<std::int32_t>());
  for (const auto& h : nlohmann::json::parse(row[1].c_str()))
    out.holders[static_cast<LockKey>(static_cast<std::uint32_t>(h[0].get<std::int64_t>()))] =
        h[1].get<int>();
  for (const auto& m : nlohmann::json::parse(row[2].c_str())) out.members.insert(m.get<int>());
  return out;
}

// What the server says this session holds must be what this side believes it owns.
void PartitionOwnership::check(const Survey& seen) const {
  if (!seen.members.count(backend_pid_)) throw LocksLost("the session lost its member lock");
  for (const auto& [key, pid] : seen.holders)
    if ((pid == backend_pid_) != (owned_.count(key) > 0))
      throw LocksLost("the session's locks differ from the partitions it owns");
  for (const auto& [key, partitions] : owned_)
    if (!seen.holders.count(key)) throw LocksLost("the session lost a partition's lock");
}

PartitionOwnership::Change PartitionOwnership::refresh(Clock::time_point now) {
  pqxx::nontransaction tx(*session_);
  const auto seen = survey(tx);
  check(seen);
  members_seen_ = static_cast<std::int64_t>(seen.members.size());
  const auto keys = seen.partitions.size();
  const auto share = (keys + seen.members.size() - 1) / seen.members.size();
  std::map<int, std::size_t> load;  // keys held, by member
  for (const int pid : seen.members) load[pid] = 0;
  for (const auto& [key, pid] : seen.holders)
    if (load.count(pid)) ++load[pid];
  for (auto it = stuck_.begin(); it != stuck_.end();)
    it = seen.members.count(*it) ? std::next(it) : stuck_.erase(it);

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
    for (const auto& row :
         tx.exec_params(kTakeSql, options_.partition_lock_class, int_array(wanted)))
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
    for (const auto& row :
         tx.exec_params(kGiveSql, options_.partition_lock_class, int_array(given))) {
      if (!row[1].as<bool>()) throw LocksLost("a partition's lock was not held when given");
      const auto key = row[0].as<LockKey>();
      change.given += static_cast<std::int64_t>(owned_.at(key).size());
      owned_.erase(key);
    }
  }
  if (change.taken > 0 || change.given > 0)
    log_->info(
        "{} ownership changed partitions_owned={} taken={} given={} members={} share_keys={}",
        options_.role, partitions_owned(), change.taken, change.given, members_seen_, share);
  return change;
}

}  // namespace clearing::external_streams
