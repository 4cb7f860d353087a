#pragma once
// The service's Prometheus metrics on prometheus-cpp (core library): counters, gauges and
// histograms kept in the library's families, gauges and counters computed by a callback at
// scrape time, rendered by the library's text serializer (exposition format 0.0.4). Our own
// HTTP server answers /metrics with render(); the library's pull server is not used.
//
// Usage: register a family once, and update a series on the hot path:
//   auto& answers = registry.counter("clearing_answers_total", "Answers by class.", {"class"});
//   Counter settled = answers.with({"settled"});  // a handle: keep it, copy it
//   settled.inc();  // the library's atomic add: no lock, no look-up
//
// Contract:
// - Thread safety: everything is safe to call from any thread. Counter and gauge updates are
//   atomics; a histogram observation takes the series' own mutex (the library's); `with()`
//   and registration take a mutex (call them at start-up or keep the handle).
// - Families live as long as the registry and never move; a series handle (Counter, Gauge,
//   Histogram) is a pointer to a series that lives as long as the registry. Two handles are
//   equal when they name the same series.
// - Names are checked at registration as prometheus-cpp checks them: metric names
//   [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, neither starting with
//   "__"; "le" is reserved for histograms. A bad name, a label count that does not match,
//   or registering the same name twice with a different type, help, labels or buckets is a
//   programming error and stops the process (CLEARING_ASSERT). Registering the same family
//   again returns the existing one.
// - render() orders families by name and series by label values, and writes labels in the
//   order the family names them, so the output is stable; a family without samples (none
//   yet, or its callback threw) is rendered as its HELP and TYPE lines.
// - Counter values are doubles inside the library: exact up to 2^53.
// - Limits: at most kSeriesPerFamilyMax series per family and kBucketsMax buckets per
//   histogram (label values come from code, never from unbounded input).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// prometheus-cpp's series types, declared so that this header, which the whole tree
// includes, does not include the library's headers (base/src/metrics.cpp does).
namespace prometheus {
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace clearing::base::metrics {

inline constexpr std::size_t kSeriesPerFamilyMax = 10'000;
inline constexpr std::size_t kBucketsMax = 64;

// Label values of one series, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);

template <class Series>
class Family;

// A monotonically increasing count (a Prometheus counter with integer increments).
class Counter {
 public:
  void inc(std::uint64_t by = 1) noexcept;
  std::uint64_t value() const noexcept;
  friend bool operator==(const Counter&, const Counter&) = default;

 private:
  friend class Family<Counter>;
  explicit Counter(prometheus::Counter& series) noexcept : series_(&series) {}
  prometheus::Counter* series_;
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double value) noexcept;
  void add(double delta) noexcept;
  void inc() noexcept { add(1.0); }
  void dec() noexcept { add(-1.0); }
  double value() const noexcept;
  friend bool operator==(const Gauge&, const Gauge&) = default;

 private:
  friend class Family<Gauge>;
  explicit Gauge(prometheus::Gauge& series) noexcept : series_(&series) {}
  prometheus::Gauge* series_;
};

// Observations counted in fixed buckets (upper bounds given at registration, inclusive, in
// the unit the metric's name states: `_seconds` or `_ms`); a NaN counts in +Inf only.
class Histogram {
 public:
  void observe(double value) noexcept;
  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  friend class Family<Histogram>;
  explicit Histogram(prometheus::Histogram& series) noexcept : series_(&series) {}
  prometheus::Histogram* series_;
};

enum class MetricType { counter, gauge, histogram };

class Registry;

// A family: name, help, label names; its series are created on first `with()`.
template <class Series>
class Family {
 public:
  ~Family();
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The series for these label values (created at zero on first use). The count of values
  // must equal the count of label names. Takes a lock: call once and keep the handle.
  Series with(const LabelValues& values);

  const std::string& name() const { return name_; }

 private:
  friend class Registry;
  struct State;  // the library's family and our index of its series (metrics.cpp)
  Family(std::string name, std::unique_ptr<State> state);
  std::string name_;
  std::unique_ptr<State> state_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Called at every scrape, without any registry lock held; it may block (a database read).
// It returns one value per series; label values in the order of the family's label names.
// A label set returned twice is rendered once (its first value).
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
  Entry& add(const std::string& name, MetricType type, const std::string& help,
             const std::vector<std::string>& label_names, const std::vector<double>& upper_bounds);
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // under mutex_; never erased
};

}  // namespace clearing::base::metrics
