// The chaos run: starting the processes, then the loop that plays the schedule against them
// until the work drains (run.hpp).

#include "run.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "bad_input_injector.hpp"
#include "clearing/http/client.hpp"
#include "clearing/support/adapter_config.hpp"
#include "clearing/support/command_lines.hpp"
#include "clearing/support/scratch_database.hpp"
#include "clearing/support/wait.hpp"

namespace clearing::chaos {

using processes::Process;

// ---- small helpers ----------------------------------------------------------------------

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

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

void say(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

std::optional<pqxx::result> query(const std::string& url, const std::string& sql) {
  try {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec(sql);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::int64_t scalar(const std::string& url, const std::string& sql, std::int64_t otherwise) {
  const auto r = query(url, sql);
  if (!r || r->empty() || (*r)[0][0].is_null()) return otherwise;
  return (*r)[0][0].as<std::int64_t>();
}

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

namespace {

// The adapters' dispatcher names its leases host:pid (service.cpp, instance_name); the
// adapters run on this machine.
std::string lease_owner_of(pid_t pid) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(pid);
}

Clock::time_point after_s(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

Run::Run(Options o)
    : o_(std::move(o)),
      flow_(kInboundPartitions),
      bad_input_partitions_(o_.plan.seed ^ 0x5eedULL) {}

Run::~Run() {
  stop_sampler();
  stop_watermarks();
}

int Run::main() {
  const auto schedule = make_schedule(o_.plan);
  announce(schedule);
  if (!can_start()) return 2;
  if (!o_.log_dir.empty()) std::filesystem::create_directories(o_.log_dir);
  const auto suffix = create_databases();
  start_kafka();
  start_mock();
  const int core_port = assign_ports();
  write_adapter_config(suffix);
  start_adapters(core_port);
  wait_until_an_adapter_is_ready();
  core_argv_ = core_argv(core_port);
  core_ = start_core();
  play(schedule);
  return finish();
}

// ---- starting ---------------------------------------------------------------------------

void Run::announce(const std::vector<Action>& schedule) const {
  const auto& plan = o_.plan;
  say("chaos seed=" + std::to_string(plan.seed) + " transfers=" + std::to_string(plan.transfers) +
      " rate=" + std::to_string(static_cast<int>(plan.rate_per_s)) + "/s kills=" +
      std::to_string(plan.kills) + " broker-outages=" + std::to_string(plan.broker_outages) +
      " pg-restarts=" + std::to_string(plan.pg_restarts) + " bad-per-class=" +
      std::to_string(plan.bad_per_class) + " adapters=" + std::to_string(plan.adapters) +
      " hostile-per-class=" + std::to_string(plan.hostile_per_class) + " hostile-clearing=" +
      fixed(plan.hostile_clearing, 3) + " stall-max=" + fixed(o_.stall_max_s, 0) + "s");
  say("schedule (" + std::to_string(schedule.size()) + " actions; the same seed replays it):");
  for (const auto& a : schedule) say("  " + describe(a));
}

// A server, and what restarting it needs when the plan restarts it.
bool Run::can_start() const {
  if (o_.server_url.empty()) {
    std::fprintf(stderr,
                 "clearing-chaos: no PostgreSQL server: run it through scripts/chaos (or "
                 "scripts/with-postgres), "
                 "or set CLEARING_TEST_DATABASE_URL\n");
    return false;
  }
  if (o_.plan.pg_restarts > 0)
    for (const char* name :
         {"CLEARING_PG_BIN", "CLEARING_PG_DATA", "CLEARING_PG_OPTIONS", "CLEARING_PG_LOG"})
      if (env(name).empty()) {
        std::fprintf(
            stderr,
            "clearing-chaos: restarting PostgreSQL needs %s (scripts/with-postgres exports it); "
            "or pass --pg-restarts 0\n",
            name);
        return false;
      }
  return true;
}

std::string Run::create_databases() {
  const std::string suffix =
      std::to_string(o_.plan.seed % 1'000'000) + "_" + std::to_string(getpid());
  adapter_db_ = support::fresh_database(o_.server_url, "chaos_adapter_" + suffix);
  core_db_ = support::fresh_database(o_.server_url, "chaos_core_" + suffix);
  return suffix;
}

void Run::start_kafka() {
  kafka_ = std::make_unique<Process>(
      support::kafka_mock_argv(KAFKA_MOCK, kInboundPartitions, o_.plan.brokers, o_.country),
      std::map<std::string, std::string>{}, true, stderr_file("kafka-mock"));
  const auto bootstrap = support::after_prefix(kafka_->read_line(30'000), "bootstrap ");
  if (!bootstrap) throw std::runtime_error("kafka-mock did not start");
  bootstrap_ = *bootstrap;
}

// Every fault class of the contract, from the same seed; the hostile clearing (issue 16)
// from its own stream of the same seed.
std::vector<std::string> Run::mock_argv() const {
  support::ClearingMockArgs args{
      .token = kClearingToken,
      .seed = o_.plan.seed,
      .latency_ms = 20,  // a mainframe's pace: calls are under way
      .country = o_.country,
      .more = {"--hold-ms", "1500", "--retry-after-s", "1", "--delay-ms-min", "5", "--delay-ms-max",
               "80", "--fault-delay", "0.05", "--incoming-count", std::to_string(kIncomingPayments),
               "--incoming-resend", "0.3"}};
  auto& argv = args.more;
  for (const char* fault :
       {"--fault-timeout-before-execute", "--fault-timeout-after-execute",
        "--fault-close-after-execute", "--fault-reset-before-execute", "--fault-http-500",
        "--fault-http-502", "--fault-http-504", "--fault-error-body-200", "--fault-malformed-json",
        "--fault-maintenance-503"})
    argv.insert(argv.end(), {fault, "0.01"});
  if (o_.plan.hostile_clearing > 0) {
    for (const auto& fault : o_.hostile_clearing_classes)
      argv.insert(argv.end(), {"--fault-" + fault, std::to_string(o_.plan.hostile_clearing)});
    argv.insert(argv.end(), {"--stray-delay-ms-max", "20"});
  }
  return support::clearing_mock_argv(CLEARING_MOCK, args);
}

void Run::start_mock() {
  mock_ = std::make_unique<Process>(mock_argv(), std::map<std::string, std::string>{}, false,
                                    stderr_file("clearing-mock"));
  const auto address = support::after_prefix(mock_->read_line(30'000), "listening ");
  if (!address) throw std::runtime_error("clearing-mock did not start");
  mock_address_ = *address;
}

// The kernel's picks, after kafka-mock and clearing-mock have taken theirs: ports fixed in
// advance fell in the ephemeral range and were now and then already in use.
int Run::assign_ports() {
  adapter_ports_ = support::free_ports(o_.plan.adapters + 1);
  const int core_port = adapter_ports_.back();
  adapter_ports_.pop_back();
  return core_port;
}

void Run::write_adapter_config(const std::string& suffix) {
  config_path_ = (o_.log_dir.empty() ? std::string("/tmp") : o_.log_dir) + "/chaos-" + o_.country +
                 "-" + suffix + ".json";
  auto cfg = clearing::support::adapter_config_in_a_hurry(std::string(SOURCE_DIR) + "/config/" +
                                                          o_.country + ".json");
  cfg["clearing"]["request_timeout_ms"] = 1000;
  cfg["clearing"]["connect_timeout_ms"] = 500;
  cfg["dispatcher"]["lease_ms"] = kLeaseMs;
  cfg["kafka"]["session_timeout_ms"] =
      kSessionTimeoutMs;  // a killed member leaves the group in seconds
  if (!o_.assignment.empty()) cfg["kafka"]["partition_assignment"] = o_.assignment;
  cfg["log_level"] = "info";
  std::ofstream(config_path_) << cfg.dump(2);
}

void Run::start_adapters(int core_port) {
  // Each adapter adds its own CLEARING_ADAPTER_HTTP_ADDRESS (start_adapter).
  adapter_env_ = support::adapter_environment({.database_url = adapter_db_,
                                               .bootstrap = bootstrap_,
                                               .clearing_address = mock_address_,
                                               .clearing_token = kClearingToken,
                                               .core_port = core_port,
                                               .api_token = kApiToken,
                                               .http_port = 0});
  for (int i = 0; i < o_.plan.adapters; ++i) {
    adapters_.push_back(start_adapter(i));
    restart_at_.emplace_back();
    last_kill_of_.push_back(-1);
  }
}

// The adapters migrate their database; one must be ready before the core starts.
void Run::wait_until_an_adapter_is_ready() {
  const auto ready = [&] {
    const auto answer = http::get(support::local_url(adapter_ports_[0]) + "/readyz", "", 1000);
    return answer && answer->status == 200;
  };
  if (!support::wait_until(ready, std::chrono::seconds(60), std::chrono::milliseconds(200)))
    throw std::runtime_error("adapter 0 not ready after 60 s: " + adapters_[0]->stderr_text());
}

std::vector<std::string> Run::core_argv(int core_port) const {
  return support::core_sim_argv(CORE_SIM, {.database_url = core_db_,
                                           .bootstrap = bootstrap_,
                                           .transfers = o_.plan.transfers,
                                           .seed = o_.plan.seed,
                                           .invalid_share = 0.05,
                                           .rate = o_.plan.rate_per_s,
                                           .batch = 10,
                                           .adapter_port = adapter_ports_[0],
                                           .http_port = core_port,
                                           .api_token = kApiToken,
                                           .stay = true,
                                           .country = o_.country});
}

std::string Run::stderr_file(const std::string& name) const {
  return o_.log_dir.empty() ? std::string{} : o_.log_dir + "/" + name + ".log";
}

std::unique_ptr<Process> Run::start_adapter(int i) {
  std::map<std::string, std::string> e = adapter_env_;
  e["CLEARING_ADAPTER_HTTP_ADDRESS"] = support::local_address(adapter_ports_[i]);
  return std::make_unique<Process>(support::adapter_run_argv(CLEARING_ADAPTER, config_path_), e,
                                   false, stderr_file("adapter-" + std::to_string(i)));
}

std::unique_ptr<Process> Run::start_core() {
  auto p = std::make_unique<Process>(core_argv_, std::map<std::string, std::string>{}, false,
                                     stderr_file("core-sim"));
  if (!support::after_prefix(p->read_line(60'000), "catch-up "))
    throw std::runtime_error("core-sim did not start: " + p->stderr_text());
  return p;
}

bool Run::pg_ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.push_back(env("CLEARING_PG_BIN") + "/pg_ctl");
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  return p.wait(120'000) == 0;
}

void Run::restart_postgres(double hold_s) {
  const auto data = env("CLEARING_PG_DATA");
  if (!pg_ctl({"-D", data, "-m", "fast", "-w", "stop"})) say("chaos: WARNING pg_ctl stop failed");
  std::this_thread::sleep_for(std::chrono::duration<double>(hold_s));
  if (!pg_ctl({"-D", data, "-l", env("CLEARING_PG_LOG"), "-w", "-t", "60", "-o",
               env("CLEARING_PG_OPTIONS"), "start"}))
    throw std::runtime_error("PostgreSQL did not start again; see " + env("CLEARING_PG_LOG"));
  ++figures_.pg_restarts;
}

// ---- the loop ---------------------------------------------------------------------------

// Plays the schedule, keeps the processes up, samples, and once nothing of the schedule is
// pending waits for the work to drain (or for a sign that it never will).
void Run::play(const std::vector<Action>& schedule) {
  injector_ =
      std::make_unique<BadInputInjector>(bootstrap_, core_db_, inbound_, kInboundPartitions);
  if (o_.plan.hostile_per_class > 0)
    hostile_ = std::make_unique<HostileCore>(bootstrap_, core_db_, inbound_, kInboundPartitions);
  start_watermarks();
  const auto started = Clock::now();
  started_ = started;
  start_sampler();
  auto last_flow_sample = started - std::chrono::seconds(1);
  auto last_progress = Clock::now();
  const auto deadline = started + std::chrono::seconds(o_.timeout_s);
  while (Clock::now() < deadline) {
    play_due_actions(schedule);
    bring_brokers_up();
    watch_processes();
    if (Clock::now() - last_flow_sample >= std::chrono::seconds(1)) {
      last_flow_sample = Clock::now();
      sample_flow();
    }
    if (Clock::now() - last_progress >= std::chrono::seconds(5)) {
      last_progress = Clock::now();
      progress(started);
    }
    if (!schedule_done(schedule)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (drained_or_given_up()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  stop_playing();
}

void Run::stop_playing() {
  injector_.reset();  // delivers what it still holds, while the brokers are up
  hostile_.reset();
  sample_flow();
  stop_watermarks();
  stop_sampler();
  figures_.drain_s = seconds_since(started_) - figures_.run_s;
  progress(started_);
  if (!figures_.drained)
    say(figures_.gave_up.empty()
            ? "chaos: the work did not drain within --timeout-s " + std::to_string(o_.timeout_s)
            : "chaos: the work will not drain, stopped waiting: " + figures_.gave_up);
}

void Run::play_due_actions(const std::vector<Action>& schedule) {
  const double now_s = seconds_since(started_);
  while (next_action_ < schedule.size() && schedule[next_action_].at_s <= now_s) {
    const auto& action = schedule[next_action_];
    const auto target = target_now(action);
    if (!target) break;  // what follows it waits too
    ++next_action_;
    perform(action, *target);
  }
}

// The action's target, or nullopt while it must wait. nul_in_field delivers its Kafka copy
// inside the core's transaction: not while a broker is down (the loop that would bring it
// up waits for it). A kill whose drawn adapter is still down from an earlier kill takes the
// next one that is up; none is up: the kill waits for a restart, so every kill happens.
std::optional<int> Run::target_now(const Action& action) const {
  const int adapters = o_.plan.adapters;
  int target = action.target % adapters;
  if (action.kind == ActionKind::hostile_input &&
      HostileCore::needs_all_brokers(static_cast<HostileInput>(action.target)) &&
      !broker_up_at_.empty())
    return std::nullopt;
  if (action.kind == ActionKind::kill_adapter) {
    for (int tried = 0; tried < adapters && restart_at_[target]; ++tried)
      target = (target + 1) % adapters;
    if (restart_at_[target]) return std::nullopt;
  }
  return target;
}

void Run::perform(const Action& action, int target) {
  switch (action.kind) {
    case ActionKind::kill_adapter:
      return kill_adapter(action, target);
    case ActionKind::broker_outage:
      return take_broker_down(action);
    case ActionKind::pg_restart:
      return restart_postgres_now(action);
    case ActionKind::inject:
      return inject_bad_input(action);
    case ActionKind::hostile_input:
      return inject_hostile_input(action);
  }
}

void Run::kill_adapter(const Action& action, int target) {
  const auto metrics = aim_kill(target);
  auto kill = holdings_of(target, metrics);
  adapters_[target]->signal(SIGKILL);
  kill.at_us = epoch_us();
  count_what_the_kill_caught(metrics);
  const double killed_s = elapsed_s();
  kill.at_s = killed_s;
  watch_claimed_calls(kill);
  last_kill_of_[static_cast<std::size_t>(target)] = static_cast<int>(kills_.size());
  kills_.push_back(std::move(kill));
  adapters_[target]->wait(10'000);
  restart_at_[target] = after_s(action.hold_s);
  ++figures_.kills;
  // Its partitions wait for the group to notice (the session timeout), then for the
  // rebalances of its leaving and of its successor's joining.
  flow_.excuse(killed_s,
               killed_s + std::max(action.hold_s, kSessionTimeoutMs / 1000.0) + kRecoverySlackS,
               "adapter " + std::to_string(target) + " killed");
}

// Aims at a moment with clearing calls under way: watches its metrics for up to three
// seconds, then the kill takes whatever it is doing. Its last /metrics, nullopt if none.
std::optional<std::string> Run::aim_kill(int target) {
  const auto url = support::local_url(adapter_ports_[target]) + "/metrics";
  const auto aim_until = Clock::now() + std::chrono::seconds(3);
  std::optional<std::string> seen;
  do {
    auto m = http::get(url, kApiToken, 300);
    seen = m && m->status == 200 ? std::optional(m->body) : std::nullopt;
    if (seen && metric_sum(*seen, "clearing_dispatcher_in_flight") > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  } while (Clock::now() < aim_until);
  return seen;
}

// What it holds, read just before the kill (recovery.hpp): the inbound partitions its
// /metrics names, and the calls leased to its dispatcher.
KillRecord Run::holdings_of(int target, const std::optional<std::string>& metrics) {
  KillRecord kill;
  kill.target = target;
  kill.owner = lease_owner_of(adapters_[target]->pid());
  kill.metrics_read = metrics.has_value();
  if (metrics) kill.partitions = assigned_partitions(*metrics, inbound_);
  if (const auto leased = query(adapter_db_,
                                "select transfer_id, attempt, claims from transfer_work "
                                "where lease_owner = '" +
                                    kill.owner + "'")) {
    kill.leased.emplace();
    for (const auto& row : *leased)
      kill.leased->push_back(
          {row[0].as<std::string>(), row[1].as<std::int32_t>(), row[2].as<std::int64_t>()});
  }
  return kill;
}

void Run::count_what_the_kill_caught(const std::optional<std::string>& metrics) {
  if (!metrics) {
    ++figures_.kills_unobserved;
    return;
  }
  figures_.kills_with_calls_in_flight += metric_sum(*metrics, "clearing_dispatcher_in_flight") > 0;
  figures_.kills_with_relay_lag += metric_sum(*metrics, "clearing_relay_lag_messages") > 0;
  figures_.kills_with_inbound_work += metric_sum(*metrics, "clearing_inbound_messages_total") > 0;
}

// Hands the calls the killed adapter had claimed to the sampler (kills_.size() is the
// kill's index: it is recorded next).
void Run::watch_claimed_calls(const KillRecord& kill) {
  if (!kill.leased || kill.leased->empty()) return;
  CallWatch watch{kills_.size(), kill.at_us, kill.owner, *kill.leased, {}};
  watch.verdicts.resize(watch.calls.size());  // all pending
  std::lock_guard lock(sampler_mutex_);
  call_watches_new_.push_back(std::move(watch));
}

void Run::take_broker_down(const Action& action) {
  broker_down_s_[action.target] = elapsed_s();
  if (kafka_->running()) kafka_->write_line("down " + std::to_string(action.target));
  broker_up_at_[action.target] = after_s(action.hold_s);
  ++figures_.broker_outages;
}

void Run::bring_brokers_up() {
  for (auto it = broker_up_at_.begin(); it != broker_up_at_.end();) {
    if (Clock::now() < it->second) {
      ++it;
      continue;
    }
    const int broker = it->first;
    if (kafka_->running()) kafka_->write_line("up " + std::to_string(broker));
    const auto why = "broker " + std::to_string(broker) + " down";
    flow_.excuse(broker_down_s_[broker], elapsed_s() + kRecoverySlackS, why);
    actions_.push_back({broker_down_s_[broker], elapsed_s(), why});
    it = broker_up_at_.erase(it);
  }
}

void Run::restart_postgres_now(const Action& action) {
  const double stopped_s = elapsed_s();
  restart_postgres(action.hold_s);
  flow_.excuse(stopped_s, elapsed_s() + kRecoverySlackS, "PostgreSQL restarted");
  actions_.push_back({stopped_s, elapsed_s(), "PostgreSQL restarted"});
}

void Run::inject_bad_input(const Action& action) {
  const auto kind = static_cast<BadInput>(action.target);
  const auto error =
      injector_->inject(kind, static_cast<int>(bad_input_partitions_() % kInboundPartitions));
  if (error.empty())
    ++figures_.injected[to_string(kind)];
  else
    figures_.injection_errors.push_back(std::string(to_string(kind)) + ": " + error);
}

void Run::inject_hostile_input(const Action& action) {
  const auto kind = static_cast<HostileInput>(action.target);
  auto record =
      hostile_->inject(kind, action.partition, figures_.hostile_per_class[action.target]++);
  if (!record.error.empty())
    say(std::string("chaos: hostile input ") + to_string(kind) + " failed: " + record.error);
  figures_.hostile.push_back(std::move(record));
}

bool Run::schedule_done(const std::vector<Action>& schedule) const {
  return next_action_ == schedule.size() && broker_up_at_.empty() &&
         std::none_of(restart_at_.begin(), restart_at_.end(),
                      [](const auto& t) { return t.has_value(); });
}

// Drained twice in a row, or a reason to stop waiting (figures_.gave_up).
bool Run::drained_or_given_up() {
  if (figures_.run_s == 0) figures_.run_s = elapsed_s();
  drained_polls_ = drained() ? drained_polls_ + 1 : 0;
  if (drained_polls_ >= 2) {
    figures_.drained = true;
    return true;
  }
  if (auto why = why_it_will_not_drain(); !why.empty()) figures_.gave_up = std::move(why);
  return !figures_.gave_up.empty();
}

// What will not drain: a partition that stays stalled for no reason the schedule gives,
// nothing moving anywhere, or no Kafka. "" while it still may.
std::string Run::why_it_will_not_drain() {
  std::string why;
  for (const auto& stall : flow_.stalls()) {
    const double outside = longest_outside(stall.from_s, stall.to_s, flow_.windows());
    if (stall.open && outside > kGiveUpStallS) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "partition %d stalled for %.0f s outside every explained window",
                    stall.partition, outside);
      why = text;
    }
  }
  if (auto now_signature = progress_signature(); now_signature != signature_) {
    signature_ = std::move(now_signature);
    signature_since_ = Clock::now();
  } else if (seconds_since(signature_since_) > kGiveUpNoProgressS) {
    why = "nothing moved for " + std::to_string(static_cast<int>(kGiveUpNoProgressS)) + " s";
  }
  if (!figures_.kafka_mock_died.empty()) why = "kafka-mock is gone";
  return why;
}

void Run::watch_processes() {
  for (std::size_t i = 0; i < adapters_.size(); ++i) {
    if (restart_at_[i]) {
      restart_adapter_when_due(i);
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
  if (figures_.kafka_mock_died.empty() && !kafka_->running()) notice_kafka_mock_death();
  if (!core_->running()) {
    say("chaos: core-sim exited with " + std::to_string(core_->wait(0)) +
        "; restarting it (it republishes nothing)");
    ++figures_.core_restarts;
    core_ = start_core();
  }
}

void Run::restart_adapter_when_due(std::size_t i) {
  if (Clock::now() < *restart_at_[i]) return;
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

// Nothing flows without it; librdkafka 2.0's mock group coordinator is known to abort
// (rdkafka_mock_cgrp.c: Assertion `!member->resp') when a killed member's successor joins.
void Run::notice_kafka_mock_death() {
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
  const auto unpublished = "select count(*) from external_stream_heads where published <> head";
  if (scalar(adapter_db_, unpublished, 1) != 0 || scalar(core_db_, unpublished, 1) != 0)
    return false;
  return streams_applied_both_ways();
}

// Each side has applied the other's payments streams up to their heads.
bool Run::streams_applied_both_ways() {
  const auto adapter_heads = query(adapter_db_,
                                   "select stream, partition, head from external_stream_heads "
                                   "where stream like '%.payments.%' and head > 0");
  const auto core_heads =
      query(core_db_, "select stream, partition, head from external_stream_heads where head > 0");
  const auto applied_sql = "select stream, partition, last_seq from inbound_stream_progress";
  const auto core_applied = query(core_db_, applied_sql);
  const auto adapter_applied = query(adapter_db_, applied_sql);
  if (!adapter_heads || !core_applied || !core_heads || !adapter_applied) return false;
  const auto by_partition = [](const pqxx::result& r) {
    std::map<std::pair<std::string, int>, std::int64_t> m;
    for (const auto& row : r)
      m[{row[0].as<std::string>(), row[1].as<int>()}] = row[2].as<std::int64_t>();
    return m;
  };
  // Of the adapter's payments streams, those the reader reads (payments.v1 or its successor
  // v2: the core consumes one): the streams it has progress for.
  const auto caught_up = [&](const pqxx::result& heads, const pqxx::result& applied,
                             bool only_streams_read) {
    const auto at = by_partition(applied);
    std::set<std::string> read;
    for (const auto& [key, _] : at) read.insert(key.first);
    if (only_streams_read && read.empty() && !heads.empty()) return false;
    return std::all_of(heads.begin(), heads.end(), [&](const auto& row) {
      const auto stream = row[0].template as<std::string>();
      if (only_streams_read && !read.count(stream)) return true;
      const auto it = at.find({stream, row[1].template as<int>()});
      return it != at.end() && it->second == row[2].template as<std::int64_t>();
    });
  };
  return caught_up(*adapter_heads, *core_applied, true) &&
         caught_up(*core_heads, *adapter_applied, false);
}

// Moves whenever anything of the flow moves; the same value for kGiveUpNoProgressS while
// draining means nothing will.
std::string Run::progress_signature() {
  const auto inbound =
      "select coalesce(sum(last_seq), 0) || '/' || coalesce(sum(kafka_offset), 0) "
      "from inbound_stream_progress";
  const std::vector<std::pair<const std::string*, const char*>> reads{
      {&core_db_,
       "select count(*) filter (where status <> 'open') || '/' || count(*) from core_transfers"},
      {&core_db_, inbound},
      {&adapter_db_, "select count(*) from parked_messages"},
      {&adapter_db_, "select count(*) from events"},
      {&adapter_db_, inbound}};
  std::string out;
  for (const auto& [url, sql] : reads) {
    const auto r = query(*url, sql);
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

}  // namespace clearing::chaos
