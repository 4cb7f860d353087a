#include "e2e_report.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace clearing::bench::e2e {
namespace {

std::string mib(std::int64_t kb) {
  return fmt::format("{:.1f} MiB", static_cast<double>(kb) / 1024.0);
}

void print_speed_probe(const SpeedProbes& p) {
  fmt::print(
      "  machine speed probe before / after the run: {:.0f} / {:.0f} ms (support bench.hpp: a "
      "fixed loop,"
      " slower when the host lends this machine less; compare runs at similar figures)\n",
      p.before_ms, p.after_ms);
}

// Commits per transfer of a run's window: all of them, or only the writing ones.
double commits_per_transfer(const Sustained& r) {
  return static_cast<double>(r.adapter_commits + r.core_commits) /
         static_cast<double>(std::max<std::int64_t>(1, r.resolved));
}

double writes_per_transfer(const Sustained& r) {
  return static_cast<double>(r.writing_transactions) /
         static_cast<double>(std::max<std::int64_t>(1, r.resolved));
}

// The window: its rates, the backlog at its ends and where the open transfers were.
void print_window(const Sustained& r) {
  fmt::print(
      "\nsustained, clearing latency {} ms (window {:.1f} s after a warm-up of {:.1f} s, "
      "excluded)\n",
      r.latency_ms, r.window_s, r.warmup_s);
  print_speed_probe(r.speed);
  fmt::print("  resolved   {:>8.0f} transfers/s   ({} in the window)\n", r.resolved_per_s,
             r.resolved);
  if (r.resolved_per_s_by_third.size() == 3)
    fmt::print("  resolved/s by thirds of the window: {:.0f}, {:.0f}, {:.0f}\n",
               r.resolved_per_s_by_third[0], r.resolved_per_s_by_third[1],
               r.resolved_per_s_by_third[2]);
  const auto publishing =
      r.publish_rate == 0 ? std::string("core-sim publishing as fast as it can")
      : r.held_at_cap
          ? fmt::format(
                "core-sim held at {:.0f}/s, {} x the {:.0f} calls/s the adapter's in_flight_max "
                "allows "
                "at {} ms",
                r.publish_rate, kPublishOverClearingCap, r.clearing_cap_per_s, r.latency_ms)
          : fmt::format("core-sim held at {:.0f}/s (--load-rate)", r.publish_rate);
  fmt::print("  requested  {:>8.0f} transfers/s   ({} in the window; {})\n", r.requested_per_s,
             r.requested, publishing);
  fmt::print("  open       {} at the window's start -> {} at its end ({})\n", r.backlog_start,
             r.backlog_end,
             r.backlog_end > r.backlog_start + r.resolved / 20
                 ? "growing: the pipeline, not the publisher, limits"
             : r.backlog_end + r.resolved / 20 < r.backlog_start
                 ? "shrinking"
                 : "steady: the publisher may be the limit");
  fmt::print("  open at the window's end: {}\n", r.where_at_end);
}

// Commits, statement time and xids per resolved transfer, in the window and the whole run.
void print_database_costs(const Sustained& r, double n) {
  fmt::print(
      "  commits per resolved transfer (xact_commit): adapter {:.2f} + core {:.2f} = {:.2f}"
      "   (rollbacks: adapter {}, core {})\n",
      static_cast<double>(r.adapter_commits) / n, static_cast<double>(r.core_commits) / n,
      static_cast<double>(r.adapter_commits + r.core_commits) / n, r.adapter_rollbacks,
      r.core_rollbacks);
  fmt::print(
      "  PostgreSQL statement time per resolved transfer (pg_stat_database.active_time, lock waits "
      "included):"
      " adapter {:.2f} ms, core {:.2f} ms\n",
      1000.0 * r.adapter_active_s / n, 1000.0 * r.core_active_s / n);
  fmt::print("  writing transactions per resolved transfer (xids assigned, whole server): {:.2f}\n",
             static_cast<double>(r.writing_transactions) / n);
  const double total = static_cast<double>(std::max<std::int64_t>(1, r.total_transfers));
  fmt::print(
      "  whole run incl. warm-up, drain and idle polls: {} transfers, commits per transfer adapter "
      "{:.2f} +"
      " core {:.2f}\n",
      r.total_transfers, static_cast<double>(r.total_adapter_commits) / total,
      static_cast<double>(r.total_core_commits) / total);
}

// Outcomes, the adapter's clearing calls and its connections.
void print_outcomes(const Sustained& r) {
  fmt::print("  outcomes: {} succeeded, {} rejected; drain after the window {:.1f} s\n",
             r.succeeded, r.rejected, r.drain_s);
  if (r.submit_mean_ms) {
    std::string answers;
    for (const auto& [cls, count] : r.answers) answers += fmt::format(" {} {:.0f}", cls, count);
    fmt::print("  adapter's clearing submit calls: mean {:.1f} ms; answers:{}\n", *r.submit_mean_ms,
               answers);
  }
  fmt::print("  DB connections held: adapter {}, core-sim {}\n", r.adapter_connections,
             r.core_connections);
}

// CPU per process in the window and per transfer, the adapter's memory, the top statements.
void print_cpu_and_memory(const Sustained& r, double n) {
  std::string cpu;
  double ours = 0;
  for (const auto& [name, seconds] : r.cpu_s) {
    cpu += fmt::format("  {} {:.0f}%", name, 100.0 * seconds / r.window_s);
    ours += seconds;
  }
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  fmt::print(
      "  CPU in the window (100% = one core):{}  | ours {:.0f}% of {:.0f}%, machine busy {:.0f}% "
      "(every user)\n",
      cpu, 100.0 * ours / r.window_s, 100.0 * cores, 100.0 * cores * r.machine_busy_share);
  if (!r.cpu_s.empty() && r.resolved > 0) {
    std::string per;
    for (const auto& [name, seconds] : r.cpu_s)
      per += fmt::format("  {} {:.0f}", name, 1e6 * seconds / n);
    fmt::print("  CPU µs per resolved transfer:{}\n", per);
  }
  fmt::print("  adapter peak RSS (VmHWM) {}, RSS at the end {}\n", mib(r.adapter_hwm_kb),
             mib(r.adapter_rss_kb));
  if (!r.top_statements.empty()) {
    fmt::print(
        "  statements taking the most time, per resolved transfer (pg_stat_statements; "
        "time, calls, rows, database, statement):\n");
    for (const auto& line : r.top_statements) fmt::print("    {}\n", line);
  }
}

}  // namespace

namespace {

// Phase 4's line of the header.
void print_degrading_header(const Options& options) {
  std::string caps;
  for (const int cap : options.degrading_caps)
    caps += (caps.empty() ? "" : ",") + std::to_string(cap);
  fmt::print(
      "  degrading clearing{}: clearing-mock --capacity {} --service-ms {} --thrash-permille {} "
      "--queue-max {}, core-sim --rate {}; the adaptive limit, then fixed caps [{}]{}; {} s "
      "windows\n",
      options.degrading_only ? " only (phases 1-3 left out)" : "", options.degrading_capacity,
      options.degrading_service_ms, options.degrading_thrash_permille, options.degrading_queue_max,
      options.degrading_rate > 0
          ? fmt::format("{:.0f}", options.degrading_rate)
          : fmt::format("{:.0f} (1.5 x the knee)",
                        kPublishOverClearingCap * degrading_knee_per_s(options)),
      caps,
      options.degrading_constant_ms > 0
          ? fmt::format(", then adaptive against a constant {} ms clearing",
                        options.degrading_constant_ms)
          : std::string(),
      options.degrading_seconds);
}

}  // namespace

void print_header(const Options& options) {
  std::string latencies;
  for (const int l : options.latencies_ms)
    latencies += (latencies.empty() ? "" : ",") + std::to_string(l);
  fmt::print(
      "bench_e2e: core-sim -> kafka-mock -> clearing-adapter run (config/dk.json, log warn{}) -> "
      "clearing-mock"
      " -> adapter -> kafka-mock -> core-sim, separate processes on this machine ({} cores, "
      "shared)\n",
      options.config_set.empty() ? "" : ", --config-set given",
      std::thread::hardware_concurrency());
  fmt::print(
      "  mode {}: sustained {} per clearing latency in [{}] ms (core-sim --rate {}, --batch {}, "
      "--accounts {}, --fetch-wait-ms {} (the adapter's too), --relay-round-interval-ms {} (the "
      "adapter's too),"
      " --invalid-share 0); latency runs {} s each at {} with a clearing of {} ms; commit ceiling "
      "{} s;"
      " PostgreSQL {}\n",
      options.quick ? "quick" : "full",
      options.transfers > 0 ? fmt::format("{} transfers", options.transfers)
                            : fmt::format("{} s window", options.seconds),
      latencies, options.load_rate, options.core_batch, options.accounts, options.fetch_wait_ms,
      options.relay_round_interval_ms, options.latency_seconds,
      latency_rates_text(options.latency_rates), options.latencies_ms.front(),
      options.ceiling_seconds, options.server_url.substr(0, options.server_url.rfind('/')));
  for (const auto& setting : options.config_set) fmt::print("  adapter config: {}\n", setting);
  if (options.degrading) print_degrading_header(options);
  std::fflush(stdout);
}

void print_sustained(const Sustained& r) {
  const double n = static_cast<double>(std::max<std::int64_t>(1, r.resolved));
  print_window(r);
  print_database_costs(r, n);
  print_outcomes(r);
  print_cpu_and_memory(r, n);
}

void print_latency(const LatencyRun& latency, const Sustained& base, const Options& options) {
  const double rate = latency.rate;
  fmt::print(
      "\nlatency, TransferRequested commit -> outcome applied on the core, at {:.0f} transfers/s "
      "({:.0f}% of"
      " {:.0f}), clearing latency {} ms, {} s\n",
      rate, 100.0 * rate / std::max(1.0, base.resolved_per_s), base.resolved_per_s, base.latency_ms,
      options.latency_seconds);
  fmt::print(
      "  steady (requested after the first {:.1f} s):  p50 {:>7.1f} ms  p95 {:>7.1f} ms  p99 "
      "{:>7.1f} ms"
      "  max {:>7.1f} ms  (n={})\n",
      latency.excluded_s, latency.steady.p50, latency.steady.p95, latency.steady.p99,
      latency.steady.max, latency.steady.count);
  print_speed_probe(latency.speed);
  fmt::print(
      "  core-sim's report (every transfer, warm-up included):  p50 {:.1f} ms  p95 {:.1f} ms  p99 "
      "{:.1f} ms"
      "  max {:.1f} ms  (n={}); requested at {:.0f}/s\n",
      latency.all.p50, latency.all.p95, latency.all.p99, latency.all.max, latency.all.count,
      latency.requested_per_s);
  for (const auto& [hop, p] : latency.hops)
    fmt::print("    {:<74} p50 {:>7.1f} ms  p99 {:>7.1f} ms\n", hop, p.p50, p.p99);
  fmt::print("  adapter peak RSS (VmHWM) {}\n", mib(latency.adapter_hwm_kb));
  std::fflush(stdout);
}

void print_ceiling(const Ceiling& ceiling, const Sustained& base) {
  const double commits_per_transfer = e2e::commits_per_transfer(base);
  const double writes_per_transfer = e2e::writes_per_transfer(base);
  fmt::print(
      "\nPostgreSQL commit ceiling: {:.0f} single-row insert transactions/s at {} clients ({} "
      "commits in {:.1f} s;"
      " N = the connections the adapter ({}) and core-sim ({}) held in the {} ms run)\n",
      ceiling.per_s, ceiling.clients, ceiling.commits, ceiling.seconds, base.adapter_connections,
      base.core_connections, base.latency_ms);
  fmt::print(
      "  {} ms run: {:.2f} commits per transfer -> ceiling / commits per transfer = {:.0f} "
      "transfers/s;"
      " achieved {:.0f} ({:.0f}% of that bound)\n",
      base.latency_ms, commits_per_transfer, ceiling.per_s / commits_per_transfer,
      base.resolved_per_s, 100.0 * base.resolved_per_s * commits_per_transfer / ceiling.per_s);
  fmt::print(
      "  counting only writing transactions ({:.2f} per transfer): bound {:.0f} transfers/s\n",
      writes_per_transfer, ceiling.per_s / writes_per_transfer);
}

namespace {

// The limit's path as "t=1s 16, t=2s 24, t=3-9s 36": consecutive equal values run together.
std::string limit_path_text(const std::vector<std::pair<double, double>>& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size();) {
    std::size_t j = i;
    while (j + 1 < path.size() && path[j + 1].second == path[i].second) ++j;
    const auto from = static_cast<long>(path[i].first + 0.5);
    const auto to = static_cast<long>(path[j].first + 0.5);
    out += fmt::format("{}t={}{}s {:.0f}", out.empty() ? "" : ", ", from,
                       to == from ? std::string() : fmt::format("-{}", to), path[i].second);
    i = j + 1;
  }
  return out;
}

std::string optional_count(const std::optional<std::int64_t>& n) {
  return n ? std::to_string(*n) : std::string("?");
}

}  // namespace

void print_degrading(const DegradingRun& run, const Options& options) {
  const auto& setup = run.setup;
  const auto clearing =
      setup.constant_ms > 0
          ? fmt::format("a constant {} ms clearing, no capacity limit", setup.constant_ms)
          : fmt::format("capacity {} x {} ms, thrash {}‰, queue_max {}", options.degrading_capacity,
                        options.degrading_service_ms, options.degrading_thrash_permille,
                        options.degrading_queue_max);
  const auto limiter = setup.adaptive
                           ? fmt::format("adaptive limit, clearing.in_flight_max {}", setup.cap)
                           : fmt::format("fixed cap {}", setup.cap);
  fmt::print("\ndegrading clearing, {} ({}; {}), window {:.1f} s\n", setup.label, clearing, limiter,
             run.window_s);
  print_speed_probe(run.speed);
  fmt::print("  resolved  {:>6.0f} transfers/s (by thirds: {}); requested {:.0f}/s ({})\n",
             run.resolved_per_s,
             run.resolved_per_s_by_third.size() == 3
                 ? fmt::format("{:.0f}, {:.0f}, {:.0f}", run.resolved_per_s_by_third[0],
                               run.resolved_per_s_by_third[1], run.resolved_per_s_by_third[2])
                 : std::string("-"),
             run.requested_per_s,
             run.publish_rate > 0 ? fmt::format("core-sim --rate {:.0f}", run.publish_rate)
                                  : std::string("core-sim as fast as it can"));
  fmt::print("  open {} at the window's start -> {} at its end\n", run.backlog_start,
             run.backlog_end);
  fmt::print(
      "  end to end, outcome applied in the window (the backlog's wait included): p50 {:.1f} ms  "
      "p95 {:.1f} ms  p99 {:.1f} ms  max {:.1f} ms  (n={})\n",
      run.latency.p50, run.latency.p95, run.latency.p99, run.latency.max, run.latency.count);
  const auto call_mean =
      run.submit_mean_ms ? fmt::format("{:.1f} ms", *run.submit_mean_ms) : std::string("?");
  if (setup.constant_ms > 0)
    fmt::print("  adapter's submit call mean in the window {}\n", call_mean);
  else
    fmt::print(
        "  clearing-mock: 503 OVERLOADED in the window {}; executing peak {}, queued peak {} "
        "(whole run); adapter's submit call mean in the window {}\n",
        optional_count(run.overloaded_503), optional_count(run.executing_peak),
        optional_count(run.queued_peak), call_mean);
  if (setup.adaptive) {
    if (run.limit_path.empty())
      fmt::print("  limit path: the adapter exports no clearing_concurrency_limit gauge\n");
    else
      fmt::print("  limit path (s since core-sim started; window from t={:.0f}s): {}\n",
                 run.window_from_s, limit_path_text(run.limit_path));
  }
  std::fflush(stdout);
}

void print_degrading_summary(const std::vector<DegradingRun>& runs,
                             const std::vector<Sustained>& sustained, const Options& options) {
  fmt::print(
      "\ndegrading clearing (capacity {} x {} ms = {:.0f} calls/s at the knee, thrash {}‰, "
      "queue_max {}; {} s windows)\n",
      options.degrading_capacity, options.degrading_service_ms, degrading_knee_per_s(options),
      options.degrading_thrash_permille, options.degrading_queue_max, options.degrading_seconds);
  fmt::print("  {:<28} {:>11} {:>9} {:>9} {:>6} {:>13}  {}\n", "mode/cap", "transfers/s", "p50 ms",
             "p99 ms", "503s", "call mean ms", "probe before/after ms");
  for (const auto& r : runs)
    fmt::print("  {:<28} {:>11.0f} {:>9.1f} {:>9.1f} {:>6} {:>13}  {:.0f}/{:.0f}\n", r.setup.label,
               r.resolved_per_s, r.latency.p50, r.latency.p99, optional_count(r.overloaded_503),
               r.submit_mean_ms ? fmt::format("{:.1f}", *r.submit_mean_ms) : std::string("?"),
               r.speed.before_ms, r.speed.after_ms);
  const auto zero = std::find_if(sustained.begin(), sustained.end(),
                                 [](const Sustained& s) { return s.latency_ms == 0; });
  for (const auto& r : runs) {
    if (r.setup.constant_ms == 0) continue;
    if (zero == sustained.end() || zero->resolved_per_s <= 0)
      fmt::print("  {}: {:.0f}/s (no sustained 0 ms run to compare with)\n", r.setup.label,
                 r.resolved_per_s);
    else
      fmt::print("  {}: {:.0f}/s = {:.0f}% of the sustained 0 ms rate ({:.0f}/s)\n", r.setup.label,
                 r.resolved_per_s, 100.0 * r.resolved_per_s / zero->resolved_per_s,
                 zero->resolved_per_s);
  }
  std::fflush(stdout);
}

std::string latency_rates_text(const std::vector<double>& rates) {
  std::string out;
  for (const double rate : rates)
    out += (out.empty() ? "" : ", ") +
           (rate > 0 ? fmt::format("{:.0f}/s", rate) : std::string("50% of the sustained rate"));
  return out;
}

void print_summary(const std::vector<Sustained>& sustained,
                   const std::vector<LatencyRun>& latencies, const Ceiling& ceiling) {
  const auto& base = sustained.front();
  const double commits_per_transfer = e2e::commits_per_transfer(base);
  std::int64_t peak_kb = 0;
  for (const auto& r : sustained) peak_kb = std::max(peak_kb, r.adapter_hwm_kb);
  for (const auto& l : latencies) peak_kb = std::max(peak_kb, l.adapter_hwm_kb);
  fmt::print(
      "\nsummary (noisy: the machine's {} cores are shared with other work; goal: >= 2000 "
      "transfers/s end to"
      " end, p99 < 250 ms at 1000 transfers/s)\n",
      std::thread::hardware_concurrency());
  for (const auto& r : sustained)
    fmt::print(
        "  sustained, clearing {:>3} ms: {:>6.0f} transfers/s resolved ({:.0f} requested/s)\n",
        r.latency_ms, r.resolved_per_s, r.requested_per_s);
  for (const auto& latency : latencies) {
    fmt::print("  latency at {:.0f}/s ({} ms): p50 {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms\n",
               latency.rate, base.latency_ms, latency.steady.p50, latency.steady.p95,
               latency.steady.p99);
    std::string hops;
    for (const auto& [hop, p] : latency.hops)
      hops += fmt::format("{}{} {:.1f}/{:.1f}", hops.empty() ? "" : ", ",
                          hop.substr(0, hop.find(" (")), p.p50, p.p99);
    if (!hops.empty()) fmt::print("    by hop, p50/p99 ms: {}\n", hops);
  }
  fmt::print(
      "  commit ceiling {:.0f}/s at {} clients; {:.2f} commits per transfer -> bound {:.0f} "
      "transfers/s vs"
      " {:.0f} achieved\n",
      ceiling.per_s, ceiling.clients, commits_per_transfer, ceiling.per_s / commits_per_transfer,
      base.resolved_per_s);
  fmt::print("  adapter peak RSS {}\n", mib(peak_kb));
  std::string probes;
  for (const auto& r : sustained)
    probes += fmt::format("sustained {} ms {:.0f} / {:.0f}, ", r.latency_ms, r.speed.before_ms,
                          r.speed.after_ms);
  for (const auto& l : latencies)
    probes += fmt::format("latency {:.0f}/s {:.0f} / {:.0f}, ", l.rate, l.speed.before_ms,
                          l.speed.after_ms);
  fmt::print("  machine speed probe before / after each run (ms): {}\n",
             probes.substr(0, probes.size() - 2));
  fmt::print("  every transfer resolved exactly once in every run\n");
}

}  // namespace clearing::bench::e2e
