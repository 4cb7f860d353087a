#include "clearing/base/metrics.hpp"

#include <prometheus/check_names.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <type_traits>

#include "clearing/base/assert.hpp"

namespace clearing::base::metrics {
namespace {

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

// The library's serializer writes HELP as given; the format wants `\` and newline escaped.
std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

prometheus::MetricType library_type(MetricType type) {
  switch (type) {
    case MetricType::counter:
      return prometheus::MetricType::Counter;
    case MetricType::gauge:
      return prometheus::MetricType::Gauge;
    case MetricType::histogram:
      return prometheus::MetricType::Histogram;
  }
  CLEARING_ASSERT_MSG(false, "unknown metric type");
}

void check_label_names(const std::vector<std::string>& names, MetricType type) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    CLEARING_ASSERT_MSG(is_valid_label_name(names[i]), names[i].c_str());
    CLEARING_ASSERT_MSG(type != MetricType::histogram || names[i] != "le",
                        "\"le\" is reserved for histogram buckets");
    for (std::size_t j = 0; j < i; ++j) {
      CLEARING_ASSERT_MSG(names[i] != names[j], "duplicate label name");
    }
  }
}

void check_upper_bounds(const std::vector<double>& bounds) {
  CLEARING_ASSERT(!bounds.empty() && bounds.size() <= kBucketsMax);
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    CLEARING_ASSERT(std::isfinite(bounds[i]));
    CLEARING_ASSERT(i == 0 || bounds[i - 1] < bounds[i]);
  }
}

// For each of a family's label names, its place among the names sorted: the library keeps
// a series' labels in a std::map, so it writes them in name order.
std::vector<std::size_t> sorted_places(const std::vector<std::string>& names) {
  auto sorted = names;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> places;
  places.reserve(names.size());
  for (const auto& name : names) {
    places.push_back(static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), name) -
                                              sorted.begin()));
  }
  return places;
}

// A series' labels as the family names them (the library's are in name order).
void put_in_family_order(prometheus::ClientMetric& metric, const std::vector<std::string>& names,
                         const std::vector<std::size_t>& sorted_place) {
  CLEARING_ASSERT(metric.label.size() == names.size());
  std::vector<prometheus::ClientMetric::Label> labels;
  labels.reserve(names.size());
  for (const auto place : sorted_place) labels.push_back(std::move(metric.label[place]));
  metric.label = std::move(labels);
  for (std::size_t i = 0; i < names.size(); ++i) CLEARING_ASSERT(metric.label[i].name == names[i]);
}

// Series sorted by label values (names are the same, in the same order, within a family);
// of a label set given twice, the first is kept.
void sort_series(std::vector<prometheus::ClientMetric>& series) {
  const auto by_labels = [](const auto& a, const auto& b) { return a.label < b.label; };
  std::stable_sort(series.begin(), series.end(), by_labels);
  const auto same_labels = [](const auto& a, const auto& b) { return a.label == b.label; };
  series.erase(std::unique(series.begin(), series.end(), same_labels), series.end());
}

// Gauges and counters computed at scrape time. Labels are written in the family's order.
class CallbackFamily final : public prometheus::Collectable {
 public:
  CallbackFamily(const std::string& name, const std::string& help, MetricType type,
                 std::vector<std::string> label_names, GaugeCallback callback)
      : name_(name),
        help_(escape_help(help)),
        type_(type),
        label_names_(std::move(label_names)),
        callback_(std::move(callback)) {
    CLEARING_ASSERT(type_ != MetricType::histogram);
    CLEARING_ASSERT(callback_ != nullptr);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<std::pair<LabelValues, double>> values;
    try {
      values = callback_();
    } catch (const std::exception&) {
      return {};  // no samples this scrape; the caller's own logging says why
    }
    prometheus::MetricFamily family{name_, help_, library_type(type_), {}};
    family.metric.reserve(values.size());
    for (auto& [labels, value] : values) {
      CLEARING_ASSERT_MSG(labels.size() == label_names_.size(), name_.c_str());
      prometheus::ClientMetric metric;
      metric.label.reserve(labels.size());
      for (std::size_t i = 0; i < labels.size(); ++i) {
        metric.label.push_back({label_names_[i], std::move(labels[i])});
      }
      if (type_ == MetricType::counter) {
        metric.counter.value = value;
      } else {
        metric.gauge.value = value;
      }
      family.metric.push_back(std::move(metric));
    }
    return {std::move(family)};
  }

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
  GaugeCallback callback_;
};

template <class Series>
struct LibraryOf;
template <>
struct LibraryOf<Counter> {
  using type = prometheus::Counter;
};
template <>
struct LibraryOf<Gauge> {
  using type = prometheus::Gauge;
};
template <>
struct LibraryOf<Histogram> {
  using type = prometheus::Histogram;
};

}  // namespace

bool is_valid_metric_name(std::string_view name) {
  return prometheus::CheckMetricName(std::string(name));
}

bool is_valid_label_name(std::string_view name) {
  return prometheus::CheckLabelName(std::string(name));
}

// --- Series ----------------------------------------------------------------------------

void Counter::inc(std::uint64_t by) noexcept { series_->Increment(static_cast<double>(by)); }
std::uint64_t Counter::value() const noexcept {
  return static_cast<std::uint64_t>(series_->Value());
}

void Gauge::set(double value) noexcept { series_->Set(value); }
void Gauge::add(double delta) noexcept { series_->Increment(delta); }
double Gauge::value() const noexcept { return series_->Value(); }

void Histogram::observe(double value) noexcept { series_->Observe(value); }

// --- Family ----------------------------------------------------------------------------

template <class Series>
struct Family<Series>::State {
  using Library = typename LibraryOf<Series>::type;

  State(const std::string& name, const std::string& help, std::vector<std::string> names,
        std::vector<double> bounds)
      : family(name, escape_help(help), {}),
        label_names(std::move(names)),
        sorted_place(sorted_places(label_names)),
        upper_bounds(std::move(bounds)) {}

  prometheus::Family<Library> family;
  const std::vector<std::string> label_names;
  const std::vector<std::size_t> sorted_place;  // see put_in_family_order
  const std::vector<double> upper_bounds;       // histograms only
  std::mutex mutex;
  // Our index of the library's series by label values, under mutex: a repeat with() is one
  // look-up, where the library's Add() would build a label map, make a series and throw it
  // away because one exists (the service's answer hook calls with() on every answer).
  std::map<LabelValues, Library*> series;
};

template <class Series>
Family<Series>::Family(std::string name, std::unique_ptr<State> state)
    : name_(std::move(name)), state_(std::move(state)) {}

template <class Series>
Family<Series>::~Family() = default;

template <class Series>
Series Family<Series>::with(const LabelValues& values) {
  State& state = *state_;
  CLEARING_ASSERT_MSG(values.size() == state.label_names.size(), name_.c_str());
  std::lock_guard lock(state.mutex);
  if (const auto found = state.series.find(values); found != state.series.end()) {
    return Series(*found->second);
  }
  CLEARING_ASSERT_MSG(state.series.size() < kSeriesPerFamilyMax, name_.c_str());
  prometheus::Labels labels;
  for (std::size_t i = 0; i < values.size(); ++i) labels.emplace(state.label_names[i], values[i]);
  CLEARING_ASSERT(!state.family.Has(labels));
  typename State::Library* series = nullptr;
  if constexpr (std::is_same_v<Series, Histogram>) {
    series = &state.family.Add(labels, state.upper_bounds);
  } else {
    series = &state.family.Add(labels);
  }
  state.series.emplace(values, series);
  return Series(*series);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- Registry --------------------------------------------------------------------------

struct Registry::Entry {
  MetricType type = MetricType::counter;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> upper_bounds;
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;
  std::unique_ptr<CallbackFamily> callback;
  // What a scrape collects: one of the above; null until the family is made.
  const prometheus::Collectable* collectable = nullptr;
  const std::vector<std::size_t>* sorted_place = nullptr;  // the library's families only

  // Makes the entry's family on its first registration.
  template <class Series>
  Family<Series>& family(std::unique_ptr<Family<Series>>& family, const std::string& name) {
    if (!family) {
      auto state =
          std::make_unique<typename Family<Series>::State>(name, help, label_names, upper_bounds);
      collectable = &state->family;
      sorted_place = &state->sorted_place;
      family.reset(new Family<Series>(name, std::move(state)));
    }
    return *family;
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::add(const std::string& name, MetricType type, const std::string& help,
                               const std::vector<std::string>& label_names,
                               const std::vector<double>& upper_bounds) {
  CLEARING_ASSERT_MSG(is_valid_metric_name(name), name.c_str());
  check_label_names(label_names, type);
  if (type == MetricType::histogram) check_upper_bounds(upper_bounds);
  // The caller holds mutex_.
  if (auto found = entries_.find(name); found != entries_.end()) {
    const Entry& existing = *found->second;
    CLEARING_ASSERT_MSG(existing.type == type && existing.help == help &&
                            existing.label_names == label_names &&
                            existing.upper_bounds == upper_bounds,
                        "metric registered twice with a different shape");
    return *found->second;
  }
  // A histogram's `_bucket`, `_sum` and `_count` lines must not collide with another family.
  for (const auto suffix : kHistogramSuffixes) {
    if (type == MetricType::histogram) {
      CLEARING_ASSERT_MSG(!entries_.contains(name + std::string(suffix)), name.c_str());
    }
    if (name.ends_with(suffix)) {
      const auto base = name.substr(0, name.size() - suffix.size());
      const auto other = entries_.find(base);
      CLEARING_ASSERT_MSG(other == entries_.end() || other->second->type != MetricType::histogram,
                          name.c_str());
    }
  }
  auto entry = std::make_unique<Entry>();
  entry->type = type;
  entry->help = help;
  entry->label_names = label_names;
  entry->upper_bounds = upper_bounds;
  Entry& result = *entry;
  entries_.emplace(name, std::move(entry));
  return result;
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 const std::vector<std::string>& label_names) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::counter, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.callback, "counter already registered with a callback");
  return entry.family(entry.counters, name);
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             const std::vector<std::string>& label_names) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::gauge, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.callback, "gauge already registered with a callback");
  return entry.family(entry.gauges, name);
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     const std::vector<std::string>& label_names,
                                     const std::vector<double>& upper_bounds) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::histogram, help, label_names, upper_bounds);
  return entry.family(entry.histograms, name);
}

void Registry::gauge_callback(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names, GaugeCallback callback) {
  CLEARING_ASSERT(callback != nullptr);
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::gauge, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.gauges && !entry.callback, "gauge registered twice");
  entry.callback = std::make_unique<CallbackFamily>(name, help, MetricType::gauge, label_names,
                                                    std::move(callback));
  entry.collectable = entry.callback.get();
}

void Registry::counter_callback(const std::string& name, const std::string& help,
                                const std::vector<std::string>& label_names,
                                CounterCallback callback) {
  CLEARING_ASSERT(callback != nullptr);
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::counter, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.counters && !entry.callback, "counter registered twice");
  entry.callback = std::make_unique<CallbackFamily>(name, help, MetricType::counter, label_names,
                                                    std::move(callback));
  entry.collectable = entry.callback.get();
}

std::string Registry::render() const {
  // Snapshot the entries (never erased, never moved) and collect without the registry lock,
  // so a slow callback does not block registration or the hot path.
  std::vector<std::pair<const std::string*, const Entry*>> entries;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) entries.emplace_back(&name, entry.get());
  }
  std::vector<prometheus::MetricFamily> families;
  families.reserve(entries.size());
  for (const auto& [name, entry] : entries) {
    CLEARING_ASSERT(entry->collectable != nullptr);
    auto collected = entry->collectable->Collect();
    CLEARING_ASSERT(collected.size() <= 1);
    if (collected.empty()) {
      // No series yet, or the callback threw: the family's HELP and TYPE still say it exists.
      families.push_back({*name, escape_help(entry->help), library_type(entry->type), {}});
      continue;
    }
    auto& family = collected.front();
    CLEARING_ASSERT(family.name == *name);
    if (entry->sorted_place != nullptr) {
      for (auto& metric : family.metric) {
        put_in_family_order(metric, entry->label_names, *entry->sorted_place);
      }
    }
    sort_series(family.metric);
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace clearing::base::metrics
