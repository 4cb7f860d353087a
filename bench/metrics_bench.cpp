// bench_metrics: the cost of one /metrics scrape of a registry shaped like the service's
// (adapter/src/service_metrics.cpp: the same families, types and label names, with as many
// series as a DK adapter shows), and of the hot-path updates.
//
// Prints figures, never a verdict: there are no thresholds here. The callback families
// return fixed samples, so the figure is the registry's own work (collect, sort, serialise),
// not the database reads that the service's callbacks make at every scrape.

#include <fmt/core.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/metrics.hpp"
#include "clearing/support/figures.hpp"

namespace clearing::bench {
namespace {

using namespace base::metrics;
using Clock = std::chrono::steady_clock;
using Samples = std::vector<std::pair<LabelValues, double>>;

constexpr int kScrapesMax = 1'000'000;
constexpr int kUpdatesMax = 100'000'000;

// One callback family of the service: its name, type, label names and how many series it
// has on a DK adapter (4 inbound partitions, 2 outbound streams of 4, 6 unfinished states).
struct CallbackShape {
  const char* name;
  bool counter;
  std::vector<std::string> label_names;
  int series;
};

const std::vector<CallbackShape>& service_callbacks() {
  static const std::vector<CallbackShape> shapes{
      {"clearing_transfers", false, {"state"}, 6},
      {"clearing_transfers_oldest_age_seconds", false, {"state"}, 6},
      {"clearing_transfer_work_due", false, {"action"}, 2},
      {"clearing_calls_overdue", false, {}, 1},
      {"clearing_calls_overdue_oldest_age_seconds", false, {}, 1},
      {"clearing_alarm_events_total", true, {"type"}, 2},
      {"clearing_incoming_payments_parked_total", true, {"reason"}, 3},
      {"clearing_parked_messages", false, {"source", "reason"}, 4},
      {"clearing_subscription_lag_events", false, {"subscription"}, 1},
      {"clearing_subscription_progress_age_seconds", false, {"subscription"}, 1},
      {"clearing_subscription_state", false, {"subscription", "state"}, 5},
      {"clearing_subscription_failures", false, {"subscription"}, 1},
      {"clearing_derivation_lookups_total", true, {"source"}, 2},
      {"clearing_relay_lag_messages", false, {"stream", "partition"}, 8},
      {"clearing_relay_oldest_unpublished_age_seconds", false, {"stream", "partition"}, 8},
      {"clearing_inbound_messages_total", true, {"outcome"}, 5},
      {"clearing_inbound_fetch_restarts_total", true, {}, 1},
      {"clearing_inbound_partitions_held", false, {}, 1},
      {"clearing_inbound_partition_held_seconds", false, {"stream", "partition"}, 0},
      {"clearing_inbound_partition_assigned", false, {"stream", "partition"}, 4},
      {"clearing_inbound_lag_messages", false, {"stream", "partition"}, 4},
      {"clearing_inbound_lag_seconds", false, {"stream", "partition"}, 4},
      {"clearing_dispatcher_in_flight", false, {}, 1},
      {"clearing_dispatcher_calls_started_total", true, {}, 1},
      {"clearing_dispatcher_calls_abandoned_total", true, {}, 1},
      {"clearing_dispatcher_answers_refused_total", true, {}, 1},
      {"clearing_dispatcher_record_failures_total", true, {}, 1},
      {"clearing_dispatcher_claim_failures_total", true, {}, 1},
      {"clearing_incoming_feed_requests_total", true, {}, 1},
      {"clearing_incoming_feed_failures_total", true, {}, 1},
      {"clearing_incoming_pages_not_applied_total", true, {}, 1},
      {"clearing_incoming_payments_total", true, {"outcome"}, 3},
      {"clearing_client_refused_total", true, {"kind"}, 4},
  };
  return shapes;
}

// Fixed samples for a shape: label values like the service's, values with fractions.
Samples samples_of(const CallbackShape& shape) {
  Samples out;
  for (int i = 0; i < shape.series; ++i) {
    LabelValues labels;
    for (const auto& label : shape.label_names)
      labels.push_back(label == "stream" ? "adapter.dk.payments.v1"
                                         : label + "_" + std::to_string(i));
    out.push_back({std::move(labels), shape.counter ? 1000.0 * (i + 1) : 12.345678 * (i + 1)});
  }
  return out;
}

const std::vector<std::string> kActions{"submit", "inquire", "feed"};
const std::vector<std::string> kClasses{"settled", "accepted_pending", "rejected", "ambiguous",
                                        "contract_violation"};
const std::vector<double> kLatencyBucketsSeconds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10};

// The service's registry: its two families updated on the hot path, every answer class
// and action seen, and its callback families.
void register_service_shape(Registry& registry) {
  auto& answers =
      registry.counter("clearing_answers_total", "Clearing answers received, by action and class",
                       {"action", "class"});
  auto& latency =
      registry.histogram("clearing_call_duration_seconds", "Clearing call latency, by action",
                         {"action"}, kLatencyBucketsSeconds);
  for (const auto& action : kActions) {
    for (const auto& cls : kClasses) answers.with({action, cls}).inc(1234);
    for (int i = 0; i < 100; ++i) latency.with({action}).observe(0.001 * i * i);
  }
  for (const auto& shape : service_callbacks()) {
    const std::string help = std::string("Help of ") + shape.name;
    auto samples = [shape] { return samples_of(shape); };
    if (shape.counter) {
      registry.counter_callback(shape.name, help, shape.label_names, samples);
    } else {
      registry.gauge_callback(shape.name, help, shape.label_names, samples);
    }
  }
}

// CPU time of the calling thread (not the time it waited for a core).
double thread_cpu_seconds() {
  timespec now{};
  CLEARING_ASSERT(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) == 0);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

void measure_scrapes(int scrapes) {
  Registry registry;
  register_service_shape(registry);
  std::size_t bytes = registry.render().size();  // warm-up
  std::vector<double> micros;
  micros.reserve(static_cast<std::size_t>(scrapes));
  const double cpu_start_seconds = thread_cpu_seconds();
  for (int i = 0; i < scrapes; ++i) {
    const auto start = Clock::now();
    bytes = registry.render().size();
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  const double cpu_micros = (thread_cpu_seconds() - cpu_start_seconds) * 1e6 / scrapes;
  std::size_t lines = 0;
  for (const char c : registry.render()) lines += c == '\n' ? 1 : 0;
  fmt::print("scrape of the service's metric set ({} families, {} lines, {} bytes), {} scrapes:\n",
             service_callbacks().size() + 2, lines, bytes, scrapes);
  // The wall-clock tail includes the time the thread waited for a core; the CPU time does not.
  std::sort(micros.begin(), micros.end());
  fmt::print("  wall p50 {:.1f} us, p99 {:.1f} us, max {:.1f} us; CPU {:.1f} us a scrape\n",
             support::percentile(micros, 50), support::percentile(micros, 99), micros.back(),
             cpu_micros);
}

// Nanoseconds per call of `update`, on one thread.
template <class Update>
double nanos_per_call(int updates, Update&& update) {
  const auto start = Clock::now();
  for (int i = 0; i < updates; ++i) update(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / updates;
}

void measure_updates(int updates) {
  Registry registry;
  auto& answers = registry.counter("clearing_answers_total", "Answers.", {"action", "class"});
  auto& latency = registry.histogram("clearing_call_duration_seconds", "Latency.", {"action"},
                                     kLatencyBucketsSeconds);
  auto&& settled = answers.with({"submit", "settled"});
  auto&& submit = latency.with({"submit"});
  fmt::print("hot path, one thread, {} updates each:\n", updates);
  fmt::print("  counter inc on a kept series: {:.1f} ns\n",
             nanos_per_call(updates, [&](int) { settled.inc(); }));
  fmt::print("  histogram observe on a kept series: {:.1f} ns\n",
             nanos_per_call(updates, [&](int i) { submit.observe(0.001 * (i % 1000)); }));
  // What the service's answer hook does per clearing answer: look both series up, update.
  const std::string action = "submit";
  const std::string cls = "settled";
  fmt::print("  answer hook (with + inc, with + observe): {:.1f} ns\n",
             nanos_per_call(updates / 10, [&](int i) {
               answers.with({action, cls}).inc();
               latency.with({action}).observe(0.001 * (i % 1000));
             }));
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  int scrapes = 2'000;
  int updates = 10'000'000;
  CLI::App app{"bench_metrics: the cost of a /metrics scrape and of hot-path metric updates"};
  app.add_option("--scrapes", scrapes, "scrapes to time")
      ->check(CLI::Range(1, clearing::bench::kScrapesMax));
  app.add_option("--updates", updates, "hot-path updates to time")
      ->check(CLI::Range(10, clearing::bench::kUpdatesMax));
  CLI11_PARSE(app, argc, argv);
  clearing::bench::measure_scrapes(scrapes);
  clearing::bench::measure_updates(updates);
  return 0;
}
