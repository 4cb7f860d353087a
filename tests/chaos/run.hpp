#pragma once
// The chaos run (chaos.cpp describes it): the processes it starts, the loop that plays the
// schedule against them, the samplers beside it, and, once the work has drained, the checks
// and the report. One Run per process; its loop runs on the caller's thread, the samplers on
// threads of their own (each member below says which thread owns it).
//   run.cpp             starting the processes, the loop and the schedule's actions
//   run_samplers.cpp    Kafka's watermarks, the flow samples, the continuity sampler
//   run_checks.cpp      the invariants the run adds to reconcile.hpp's, and finish()
//   run_report.cpp      the figures and the figures of continuity

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clearing/processes/process.hpp"
#include "clearing/support/command_lines.hpp"
#include "flow.hpp"
#include "hostile_core.hpp"
#include "reconcile.hpp"

namespace clearing::privacy {
class Vault;
}
#include "recovery.hpp"
#include "schedule.hpp"

namespace clearing::chaos {

using Clock = std::chrono::steady_clock;

inline constexpr int kInboundPartitions = 4;
inline constexpr int kIncomingPayments = 40;
inline constexpr int kSessionTimeoutMs = 6'000;  // the adapters' kafka.session_timeout_ms
inline constexpr std::int64_t kLeaseMs = 4'000;  // the adapters' dispatcher.lease_ms
inline constexpr const char* kClearingToken = "clearing-token-16";
inline constexpr const char* kApiToken = "api-token-0123456789abcdef0123456";

// The figures of continuity (recovery.hpp): how often the calls a killed adapter had
// claimed are read again (at most 100 ms apart, so a claim is seen before its lease ends
// or its answer clears it: the mock answers in 20-100 ms), for how long at most, and how
// often the core's resolved and open transfers are read.
inline constexpr auto kCallSamplePeriod = std::chrono::milliseconds(50);
inline constexpr std::int64_t kCallWatchMaxMs = 120'000;
inline constexpr auto kResolutionSamplePeriod = std::chrono::milliseconds(250);
inline constexpr double kAlmostNothingShare = 0.05;  // "almost nothing": below 5% of the mean
inline constexpr int kKillLinesMax = 30;             // one line per kill up to this many kills

// What the schedule explains of a stop, past its own window: the group noticing a killed
// member (the session timeout) and two rebalances, a consumer's backoff after a failed batch
// (at most 5 s), reconnections. Beyond it, a stalled partition is the adapter's doing.
inline constexpr double kRecoverySlackS = 10;
// While draining, a partition stalled this long outside every explained window, or no
// progress anywhere for the second figure, will not drain: the run stops waiting.
inline constexpr double kGiveUpStallS = 60;
inline constexpr double kGiveUpNoProgressS = 180;  // longer than the adapters' deadline_ms

struct Options {
  Plan plan;
  std::string server_url;
  std::string log_dir;
  std::string assignment;      // kafka.partition_assignment of the adapters; empty: the config's
  std::string country = "dk";  // config/<cc>.json, the mock's and core-sim's --country
  int timeout_s = 900;
  double stall_max_s = 20;  // invariant 13's bound on a stall outside the explained windows
  // The hostile clearing's classes to turn on (clearing-mock's --fault-<name>), to tell them apart.
  std::vector<std::string> hostile_clearing_classes{"stray-response", "duplicate-response",
                                                    "nul-field", "oversize-field"};
};

// ---- small helpers the parts of the run share (run.cpp) -------------------------------

std::string env(const char* name);
std::string fixed(double value, int decimals);
double seconds_since(Clock::time_point t);
std::int64_t epoch_us();  // system_clock: compared with the database's times
void say(const std::string& line);
// One statement on a fresh connection; nullopt while the server is away (it restarts).
std::optional<pqxx::result> query(const std::string& url, const std::string& sql);
std::int64_t scalar(const std::string& url, const std::string& sql, std::int64_t otherwise = -1);
// The sum of a metric's samples in a Prometheus text body; -1 when absent.
double metric_sum(const std::string& body, const std::string& name);

// ---- what the run counts and records ---------------------------------------------------

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

// A message the adapter parked: the copy of one hostile input (found by its marker) or not.
struct ParkedMessage {
  std::string reason_code, correlation_id, raw;
  int hostile = -1;  // index into Figures::hostile
};

class BadInputInjector;

class Run {
 public:
  explicit Run(Options o);
  ~Run();
  // Exit 0: every invariant holds; 1: one does not; 2: the run could not start.
  int main();

 private:
  // Starting (run.cpp).
  void announce(const std::vector<Action>& schedule) const;
  bool can_start() const;
  std::string create_databases();  // the suffix of their names
  void start_kafka();
  std::vector<std::string> mock_argv() const;
  void start_mock();
  int assign_ports();  // the core's port
  void write_adapter_config(const std::string& suffix);
  void start_adapters(int core_port);
  void wait_until_an_adapter_is_ready();
  std::vector<std::string> core_argv(int core_port) const;
  std::string stderr_file(const std::string& name) const;
  std::unique_ptr<processes::Process> start_adapter(int i);
  std::unique_ptr<processes::Process> start_core();
  bool pg_ctl(const std::vector<std::string>& args);
  void restart_postgres(double hold_s);

  // The loop and the schedule's actions (run.cpp).
  void play(const std::vector<Action>& schedule);
  void stop_playing();
  void play_due_actions(const std::vector<Action>& schedule);
  std::optional<int> target_now(const Action& action) const;  // nullopt: it must wait
  void perform(const Action& action, int target);
  void kill_adapter(const Action& action, int target);
  std::optional<std::string> aim_kill(int target);  // its /metrics just before the kill
  KillRecord holdings_of(int target, const std::optional<std::string>& metrics);
  void count_what_the_kill_caught(const std::optional<std::string>& metrics);
  void watch_claimed_calls(const KillRecord& kill);
  void take_broker_down(const Action& action);
  void bring_brokers_up();
  void restart_postgres_now(const Action& action);
  void inject_bad_input(const Action& action);
  void inject_hostile_input(const Action& action);
  bool schedule_done(const std::vector<Action>& schedule) const;
  bool drained_or_given_up();  // while nothing of the schedule is pending
  std::string why_it_will_not_drain();
  void watch_processes();
  void restart_adapter_when_due(std::size_t i);
  void notice_kafka_mock_death();
  bool drained();
  bool streams_applied_both_ways();
  void progress(Clock::time_point started);
  std::string progress_signature();
  double elapsed_s() const { return seconds_since(started_); }

  // Samplers (run_samplers.cpp). The continuity sampler: the core's resolved and open
  // transfers every 250 ms, and the calls killed adapters had claimed every 50 ms while any
  // is pending, on a thread of its own (the loop blocks for seconds while it aims a kill or
  // restarts PostgreSQL).
  void sample_flow();
  void start_watermarks();
  void read_watermarks();  // the watermark thread's loop
  void stop_watermarks();
  void start_sampler();
  void run_sampler();  // the sampler thread's loop
  void sample_call_watches(std::unique_ptr<pqxx::connection>& adapter,
                           std::vector<CallWatch>& watches);
  void sample_resolution(std::unique_ptr<pqxx::connection>& core);
  void stop_sampler();
  void sample_calls(pqxx::connection& adapter, CallWatch& watch);

  // Checks (run_checks.cpp).
  int finish();
  void stop_everyone();
  void check_calls_caused(demo::Checks& checks, const demo::Books& books,
                          const nlohmann::json& stats);
  void check_order(demo::Checks& checks);
  void check_incoming(demo::Checks& checks, const nlohmann::json& stats);
  void check_stopped_well(demo::Checks& checks);
  void check_clearing_outcomes(demo::Checks& checks,
                               const std::vector<clearing_mock::LedgerEntry>& ledger);
  void check_flow(demo::Checks& checks);
  std::string flow_figures(const Stall& longest, const Stall& worst, double outside) const;
  void check_bad_input_parked(demo::Checks& checks, bool readable);
  demo::Check check_hostile_accounted();
  std::int64_t hostile_count(bool core_requested) const;
  bool read_parked();
  // Every injected bad input parked with its reason, and every hostile input that must end
  // parked found parked: the drain waits for it.
  bool parked_complete() const;
  std::map<std::string, std::int64_t> bad_input_parked() const;

  // The report (run_report.cpp).
  void report_figures(const nlohmann::json& stats);
  void report_transfers();
  void report_clearing(const nlohmann::json& stats);
  void report_kills_and_restarts();
  void report_continuity();
  void report_windows();

  Options o_;
  // The core's stream of o_.country (kafka_mock_argv makes its topic).
  const std::string inbound_ = support::core_stream(o_.country);
  Figures figures_;
  FlowWatch flow_;
  // The adapter's parked messages by id; rows never change, so each is read once.
  std::map<std::int64_t, ParkedMessage> parked_;
  // Opens the parked raw values the adapters sealed (their KEK is support::kTestDataKek).
  std::shared_ptr<privacy::Vault> vault_;
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
  std::vector<std::unique_ptr<processes::Process>> adapters_;
  std::vector<std::optional<Clock::time_point>> restart_at_;  // set while killed
  std::vector<std::string> core_argv_;
  std::unique_ptr<processes::Process> kafka_, mock_, core_;

  // The loop's state (play): what of the schedule is done, brokers down, the drain.
  std::unique_ptr<BadInputInjector> injector_;
  std::unique_ptr<HostileCore> hostile_;
  std::size_t next_action_ = 0;
  std::mt19937_64 bad_input_partitions_;
  std::map<int, double> broker_down_s_;  // when each broker now down went down
  std::map<int, Clock::time_point> broker_up_at_;
  std::string signature_;  // progress_signature() while draining, and since when
  Clock::time_point signature_since_ = Clock::now();
  int drained_polls_ = 0;
};

}  // namespace clearing::chaos
