#include "e2e_sustained.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <csignal>
#include <iterator>
#include <memory>
#include <thread>
#include <utility>

#include "e2e_probes.hpp"
#include "e2e_system.hpp"

namespace clearing::bench::e2e {
namespace {

// core-sim's source in a timed window: more than any window can publish; it is stopped.
constexpr int kTimedSourceTransfers = 10'000'000;
constexpr auto kFirstOutcomeTimeout = std::chrono::seconds(90);
constexpr int kDrainTimeoutSecondsMin = 120;
constexpr double kFixedLoadWindowShare = 0.95;  // --transfers: window ends at this share resolved
// After the processes stopped: backends that ended have flushed their statistics by then.
constexpr auto kStatisticsFlush = std::chrono::milliseconds(1500);

using Series = std::vector<std::pair<double, std::int64_t>>;  // (s into the window, resolved)

// Resolved/s in each third of a window from its (seconds, resolved) samples.
std::vector<double> rates_by_third(const Series& series) {
  std::vector<double> rates;
  if (series.size() < 4) return rates;
  const double end = series.back().first;
  for (int third = 0; third < 3; ++third) {
    const double from = end * third / 3.0, to = end * (third + 1) / 3.0;
    const auto first =
        std::find_if(series.begin(), series.end(), [&](const auto& p) { return p.first >= from; });
    auto last =
        std::find_if(series.begin(), series.end(), [&](const auto& p) { return p.first >= to; });
    if (last == series.end()) last = std::prev(series.end());
    if (first == series.end() || last->first <= first->first) return {};
    rates.push_back(static_cast<double>(last->second - first->second) /
                    (last->first - first->first));
  }
  return rates;
}

void read_adapter_metrics(System& s, Sustained& out) {
  const auto answer = http_get(s.adapter_port, "/metrics", kApiToken);
  if (answer.status != 200) return;
  const auto sum = metric(answer.body, "clearing_call_duration_seconds_sum{action=\"submit\"}");
  const auto count = metric(answer.body, "clearing_call_duration_seconds_count{action=\"submit\"}");
  if (sum && count && *count > 0) out.submit_mean_ms = 1000.0 * *sum / *count;
  for (const char* cls : {"settled", "accepted_pending", "rejected", "ambiguous"}) {
    if (const auto n =
            metric(answer.body,
                   fmt::format("clearing_answers_total{{action=\"submit\",class=\"{}\"}}", cls)))
      out.answers[cls] = *n;
  }
}

// What the window's figures are differences from.
struct WindowStart {
  Clock::time_point at;
  Pipeline counts;
  std::int64_t core_queries = 0, adapter_queries = 0;  // the pipeline probe's own commits
  bool statements = false;                             // pg_stat_statements reset
  ServerCounters server;
  CpuSample cpu;
};

// Transfers requested and resolved in the window, the backlog at its ends and the rates.
void record_counts(Sustained& out, const Pipeline& start, const Pipeline& end,
                   const Series& series) {
  out.where_at_end = where_they_are(end);
  out.requested = end.requested - start.requested;
  out.resolved = end.resolved - start.resolved;
  out.backlog_start = start.requested - start.resolved;
  out.backlog_end = end.requested - end.resolved;
  out.requested_per_s = static_cast<double>(out.requested) / out.window_s;
  out.resolved_per_s_by_third = rates_by_third(series);
  out.resolved_per_s = static_cast<double>(out.resolved) / out.window_s;
}

// Commits (less the pipeline probe's own), rollbacks, xids and statement time in the window.
void record_database_costs(Sustained& out, const System& s, const ServerCounters& start,
                           const ServerCounters& end, std::int64_t own_core_queries,
                           std::int64_t own_adapter_queries) {
  out.adapter_commits = end.commits.at(s.adapter_database) - start.commits.at(s.adapter_database) -
                        own_adapter_queries;
  out.core_commits =
      end.commits.at(s.core_database) - start.commits.at(s.core_database) - own_core_queries;
  out.adapter_rollbacks =
      end.rollbacks.at(s.adapter_database) - start.rollbacks.at(s.adapter_database);
  out.core_rollbacks = end.rollbacks.at(s.core_database) - start.rollbacks.at(s.core_database);
  out.writing_transactions = end.next_xid - start.next_xid;
  out.adapter_active_s =
      (end.active_ms.at(s.adapter_database) - start.active_ms.at(s.adapter_database)) / 1000.0;
  out.core_active_s =
      (end.active_ms.at(s.core_database) - start.active_ms.at(s.core_database)) / 1000.0;
}

// CPU seconds of each process, and the machine's busy share, in the window.
void record_cpu(Sustained& out, const CpuSample& start, const CpuSample& end) {
  for (const auto& [name, cpu] : end.by_process)
    if (start.by_process.count(name)) out.cpu_s[name] = cpu - start.by_process.at(name);
  const double machine_total = end.machine.second - start.machine.second;
  if (machine_total > 0)
    out.machine_busy_share = (end.machine.first - start.machine.first) / machine_total;
}

// One sustained run, step by step: the system and the load, the warm-up, the window, the
// drain, and the whole run's figures once the processes stopped.
class SustainedRun {
 public:
  SustainedRun(const Options& options, const SustainedSpec& spec, ServerProbe& server);

  Sustained run() {
    start_load();
    warm_up();
    const auto start = begin_window();
    Series series{{0.0, start.counts.resolved}};
    const auto end = sample_window(start, series);
    end_window(start, end, series);
    drain();
    finish();
    return out_;
  }

 private:
  void start_load();
  void warm_up();
  WindowStart begin_window();
  Pipeline sample_window(const WindowStart& start, Series& series);
  void end_window(const WindowStart& start, const Pipeline& end, const Series& series);
  void drain();
  void restart_core_on_processed(int drain_timeout_s);
  void check_resolved_exactly_once();
  void finish();

  // Calls the spec's on_sample hook (every sample until the window ends).
  void sampled();

  const Options& options_;
  const SustainedSpec& spec_;
  ServerProbe& server_;
  const std::string label_;
  const bool timed_;
  std::unique_ptr<System> system_;
  System& s_;
  const std::vector<std::string> databases_;
  const ServerCounters at_begin_;
  Sustained out_;
  Clock::time_point begun_;
  std::unique_ptr<Process> core_;
  std::unique_ptr<PipelineProbe> probe_;
};

SustainedRun::SustainedRun(const Options& options, const SustainedSpec& spec, ServerProbe& server)
    : options_(options),
      spec_(spec),
      server_(server),
      label_(spec.label),
      timed_(options.transfers == 0),
      system_(start_system(options, label_, spec.slug, spec.latency_ms, spec.extras)),
      s_(*system_),
      databases_{s_.adapter_database, s_.core_database},
      at_begin_(server.counters(databases_)) {
  out_.latency_ms = spec.latency_ms;
  out_.publish_rate = options.load_rate;
  if (spec.latency_ms > 0) {
    out_.clearing_cap_per_s = 1000.0 * s_.calls_in_flight_max / spec.latency_ms;
    out_.held_at_cap = options.load_rate == 0;
    if (out_.held_at_cap) out_.publish_rate = kPublishOverClearingCap * out_.clearing_cap_per_s;
  }
  if (spec.publish_rate) {
    out_.publish_rate = *spec.publish_rate;
    out_.held_at_cap = false;
  }
}

void SustainedRun::sampled() {
  if (spec_.on_sample) spec_.on_sample(s_, seconds_since(begun_));
}

void SustainedRun::start_load() {
  const std::int64_t source = timed_ ? kTimedSourceTransfers : options_.transfers;
  begun_ = Clock::now();
  core_ =
      start_core(s_.core_sim(source, out_.publish_rate, options_.core_batch, options_.accounts));
  probe_ = std::make_unique<PipelineProbe>(s_.core_url, s_.adapter_url);
  progress(fmt::format("[{}] core-sim pid {} publishing ({}), waiting for the first outcome",
                       label_, core_->pid(),
                       timed_ ? "until the window ends" : std::to_string(source) + " transfers"));
}

void SustainedRun::warm_up() {
  sample_until(
      s_, *core_, *probe_, "warm-up", begun_,
      [this](const Pipeline& p) {
        sampled();
        return p.resolved > 0;
      },
      std::chrono::duration_cast<std::chrono::seconds>(kFirstOutcomeTimeout), false);
  std::this_thread::sleep_for(kWarmupAfterFirstOutcome);
  sampled();
}

WindowStart SustainedRun::begin_window() {
  WindowStart start;
  start.at = Clock::now();
  out_.warmup_s = Seconds(start.at - begun_).count();
  start.counts = probe_->sample();
  start.core_queries = probe_->core_queries();
  start.adapter_queries = probe_->adapter_queries();
  start.statements = options_.statements > 0 && server_.reset_statements();
  start.server = server_.counters(databases_);
  start.cpu = cpu_sample(s_, core_.get());
  out_.adapter_connections = server_.connections(s_.adapter_database);
  out_.core_connections = server_.connections(s_.core_database);
  if (spec_.on_window_start) spec_.on_window_start(s_);
  progress(
      fmt::format("[{}] warm-up over after {:.1f} s: measuring {}", label_, out_.warmup_s,
                  timed_ ? fmt::format("for {} s", options_.seconds)
                         : fmt::format("until {:.0f}% are resolved", 100 * kFixedLoadWindowShare)));
  return start;
}

// Until --seconds passed (or the share of --transfers resolved), keeping the resolved series
// and the most connections seen.
Pipeline SustainedRun::sample_window(const WindowStart& start, Series& series) {
  const auto target = static_cast<std::int64_t>(kFixedLoadWindowShare * options_.transfers);
  const auto window_timeout =
      std::chrono::seconds(timed_ ? options_.seconds + 60 : options_.drain_timeout_s);
  return sample_until(
      s_, *core_, *probe_, "window", start.at,
      [&](const Pipeline& c) {
        series.emplace_back(seconds_since(start.at), c.resolved);
        sampled();
        // Connections grow with load: keep the largest count seen.
        out_.adapter_connections =
            std::max(out_.adapter_connections, server_.connections(s_.adapter_database));
        out_.core_connections =
            std::max(out_.core_connections, server_.connections(s_.core_database));
        return timed_ ? seconds_since(start.at) >= options_.seconds : c.resolved >= target;
      },
      window_timeout, !timed_);
}

void SustainedRun::end_window(const WindowStart& start, const Pipeline& end, const Series& series) {
  out_.window_s = seconds_since(start.at);
  const auto end_server = server_.counters(databases_);
  const auto end_cpu = cpu_sample(s_, core_.get());
  if (start.statements)
    out_.top_statements = server_.top_statements(
        databases_, options_.statements,
        static_cast<double>(std::max<std::int64_t>(1, end.resolved - start.counts.resolved)));
  record_counts(out_, start.counts, end, series);
  record_database_costs(out_, s_, start.server, end_server,
                        probe_->core_queries() - start.core_queries,
                        probe_->adapter_queries() - start.adapter_queries);
  record_cpu(out_, start.cpu, end_cpu);
  if (spec_.on_window_end) spec_.on_window_end(s_);
  progress(fmt::format(
      "[{}] window over: {:.0f} requested/s, {:.0f} resolved/s over {:.1f} s; backlog {} -> {}",
      label_, out_.requested_per_s, out_.resolved_per_s, out_.window_s, out_.backlog_start,
      out_.backlog_end));
}

// Drain: every transfer must resolve. A timed window stops core-sim's publisher by
// stopping core-sim and starting it again on exactly the transfers it processed.
void SustainedRun::drain() {
  const auto drain_begun = Clock::now();
  const int drain_timeout_s = static_cast<int>(std::min<double>(
      options_.drain_timeout_s,
      std::max<double>(kDrainTimeoutSecondsMin, 4.0 * static_cast<double>(out_.backlog_end) /
                                                    std::max(1.0, out_.resolved_per_s))));
  if (timed_) restart_core_on_processed(drain_timeout_s);
  sample_until(
      s_, *core_, *probe_, "drain", drain_begun,
      [&](const Pipeline&) { return core_->wait(0) != -1; }, std::chrono::seconds(drain_timeout_s),
      true);
  out_.drain_s = seconds_since(drain_begun);
  check_resolved_exactly_once();
  progress(fmt::format("[{}] drained in {:.1f} s: all {} transfers resolved exactly once", label_,
                       out_.drain_s, out_.total_transfers));
}

void SustainedRun::restart_core_on_processed(int drain_timeout_s) {
  core_->signal(SIGTERM);
  const int code = core_->wait(kStopTimeoutMs);
  if (code != 0)
    throw Failure(fmt::format("[{}] core-sim stopped with {} (a violation?); its stderr:\n{}",
                              label_, code, tail(core_->stderr_text())));
  const auto stopped = probe_->sample();
  const auto processed = stopped.requested + stopped.refused;
  progress(fmt::format(
      "[{}] core-sim stopped: {} processed, {} open; draining with a core-sim on exactly those"
      " (timeout {} s)",
      label_, processed, stopped.requested - stopped.resolved, drain_timeout_s));
  core_ = start_core(s_.core_sim(processed, 0, 1000, options_.accounts));
}

// core-sim's report after the drain: its outcomes, or Failure.
void SustainedRun::check_resolved_exactly_once() {
  const int core_exit = core_->wait(0);
  const auto report = core_report(*core_, label_);
  out_.succeeded = report.value("succeeded", std::int64_t{0});
  out_.rejected = report.value("rejected", std::int64_t{0});
  out_.total_transfers = report.value("requested", std::int64_t{0});
  if (core_exit != 0 || !report.value("resolved_exactly_once", false))
    throw Failure(fmt::format(
        "[{}] not every transfer resolved exactly once: core-sim exit {}, requested {}, "
        "succeeded {}, rejected {}, still open {}, violations {}; its stderr:\n{}",
        label_, core_exit, out_.total_transfers, out_.succeeded, out_.rejected,
        report.value("still_open", -1), report.value("violations", nlohmann::json()).dump(),
        tail(core_->stderr_text())));
}

// The adapter's own figures and memory, then the processes stopped and the whole run's
// commits per database.
void SustainedRun::finish() {
  read_adapter_metrics(s_, out_);
  out_.adapter_hwm_kb = status_kb(s_.adapter->pid(), "VmHWM").value_or(0);
  out_.adapter_rss_kb = status_kb(s_.adapter->pid(), "VmRSS").value_or(0);
  s_.stop();
  core_.reset();
  std::this_thread::sleep_for(kStatisticsFlush);
  const auto at_end = server_.counters(databases_);
  out_.total_adapter_commits = at_end.commits.at(s_.adapter_database) -
                               at_begin_.commits.at(s_.adapter_database) -
                               probe_->adapter_queries();
  out_.total_core_commits = at_end.commits.at(s_.core_database) -
                            at_begin_.commits.at(s_.core_database) - probe_->core_queries();
}

}  // namespace

Sustained run_sustained(const Options& options, int latency_ms, ServerProbe& server) {
  const SustainedSpec spec{.label = fmt::format("sustained {} ms", latency_ms),
                           .slug = fmt::format("sustained_{}ms", latency_ms),
                           .latency_ms = latency_ms};
  return run_sustained(options, spec, server);
}

Sustained run_sustained(const Options& options, const SustainedSpec& spec, ServerProbe& server) {
  return SustainedRun(options, spec, server).run();
}

}  // namespace clearing::bench::e2e
