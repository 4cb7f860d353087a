// clearing-chaos: the proof under faults (DESIGN.md section 7). Separate processes on this
// machine: PostgreSQL (the caller's, see scripts/with-postgres), a Kafka mock cluster
// process (kafka-mock, 3 brokers), clearing-mock with every fault class on, core-sim, and
// two `clearing-adapter run` processes for the same country sharing the work. One seed
// draws everything: the transfers, the clearing's faults and the schedule of what goes
// wrong (schedule.hpp); the seed is printed first and the same seed replays the schedule.
// During the run it SIGKILLs adapters and restarts them, takes brokers down and up, restarts
// PostgreSQL (fast shutdown) once, and puts bad input of every class on the adapter's
// inbound stream, hostile input from the core's side on several partitions (hostile_core.hpp),
// while the clearing sends hostile answers (stray and duplicate responses, NUL and 1 MB
// fields). About once a second it samples every inbound partition (flow.hpp). When the work
// has drained, the checker (reconcile.hpp, plus the checks below) reads the ledger, the
// core's database and the adapter's and prints each invariant with figures. Exit 0: every
// invariant holds; 1: one does not; 2: the run could not start.
// Besides them it prints figures of continuity (recovery.hpp says exactly what each is), never
// a reason to fail: the recovery after each kill, from the SIGKILL to the first message applied
// on each inbound partition the killed adapter read and to the first of its claimed clearing
// calls made again; and the longest windows with work open and nothing, or almost nothing,
// resolved, with the schedule's actions in them. A thread of its own samples what those need.
//
//   clearing-chaos [--seed S] [--transfers N] [--rate R] [--kills K] [--broker-outages B]
//                  [--pg-restarts 0|1] [--bad-per-class M] [--hostile-per-class H]
//                  [--hostile-clearing P] [--stall-max-s S] [--log-dir DIR] [--timeout-s T]
// The PostgreSQL server comes from CLEARING_TEST_DATABASE_URL; restarting it needs
// CLEARING_PG_BIN, CLEARING_PG_DATA, CLEARING_PG_OPTIONS, CLEARING_PG_LOG (scripts/with-postgres
// exports them; as root the server is run as `postgres`).

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <thread>

#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/external_streams/message.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/processes/process.hpp"
#include "clearing/support/adapter_config.hpp"
#include "flow.hpp"
#include "hostile_core.hpp"
#include "reconcile.hpp"
#include "recovery.hpp"
#include "schedule.hpp"
#include "test_database.hpp"

namespace clearing::chaos {
namespace {

using processes::Process;
using testing::with_database;
using Clock = std::chrono::steady_clock;

constexpr const char* kInbound = "core.dk.payments.v1";
constexpr int kInboundPartitions = 4;
constexpr int kIncomingPayments = 40;
constexpr int kSessionTimeoutMs = 6'000;  // the adapters' kafka.session_timeout_ms below
constexpr std::int64_t kLeaseMs = 4'000;  // the adapters' dispatcher.lease_ms below

// The figures of continuity (recovery.hpp): how often the calls a killed adapter had
// claimed are read again (at most 100 ms apart, so a claim is seen before its lease ends
// or its answer clears it: the mock answers in 20-100 ms), for how long at most, and how
// often the core's resolved and open transfers are read.
constexpr auto kCallSamplePeriod = std::chrono::milliseconds(50);
constexpr std::int64_t kCallWatchMaxMs = 120'000;
constexpr auto kResolutionSamplePeriod = std::chrono::milliseconds(250);
constexpr double kAlmostNothingShare = 0.05;  // "almost nothing": below 5% of the mean rate
constexpr int kKillLinesMax = 30;             // one line per kill up to this many kills

// What the schedule explains of a stop, past its own window: the group noticing a killed
// member (the session timeout) and two rebalances, a consumer's backoff after a failed batch
// (at most 5 s), reconnections. Beyond it, a stalled partition is the adapter's doing.
constexpr double kRecoverySlackS = 10;
// While draining, a partition stalled this long outside every explained window, or no
// progress anywhere for the second figure, will not drain: the run stops waiting.
constexpr double kGiveUpStallS = 60;
constexpr double kGiveUpNoProgressS = 180;  // longer than the adapters' deadline_ms (120 s)

// Reason codes the adapter gives itself, without asking the clearing (sagas'
// transfer_decider.hpp): any other rejection must be the clearing's, in its ledger.
const std::set<std::string> kAdapterOwnReasons{"AC01", "AM02", "AM03", "FF01", "DUPL", "MS03"};

struct Options {
  Plan plan;
  std::string server_url;
  std::string log_dir;
  std::string assignment;  // kafka.partition_assignment of the adapters; empty: the config's
  int timeout_s = 900;
  double stall_max_s = 20;  // invariant 13's bound on a stall outside the explained windows
  // The hostile clearing's classes to turn on (clearing-mock's --fault-<name>), to tell them apart.
  std::vector<std::string> hostile_clearing_classes{"stray-response", "duplicate-response",
                                                    "nul-field", "oversize-field"};
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

int free_port_near(int base) { return base + static_cast<int>(getpid() % 2000); }

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::int64_t epoch_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The adapters' dispatcher names its leases host:pid (service.cpp, instance_name); the
// adapters run on this machine.
std::string lease_owner_of(pid_t pid) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(pid);
}

void say(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

// One statement on a fresh connection; nullopt while the server is away (it restarts).
std::optional<pqxx::result> query(const std::string& url, const std::string& sql) {
  try {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec(sql);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::int64_t scalar(const std::string& url, const std::string& sql, std::int64_t otherwise = -1) {
  const auto r = query(url, sql);
  if (!r || r->empty() || (*r)[0][0].is_null()) return otherwise;
  return (*r)[0][0].as<std::int64_t>();
}

// The sum of a metric's samples in a Prometheus text body; -1 when absent.
double metric_sum(const std::string& body, const std::string& name) {
  double sum = -1;
  std::size_t at = 0;
  while ((at = body.find(name, at)) != std::string::npos) {
    const bool line_start = at == 0 || body[at - 1] == '\n';
    const auto after = at + name.size();
    at = after;
    if (!line_start || after >= body.size() || (body[after] != ' ' && body[after] != '{')) continue;
    const auto space = body.find(' ', body[after] == '{' ? body.find('}', after) : after);
    if (space == std::string::npos) break;
    sum = std::max(sum, 0.0) + std::strtod(body.c_str() + space + 1, nullptr);
  }
  return sum;
}

// ---- the injector: a faulty core ------------------------------------------------------

class Injector {
 public:
  Injector(const std::string& bootstrap, const std::string& core_url) : core_url_(core_url) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "message.timeout.ms", "120000", error, sizeof error);
    rd_kafka_conf_set(conf, "log_level", "3", error,
                      sizeof error);  // errors only: outages are planned
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!producer_) throw std::runtime_error(std::string("injector producer: ") + error);
  }
  ~Injector() {
    rd_kafka_flush(producer_, 30'000);
    rd_kafka_destroy(producer_);
  }

  // Envelope faults go straight onto Kafka (they carry no usable seq). unknown_type and
  // invalid_data need a seq of the stream, so they are appended to the core's own stream
  // through the core's append path, caused by an internal event saying why.
  std::string inject(BadInput kind, int partition) {
    external_streams::ExternalMessage m;
    m.stream = kInbound;
    m.partition = partition;
    m.seq = 1;
    m.event_id = base::new_uuid();
    m.type = "TransferRequested";
    m.occurred_at = "2026-11-26T10:00:00Z";
    m.correlation_id = base::new_uuid();
    m.source_event_id = base::new_uuid();
    m.key = base::new_uuid();
    m.data = {{"note", "chaos"}};  // no transfer_id: nothing for the adapter to reject back
    switch (kind) {
      case BadInput::not_json:
        return produce(partition, "chaos: this is not JSON {");
      case BadInput::missing_field: {
        auto j = m.to_json();
        j.erase("seq");
        j.erase("event_id");
        return produce(partition, j.dump());
      }
      case BadInput::bad_seq: {
        auto j = m.to_json();
        j["seq"] = -7;
        return produce(partition, j.dump());
      }
      case BadInput::wrong_stream: {
        auto j = m.to_json();
        j["partition"] = (partition + 1) % kInboundPartitions;
        return produce(partition, j.dump());
      }
      case BadInput::unknown_type:
        return append_to_core("TransferAmended", {{"note", "chaos: a type nobody knows"}});
      case BadInput::invalid_data:
        return append_to_core("TransferRequested",
                              {{"amount", {{"minor_units", "lots"}, {"currency", 7}}}});
    }
    return "unknown class";
  }

 private:
  std::string produce(int partition, const std::string& value) {
    const auto err =
        rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(kInbound), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(producer_, 0);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(err);
  }

  std::string append_to_core(const std::string& type, nlohmann::json data) {
    try {
      eventstore::DatabaseOptions o;
      o.url = core_url_;
      o.connections_max = 1;
      eventstore::ConnectionPool pool(o);
      eventstore::EventStore store(pool);
      const auto cause_id = base::new_uuid();
      eventstore::Metadata metadata;
      metadata.correlation_id = base::new_uuid();
      metadata.source = {{"injected_by", "clearing-chaos"}};
      const eventstore::EventData cause{
          eventstore::EventId(cause_id),
          "ChaosBadInputInjected",
          {{"type", type}, {"why", "the chaos run plays a faulty core"}},
          metadata};
      auto done = pool.transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<bool> {
        auto appended =
            store.append(tx, eventstore::StreamId("chaos-" + cause_id),
                         eventstore::ExpectedVersion::no_stream(), std::span(&cause, 1));
        if (!appended) return tl::unexpected(appended.error());
        eventstore::RecordedEvent source;
        source.event_id = cause.event_id;
        source.type = cause.type;
        source.data = cause.data;
        source.metadata = metadata;
        external_streams::Draft draft{type, base::new_uuid(), std::move(data)};
        auto external =
            external_streams::append_external(tx, {kInbound, kInboundPartitions}, draft, source);
        if (!external) return tl::unexpected(external.error());
        return true;
      });
      return done ? "" : done.error().message;
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  std::string core_url_;
  rd_kafka_t* producer_ = nullptr;
};

// ---- the run --------------------------------------------------------------------------

struct Figures {
  int kills = 0;
  int kills_with_calls_in_flight = 0;  // the killed adapter had clearing calls under way
  int kills_with_relay_lag = 0;        // ... had messages written but not acknowledged by Kafka
  int kills_with_inbound_work = 0;     // ... had applied inbound messages since its last start
  int kills_unobserved = 0;            // its /metrics did not answer in time
  int adapter_restarts = 0;
  int adapter_exits_on_their_own = 0;
  int core_restarts = 0;
  int broker_outages = 0;
  int pg_restarts = 0;
  std::map<std::string, int> injected;
  std::vector<std::string> injection_errors;
  std::vector<HostileRecord> hostile;  // errors included (they are reported, not accounted)
  std::map<int, int> hostile_per_class;
  std::string gave_up;          // why the run stopped waiting for the drain
  std::string kafka_mock_died;  // the end of its log, when kafka-mock exited on its own
  std::vector<int> adapter_exit_codes_at_stop;
  int core_exit_at_stop = -1;
  bool drained = false;
  double run_s = 0, drain_s = 0;
};

// One SIGKILL of an adapter, and what it held then (recovery.hpp says how each is measured).
struct KillRecord {
  double at_s = 0;         // run seconds
  std::int64_t at_us = 0;  // system_clock, µs since the epoch: compared with the database's times
  int target = 0;
  std::string owner;  // its dispatcher's lease_owner
  bool metrics_read = false;
  std::vector<int> partitions;  // inbound partitions it read (its /metrics before the kill)
  std::optional<std::vector<LeasedCall>>
      leased;  // its claimed calls; nullopt: transfer_work unreadable
  std::optional<std::int64_t> restarted_us;
  double restarted_s = -1;
};

// The claimed calls of one kill, watched until each is made again (or kCallWatchMaxMs).
struct CallWatch {
  std::size_t kill = 0;
  std::int64_t killed_us = 0;
  std::string owner;
  std::vector<LeasedCall> calls;
  std::vector<CallVerdict> verdicts;  // one per call
};

class Run {
 public:
  explicit Run(Options o) : o_(std::move(o)), flow_(kInboundPartitions) {}
  ~Run() {
    stop_sampler();
    stop_watermarks();
  }
  int main();

 private:
  std::string stderr_file(const std::string& name) {
    return o_.log_dir.empty() ? std::string{} : o_.log_dir + "/" + name + ".log";
  }
  std::unique_ptr<Process> start_adapter(int i) {
    std::map<std::string, std::string> e = adapter_env_;
    e["CLEARING_ADAPTER_HTTP_ADDRESS"] = "127.0.0.1:" + std::to_string(adapter_ports_[i]);
    return std::make_unique<Process>(
        std::vector<std::string>{CLEARING_ADAPTER, "run", "--config", config_path_}, e, false,
        stderr_file("adapter-" + std::to_string(i)));
  }
  std::unique_ptr<Process> start_core() {
    auto p = std::make_unique<Process>(core_argv_, std::map<std::string, std::string>{}, false,
                                       stderr_file("core-sim"));
    const auto line = p->read_line(60'000);
    if (line.rfind("catch-up ", 0) != 0)
      throw std::runtime_error("core-sim did not start: " + p->stderr_text());
    return p;
  }
  bool pg_ctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
    argv.push_back(env("CLEARING_PG_BIN") + "/pg_ctl");
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv);
    return p.wait(120'000) == 0;
  }
  void restart_postgres(double hold_s) {
    const auto data = env("CLEARING_PG_DATA");
    if (!pg_ctl({"-D", data, "-m", "fast", "-w", "stop"})) say("chaos: WARNING pg_ctl stop failed");
    std::this_thread::sleep_for(std::chrono::duration<double>(hold_s));
    if (!pg_ctl({"-D", data, "-l", env("CLEARING_PG_LOG"), "-w", "-t", "60", "-o",
                 env("CLEARING_PG_OPTIONS"), "start"}))
      throw std::runtime_error("PostgreSQL did not start again; see " + env("CLEARING_PG_LOG"));
    ++figures_.pg_restarts;
  }
  void watch_processes();
  bool drained();
  void progress(Clock::time_point started);
  int finish();
  double elapsed_s() const { return seconds_since(started_); }
  void start_watermarks();
  void stop_watermarks();
  // The continuity sampler: the core's resolved and open transfers every 250 ms, and the
  // calls killed adapters had claimed every 50 ms while any is pending, on a thread of its
  // own (the loop blocks for seconds while it aims a kill or restarts PostgreSQL).
  void start_sampler();
  void stop_sampler();
  void sample_calls(pqxx::connection& adapter, CallWatch& watch);
  void report_continuity();
  void sample_flow();
  std::string progress_signature();
  std::int64_t hostile_count(bool core_requested) const {
    return std::count_if(figures_.hostile.begin(), figures_.hostile.end(),
                         [&](const HostileRecord& r) {
                           return r.error.empty() && r.core_requested() == core_requested;
                         });
  }
  // The adapter's parked messages, each the copy of one hostile input (found by its marker)
  // or not; rows never change, so each is read once.
  struct Parked {
    std::string reason_code, correlation_id, raw;
    int hostile = -1;  // index into figures_.hostile
  };
  bool read_parked();
  // Every injected bad input parked with its reason, and every hostile input that must end
  // parked found parked: the drain waits for it.
  bool parked_complete() const;
  void check_clearing_outcomes(demo::Checks& checks,
                               const std::vector<clearing_mock::LedgerEntry>& ledger);
  void check_flow(demo::Checks& checks);
  demo::Check check_parked(demo::Checks& checks);

  Options o_;
  Figures figures_;
  FlowWatch flow_;
  std::map<std::int64_t, Parked> parked_;     // by id
  Clock::time_point started_ = Clock::now();  // set again when the core starts requesting
  // Kafka's high watermarks for flow_, read on a thread of their own: librdkafka's query
  // waits for a broker that is down far past its timeout, and the loop must not.
  rd_kafka_t* watcher_ = nullptr;
  std::thread watermark_thread_;
  std::mutex watermark_mutex_;
  std::condition_variable watermark_wake_;
  bool watermark_stopping_ = false;                                     // under the mutex
  std::vector<std::pair<std::int64_t, Clock::time_point>> watermarks_;  // under the mutex
  std::vector<KillRecord> kills_;
  std::vector<int> last_kill_of_;  // per adapter: index into kills_ of its latest kill, -1
  std::vector<Window> actions_;    // what the schedule did, in run seconds, for the windows
  std::thread sampler_thread_;
  std::mutex sampler_mutex_;
  std::condition_variable sampler_wake_;
  bool sampler_stopping_ = false;                     // under the mutex
  std::vector<CallWatch> call_watches_new_;           // under the mutex: handed to the sampler
  std::vector<CallWatch> call_watches_done_;          // the sampler's; read after it stopped
  std::vector<ResolutionSample> resolution_samples_;  // the sampler's; read after it stopped
  std::string adapter_db_, core_db_, bootstrap_, mock_address_, config_path_;
  std::map<std::string, std::string> adapter_env_;
  std::vector<int> adapter_ports_;
  std::vector<std::unique_ptr<Process>> adapters_;
  std::vector<std::optional<Clock::time_point>> restart_at_;  // set while killed
  std::vector<std::string> core_argv_;
  std::unique_ptr<Process> kafka_, mock_, core_;
};

void Run::watch_processes() {
  for (std::size_t i = 0; i < adapters_.size(); ++i) {
    if (restart_at_[i]) {
      if (Clock::now() >= *restart_at_[i]) {
        // Before the spawn: anything applied after it may be the restarted process's doing.
        if (last_kill_of_[i] >= 0) {
          auto& kill = kills_[static_cast<std::size_t>(last_kill_of_[i])];
          kill.restarted_us = epoch_us();
          kill.restarted_s = elapsed_s();
        }
        adapters_[i] = start_adapter(static_cast<int>(i));
        restart_at_[i].reset();
        ++figures_.adapter_restarts;
      }
    } else if (!adapters_[i]->running()) {
      // Not a violation by itself (an adapter that cannot reach its database at start exits
      // with a message, for its supervisor to restart it), but counted and explained.
      const auto log = adapters_[i]->stderr_text();
      const auto tail = log.substr(log.size() > 600 ? log.size() - 600 : 0);
      say("chaos: adapter " + std::to_string(i) + " exited on its own with " +
          std::to_string(adapters_[i]->wait(0)) + "; restarting it. The end of its log:\n" + tail);
      ++figures_.adapter_exits_on_their_own;  // explains no stall: it may be the input's doing
      adapters_[i] = start_adapter(static_cast<int>(i));
    }
  }
  if (figures_.kafka_mock_died.empty() && !kafka_->running()) {
    // Nothing flows without it; librdkafka 2.0's mock group coordinator is known to abort
    // (rdkafka_mock_cgrp.c: Assertion `!member->resp') when a killed member's successor joins.
    const auto log = kafka_->stderr_text();
    figures_.kafka_mock_died = log.substr(log.size() > 400 ? log.size() - 400 : 0);
    const bool known = log.find("rdkafka_mock_cgrp") != std::string::npos &&
                       log.find("Assertion") != std::string::npos;
    say("chaos: kafka-mock exited on its own with " + std::to_string(kafka_->wait(0)) +
        (known ? " (librdkafka 2.0's mock group coordinator assertion: a known defect of the mock, "
                 "not of the adapter)"
               : "") +
        "; the end of its log:\n" + figures_.kafka_mock_died);
  }
  if (!core_->running()) {
    say("chaos: core-sim exited with " + std::to_string(core_->wait(0)) +
        "; restarting it (it republishes nothing)");
    ++figures_.core_restarts;
    core_ = start_core();
  }
}

// Drained: every transfer of the source handled by the core and resolved, every incoming
// payment at the core, every outgoing message published and applied by the other side,
// and every injected bad input parked.
bool Run::drained() {
  const auto handled =
      scalar(core_db_,
             "select (select count(*) from core_transfers where status <> 'open') + "
             "(select count(*) from core_refused)");
  // The hostile core's requests are the core's transfers too.
  if (handled != o_.plan.transfers + hostile_count(true)) return false;
  if (scalar(core_db_, "select count(*) from core_incoming_payments") < kIncomingPayments)
    return false;
  if (!read_parked() || !parked_complete()) return false;
  if (scalar(adapter_db_, "select count(*) from external_stream_heads where published <> head",
             1) != 0)
    return false;
  if (scalar(core_db_, "select count(*) from external_stream_heads where published <> head", 1) !=
      0)
    return false;
  const auto adapter_heads = query(adapter_db_,
                                   "select stream, partition, head from external_stream_heads "
                                   "where stream like '%.payments.%' and head > 0");
  const auto core_applied =
      query(core_db_, "select stream, partition, last_seq from inbound_stream_progress");
  const auto core_heads =
      query(core_db_, "select stream, partition, head from external_stream_heads where head > 0");
  const auto adapter_applied =
      query(adapter_db_, "select stream, partition, last_seq from inbound_stream_progress");
  if (!adapter_heads || !core_applied || !core_heads || !adapter_applied) return false;
  auto applied = [](const pqxx::result& r) {
    std::map<std::pair<std::string, int>, std::int64_t> m;
    for (const auto& row : r)
      m[{row[0].as<std::string>(), row[1].as<int>()}] = row[2].as<std::int64_t>();
    return m;
  };
  const auto at_core = applied(*core_applied), at_adapter = applied(*adapter_applied);
  for (const auto& row : *adapter_heads) {
    const auto it = at_core.find({row[0].as<std::string>(), row[1].as<int>()});
    if (it == at_core.end() || it->second != row[2].as<std::int64_t>()) return false;
  }
  for (const auto& row : *core_heads) {
    const auto it = at_adapter.find({row[0].as<std::string>(), row[1].as<int>()});
    if (it == at_adapter.end() || it->second != row[2].as<std::int64_t>()) return false;
  }
  return true;
}

// One sample of every inbound partition for flow_: the core's head, the adapter's progress,
// Kafka's high watermark. No sample while the adapter's database does not answer.
void Run::sample_flow() {
  const std::string stream = kInbound;
  const auto progress =
      query(adapter_db_,
            "select partition, last_seq, kafka_offset from inbound_stream_progress "
            "where stream = '" +
                stream + "'");
  if (!progress) return;
  std::vector<PartitionSample> samples(kInboundPartitions);
  for (auto& s : samples) s.applied_seq = 0, s.kafka_offset = -1;  // no row yet: nothing handled
  for (const auto& row : *progress) {
    const auto p = row[0].as<int>();
    if (p < 0 || p >= kInboundPartitions) continue;
    samples[p].applied_seq = row[1].as<std::int64_t>();
    samples[p].kafka_offset = row[2].as<std::int64_t>();
  }
  if (const auto heads =
          query(core_db_, "select partition, head from external_stream_heads where stream = '" +
                              stream + "'"))
    for (const auto& row : *heads) {
      const auto p = row[0].as<int>();
      if (p >= 0 && p < kInboundPartitions) samples[p].core_head = row[1].as<std::int64_t>();
    }
  {
    std::lock_guard lock(watermark_mutex_);
    for (int p = 0; p < kInboundPartitions && p < static_cast<int>(watermarks_.size()); ++p)
      if (seconds_since(watermarks_[p].second) < 3)
        samples[p].kafka_end = watermarks_[p].first;  // else unknown
  }
  flow_.sample(elapsed_s(), samples);
}

void Run::start_watermarks() {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), error, sizeof error);
  rd_kafka_conf_set(conf, "socket.timeout.ms", "2000", error, sizeof error);
  rd_kafka_conf_set(conf, "log_level", "0", error,
                    sizeof error);  // its failures are planned outages
  watcher_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (!watcher_) throw std::runtime_error(std::string("watermark reader: ") + error);
  watermarks_.assign(kInboundPartitions, {-1, Clock::time_point{}});
  watermark_thread_ = std::thread([this] {
    for (;;) {
      for (int p = 0; p < kInboundPartitions; ++p) {
        std::int64_t low = -1, high = -1;
        if (rd_kafka_query_watermark_offsets(watcher_, kInbound, p, &low, &high, 500) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          std::lock_guard lock(watermark_mutex_);
          watermarks_[p] = {high, Clock::now()};
        }
      }
      std::unique_lock lock(watermark_mutex_);
      if (watermark_wake_.wait_for(lock, std::chrono::milliseconds(500),
                                   [&] { return watermark_stopping_; }))
        return;
    }
  });
}

void Run::stop_watermarks() {
  {
    std::lock_guard lock(watermark_mutex_);
    watermark_stopping_ = true;
  }
  watermark_wake_.notify_all();
  if (watermark_thread_.joinable()) watermark_thread_.join();
  if (watcher_) rd_kafka_destroy(watcher_);
  watcher_ = nullptr;
}

void Run::start_sampler() {
  sampler_thread_ = std::thread([this] {
    // Connections of its own, opened again after a failure (PostgreSQL restarts): a sample
    // that fails is missing, which the windows span (recovery.hpp).
    std::unique_ptr<pqxx::connection> adapter, core;
    std::vector<CallWatch> watches;
    auto next_resolution = Clock::now();
    for (;;) {
      {
        std::unique_lock lock(sampler_mutex_);
        if (sampler_wake_.wait_for(lock, kCallSamplePeriod, [&] { return sampler_stopping_; }))
          break;
        for (auto& w : call_watches_new_) watches.push_back(std::move(w));
        call_watches_new_.clear();
      }
      if (!watches.empty()) {
        try {
          if (!adapter) adapter = std::make_unique<pqxx::connection>(adapter_db_);
          for (auto& w : watches) sample_calls(*adapter, w);
        } catch (const std::exception&) {
          adapter.reset();
        }
        const auto now_us = epoch_us();
        for (auto it = watches.begin(); it != watches.end();) {
          const bool pending =
              std::any_of(it->verdicts.begin(), it->verdicts.end(),
                          [](const CallVerdict& v) { return v.fate == CallFate::pending; });
          if (pending && (now_us - it->killed_us) / 1000 < kCallWatchMaxMs) {
            ++it;
            continue;
          }
          call_watches_done_.push_back(std::move(*it));
          it = watches.erase(it);
        }
      }
      if (Clock::now() < next_resolution) continue;
      next_resolution = std::max(next_resolution + kResolutionSamplePeriod, Clock::now());
      try {
        if (!core) core = std::make_unique<pqxx::connection>(core_db_);
        pqxx::nontransaction tx(*core);
        const double at_s = elapsed_s();
        const auto r = tx.exec(
            "select count(*) filter (where status <> 'open'), count(*) filter (where status = "
            "'open') from core_transfers");
        resolution_samples_.push_back(
            {at_s, r[0][0].as<std::int64_t>(), r[0][1].as<std::int64_t>()});
      } catch (const std::exception&) {
        core.reset();
      }
    }
    for (auto& w : watches) call_watches_done_.push_back(std::move(w));  // pending as they are
  });
}

void Run::stop_sampler() {
  {
    std::lock_guard lock(sampler_mutex_);
    sampler_stopping_ = true;
  }
  sampler_wake_.notify_all();
  if (sampler_thread_.joinable()) sampler_thread_.join();
  std::lock_guard lock(sampler_mutex_);
  for (auto& w : call_watches_new_)
    call_watches_done_.push_back(std::move(w));  // never sampled: pending
  call_watches_new_.clear();
}

// One look at the calls of a kill still pending: their work rows, and for a row that changed
// without a lease that dates the claim, the transfer's first event after the kill.
void Run::sample_calls(pqxx::connection& adapter, CallWatch& watch) {
  pqxx::nontransaction tx(adapter);
  std::string ids;
  for (std::size_t k = 0; k < watch.calls.size(); ++k)
    if (watch.verdicts[k].fate == CallFate::pending)
      ids += (ids.empty() ? "" : ",") + tx.quote(watch.calls[k].transfer_id);
  if (ids.empty()) return;
  const auto rows = tx.exec(
      "select transfer_id, attempt, claims, coalesce(lease_owner, ''), coalesce(lease_until_ms, 0) "
      "from transfer_work where transfer_id in (" +
      ids + ")");
  const auto observed_ms = epoch_us() / 1000;  // after the read: a bound on what it saw
  std::map<std::string, CallObservation> seen;
  for (const auto& row : rows)
    seen[row[0].as<std::string>()] = {true,
                                      row[1].as<std::int32_t>(),
                                      row[2].as<std::int64_t>(),
                                      row[3].as<std::string>(),
                                      row[4].as<std::int64_t>(),
                                      observed_ms,
                                      std::nullopt};
  const auto killed_ms = watch.killed_us / 1000;
  for (std::size_t k = 0; k < watch.calls.size(); ++k) {
    if (watch.verdicts[k].fate != CallFate::pending) continue;
    const auto& call = watch.calls[k];
    const auto found = seen.find(call.transfer_id);
    auto observation = found != seen.end()
                           ? found->second
                           : CallObservation{false, 0, 0, "", 0, observed_ms, std::nullopt};
    auto verdict = judge_call(call, observation, watch.owner, killed_ms, kLeaseMs);
    if (verdict.fate != CallFate::pending && !verdict.exact) {
      const auto first = tx.exec_params(
          "select ceil(extract(epoch from min(recorded_at)) * 1000)::bigint from events "
          "where stream_id = $1 and recorded_at > to_timestamp($2::double precision / 1e6)",
          "transfer-" + call.transfer_id, watch.killed_us);
      if (!first.empty() && !first[0][0].is_null())
        observation.first_event_after_kill_ms = first[0][0].as<std::int64_t>();
      verdict = judge_call(call, observation, watch.owner, killed_ms, kLeaseMs);
    }
    watch.verdicts[k] = verdict;
  }
}

namespace {

std::string ms_text(double ms) { return fixed(ms, 0) + " ms"; }

std::string summary_text(const Summary& s) {
  return "p50 " + ms_text(s.p50) + ", p99 " + ms_text(s.p99) + ", max " + ms_text(s.max);
}

std::string reasons_text(const std::map<std::string, int>& reasons) {
  std::string out;
  for (const auto& [why, n] : reasons)
    out += (out.empty() ? "" : "; ") + why + " " + std::to_string(n);
  return out.empty() ? "none" : out;
}

}  // namespace

// The figures of continuity (recovery.hpp): recovery after each kill, and the longest
// windows in which work was open and nothing, or almost nothing, was resolved. Figures only:
// no invariant depends on them.
void Run::report_continuity() {
  // Every inbound application, from the events the adapter appends for each message it
  // applies (TransferInitiated and what follows it carry the message's stream, partition and
  // seq): their recorded_at, the database's clock at the insert, in µs.
  std::map<int, std::vector<std::int64_t>> applied_us;
  const auto applied = query(adapter_db_,
                             "select (metadata->'source'->>'partition')::int, "
                             "(extract(epoch from recorded_at) * 1000000)::bigint from events "
                             "where metadata->'source'->>'stream' = '" +
                                 std::string(kInbound) + "' order by 2");
  if (applied)
    for (const auto& row : *applied)
      applied_us[row[0].as<int>()].push_back(row[1].as<std::int64_t>());
  std::map<std::size_t, const CallWatch*> watch_of;
  for (const auto& w : call_watches_done_) watch_of[w.kill] = &w;

  std::vector<double> inbound_ms, calls_first_ms, calls_last_ms;
  std::map<std::string, int> inbound_unmeasured, calls_unmeasured;
  std::vector<std::string> lines;
  for (std::size_t k = 0; k < kills_.size(); ++k) {
    const auto& kill = kills_[k];
    std::string line =
        "    " + fixed(kill.at_s, 1) + " s  adapter " + std::to_string(kill.target) +
        (kill.restarted_s >= 0 ? " (restarted at " + fixed(kill.restarted_s, 1) + " s)" : "") +
        "; inbound:";
    if (!kill.metrics_read) {
      ++inbound_unmeasured["its /metrics did not answer before the kill"];
      line += " unknown";
    } else if (kill.partitions.empty()) {
      ++inbound_unmeasured["it read no inbound partition"];
      line += " no partition";
    } else if (!applied) {
      ++inbound_unmeasured["the events were unreadable"];
      line += " unreadable";
    } else {
      const auto r = inbound_recovery(kill.at_us, kill.restarted_us, kill.partitions, applied_us);
      if (r.recovery_ms)
        inbound_ms.push_back(*r.recovery_ms);
      else
        ++inbound_unmeasured["a partition it read applied nothing after the kill"];
      for (const auto& p : r.partitions)
        line += " p" + std::to_string(p.partition) + " " +
                (p.recovery_ms
                     ? ms_text(*p.recovery_ms) + (p.after_restart ? " (after its restart)" : "")
                     : std::string("nothing after"));
    }
    line += "; calls:";
    if (!kill.leased) {
      ++calls_unmeasured["transfer_work unreadable before the kill"];
      line += " unknown";
    } else if (kill.leased->empty()) {
      ++calls_unmeasured["it had no call claimed"];
      line += " none claimed";
    } else {
      const auto found = watch_of.find(k);
      const auto r = found == watch_of.end()
                         ? CallsRecovery{}
                         : calls_recovery(kill.at_us / 1000, found->second->verdicts);
      if (r.first_ms) {
        calls_first_ms.push_back(*r.first_ms);
        if (r.last_ms) calls_last_ms.push_back(*r.last_ms);
      } else if (r.made_again == 0 && r.pending > 0) {
        ++calls_unmeasured["none of its calls was claimed again while watched (" +
                           std::to_string(kCallWatchMaxMs / 1000) + " s)"];
      } else {
        ++calls_unmeasured["every call it had claimed was answered or let go before the kill"];
      }
      line += " " + std::to_string(kill.leased->size()) + " claimed, " +
              std::to_string(r.made_again) + " made again";
      if (r.first_ms) line += " (first " + ms_text(*r.first_ms);
      if (r.last_ms) line += ", last " + ms_text(*r.last_ms);
      if (r.first_ms) line += ", " + std::to_string(r.exact) + " timed by their lease)";
      if (r.released_before_kill > 0)
        line += ", " + std::to_string(r.released_before_kill) + " done before the kill";
      if (r.pending > 0)
        line += ", " + std::to_string(r.pending) + " never claimed again while watched";
    }
    lines.push_back(line);
  }

  say("");
  say("continuity (figures only: no invariant depends on them)");
  say("  recovery after a kill: from the SIGKILL (this machine's clock) to the work done again, as "
      "the database "
      "recorded it");
  say("    inbound: every partition the killed adapter read (its /metrics just before the kill) "
      "has applied a message "
      "after the kill (events.recorded_at), by the other adapter or the killed one restarted; the "
      "kill's figure is "
      "its slowest partition, and includes the wait for that partition's next message (at --rate " +
      fixed(o_.plan.rate_per_s, 0) + ", about " +
      ms_text(1000.0 * kInboundPartitions / o_.plan.rate_per_s) + " apart on each of " +
      std::to_string(kInboundPartitions) + " partitions)");
  say("    clearing calls: the first of the calls leased to the killed adapter just before the "
      "kill claimed again "
      "(and made at once) by a live dispatcher: exact from the new lease, else bounded above by "
      "the transfer's next "
      "event or the 50 ms sample; 'all' waits for its last call");
  const auto inbound = summarize(inbound_ms);
  const auto first = summarize(calls_first_ms);
  const auto all = summarize(calls_last_ms);
  const auto of_kills = " of " + std::to_string(kills_.size()) + " kills";
  say("  inbound partitions: measured " + std::to_string(inbound.count) + of_kills +
      (inbound.count > 0 ? ": " + summary_text(inbound) : std::string()) +
      "; not measured: " + reasons_text(inbound_unmeasured));
  say("  clearing calls, first made again: measured " + std::to_string(first.count) + of_kills +
      (first.count > 0 ? ": " + summary_text(first) : std::string()) +
      "; not measured: " + reasons_text(calls_unmeasured));
  if (first.count > 0)
    say("  clearing calls, all made again: measured " + std::to_string(all.count) + of_kills +
        (all.count > 0 ? ": " + summary_text(all) : std::string()));
  say("  relay (outbound) partitions: not measured");
  if (!kills_.empty() && kills_.size() <= static_cast<std::size_t>(kKillLinesMax)) {
    say("  each kill (run seconds):");
    for (const auto& line : lines) say(line);
  }

  // The windows, and what the schedule did in or just before them.
  std::vector<Window> actions = actions_;
  for (const auto& kill : kills_)
    actions.push_back({kill.at_s, kill.restarted_s >= 0 ? kill.restarted_s : kill.at_s,
                       "SIGKILL adapter " + std::to_string(kill.target)});
  std::sort(actions.begin(), actions.end(),
            [](const Window& a, const Window& b) { return a.from_s < b.from_s; });
  // resolved_label: what the window's `resolved` is (the rise that ended a window of nothing
  // resolved; all that was resolved in one of almost nothing).
  const auto describe_window = [&](const QuietWindow& w, const std::string& resolved_label) {
    std::string text =
        fixed(w.length_s(), 1) + " s (" + fixed(w.from_s, 1) + "-" + fixed(w.to_s, 1) + " s" +
        (w.open_at_end ? ", still so at the last sample" : "") + "), " + resolved_label + " " +
        std::to_string(w.resolved) + ", open " + std::to_string(w.open_from) +
        " at its start and " + std::to_string(w.open_to) +
        " at its end; the schedule in it or in the " + fixed(kRecoverySlackS, 0) + " s before:";
    const auto near = overlapping(actions, w.from_s - kRecoverySlackS, w.to_s);
    for (const auto& a : near)
      text += " " + a.why + " " + fixed(a.from_s, 1) + "-" + fixed(a.to_s, 1) + " s" +
              (a.to_s < w.from_s ? " (before it)" : "") + ";";
    if (near.empty()) text += " nothing";
    return text;
  };
  const auto& samples = resolution_samples_;
  say("  windows: the core's resolved (succeeded + rejected) and open transfers, read every " +
      std::to_string(kResolutionSamplePeriod.count()) + " ms (" + std::to_string(samples.size()) +
      " samples; a window runs from a sample to a sample, within one period of the truth)");
  const auto quiet = longest_unresolved(samples);
  say("  longest window with work open and nothing resolved: " +
      (quiet.found ? describe_window(quiet, "resolved at the sample that ended it")
                   : std::string("none (no sample with work open)")));
  const double mean_rate = mean_resolution_rate(samples);
  const auto slow = longest_below_rate(samples, kAlmostNothingShare * mean_rate);
  say("  longest window with almost nothing resolved (fewer than " +
      fixed(kAlmostNothingShare * 100, 0) + "% of the run's mean " + fixed(mean_rate, 1) +
      "/s, i.e. " + fixed(kAlmostNothingShare * mean_rate, 2) +
      "/s): " + (slow.found ? describe_window(slow, "resolved in it") : std::string("none")));
}

// Moves whenever anything of the flow moves; the same value for kGiveUpNoProgressS while
// draining means nothing will.
std::string Run::progress_signature() {
  std::string out;
  for (const auto* sql :
       {"select count(*) filter (where status <> 'open') || '/' || count(*) from core_transfers",
        "select coalesce(sum(last_seq), 0) || '/' || coalesce(sum(kafka_offset), 0) "
        "from inbound_stream_progress"}) {
    const auto r = query(core_db_, sql);
    out += (r && !r->empty() ? (*r)[0][0].c_str() : "?") + std::string(" ");
  }
  for (const auto* sql :
       {"select count(*) from parked_messages", "select count(*) from events",
        "select coalesce(sum(last_seq), 0) || '/' || coalesce(sum(kafka_offset), 0) "
        "from inbound_stream_progress"}) {
    const auto r = query(adapter_db_, sql);
    out += (r && !r->empty() ? (*r)[0][0].c_str() : "?") + std::string(" ");
  }
  return out;
}

void Run::progress(Clock::time_point started) {
  const auto r =
      query(core_db_,
            "select count(*) filter (where status = 'succeeded'), count(*) filter (where status "
            "= 'rejected'), count(*) filter (where status = 'open'), (select count(*) from "
            "core_refused) from core_transfers");
  char line[256];
  if (!r || r->empty()) {
    std::snprintf(line, sizeof line, "chaos: %6.1f s  (the core's database does not answer)",
                  seconds_since(started));
  } else {
    const auto& row = (*r)[0];
    std::snprintf(line, sizeof line,
                  "chaos: %6.1f s  succeeded %lld  rejected %lld  refused by core %lld  open %lld  "
                  "| kills %d  "
                  "outages %d  pg restarts %d",
                  seconds_since(started), row[0].as<long long>(), row[1].as<long long>(),
                  row[3].as<long long>(), row[2].as<long long>(), figures_.kills,
                  figures_.broker_outages, figures_.pg_restarts);
  }
  std::fprintf(stderr, "%s\n", line);
}

int Run::main() {
  const auto& plan = o_.plan;
  say("chaos seed=" + std::to_string(plan.seed) + " transfers=" + std::to_string(plan.transfers) +
      " rate=" + std::to_string(static_cast<int>(plan.rate_per_s)) + "/s kills=" +
      std::to_string(plan.kills) + " broker-outages=" + std::to_string(plan.broker_outages) +
      " pg-restarts=" + std::to_string(plan.pg_restarts) + " bad-per-class=" +
      std::to_string(plan.bad_per_class) + " adapters=" + std::to_string(plan.adapters) +
      " hostile-per-class=" + std::to_string(plan.hostile_per_class) + " hostile-clearing=" +
      fixed(plan.hostile_clearing, 3) + " stall-max=" + fixed(o_.stall_max_s, 0) + "s");
  const auto schedule = make_schedule(plan);
  say("schedule (" + std::to_string(schedule.size()) + " actions; the same seed replays it):");
  for (const auto& a : schedule) say("  " + describe(a));

  if (o_.server_url.empty()) {
    std::fprintf(stderr,
                 "clearing-chaos: no PostgreSQL server: run it through scripts/chaos (or "
                 "scripts/with-postgres), "
                 "or set CLEARING_TEST_DATABASE_URL\n");
    return 2;
  }
  if (plan.pg_restarts > 0)
    for (const char* name :
         {"CLEARING_PG_BIN", "CLEARING_PG_DATA", "CLEARING_PG_OPTIONS", "CLEARING_PG_LOG"})
      if (env(name).empty()) {
        std::fprintf(
            stderr,
            "clearing-chaos: restarting PostgreSQL needs %s (scripts/with-postgres exports it); "
            "or pass --pg-restarts 0\n",
            name);
        return 2;
      }
  if (!o_.log_dir.empty()) std::filesystem::create_directories(o_.log_dir);

  // Databases of this run.
  const std::string suffix = std::to_string(plan.seed % 1'000'000) + "_" + std::to_string(getpid());
  adapter_db_ = with_database(o_.server_url, "chaos_adapter_" + suffix);
  core_db_ = with_database(o_.server_url, "chaos_core_" + suffix);
  {
    pqxx::connection admin(o_.server_url);
    pqxx::nontransaction tx(admin);
    tx.exec("create database chaos_adapter_" + suffix);
    tx.exec("create database chaos_core_" + suffix);
  }

  kafka_ = std::make_unique<Process>(
      std::vector<std::string>{KAFKA_MOCK, "--brokers", std::to_string(plan.brokers), "--topic",
                               std::string(kInbound) + ":" + std::to_string(kInboundPartitions),
                               "--topic", "adapter.dk.payments.v1:4", "--topic",
                               "adapter.dk.settlements.v1:2"},
      std::map<std::string, std::string>{}, true, stderr_file("kafka-mock"));
  bootstrap_ = kafka_->read_line(30'000);
  if (bootstrap_.rfind("bootstrap ", 0) != 0) throw std::runtime_error("kafka-mock did not start");
  bootstrap_ = bootstrap_.substr(10);

  // Every fault class of the contract, from the same seed.
  std::vector<std::string> mock_argv{CLEARING_MOCK,
                                     "--port",
                                     "0",
                                     "--token",
                                     "clearing-token-16",
                                     "--seed",
                                     std::to_string(plan.seed),
                                     "--hold-ms",
                                     "1500",
                                     "--retry-after-s",
                                     "1",
                                     "--delay-ms-min",
                                     "5",
                                     "--delay-ms-max",
                                     "80",
                                     "--fault-delay",
                                     "0.05",
                                     "--latency-ms",
                                     "20",  // a mainframe's pace: calls are under way
                                     "--incoming-count",
                                     std::to_string(kIncomingPayments),
                                     "--incoming-resend",
                                     "0.3"};
  for (const char* fault :
       {"--fault-timeout-before-execute", "--fault-timeout-after-execute",
        "--fault-close-after-execute", "--fault-reset-before-execute", "--fault-http-500",
        "--fault-http-502", "--fault-http-504", "--fault-error-body-200", "--fault-malformed-json",
        "--fault-maintenance-503"}) {
    mock_argv.push_back(fault);
    mock_argv.push_back("0.01");
  }
  // The hostile clearing (issue 16), from its own stream of the same seed.
  if (plan.hostile_clearing > 0) {
    for (const auto& fault : o_.hostile_clearing_classes) {
      mock_argv.push_back("--fault-" + fault);
      mock_argv.push_back(std::to_string(plan.hostile_clearing));
    }
    mock_argv.insert(mock_argv.end(), {"--stray-delay-ms-max", "20"});
  }
  mock_ = std::make_unique<Process>(mock_argv, std::map<std::string, std::string>{}, false,
                                    stderr_file("clearing-mock"));
  mock_address_ = mock_->read_line(30'000);
  if (mock_address_.rfind("listening ", 0) != 0)
    throw std::runtime_error("clearing-mock did not start");
  mock_address_ = mock_address_.substr(10);

  const int core_port = free_port_near(41000);
  adapter_ports_ = {free_port_near(37000), free_port_near(39000)};
  adapter_ports_.resize(static_cast<std::size_t>(plan.adapters), 0);
  for (int i = 2; i < plan.adapters; ++i)
    adapter_ports_[i] = free_port_near(43000 + 2000 * (i - 2));
  config_path_ =
      (o_.log_dir.empty() ? std::string("/tmp") : o_.log_dir) + "/chaos-dk-" + suffix + ".json";
  {
    auto cfg =
        clearing::support::adapter_config_in_a_hurry(std::string(SOURCE_DIR) + "/config/dk.json");
    cfg["clearing"]["request_timeout_ms"] = 1000;
    cfg["clearing"]["connect_timeout_ms"] = 500;
    cfg["dispatcher"]["lease_ms"] = kLeaseMs;
    cfg["kafka"]["session_timeout_ms"] =
        kSessionTimeoutMs;  // a killed member leaves the group in seconds
    if (!o_.assignment.empty()) cfg["kafka"]["partition_assignment"] = o_.assignment;
    cfg["log_level"] = "info";
    std::ofstream(config_path_) << cfg.dump(2);
  }
  adapter_env_ = {
      {"CLEARING_ADAPTER_DATABASE_URL", adapter_db_},
      {"CLEARING_ADAPTER_KAFKA_BROKERS", bootstrap_},
      {"CLEARING_ADAPTER_CLEARING_URL", "http://" + mock_address_},
      {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
      {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://127.0.0.1:" + std::to_string(core_port)},
      {"CLEARING_ADAPTER_API_TOKEN", "api-token-0123456789abcdef0123456"}};
  for (int i = 0; i < plan.adapters; ++i) {
    adapters_.push_back(start_adapter(i));
    restart_at_.emplace_back();
    last_kill_of_.push_back(-1);
  }
  // The adapters migrate their database; wait until one is ready before the core starts.
  for (int waited = 0;; waited += 200) {
    auto ready =
        http::get("http://127.0.0.1:" + std::to_string(adapter_ports_[0]) + "/readyz", "", 1000);
    if (ready && ready->status == 200) break;
    if (waited > 60'000)
      throw std::runtime_error("adapter 0 not ready after 60 s: " + adapters_[0]->stderr_text());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  core_argv_ = {CORE_SIM,
                "--database-url",
                core_db_,
                "--kafka",
                bootstrap_,
                "--transfers",
                std::to_string(plan.transfers),
                "--seed",
                std::to_string(plan.seed),
                "--invalid-share",
                "0.05",
                "--rate",
                std::to_string(plan.rate_per_s),
                "--batch",
                "10",
                "--adapter-catch-up-url",
                "http://127.0.0.1:" + std::to_string(adapter_ports_[0]),
                "--adapter-token",
                "api-token-0123456789abcdef0123456",
                "--http-port",
                std::to_string(core_port),
                "--api-token",
                "api-token-0123456789abcdef0123456",
                "--stay",
                "--json",
                "--log-level",
                "warn"};
  core_ = start_core();
  auto injector = std::make_unique<Injector>(bootstrap_, core_db_);
  std::unique_ptr<HostileCore> hostile;
  if (plan.hostile_per_class > 0)
    hostile = std::make_unique<HostileCore>(bootstrap_, core_db_, kInbound, kInboundPartitions);
  start_watermarks();

  const auto started = Clock::now();
  started_ = started;
  start_sampler();
  auto last_flow_sample = started - std::chrono::seconds(1);
  std::map<int, double> broker_down_s;  // when each broker now down went down
  std::string signature;
  auto signature_since = Clock::now();
  std::mt19937_64 partitions(plan.seed ^ 0x5eedULL);
  std::size_t next = 0;
  std::map<int, Clock::time_point> broker_up_at;
  auto last_progress = Clock::now();
  const auto deadline = started + std::chrono::seconds(o_.timeout_s);
  int drained_polls = 0;
  while (Clock::now() < deadline) {
    const double now_s = seconds_since(started);
    while (next < schedule.size() && schedule[next].at_s <= now_s) {
      const auto& a = schedule[next];
      int target = a.target % plan.adapters;
      // nul_in_field delivers its Kafka copy inside the core's transaction: not while a
      // broker is down (the loop that would bring it up waits for it).
      if (a.kind == ActionKind::hostile_input &&
          HostileCore::needs_all_brokers(static_cast<HostileInput>(a.target)) &&
          !broker_up_at.empty())
        break;
      if (a.kind == ActionKind::kill_adapter) {
        // The drawn adapter is still down from an earlier kill: the next one that is up. None
        // is up: the kill (and what follows it) waits for a restart, so every kill happens.
        for (int tried = 0; tried < plan.adapters && restart_at_[target]; ++tried)
          target = (target + 1) % plan.adapters;
        if (restart_at_[target]) break;
      }
      ++next;
      switch (a.kind) {
        case ActionKind::kill_adapter: {
          // Aim at a moment with clearing calls under way: watch its metrics for up to three
          // seconds, then kill whatever it is doing. What it was doing is counted.
          const auto url =
              "http://127.0.0.1:" + std::to_string(adapter_ports_[target]) + "/metrics";
          const auto aim_until = Clock::now() + std::chrono::seconds(3);
          std::optional<std::string> seen;
          do {
            auto m = http::get(url, "api-token-0123456789abcdef0123456", 300);
            seen = m && m->status == 200 ? std::optional(m->body) : std::nullopt;
            if (seen && metric_sum(*seen, "clearing_dispatcher_in_flight") > 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
          } while (Clock::now() < aim_until);
          // What it holds, read just before the kill (recovery.hpp): the inbound partitions
          // its /metrics names, and the calls leased to its dispatcher.
          KillRecord kill;
          kill.target = target;
          kill.owner = lease_owner_of(adapters_[target]->pid());
          kill.metrics_read = seen.has_value();
          if (seen) kill.partitions = assigned_partitions(*seen, kInbound);
          if (const auto leased = query(adapter_db_,
                                        "select transfer_id, attempt, claims from transfer_work "
                                        "where lease_owner = '" +
                                            kill.owner + "'")) {
            kill.leased.emplace();
            for (const auto& row : *leased)
              kill.leased->push_back(
                  {row[0].as<std::string>(), row[1].as<std::int32_t>(), row[2].as<std::int64_t>()});
          }
          adapters_[target]->signal(SIGKILL);
          kill.at_us = epoch_us();
          if (seen) {
            figures_.kills_with_calls_in_flight +=
                metric_sum(*seen, "clearing_dispatcher_in_flight") > 0;
            figures_.kills_with_relay_lag += metric_sum(*seen, "clearing_relay_lag_messages") > 0;
            figures_.kills_with_inbound_work +=
                metric_sum(*seen, "clearing_inbound_messages_total") > 0;
          } else {
            ++figures_.kills_unobserved;
          }
          const double killed_s = elapsed_s();
          kill.at_s = killed_s;
          if (kill.leased && !kill.leased->empty()) {
            CallWatch watch{kills_.size(), kill.at_us, kill.owner, *kill.leased, {}};
            watch.verdicts.resize(watch.calls.size());  // all pending
            std::lock_guard lock(sampler_mutex_);
            call_watches_new_.push_back(std::move(watch));
          }
          last_kill_of_[static_cast<std::size_t>(target)] = static_cast<int>(kills_.size());
          kills_.push_back(std::move(kill));
          adapters_[target]->wait(10'000);
          restart_at_[target] = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(a.hold_s));
          ++figures_.kills;
          // Its partitions wait for the group to notice (the session timeout), then for the
          // rebalances of its leaving and of its successor's joining.
          flow_.excuse(killed_s,
                       killed_s + std::max(a.hold_s, kSessionTimeoutMs / 1000.0) + kRecoverySlackS,
                       "adapter " + std::to_string(target) + " killed");
          break;
        }
        case ActionKind::broker_outage:
          broker_down_s[a.target] = elapsed_s();
          if (kafka_->running()) kafka_->write_line("down " + std::to_string(a.target));
          broker_up_at[a.target] = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(a.hold_s));
          ++figures_.broker_outages;
          break;
        case ActionKind::pg_restart: {
          const double stopped_s = elapsed_s();
          restart_postgres(a.hold_s);
          flow_.excuse(stopped_s, elapsed_s() + kRecoverySlackS, "PostgreSQL restarted");
          actions_.push_back({stopped_s, elapsed_s(), "PostgreSQL restarted"});
          break;
        }
        case ActionKind::inject: {
          const auto kind = static_cast<BadInput>(a.target);
          const auto error =
              injector->inject(kind, static_cast<int>(partitions() % kInboundPartitions));
          if (error.empty())
            ++figures_.injected[to_string(kind)];
          else
            figures_.injection_errors.push_back(std::string(to_string(kind)) + ": " + error);
          break;
        }
        case ActionKind::hostile_input: {
          const auto kind = static_cast<HostileInput>(a.target);
          auto record = hostile->inject(kind, a.partition, figures_.hostile_per_class[a.target]++);
          if (!record.error.empty())
            say(std::string("chaos: hostile input ") + to_string(kind) +
                " failed: " + record.error);
          figures_.hostile.push_back(std::move(record));
          break;
        }
      }
    }
    for (auto it = broker_up_at.begin(); it != broker_up_at.end();) {
      if (Clock::now() >= it->second) {
        if (kafka_->running()) kafka_->write_line("up " + std::to_string(it->first));
        flow_.excuse(broker_down_s[it->first], elapsed_s() + kRecoverySlackS,
                     "broker " + std::to_string(it->first) + " down");
        actions_.push_back({broker_down_s[it->first], elapsed_s(),
                            "broker " + std::to_string(it->first) + " down"});
        it = broker_up_at.erase(it);
      } else {
        ++it;
      }
    }
    watch_processes();
    if (Clock::now() - last_flow_sample >= std::chrono::seconds(1)) {
      last_flow_sample = Clock::now();
      sample_flow();
    }
    if (Clock::now() - last_progress >= std::chrono::seconds(5)) {
      last_progress = Clock::now();
      progress(started);
    }
    const bool quiet = next == schedule.size() && broker_up_at.empty() &&
                       std::none_of(restart_at_.begin(), restart_at_.end(),
                                    [](const auto& t) { return t.has_value(); });
    if (quiet) {
      if (figures_.run_s == 0) figures_.run_s = seconds_since(started);
      drained_polls = drained() ? drained_polls + 1 : 0;
      if (drained_polls >= 2) {
        figures_.drained = true;
        break;
      }
      // What will not drain: a partition that stays stalled for no reason the schedule
      // gives, or nothing moving anywhere.
      for (const auto& stall : flow_.stalls()) {
        const double outside = longest_outside(stall.from_s, stall.to_s, flow_.windows());
        if (stall.open && outside > kGiveUpStallS) {
          char why[160];
          std::snprintf(why, sizeof why,
                        "partition %d stalled for %.0f s outside every explained window",
                        stall.partition, outside);
          figures_.gave_up = why;
        }
      }
      if (const auto now_signature = progress_signature(); now_signature != signature) {
        signature = now_signature;
        signature_since = Clock::now();
      } else if (seconds_since(signature_since) > kGiveUpNoProgressS) {
        figures_.gave_up =
            "nothing moved for " + std::to_string(static_cast<int>(kGiveUpNoProgressS)) + " s";
      }
      if (!figures_.kafka_mock_died.empty()) figures_.gave_up = "kafka-mock is gone";
      if (!figures_.gave_up.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  injector.reset();  // delivers what it still holds, while the brokers are up
  hostile.reset();
  sample_flow();
  stop_watermarks();
  stop_sampler();
  figures_.drain_s = seconds_since(started) - figures_.run_s;
  progress(started);
  if (!figures_.drained)
    say(figures_.gave_up.empty()
            ? "chaos: the work did not drain within --timeout-s " + std::to_string(o_.timeout_s)
            : "chaos: the work will not drain, stopped waiting: " + figures_.gave_up);
  return finish();
}

// A parked message's raw bytes as stored: text, or bytea in its hex form.
std::string raw_bytes(const pqxx::field& f) {
  std::string text = f.is_null() ? std::string() : f.as<std::string>();
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) return text;
  std::string bytes;
  bytes.reserve(text.size() / 2);
  for (std::size_t i = 2; i + 1 < text.size(); i += 2) {
    const auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    bytes.push_back(static_cast<char>(digit(text[i]) * 16 + digit(text[i + 1])));
  }
  return bytes;
}

bool Run::read_parked() {
  const auto ids = query(adapter_db_, "select id from parked_messages");
  if (!ids) return false;
  std::string wanted;
  for (const auto& row : *ids) {
    const auto id = row[0].as<std::int64_t>();
    if (!parked_.count(id)) wanted += (wanted.empty() ? "" : ",") + std::to_string(id);
  }
  if (wanted.empty()) return true;
  const auto rows =
      query(adapter_db_, "select * from parked_messages where id in (" + wanted + ")");
  if (!rows) return false;
  for (const auto& row : *rows) {
    Parked p{row["reason_code"].as<std::string>(""), row["correlation_id"].as<std::string>(""),
             raw_bytes(row["raw"])};
    for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
      const auto& marker = figures_.hostile[h].marker;
      if (!marker.empty() &&
          (p.correlation_id == marker || p.raw.find(marker) != std::string::npos))
        p.hostile = static_cast<int>(h);
    }
    parked_.emplace(row["id"].as<std::int64_t>(), std::move(p));
  }
  return true;
}

bool Run::parked_complete() const {
  std::map<std::string, int> parked;
  std::set<int> hostile_parked;
  for (const auto& [id, row] : parked_) {
    if (row.hostile < 0)
      ++parked[row.reason_code];
    else
      hostile_parked.insert(row.hostile);
  }
  for (const auto& [reason, injected] : figures_.injected)
    if (parked[reason] < injected) return false;
  for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
    const auto& r = figures_.hostile[h];
    if (r.error.empty() && !r.core_requested() && !hostile_parked.count(static_cast<int>(h)))
      return false;
  }
  return true;
}

// 9. The envelope and content faults: exactly the injected ones parked, each with its
//    reason, and nothing else parked. 14. The hostile core's input, each found by its
//    marker: parked with a reason, or, for a transfer the core requested, rejected FF01.
demo::Check Run::check_parked(demo::Checks& checks) {
  const bool readable = read_parked();
  std::vector<Parked> rows;
  for (const auto& [id, row] : parked_) rows.push_back(row);
  std::map<std::string, std::int64_t> parked;
  for (const auto& row : rows)
    if (row.hostile < 0) ++parked[row.reason_code];
  bool parked_match = figures_.injection_errors.empty() && readable;
  std::string parked_text;
  std::set<std::string> reasons;
  for (const auto& [k, v] : parked) reasons.insert(k);
  for (const auto& [k, v] : figures_.injected) reasons.insert(k);
  for (const auto& reason : reasons) {
    const auto injected = figures_.injected.count(reason) ? figures_.injected.at(reason) : 0;
    const auto got = parked.count(reason) ? parked.at(reason) : 0;
    parked_match = parked_match && injected == got;
    parked_text += " " + reason + " " + std::to_string(got) + "/" + std::to_string(injected);
  }
  checks.checks.push_back(
      {"9. bad input: every injected message parked with its reason, no other parked",
       parked_match && (!reasons.empty() || o_.plan.bad_per_class == 0),
       "parked/injected:" + (parked_text.empty() ? std::string(" none") : parked_text) +
           (figures_.injection_errors.empty()
                ? ""
                : "; injection errors " + std::to_string(figures_.injection_errors.size())) +
           (readable ? "" : "; parked_messages unreadable")});

  // 14.
  struct ClassFigures {
    int injected = 0, accounted = 0, parked_copies = 0, errors = 0;
    std::set<std::string> reasons;
    std::vector<std::string> unaccounted;
  };
  std::map<std::string, ClassFigures> by_class;
  for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
    const auto& record = figures_.hostile[h];
    auto& f = by_class[to_string(record.kind)];
    if (!record.error.empty()) {
      ++f.errors;
      continue;
    }
    ++f.injected;
    int copies = 0;
    bool reasonless = false;
    for (const auto& row : rows)
      if (row.hostile == static_cast<int>(h)) {
        ++copies;
        reasonless = reasonless || row.reason_code.empty();
        f.reasons.insert(row.reason_code.empty() ? "(no reason)" : row.reason_code);
      }
    f.parked_copies += copies;
    const auto where = "partition " + std::to_string(record.partition) + " (" + record.detail + ")";
    if (record.core_requested()) {
      const auto outcome =
          query(core_db_,
                "select status || ' ' || coalesce(reason_code, '') from core_transfers "
                "where transfer_id = '" +
                    record.transfer_id + "'");
      const auto text =
          outcome && !outcome->empty() ? (*outcome)[0][0].as<std::string>() : "missing";
      if (text == "rejected FF01")
        ++f.accounted;
      else
        f.unaccounted.push_back(where + ": the transfer is " + text + ", not rejected FF01");
    } else {
      if (copies > 0 && !reasonless)
        ++f.accounted;
      else
        f.unaccounted.push_back(where +
                                (copies == 0 ? ": not parked" : ": parked without a reason"));
    }
  }
  // Answers to the core about transfers it never requested (the unreadable ids among them).
  const auto unknown_answers =
      scalar(core_db_, "select count(*) from core_violations where kind = 'unknown_transfer'", 0);
  bool all_accounted = true;
  std::string text;
  std::vector<std::string> missing;
  for (const auto& [name, f] : by_class) {
    all_accounted = all_accounted && f.accounted == f.injected && f.errors == 0;
    text += " " + name + " " + std::to_string(f.accounted) + "/" + std::to_string(f.injected);
    std::string reasons;
    for (const auto& reason : f.reasons) reasons += (reasons.empty() ? "" : ",") + reason;
    if (f.parked_copies > 0)
      text += " (parked " + std::to_string(f.parked_copies) + ": " + reasons + ")";
    if (f.errors > 0) text += " (injection errors " + std::to_string(f.errors) + ")";
    for (const auto& u : f.unaccounted) missing.push_back(name + " on " + u);
  }
  for (std::size_t i = 0; i < missing.size() && i < 8; ++i)
    text += "\n           unaccounted: " + missing[i];
  if (missing.size() > 8)
    text += "\n           ... and " + std::to_string(missing.size() - 8) + " more";
  return {
      "14. hostile input from the core: each parked with its reason, or its requested transfer "
      "rejected FF01",
      all_accounted && unknown_answers == 0,
      "accounted/injected:" + (text.empty() ? std::string(" none injected") : text) +
          "; answers to the core about transfers it never requested " +
          std::to_string(unknown_answers)};
}

// 12. No outcome the clearing never gave: a succeeded transfer carries the clearing
//     reference of its execution in the ledger; a rejection is the ledger's RJCT with its
//     code, or one the adapter gives itself without the clearing.
void Run::check_clearing_outcomes(demo::Checks& checks,
                                  const std::vector<clearing_mock::LedgerEntry>& ledger) {
  std::map<std::string, const clearing_mock::LedgerEntry*> by_reference;
  std::map<std::string, std::string> whose;  // clearing reference -> the transfer it executed
  for (const auto& e : ledger) {
    by_reference[e.reference] = &e;
    if (!e.clearing_reference.empty()) whose[e.clearing_reference] = e.reference;
  }
  std::int64_t checked = 0, other_reference = 0, other_reason = 0, never_given = 0, own = 0;
  std::vector<std::string> examples;
  const auto outcomes =
      query(core_db_,
            "select transfer_id, status, coalesce(reason_code, ''), "
            "coalesce(clearing_reference, '') from core_transfers where status <> 'open'");
  if (outcomes)
    for (const auto& row : *outcomes) {
      ++checked;
      const auto id = row[0].as<std::string>();
      const auto status = row[1].as<std::string>();
      const auto reason = row[2].as<std::string>();
      const auto reference = row[3].as<std::string>();
      const auto it = by_reference.find(id);
      const auto* entry = it == by_reference.end() ? nullptr : it->second;
      std::string wrong;
      if (status == "succeeded") {
        if (!entry || entry->execution_count == 0)
          ++never_given, wrong = "succeeded, never executed";
        else if (reference != entry->clearing_reference)
          ++other_reference,
              wrong = "succeeded with reference " + reference.substr(0, 40) + " (" +
                      (whose.count(reference) ? "the ledger's for " + whose.at(reference)
                                              : "not in the ledger") +
                      "), its own " + entry->clearing_reference;
      } else if (entry && entry->status == "RJCT") {
        if (reason != entry->reason_code)
          ++other_reason,
              wrong = "rejected " + reason + ", the clearing said " + entry->reason_code;
      } else if (entry && entry->execution_count > 0) {
        ++never_given, wrong = "rejected " + reason + ", executed by the clearing";
      } else if (kAdapterOwnReasons.count(reason)) {
        ++own;
      } else {
        ++never_given, wrong = "rejected " + reason + ", which the clearing never said";
      }
      if (!wrong.empty() && examples.size() < 5) examples.push_back(id + ": " + wrong);
    }
  std::string figures = "outcomes " + std::to_string(checked) +
                        "; succeeded with another clearing reference than the "
                        "ledger's " +
                        std::to_string(other_reference) +
                        "; rejected with another code than the "
                        "ledger's " +
                        std::to_string(other_reason) + "; outcomes the clearing never gave " +
                        std::to_string(never_given) + "; the adapter's own rejections " +
                        std::to_string(own);
  for (const auto& e : examples) figures += "\n           e.g. " + e;
  checks.checks.push_back(
      {"12. no outcome the clearing never gave: references and reason codes are the ledger's",
       outcomes.has_value() && other_reference == 0 && other_reason == 0 && never_given == 0,
       figures});
}

// 13. The other partitions kept flowing: no inbound partition had messages waiting without
//     progress for longer than --stall-max-s outside the windows the schedule explains.
void Run::check_flow(demo::Checks& checks) {
  const auto longest = flow_.longest();
  const auto [worst, outside] = flow_.longest_unexplained();
  char text[512];
  if (longest.partition < 0) {
    std::snprintf(text, sizeof text,
                  "samples %d, no partition had messages waiting without progress for a second",
                  flow_.samples());
  } else {
    std::snprintf(text, sizeof text,
                  "samples %d; longest stall %.1f s (partition %d, %.1f-%.1f s%s); longest outside "
                  "the %zu explained "
                  "windows %.1f s (partition %d, %.1f-%.1f s%s), bound %.0f s",
                  flow_.samples(), longest.length_s(), longest.partition, longest.from_s,
                  longest.to_s, longest.open ? ", never moved again" : "", flow_.windows().size(),
                  outside, worst.partition, worst.from_s, worst.to_s,
                  worst.open ? ", never moved again" : "", o_.stall_max_s);
  }
  std::string figures = text;
  figures += "\n           at the end:";
  for (int p = 0; p < kInboundPartitions; ++p) {
    const auto last = flow_.last(p);
    std::snprintf(text, sizeof text, " p%d applied %lld/%lld, Kafka %lld/%lld;", p,
                  static_cast<long long>(last.applied_seq), static_cast<long long>(last.core_head),
                  static_cast<long long>(last.kafka_offset + 1),
                  static_cast<long long>(last.kafka_end));
    figures += text;
  }
  int listed = 0;
  for (const auto& stall : flow_.stalls()) {
    const double out = longest_outside(stall.from_s, stall.to_s, flow_.windows());
    if (out <= o_.stall_max_s || listed >= 8) continue;
    ++listed;
    std::snprintf(text, sizeof text,
                  "\n           stalled: partition %d %.1f-%.1f s (%.1f s outside the windows)%s",
                  stall.partition, stall.from_s, stall.to_s, out,
                  stall.open ? ", never moved again" : "");
    figures += text;
  }
  checks.checks.push_back(
      {"13. the other partitions kept flowing: no inbound partition stalled for a reason the "
       "schedule does not give",
       flow_.samples() > 0 && outside <= o_.stall_max_s, figures});
}

int Run::finish() {
  // The clearing's books first, then a graceful stop of everyone.
  demo::Books books{adapter_db_, core_db_, {}, {}};
  auto ledger = http::get("http://" + mock_address_ + "/admin/ledger", "clearing-token-16", 10'000);
  auto stats = http::get("http://" + mock_address_ + "/admin/stats", "clearing-token-16", 10'000);
  if (!ledger || !stats) throw std::runtime_error("clearing-mock's books cannot be read");
  books.ledger = clearing_mock::ledger_from_json(ledger->body);
  const auto stats_json = nlohmann::json::parse(stats->body);
  for (auto& a : adapters_) a->signal(SIGTERM);
  for (auto& a : adapters_) figures_.adapter_exit_codes_at_stop.push_back(a->wait(60'000));
  core_->signal(SIGTERM);
  figures_.core_exit_at_stop = core_->wait(60'000);
  if (kafka_->running()) kafka_->write_line("quit");
  kafka_->wait(30'000);
  mock_->signal(SIGTERM);
  mock_->wait(30'000);

  auto checks = demo::reconcile(books);

  // 7. Every clearing call has a cause: each reference in the ledger is a transfer the
  //    adapter initiated from a core event.
  std::int64_t uncaused_calls = 0;
  {
    std::set<std::string> initiated;
    if (auto r = query(adapter_db_,
                       "select substr(stream_id, 10) from events where type = 'TransferInitiated'"))
      for (const auto& row : *r) initiated.insert(row[0].as<std::string>());
    for (const auto& e : books.ledger) uncaused_calls += !initiated.count(e.reference);
  }
  // One transfer, one idempotency key (the contract makes it the reference), one body: the
  // clearing counts a key that came back with another body.
  const auto key_reused = stats_json.value("key_reused_answers", std::int64_t{-1});
  checks.checks.push_back(
      {"7. every clearing call has a cause and one transfer uses one key with one body",
       uncaused_calls == 0 && key_reused == 0,
       "ledger references without a transfer " + std::to_string(uncaused_calls) + " of " +
           std::to_string(books.ledger.size()) + "; a key reused with another body " +
           std::to_string(key_reused)});

  // 8. Messages applied in seq order, per partition, in commit order: the adapter's
  //    TransferInitiated (one per core message) and the core's account events (caused by the
  //    adapter's messages) carry the stream, partition and seq they came from.
  auto order_of = [](const std::string& url, const std::string& where, bool one_per_seq) {
    std::pair<std::int64_t, std::int64_t> applied_disordered{0, 0};
    const auto r =
        query(url,
              "select metadata->'source'->>'stream', (metadata->'source'->>'partition')::int, "
              "(metadata->'source'->>'seq')::bigint from events where " +
                  where +
                  " and metadata->'source'->>'seq' is not null order by "
                  "transaction_id::text::bigint, position");
    if (!r) return std::pair<std::int64_t, std::int64_t>{0, -1};
    std::map<std::pair<std::string, int>, std::int64_t> last;
    for (const auto& row : *r) {
      ++applied_disordered.first;
      auto& l = last[{row[0].as<std::string>(), row[1].as<int>()}];
      const auto seq = row[2].as<std::int64_t>();
      applied_disordered.second += one_per_seq ? seq <= l : seq < l;
      l = seq;
    }
    return applied_disordered;
  };
  const auto at_adapter = order_of(adapter_db_, "type = 'TransferInitiated'", true);
  const auto at_core = order_of(core_db_, "metadata->'source'->>'stream' like 'adapter.%'", false);
  checks.checks.push_back(
      {"8. messages applied in order: seqs rise in commit order on every partition, both sides",
       at_adapter.second == 0 && at_core.second == 0 && at_adapter.first > 0 && at_core.first > 0,
       "adapter applied " + std::to_string(at_adapter.first) + ", out of order " +
           std::to_string(at_adapter.second) + "; core events from the adapter's stream " +
           std::to_string(at_core.first) + ", out of order " + std::to_string(at_core.second)});

  auto hostile_accounted = check_parked(checks);

  // 10. Incoming payments: every payment of the clearing's feed reached the core once.
  const auto incoming = scalar(core_db_, "select count(*) from core_incoming_payments", 0);
  checks.checks.push_back(
      {"10. incoming payments: each of the feed's payments reached the core exactly once",
       incoming == kIncomingPayments,
       "feed " + std::to_string(kIncomingPayments) + ", at the core " + std::to_string(incoming) +
           ", re-sent by the feed " + std::to_string(stats_json.value("incoming_resends", 0))});

  // 11. The processes: drained, stopped gracefully, and nothing died on its own.
  bool stopped_well = figures_.core_exit_at_stop == 0;
  std::string exits;
  for (const int code : figures_.adapter_exit_codes_at_stop) {
    stopped_well = stopped_well && code == 0;
    exits += std::to_string(code) + " ";
  }
  checks.checks.push_back({"11. the run drained, and every process stopped gracefully on SIGTERM",
                           figures_.drained && stopped_well,
                           std::string(figures_.drained ? "drained" : "NOT drained") +
                               "; adapter exits " + exits + "; core-sim exit " +
                               std::to_string(figures_.core_exit_at_stop)});

  check_clearing_outcomes(checks, books.ledger);
  check_flow(checks);
  checks.checks.push_back(std::move(hostile_accounted));

  // Figures.
  const auto core_report_counts =
      query(core_db_,
            "select count(*), count(*) filter (where status = 'succeeded'), count(*) filter (where "
            "status = "
            "'rejected'), (select count(*) from core_refused) from core_transfers");
  const auto investigated = scalar(adapter_db_,
                                   "select count(distinct stream_id) from events where type = "
                                   "'TransferUnderInvestigation'",
                                   0);
  const auto answers_unknown =
      scalar(adapter_db_, "select count(*) from events where type = 'ClearingOutcomeUnknown'", 0);
  say("");
  say("figures");
  if (core_report_counts && !core_report_counts->empty()) {
    const auto& r = (*core_report_counts)[0];
    say("  transfers: planned " + std::to_string(o_.plan.transfers) + ", requested " +
        r[0].as<std::string>() + ", succeeded " + r[1].as<std::string>() + ", rejected " +
        r[2].as<std::string>() + ", refused by the core " + r[3].as<std::string>() +
        ", were under investigation " + std::to_string(investigated));
  }
  say("  requests the clearing received on a connection before it had answered the last one "
      "there " +
      std::to_string(stats_json.value("requests_before_answer", std::int64_t{-1})));
  say("  unknown outcomes recorded " + std::to_string(answers_unknown) + "; clearing calls " +
      std::to_string(stats_json["requests"].value("submit", 0)) + " submits, " +
      std::to_string(stats_json["requests"].value("inquire", 0)) + " inquiries; executions " +
      std::to_string(stats_json.value("executions_total", 0)) + ", idempotent replays " +
      std::to_string(stats_json.value("replays", 0)));
  std::string faults;
  for (const auto& [name, n] : stats_json["faults"].items())
    faults += " " + name + "=" + std::to_string(n.get<long>());
  say("  faults injected by the clearing:" + faults);
  std::string injected;
  for (const auto& [name, n] : figures_.injected) injected += " " + name + "=" + std::to_string(n);
  say("  bad input injected:" + (injected.empty() ? std::string(" none") : injected));
  for (const auto& e : figures_.injection_errors) say("  injection error: " + e);
  say("  at the kills, the killed adapter had: clearing calls in flight " +
      std::to_string(figures_.kills_with_calls_in_flight) +
      ", messages not yet acknowledged by Kafka " + std::to_string(figures_.kills_with_relay_lag) +
      ", applied inbound messages since its start " +
      std::to_string(figures_.kills_with_inbound_work) + ", metrics unreadable " +
      std::to_string(figures_.kills_unobserved) + " (of " + std::to_string(figures_.kills) + ")");
  if (!figures_.kafka_mock_died.empty())
    say("  kafka-mock died during the run: the run proves nothing about the adapter");
  say("  kills " + std::to_string(figures_.kills) + ", adapter restarts " +
      std::to_string(figures_.adapter_restarts) + ", adapter exits on their own " +
      std::to_string(figures_.adapter_exits_on_their_own) + ", core-sim restarts " +
      std::to_string(figures_.core_restarts) + ", broker outages " +
      std::to_string(figures_.broker_outages) + ", PostgreSQL restarts " +
      std::to_string(figures_.pg_restarts));
  char times[128];
  std::snprintf(times, sizeof times, "  time: %.1f s under faults, %.1f s to drain", figures_.run_s,
                figures_.drain_s);
  say(times);
  report_continuity();
  say("");
  say("invariants");
  std::fputs(demo::render(checks).c_str(), stdout);
  const bool ok = checks.all_hold();
  say(ok ? "chaos: every invariant holds (seed " + std::to_string(o_.plan.seed) + ")"
         : "chaos: INVARIANT VIOLATED (seed " + std::to_string(o_.plan.seed) +
               " replays this schedule)");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace clearing::chaos

int main(int argc, char** argv) {
  using namespace clearing::chaos;
  clearing::base::init_logging();
  clearing::base::set_log_level("warn");
  Options o;
  o.plan.seed = std::random_device{}();
  CLI::App app{
      "clearing-chaos: the invariants of DESIGN.md section 7 under kills, broker outages, a "
      "PostgreSQL "
      "restart and bad input, with separate processes. Exit 0: every invariant holds; 1: one does "
      "not; "
      "2: the run could not start."};
  app.add_option("--seed", o.plan.seed,
                 "seed of everything (default: a random one, printed first)");
  app.add_option("--transfers", o.plan.transfers, "transfers the core requests")
      ->capture_default_str()
      ->check(CLI::Range(10, 1'000'000));
  app.add_option("--rate", o.plan.rate_per_s, "transfers per second the core requests")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 10'000.0));
  app.add_option("--kills", o.plan.kills, "SIGKILLs of an adapter process")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000));
  app.add_option("--broker-outages", o.plan.broker_outages, "Kafka brokers taken down and up")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--pg-restarts", o.plan.pg_restarts, "PostgreSQL restarts (fast shutdown)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10));
  app.add_option("--bad-per-class", o.plan.bad_per_class, "bad inbound messages of each class")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--hostile-per-class", o.plan.hostile_per_class,
                 "hostile inbound messages of each class (issue 16: invalid UTF-8, NUL, long and "
                 "control transfer "
                 "ids, 300 KB fields, a seq jump of 10^12, an envelope fault at the core's seq)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--hostile-clearing", o.plan.hostile_clearing,
                 "probability of each hostile clearing answer (stray and duplicate responses, NUL "
                 "and 1 MB fields)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--hostile-clearing-classes", o.hostile_clearing_classes,
                 "which hostile answers --hostile-clearing turns on (default: all)")
      ->check(
          CLI::IsMember({"stray-response", "duplicate-response", "nul-field", "oversize-field"}))
      ->delimiter(',');
  app.add_option("--stall-max-s", o.stall_max_s,
                 "longest an inbound partition may stall outside the windows the schedule explains")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--adapters", o.plan.adapters, "adapter processes sharing the work")
      ->capture_default_str()
      ->check(CLI::Range(1, 4));
  app.add_option("--timeout-s", o.timeout_s,
                 "give up waiting for the work to drain after this long")
      ->capture_default_str()
      ->check(CLI::Range(30, 86'400));
  app.add_option(
         "--assignment", o.assignment,
         "kafka.partition_assignment of the adapters (default: the one config/dk.json gives)")
      ->check(CLI::IsMember({"group", "database"}));
  app.add_option("--log-dir", o.log_dir, "keep every process's log (stderr) in this folder");
  app.add_option("--database-url", o.server_url,
                 "PostgreSQL server (default: $CLEARING_TEST_DATABASE_URL)");
  CLI11_PARSE(app, argc, argv);
  if (o.server_url.empty()) o.server_url = env("CLEARING_TEST_DATABASE_URL");
  try {
    return Run(std::move(o)).main();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clearing-chaos: %s\n", e.what());
    return 2;
  }
}
