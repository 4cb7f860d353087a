#pragma once
// A small Prometheus metrics registry (std only): counters, gauges, histograms and gauges
// computed by a callback at scrape time, rendered in the text exposition format 0.0.4.
//
// Usage: register a family once, keep the series handle, and update it on the hot path:
//   Counter& settled = registry.counter("clearing_answers_total", "Answers by class.",
//                                       {"class"}).with({"settled"});
//   settled.inc();  // one relaxed atomic add: no lock, no map lookup
//
// Contract:
// - Thread safety: everything is safe to call from any thread. Series updates are atomics;
//   registration and `with()` take a mutex (call them at start-up or cache the result).
// - Handles (families and series) live as long as the registry and never move.
// - Names are checked at registration against [a-zA-Z_:][a-zA-Z0-9_:]* and label names
//   against [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__"; "le" is reserved for
//   histograms). A bad name, a label count that does not match, or registering the same name
//   twice with a different type, help, labels or buckets is a programming error and stops
//   the process (CLEARING_ASSERT). Registering the same family again returns the existing one.
// - render() orders families by name and series by label values, so the output is stable.
// - Limits: at most kSeriesPerFamilyMax series per family and kBucketsMax buckets per
//   histogram (label values come from code, never from unbounded input).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clearing::base::metrics {

inline constexpr std::size_t kSeriesPerFamilyMax = 10'000;
inline constexpr std::size_t kBucketsMax = 64;

// Label values of one series, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);

// A monotonically increasing count (a Prometheus counter with integer increments).
class Counter {
 public:
  void inc(std::uint64_t by = 1) noexcept { value_.fetch_add(by, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void inc() noexcept { add(1.0); }
  void dec() noexcept { add(-1.0); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted in fixed buckets (upper bounds given at registration, in the unit the
// metric's name states: `_seconds` or `_ms`). Each observation is two or three relaxed
// atomic adds; render() derives the cumulative counts, so `le="+Inf"` always equals `_count`.
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& upper_bounds);
  void observe(double value) noexcept;

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0.0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double>& upper_bounds_;  // owned by the family, which outlives this
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // one per bound, then +Inf
  std::atomic<double> sum_{0.0};
};

enum class MetricType { counter, gauge, histogram };

class Registry;

// A family: name, help, label names; its series are created on first `with()`.
template <class Series>
class Family {
 public:
  // The series for these label values (created at zero on first use). The count of values
  // must equal the count of label names. Takes a lock: call once and keep the reference.
  Series& with(const LabelValues& values);

  const std::string& name() const { return name_; }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> upper_bounds = {});
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> upper_bounds_;  // histograms only
  mutable std::mutex mutex_;
  std::map<LabelValues, std::unique_ptr<Series>> series_;  // under mutex_
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Called at every scrape, without any registry lock held; it may block (a database read).
// It returns one value per series; label values in the order of the family's label names.
// If it throws, the family is rendered without samples for that scrape.
using GaugeCallback = std::function<std::vector<std::pair<LabelValues, double>>()>;
// The same for a counter whose count is kept elsewhere (a component's stats since start, or
// a count of immutable rows): each value must never decrease while the process runs.
using CounterCallback = GaugeCallback;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(const std::string& name, const std::string& help,
                         const std::vector<std::string>& label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     const std::vector<std::string>& label_names = {});
  // Upper bounds: finite, strictly increasing, 1..kBucketsMax of them (+Inf is implied).
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             const std::vector<std::string>& label_names,
                             const std::vector<double>& upper_bounds);
  void gauge_callback(const std::string& name, const std::string& help,
                      const std::vector<std::string>& label_names, GaugeCallback callback);
  // Rendered as `# TYPE name counter`, so rate() and increase() apply; name it `..._total`.
  void counter_callback(const std::string& name, const std::string& help,
                        const std::vector<std::string>& label_names, CounterCallback callback);

  // The text exposition format 0.0.4 (Content-Type: kContentType).
  std::string render() const;
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Entry;
  Entry& add(std::string name, MetricType type, const std::string& help,
             const std::vector<std::string>& label_names, const std::vector<double>& upper_bounds);
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // under mutex_; never erased
};

}  // namespace clearing::base::metrics
