#include "e2e_degrading.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "e2e_probes.hpp"
#include "e2e_sustained.hpp"
#include "e2e_system.hpp"

namespace clearing::bench::e2e {
namespace {

// The adaptive runs' bounds (the shipped configs' from issue 20 on), and the fixed runs'
// dispatcher: twice the cap, never below the shipped 64, so that the cap is the limit.
constexpr int kAdaptiveInFlightMax = 512;
constexpr int kAdaptiveDispatcherInFlightMax = 1024;
constexpr int kFixedDispatcherInFlightMin = 64;
constexpr const char* kLimitGauge = "clearing_concurrency_limit";
constexpr const char* kSubmitSum = "clearing_call_duration_seconds_sum{action=\"submit\"}";
constexpr const char* kSubmitCount = "clearing_call_duration_seconds_count{action=\"submit\"}";

double epoch_s_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<std::string> adapter_settings(const DegradingSetup& setup) {
  if (setup.adaptive)
    return {"clearing.concurrency_mode=adaptive",
            fmt::format("clearing.in_flight_max={}", setup.cap),
            fmt::format("dispatcher.in_flight_max={}", kAdaptiveDispatcherInFlightMax)};
  return {"clearing.concurrency_mode=fixed", fmt::format("clearing.in_flight_max={}", setup.cap),
          fmt::format("dispatcher.in_flight_max={}",
                      std::max(kFixedDispatcherInFlightMin, 2 * setup.cap))};
}

// The capacity model's flags; none for the constant clearing (start_system sets its latency).
std::vector<std::string> mock_flags(const Options& options, const DegradingSetup& setup) {
  if (setup.constant_ms > 0) return {};
  return {"--capacity",        std::to_string(options.degrading_capacity),
          "--service-ms",      std::to_string(options.degrading_service_ms),
          "--thrash-permille", std::to_string(options.degrading_thrash_permille),
          "--queue-max",       std::to_string(options.degrading_queue_max)};
}

std::optional<std::int64_t> counter(const nlohmann::json& stats, const char* name) {
  if (!stats.is_object() || !stats.contains(name) || !stats[name].is_number_integer())
    return std::nullopt;
  return stats[name].get<std::int64_t>();
}

// The adapter's submit calls so far: (seconds summed, count).
std::optional<std::pair<double, double>> submit_calls(System& s) {
  const auto answer = http_get(s.adapter_port, "/metrics", kApiToken);
  if (answer.status != 200) return std::nullopt;
  const auto sum = metric(answer.body, kSubmitSum);
  const auto count = metric(answer.body, kSubmitCount);
  if (!sum || !count) return std::nullopt;
  return std::pair{*sum, *count};
}

// TransferRequested commit -> outcome applied, in ms, of the transfers whose outcome the core
// applied in [from, to) (epoch seconds; the server runs on this machine's clock).
support::Percentiles window_latency(const std::string& core_url, double from, double to) {
  auto c = connect(core_url);
  pqxx::nontransaction tx(*c);
  std::vector<double> samples;
  for (const auto& row :
       tx.exec_params("select (1000 * extract(epoch from (outcome_at - requested_at)))::float8"
                      " from core_transfers where outcome_at >= to_timestamp($1) and outcome_at < "
                      "to_timestamp($2)",
                      from, to))
    samples.push_back(row[0].as<double>());
  std::sort(samples.begin(), samples.end());
  return support::percentiles(samples);
}

// What the hooks read at the window's start, for the differences at its end.
struct AtWindowStart {
  double epoch_s = 0;
  std::optional<std::int64_t> overloaded;
  std::optional<std::pair<double, double>> submits;
};

}  // namespace

double degrading_knee_per_s(const Options& options) {
  return 1000.0 * options.degrading_capacity / options.degrading_service_ms;
}

std::vector<DegradingSetup> degrading_setups(const Options& options) {
  std::vector<DegradingSetup> setups;
  setups.push_back({.label = "adaptive", .adaptive = true, .cap = kAdaptiveInFlightMax});
  for (const int cap : options.degrading_caps)
    setups.push_back({.label = fmt::format("fixed {}", cap), .adaptive = false, .cap = cap});
  if (options.degrading_constant_ms > 0)
    setups.push_back(
        {.label = fmt::format("adaptive, constant {} ms", options.degrading_constant_ms),
         .adaptive = true,
         .cap = kAdaptiveInFlightMax,
         .constant_ms = options.degrading_constant_ms});
  return setups;
}

DegradingRun run_degrading(const Options& options, const DegradingSetup& setup,
                           ServerProbe& server) {
  DegradingRun out;
  out.setup = setup;
  // The constant clearing is compared with the sustained 0 ms run: as fast as core-sim can.
  out.publish_rate = setup.constant_ms > 0 ? 0.0
                     : options.degrading_rate > 0.0
                         ? options.degrading_rate
                         : kPublishOverClearingCap * degrading_knee_per_s(options);
  Options run_options = options;
  run_options.seconds = options.degrading_seconds;
  run_options.transfers = 0;  // a timed window

  AtWindowStart at_start;
  double last_sample_s = 0;  // since core-sim started
  std::string slug = "degrading_" + setup.label;
  std::replace_if(
      slug.begin(), slug.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); },
      '_');
  SustainedSpec spec{
      .label = "degrading: " + setup.label,
      .slug = slug,
      .latency_ms = setup.constant_ms,
      .extras = {.mock_flags = mock_flags(options, setup), .config_set = adapter_settings(setup)},
      .publish_rate = out.publish_rate,
      .on_sample =
          [&](System& s, double since_start_s) {
            last_sample_s = since_start_s;
            const auto answer = http_get(s.adapter_port, "/metrics", kApiToken);
            if (answer.status != 200) return;
            if (const auto limit = first_sample(answer.body, kLimitGauge))
              out.limit_path.emplace_back(since_start_s, *limit);
          },
      .on_window_start =
          [&](System& s) {
            at_start.epoch_s = epoch_s_now();
            at_start.overloaded = counter(s.mock_stats(), "overloaded_answers");
            at_start.submits = submit_calls(s);
            out.window_from_s = last_sample_s;
          },
      .on_window_end =
          [&](System& s) {
            const double end_s = epoch_s_now();
            const auto stats = s.mock_stats();
            const auto overloaded = counter(stats, "overloaded_answers");
            if (overloaded && at_start.overloaded)
              out.overloaded_503 = *overloaded - *at_start.overloaded;
            out.executing_peak = counter(stats, "executing_peak");
            out.queued_peak = counter(stats, "queued_peak");
            const auto submits = submit_calls(s);
            if (submits && at_start.submits && submits->second > at_start.submits->second)
              out.submit_mean_ms = 1000.0 * (submits->first - at_start.submits->first) /
                                   (submits->second - at_start.submits->second);
            out.latency = window_latency(s.core_url, at_start.epoch_s, end_s);
          },
  };
  const auto sustained = run_sustained(run_options, spec, server);
  out.window_s = sustained.window_s;
  out.resolved_per_s = sustained.resolved_per_s;
  out.requested_per_s = sustained.requested_per_s;
  out.resolved_per_s_by_third = sustained.resolved_per_s_by_third;
  out.backlog_start = sustained.backlog_start;
  out.backlog_end = sustained.backlog_end;
  out.transfers = sustained.total_transfers;
  return out;
}

}  // namespace clearing::bench::e2e
