// Two adapters share DK on one database, `kafka.partition_assignment: "database"` (issue 17,
// item 1). One is SIGKILLed while it reads inbound partitions and has clearing calls in
// flight. The other, the survivor, must then read the dead one's partitions, apply what
// arrives on them after the kill, make the dead one's claimed calls again and record their
// answers; in the end every transfer has exactly one outcome at the core and the clearing
// executed none twice. Separate processes: the Kafka mock cluster, clearing-mock (slow
// answers, so calls are in flight), core-sim (a steady rate), two `clearing-adapter run`.
//
// Who holds what is read from PostgreSQL, where the ownership lives: a consumer's partition
// is an advisory lock (kConsumerPartitionLockClass, hashtext(group_id || '|' || stream || '/'
// || partition)) of its "-consumer-owner" session (docs/streams.md, "One reader per inbound
// partition"); a claimed call is a transfer_work row whose lease_owner is "host:pid". Both
// adapters' sessions carry the same application_name, so a session is told to be one
// adapter's by its client port: a local port of one of that process's sockets.
//
// The survivor is stopped (SIGSTOP) for the moment of the kill, so that what the dead one left
// (its partitions, its progress, its claimed calls) is read before anyone can take it over;
// it is continued right after. The takeover times are printed (MESSAGE), never checked: this
// runs on a shared 2-core machine. Every deadline is generous (60 s) and only bounds a wait.

#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "clearing/external_streams/consumer.hpp"
#include "clearing/http/client.hpp"
#include "clearing/processes/process.hpp"
#include "clearing/support/adapter_config.hpp"
#include "clearing/support/command_lines.hpp"
#include "core_sim_finish.hpp"
#include "reconcile.hpp"
#include "test_database.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kInbound = "core.dk.payments.v1";
constexpr int kInboundPartitions = 4;
constexpr const char* kClearingToken = "clearing-token-16";
constexpr const char* kApiToken = "api-token-0123456789abcdef0123456";
constexpr int kTransfers = 400;
constexpr int kRatePerS = 20;            // 20 s of transfers: the kill comes early in them
constexpr int kClearingLatencyMs = 800;  // every call is in flight this long
constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kPoll = std::chrono::milliseconds(50);
constexpr std::size_t kSurvivor = 0;  // the core's catch-up client talks to this one
constexpr std::size_t kVictim = 1;
// Calls the victim must have claimed when the kill is aimed: a few, so that they cannot all
// be answered in the milliseconds before the kill lands (each is in flight kClearingLatencyMs).
constexpr std::size_t kClaimedAtAimMin = 3;

// Answers recorded on a transfer, each naming the attempt it answers (transfer_codec.cpp).
constexpr const char* kAnswerTypes =
    "('TransferSettled', 'TransferRejected', 'TransferAcceptedPending', 'ClearingOutcomeUnknown', "
    "'ClearingReportedInProgress', 'ClearingUnavailable', 'ClearingReportedNotFound', "
    "'ClearingUnauthorized', "
    "'IdempotencyKeyConflictDetected')";

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Polls `done` until it holds or `deadline` passes; whether it held.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds deadline = kDeadline) {
  const auto until = Clock::now() + deadline;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(kPoll);
  }
}

// The local ports of a process's TCP connections to the PostgreSQL server's port: its sessions
// are the backends whose pg_stat_activity.client_port is one of them. Only connections to the
// server count: Linux may give one local port to two connections to different places.
// Linux: /proc/<pid>/fd and /proc/<pid>/net/tcp*.
std::set<int> database_client_ports(pid_t pid, int server_port) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code error;
  for (std::filesystem::directory_iterator fd(proc + "/fd", error), end; !error && fd != end;
       fd.increment(error)) {
    std::error_code unreadable;
    const auto target = std::filesystem::read_symlink(fd->path(), unreadable).string();
    if (!unreadable && target.rfind("socket:[", 0) == 0)
      inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<int> ports;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const auto colon = local.rfind(':');
      const auto remote_colon = remote.rfind(':');
      if (colon == std::string::npos || remote_colon == std::string::npos || !inodes.count(inode))
        continue;
      if (std::stoi(remote.substr(remote_colon + 1), nullptr, 16) != server_port) continue;
      ports.insert(std::stoi(local.substr(colon + 1), nullptr, 16));
    }
  }
  return ports;
}

// The sum of a metric's samples in a Prometheus text body; nullopt when it has none.
std::optional<double> metric_sum(const std::string& body, const std::string& name) {
  std::optional<double> sum;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    if (line[name.size()] != ' ' && line[name.size()] != '{') continue;
    const auto space = line.rfind(' ');
    sum = sum.value_or(0) + std::stod(line.substr(space + 1));
  }
  return sum;
}

// The inbound partitions an adapter says it reads, from clearing_inbound_partition_assigned
// {stream, partition} (1: assigned); nullopt when the adapter does not export that gauge.
std::optional<std::set<int>> assigned_by_metrics(const std::string& body) {
  const std::string name = "clearing_inbound_partition_assigned";
  if (body.find("\n" + name) == std::string::npos && body.rfind(name, 0) != 0) return std::nullopt;
  std::set<int> out;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    if (line.find("stream=\"" + std::string(kInbound) + "\"") == std::string::npos) continue;
    const auto at = line.find("partition=\"");
    const auto space = line.rfind(' ');
    if (at == std::string::npos || space == std::string::npos) continue;
    if (std::stod(line.substr(space + 1)) > 0) out.insert(std::stoi(line.substr(at + 11)));
  }
  return out;
}

struct ClaimedCall {
  std::string transfer_id;
  int attempt = 0;
  bool operator<(const ClaimedCall& o) const {
    return std::tie(transfer_id, attempt) < std::tie(o.transfer_id, o.attempt);
  }
};

// What the test reads of the adapters' database, on one connection of its own.
class AdapterDatabase {
 public:
  AdapterDatabase(const std::string& url, const std::string& group_id)
      : connection_(url), key_prefix_(group_id + "|" + kInbound + "/") {}

  int server_port() {
    pqxx::nontransaction tx(connection_);
    return tx.exec("select current_setting('port')::int")[0][0].as<int>();
  }

  // Each inbound partition whose consumer lock is held: the client port of the session that
  // holds it. Every consumer partition lock of this database must be one of them (the key's
  // formula is the ownership module's), else the test reads the wrong locks.
  std::map<int, int> partition_holders() {
    pqxx::nontransaction tx(connection_);
    // One statement: the locks change while the adapters hand partitions over.
    const auto rows = tx.exec_params(
        "select l.objid::bigint, p, a.client_port, a.application_name from pg_locks l"
        " left join generate_series(0, $2 - 1) p"
        "   on l.objid::bigint = (hashtext($1 || p)::bigint + 4294967296) % 4294967296"
        " left join pg_stat_activity a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and l.objsubid = 2 and l.classid = $3::oid"
        "   and l.database = (select oid from pg_database where datname = current_database())",
        key_prefix_, kInboundPartitions, external_streams::kConsumerPartitionLockClass);
    std::map<int, int> out;
    for (const auto& row : rows) {
      REQUIRE_MESSAGE(!row[1].is_null(), "a consumer partition lock the test cannot name: key "
                                             << row[0].as<std::int64_t>());
      // A session that ended since pg_locks was read is no longer in pg_stat_activity.
      if (row[3].is_null()) continue;
      const auto application = row[3].as<std::string>();
      CHECK_MESSAGE(application.ends_with("-consumer-owner"), application);
      out[row[1].as<int>()] = row[2].is_null() ? -1 : row[2].as<int>();
    }
    return out;
  }

  // The partitions held by sessions of the process with these local ports.
  std::set<int> partitions_of(const std::set<int>& ports) {
    std::set<int> out;
    for (const auto& [partition, port] : partition_holders())
      if (ports.count(port)) out.insert(partition);
    return out;
  }

  std::int64_t sessions_from(const std::set<int>& ports) {
    pqxx::nontransaction tx(connection_);
    std::int64_t n = 0;
    for (const auto& row :
         tx.exec("select client_port from pg_stat_activity where client_port is not null"))
      n += ports.count(row[0].as<int>());
    return n;
  }

  std::map<int, std::int64_t> applied_seqs() {
    pqxx::nontransaction tx(connection_);
    std::map<int, std::int64_t> out;
    for (const auto& row : tx.exec_params(
             "select partition, last_seq from inbound_stream_progress where stream = $1", kInbound))
      out[row[0].as<int>()] = row[1].as<std::int64_t>();
    return out;
  }

  std::vector<ClaimedCall> claimed_by(const std::string& owner) {
    pqxx::nontransaction tx(connection_);
    std::vector<ClaimedCall> out;
    for (const auto& row : tx.exec_params(
             "select transfer_id, attempt from transfer_work where lease_owner = $1 order by 1",
             owner))
      out.push_back({row[0].as<std::string>(), row[1].as<int>()});
    return out;
  }

  // Of these calls, those whose answer is recorded (an answer event naming the attempt).
  std::set<ClaimedCall> answered(const std::vector<ClaimedCall>& calls) {
    pqxx::nontransaction tx(connection_);
    std::set<ClaimedCall> out;
    for (const auto& call : calls) {
      const auto n =
          tx.exec_params("select count(*) from events where stream_id = $1 and type in " +
                             std::string(kAnswerTypes) + " and (data->>'attempt')::int = $2",
                         "transfer-" + call.transfer_id, call.attempt)[0][0]
              .as<std::int64_t>();
      if (n > 0) out.insert(call);
    }
    return out;
  }

  // Of these calls, those whose transfer has its outcome.
  std::set<ClaimedCall> finished(const std::vector<ClaimedCall>& calls) {
    pqxx::nontransaction tx(connection_);
    std::set<ClaimedCall> out;
    for (const auto& call : calls) {
      const auto r = tx.exec_params("select status from transfer_status where transfer_id = $1",
                                    call.transfer_id);
      if (!r.empty() &&
          (r[0][0].as<std::string>() == "succeeded" || r[0][0].as<std::string>() == "rejected"))
        out.insert(call);
    }
    return out;
  }

 private:
  pqxx::connection connection_;
  std::string key_prefix_;
};

std::string fetch_metrics(int port) {
  auto answer = http::get(support::local_url(port) + "/metrics", kApiToken, 2000);
  return answer && answer->status == 200 ? answer->body : std::string{};
}

bool ready(int port) {
  auto answer = http::get(support::local_url(port) + "/readyz", "", 1000);
  return answer && answer->status == 200;
}

// The warnings and errors of a process's log, for a failure's message.
std::string notable_lines(const Process& p) {
  std::string out;
  std::istringstream lines(p.stderr_text());
  for (std::string line; std::getline(lines, line);)
    if (line.find(" warn") != std::string::npos || line.find(" error") != std::string::npos ||
        line.find(" critical") != std::string::npos)
      out += line + "\n";
  return out.substr(out.size() > 4000 ? out.size() - 4000 : 0);
}

std::string partition_list(const std::set<int>& partitions) {
  std::string out;
  for (const int p : partitions) out += (out.empty() ? "" : ",") + std::to_string(p);
  return "{" + out + "}";
}

}  // namespace

TEST_CASE(
    "the survivor of two adapters takes over a killed one's partitions and claimed clearing "
    "calls") {
  TestDatabase adapter_db;
  TestDatabase core_db;

  Process kafka(support::kafka_mock_argv(KAFKA_MOCK, kInboundPartitions), {}, true);
  const auto bootstrap_or = support::after_prefix(kafka.read_line(30'000), "bootstrap ");
  REQUIRE_MESSAGE(bootstrap_or, kafka.stderr_text());
  const auto bootstrap = *bootstrap_or;

  // No faults: every call answers, slowly, so that calls are in flight when the kill comes.
  // No incoming feed: the core's report then waits for nothing but the transfers.
  Process mock(support::clearing_mock_argv(CLEARING_MOCK, {.token = kClearingToken,
                                                           .seed = 17,
                                                           .latency_ms = kClearingLatencyMs,
                                                           .threads = 2,
                                                           .more = {"--incoming-count", "0"}}));
  const auto mock_address_or = support::after_prefix(mock.read_line(30'000), "listening ");
  REQUIRE_MESSAGE(mock_address_or, mock.stderr_text());
  const auto mock_address = *mock_address_or;

  const auto ports = support::free_ports(3);
  const int core_port = ports[0];
  const std::array<int, 2> adapter_ports{ports[1], ports[2]};
  REQUIRE(adapter_ports[0] != adapter_ports[1]);

  // config/dk.json with the inbound partitions shared through PostgreSQL, and a lease far
  // longer than the test: a dead adapter's claimed calls can only come back within the 60 s
  // deadline because its lease ends with its database session (dispatcher.lease_by_session).
  const std::string config_path = "/tmp/takeover-dk-" + std::to_string(getpid()) + ".json";
  std::string group_id;
  {
    auto cfg =
        clearing::support::adapter_config_in_a_hurry(std::string(SOURCE_DIR) + "/config/dk.json");
    cfg["clearing"]["request_timeout_ms"] = 5000;
    cfg["dispatcher"]["lease_ms"] = 300000;
    cfg["kafka"]["partition_assignment"] = "database";
    cfg["log_level"] = "info";
    group_id = cfg["kafka"]["group_id"].get<std::string>();
    std::ofstream(config_path) << cfg.dump(2);
  }
  std::array<std::unique_ptr<Process>, 2> adapters;
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    const auto env = support::adapter_environment({.database_url = adapter_db.url(),
                                                   .bootstrap = bootstrap,
                                                   .clearing_address = mock_address,
                                                   .clearing_token = kClearingToken,
                                                   .core_port = core_port,
                                                   .api_token = kApiToken,
                                                   .http_port = adapter_ports[i]});
    adapters[i] =
        std::make_unique<Process>(support::adapter_run_argv(CLEARING_ADAPTER, config_path), env);
  }
  const auto report_logs = [&] {
    for (std::size_t i = 0; i < adapters.size(); ++i)
      MESSAGE("adapter " << i << " warnings and errors:\n" << notable_lines(*adapters[i]));
  };
  REQUIRE_MESSAGE(eventually([&] { return ready(adapter_ports[0]) && ready(adapter_ports[1]); }),
                  "adapters not ready: " << adapters[0]->stderr_text().substr(0, 2000));

  Process core(support::core_sim_argv(CORE_SIM, {.database_url = core_db.url(),
                                                 .bootstrap = bootstrap,
                                                 .transfers = kTransfers,
                                                 .seed = 17,
                                                 .invalid_share = 0.05,
                                                 .rate = kRatePerS,
                                                 .batch = 5,
                                                 .adapter_port = adapter_ports[kSurvivor],
                                                 .http_port = core_port,
                                                 .api_token = kApiToken,
                                                 .timeout_s = 180}));
  REQUIRE_MESSAGE(support::after_prefix(core.read_line(60'000), "catch-up "), core.stderr_text());

  AdapterDatabase db(adapter_db.url(), group_id);
  const int server_port = db.server_port();
  const auto ports_of = [&](std::size_t i) {
    return database_client_ports(adapters[i]->pid(), server_port);
  };
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::string victim_owner =
      std::string(host) + ":" + std::to_string(adapters[kVictim]->pid());

  // Both adapters read inbound partitions, and the victim has calls under way: in flight on
  // its /metrics and claimed in the database.
  const bool aimed = eventually([&] {
    if (db.partitions_of(ports_of(kSurvivor)).empty() ||
        db.partitions_of(ports_of(kVictim)).empty())
      return false;
    if (const auto assigned = assigned_by_metrics(fetch_metrics(adapter_ports[kSurvivor]));
        assigned && assigned->empty())
      return false;
    const auto metrics = fetch_metrics(adapter_ports[kVictim]);
    if (const auto assigned = assigned_by_metrics(metrics); assigned && assigned->empty())
      return false;
    const auto in_flight = metric_sum(metrics, "clearing_dispatcher_in_flight");
    return in_flight && *in_flight > 0 && db.claimed_by(victim_owner).size() >= kClaimedAtAimMin;
  });
  if (!aimed) report_logs();
  REQUIRE_MESSAGE(aimed,
                  "the two adapters never both read partitions with calls in flight at the victim");

  // The kill, with the survivor stopped around it: what the victim leaves is read before the
  // survivor can take any of it.
  adapters[kSurvivor]->signal(SIGSTOP);
  const auto frozen_at = Clock::now();
  const auto victim_ports = ports_of(kVictim);
  const auto victim_partitions = db.partitions_of(victim_ports);
  adapters[kVictim]->signal(SIGKILL);
  const auto killed_at = Clock::now();
  CHECK(adapters[kVictim]->wait(10'000) == 128 + SIGKILL);
  // Its sessions end when the server sees its connections close; a commit it had sent is
  // done by then, so what follows is all it left.
  const bool sessions_gone = eventually([&] { return db.sessions_from(victim_ports) == 0; });
  CHECK_MESSAGE(sessions_gone, "the killed adapter's database sessions did not end");
  const auto seqs_at_kill = db.applied_seqs();
  const auto orphans = db.claimed_by(victim_owner);
  const auto answered_at_kill = db.answered(orphans);
  adapters[kSurvivor]->signal(SIGCONT);
  const auto resumed_at = Clock::now();

  REQUIRE_MESSAGE(!victim_partitions.empty(), "the victim read no partition at the kill");
  REQUIRE_MESSAGE(!orphans.empty(), "the victim had no claimed call at the kill");
  // A claimed call's answer clears its lease in the answer's transaction: none of these has one.
  CHECK(answered_at_kill.empty());

  // Then, with the survivor running again: each of the victim's partitions held by the
  // survivor's session and applied past where the victim left it; each claimed call answered
  // (only the survivor is alive to record it) and its transfer finished.
  std::map<int, Clock::time_point> read_at, applied_at;
  std::map<ClaimedCall, Clock::time_point> answered_at, finished_at;
  std::optional<bool> gauge_agrees;  // nullopt while the adapter has no assignment gauge
  std::optional<Clock::time_point> gauge_at;
  const bool taken_over = eventually([&] {
    const auto now = Clock::now();
    const auto held = db.partitions_of(ports_of(kSurvivor));
    const auto seqs = db.applied_seqs();
    for (const int p : victim_partitions) {
      if (!read_at.count(p) && held.count(p)) read_at[p] = now;
      const auto at_kill = seqs_at_kill.count(p) ? seqs_at_kill.at(p) : 0;
      if (!applied_at.count(p) && seqs.count(p) && seqs.at(p) > at_kill) applied_at[p] = now;
    }
    for (const auto& call : db.answered(orphans)) answered_at.try_emplace(call, now);
    for (const auto& call : db.finished(orphans)) finished_at.try_emplace(call, now);
    if (const auto assigned = assigned_by_metrics(fetch_metrics(adapter_ports[kSurvivor]))) {
      gauge_agrees = std::includes(assigned->begin(), assigned->end(), victim_partitions.begin(),
                                   victim_partitions.end());
      if (*gauge_agrees && !gauge_at) gauge_at = now;
    }
    return read_at.size() == victim_partitions.size() &&
           applied_at.size() == victim_partitions.size() && answered_at.size() == orphans.size() &&
           finished_at.size() == orphans.size() && gauge_agrees.value_or(true);
  });

  // The last of each kind to be seen, from the kill; "not all" when some never were.
  const auto latest = [&](const auto& times, std::size_t expected) {
    if (times.size() < expected)
      return "not all (" + std::to_string(times.size()) + " of " + std::to_string(expected) + ")";
    double out = 0;
    for (const auto& [key, at] : times) out = std::max(out, ms_between(killed_at, at));
    return std::to_string(static_cast<int>(out)) + " ms";
  };
  MESSAGE("takeover after the SIGKILL (the survivor stopped "
          << static_cast<int>(ms_between(frozen_at, resumed_at)) << " ms around it, of which "
          << static_cast<int>(ms_between(killed_at, resumed_at))
          << " ms after it; times from the kill to the first poll that saw it, polled every "
          << kPoll.count() << " ms): the victim's partitions " << partition_list(victim_partitions)
          << " locked by the survivor " << latest(read_at, victim_partitions.size())
          << ", in its clearing_inbound_partition_assigned "
          << (gauge_at ? std::to_string(static_cast<int>(ms_between(killed_at, *gauge_at))) + " ms"
                       : std::string(gauge_agrees ? "not all" : "not exported"))
          << ", each applied past the kill " << latest(applied_at, victim_partitions.size())
          << "; its " << orphans.size() << " claimed calls answered "
          << latest(answered_at, orphans.size()) << ", their transfers finished "
          << latest(finished_at, orphans.size()));

  // (a) the survivor reads every partition the victim read.
  for (const int p : victim_partitions)
    CHECK_MESSAGE(read_at.count(p), "partition " << p << " never read by the survivor");
  if (gauge_agrees)
    CHECK_MESSAGE(*gauge_agrees, "the survivor's clearing_inbound_partition_assigned lacks one of "
                                     << partition_list(victim_partitions));
  // (b) and applies new messages on them.
  for (const int p : victim_partitions)
    CHECK_MESSAGE(applied_at.count(p), "partition " << p << " applied nothing after the kill");
  // (c) every call the victim had claimed is made again, answered and its transfer finished.
  for (const auto& call : orphans) {
    CHECK_MESSAGE(answered_at.count(call), "claimed call never answered: transfer "
                                               << call.transfer_id << " attempt " << call.attempt);
    CHECK_MESSAGE(finished_at.count(call), "transfer never finished: " << call.transfer_id);
  }
  if (!taken_over) report_logs();

  // (d) every transfer the core requested has exactly one outcome, agreeing with the clearing,
  // which executed none twice (DESIGN.md section 7, invariants 1 and 2; demo::reconcile).
  check_core_sim_finished(core, 150'000, kTransfers);

  auto ledger = http::get("http://" + mock_address + "/admin/ledger", kClearingToken, 10'000);
  REQUIRE(ledger);
  REQUIRE(ledger->status == 200);
  demo::Books books{adapter_db.url(), core_db.url(), {}, {}};
  books.ledger = clearing_mock::ledger_from_json(ledger->body);
  CHECK(!books.ledger.empty());
  const auto checks = demo::reconcile(books);
  int checked = 0;
  for (const auto& check : checks.checks) {
    if (!check.invariant.starts_with("1.") && !check.invariant.starts_with("2.")) continue;
    ++checked;
    CHECK_MESSAGE(check.holds, check.invariant << ": " << check.figures);
    MESSAGE(check.invariant << ": " << check.figures);
  }
  CHECK(checked == 2);

  // The survivor stops gracefully; the Kafka mock cluster lived through it all.
  CHECK(kafka.running());
  adapters[kSurvivor]->signal(SIGTERM);
  CHECK(adapters[kSurvivor]->wait(60'000) == 0);
  if (kafka.running()) kafka.write_line("quit");
  kafka.wait(30'000);
  mock.signal(SIGTERM);
  mock.wait(30'000);
  std::remove(config_path.c_str());
}
