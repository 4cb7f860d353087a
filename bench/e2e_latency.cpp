#include "e2e_latency.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <pqxx/pqxx>

#include "e2e_database.hpp"
#include "e2e_probes.hpp"
#include "e2e_system.hpp"

namespace clearing::bench::e2e {
namespace {

using support::percentiles;

constexpr double kLatencyRunExtraSeconds = 5;  // warm-up that the percentiles exclude

// Transfer id -> requested, outcome (epoch s), from the core's database.
using CoreTimes = std::map<std::string, std::pair<double, double>>;

// Where a transfer's latency goes, hop by hop, from the timestamps both databases keep:
// the core's commit (core_transfers.requested_at), the adapter's first and last event of
// the transfer's stream (its initiation by the inbound consumer, the clearing answer
// recorded by the dispatcher), the adapter's outcome message (external_events), the
// core's application of it (outcome_at). The adapter's recorded_at columns are now(), the
// start of their transaction: a batch's later items look earlier than they committed.
std::vector<std::pair<std::string, Percentiles>> hop_breakdown(const std::string& adapter_url,
                                                               const CoreTimes& core_times) {
  std::vector<std::pair<std::string, Percentiles>> hops;
  try {
    auto c = connect(adapter_url);
    pqxx::nontransaction tx(*c);
    std::map<std::string, std::pair<double, double>> events;  // initiated, answered
    for (const auto& row :
         tx.exec("select substr(stream_id, 10), extract(epoch from min(recorded_at))::float8,"
                 " extract(epoch from max(recorded_at))::float8 from events"
                 " where stream_id like 'transfer-%' group by stream_id"))
      events[row[0].as<std::string>()] = {row[1].as<double>(), row[2].as<double>()};
    std::map<std::string, double> derived;
    for (const auto& row :
         tx.exec("select entity_key, extract(epoch from min(recorded_at))::float8"
                 " from external_events where stream like 'adapter.%.payments.%' group by 1"))
      derived[row[0].as<std::string>()] = row[1].as<double>();
    std::vector<double> in, call, derive, out;
    for (const auto& [id, core] : core_times) {
      const auto e = events.find(id);
      const auto d = derived.find(id);
      if (e == events.end() || d == derived.end()) continue;
      in.push_back(1000.0 * (e->second.first - core.first));
      call.push_back(1000.0 * (e->second.second - e->second.first));
      derive.push_back(1000.0 * (d->second - e->second.second));
      out.push_back(1000.0 * (core.second - d->second));
    }
    for (auto* v : {&in, &call, &derive, &out}) std::sort(v->begin(), v->end());
    hops.emplace_back("core commit -> adapter initiated (core relay, Kafka, adapter consumer)",
                      percentiles(in));
    hops.emplace_back("initiated -> clearing answer recorded (dispatcher claim, call, record)",
                      percentiles(call));
    hops.emplace_back("answer -> outcome message derived (derivation subscription)",
                      percentiles(derive));
    hops.emplace_back("derived -> applied on the core (adapter relay, Kafka, core consumer)",
                      percentiles(out));
  } catch (const std::exception& e) {
    progress(std::string("the hop breakdown is left out: ") + e.what());
    hops.clear();
  }
  return hops;
}

// core-sim's report of the run it finished: its rate and percentiles, or Failure.
void read_core_report(LatencyRun& out, Process& core, const std::string& label) {
  const int core_exit = core.wait(0);
  const auto report = core_report(core, label);
  if (core_exit != 0 || !report.value("resolved_exactly_once", false))
    throw Failure(fmt::format(
        "[{}] not every transfer resolved exactly once: core-sim exit {}, still open {}; "
        "its stderr:\n{}",
        label, core_exit, report.value("still_open", -1), tail(core.stderr_text())));
  out.requested_per_s = report.value("requested_per_s", 0.0);
  const auto l = report.value("latency_ms", nlohmann::json::object());
  out.all = {static_cast<std::size_t>(l.value("count", 0)), l.value("p50", 0.0),
             l.value("p95", 0.0), l.value("p99", 0.0), l.value("max", 0.0)};
}

// Steady state: transfers requested after the first outcome was applied plus the warm-up.
// Their percentiles and the seconds excluded go to `out`; their times come back for the hops.
CoreTimes read_steady_state(LatencyRun& out, const std::string& core_url) {
  auto c = connect(core_url);
  pqxx::nontransaction tx(*c);
  const auto warmup_s = std::chrono::duration_cast<Seconds>(kWarmupAfterFirstOutcome).count();
  out.excluded_s =
      tx.exec_params(
            "select extract(epoch from (min(outcome_at) - min(requested_at)))::float8 + $1"
            " from core_transfers",
            warmup_s)[0][0]
          .as<double>();
  std::vector<double> latencies;
  CoreTimes core_times;
  for (const auto& row :
       tx.exec_params("select transfer_id, extract(epoch from requested_at)::float8, extract(epoch "
                      "from outcome_at)::float8"
                      " from core_transfers where outcome_at is not null and requested_at >="
                      "   (select min(outcome_at) from core_transfers) + make_interval(secs => $1)",
                      warmup_s)) {
    const auto requested = row[1].as<double>(), outcome = row[2].as<double>();
    core_times[row[0].as<std::string>()] = {requested, outcome};
    latencies.push_back(1000.0 * (outcome - requested));
  }
  std::sort(latencies.begin(), latencies.end());
  out.steady = percentiles(latencies);
  return core_times;
}

}  // namespace

LatencyRun run_latency(const Options& options, int latency_ms, double rate) {
  const auto label = fmt::format("latency {} ms @ {:.0f}/s", latency_ms, rate);
  auto system = start_system(options, label, fmt::format("latency_{}ms", latency_ms), latency_ms);
  auto& s = *system;
  LatencyRun out;
  out.rate = rate;
  out.seconds = options.latency_seconds;
  out.transfers = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(
             std::ceil(rate * (options.latency_seconds + kLatencyRunExtraSeconds))));
  const auto begun = Clock::now();
  auto core = start_core(s.core_sim(out.transfers, rate, options.core_batch, options.accounts));
  PipelineProbe probe(s.core_url, s.adapter_url);
  progress(fmt::format("[{}] core-sim pid {}: {} transfers at {:.0f}/s", label, core->pid(),
                       out.transfers, rate));
  const auto timeout =
      std::chrono::seconds(static_cast<int>(options.latency_seconds + kLatencyRunExtraSeconds) +
                           options.drain_timeout_s);
  sample_until(
      s, *core, probe, "run", begun, [&](const Pipeline&) { return core->wait(0) != -1; }, timeout,
      true);
  read_core_report(out, *core, label);
  out.hops = hop_breakdown(s.adapter_url, read_steady_state(out, s.core_url));
  out.adapter_hwm_kb = status_kb(s.adapter->pid(), "VmHWM").value_or(0);
  s.stop();
  return out;
}

}  // namespace clearing::bench::e2e
