#include "clearing/base/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <type_traits>

#include "clearing/base/assert.hpp"

namespace clearing::base::metrics {
namespace {

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

bool is_name_char(char c, bool first, bool colon_allowed) {
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (letter || (colon_allowed && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

bool is_valid_name(std::string_view name, bool colon_allowed) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, colon_allowed)) return false;
  }
  return true;
}

// Go's strconv.ParseFloat reads all of these back; to_chars gives the shortest round trip.
void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    CLEARING_ASSERT(result.ec == std::errc());
    out.append(buffer, result.ptr);
  }
}

void append_uint(std::string& out, std::uint64_t value) { out += std::to_string(value); }

void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
}

// `{a="x",b="y"}`, with an optional extra label (histogram `le`) last; nothing if empty.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const LabelValues& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  CLEARING_ASSERT(names.size() == values.size());
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out.push_back(',');
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
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

}  // namespace

bool is_valid_metric_name(std::string_view name) { return is_valid_name(name, true); }

bool is_valid_label_name(std::string_view name) {
  return is_valid_name(name, false) && !name.starts_with("__");
}

// --- Histogram -------------------------------------------------------------------------

Histogram::Histogram(const std::vector<double>& upper_bounds)
    : upper_bounds_(upper_bounds),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds.size() + 1)) {
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double value) noexcept {
  // Bucket i counts values in (bound[i-1], bound[i]]; a NaN lands in +Inf only.
  const auto found = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  const auto index = static_cast<std::size_t>(found - upper_bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.cumulative.reserve(upper_bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

// --- Family ----------------------------------------------------------------------------

template <class Series>
Family<Series>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                       std::vector<double> upper_bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

template <class Series>
Series& Family<Series>::with(const LabelValues& values) {
  CLEARING_ASSERT_MSG(values.size() == label_names_.size(), name_.c_str());
  std::lock_guard lock(mutex_);
  auto found = series_.find(values);
  if (found != series_.end()) return *found->second;
  CLEARING_ASSERT_MSG(series_.size() < kSeriesPerFamilyMax, name_.c_str());
  std::unique_ptr<Series> series;
  if constexpr (std::is_same_v<Series, Histogram>) {
    series = std::make_unique<Histogram>(upper_bounds_);
  } else {
    series = std::make_unique<Series>();
  }
  Series& result = *series;
  series_.emplace(values, std::move(series));
  return result;
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
  GaugeCallback callback;  // set for a callback gauge or counter (then the families are null)
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::add(std::string name, MetricType type, const std::string& help,
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
  entries_.emplace(std::move(name), std::move(entry));
  return result;
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 const std::vector<std::string>& label_names) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::counter, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.callback, "counter already registered with a callback");
  if (!entry.counters) entry.counters.reset(new CounterFamily(name, help, label_names));
  return *entry.counters;
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             const std::vector<std::string>& label_names) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::gauge, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.callback, "gauge already registered with a callback");
  if (!entry.gauges) entry.gauges.reset(new GaugeFamily(name, help, label_names));
  return *entry.gauges;
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     const std::vector<std::string>& label_names,
                                     const std::vector<double>& upper_bounds) {
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::histogram, help, label_names, upper_bounds);
  if (!entry.histograms) {
    entry.histograms.reset(new HistogramFamily(name, help, label_names, upper_bounds));
  }
  return *entry.histograms;
}

void Registry::gauge_callback(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names, GaugeCallback callback) {
  CLEARING_ASSERT(callback != nullptr);
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::gauge, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.gauges && !entry.callback, "gauge registered twice");
  entry.callback = std::move(callback);
}

void Registry::counter_callback(const std::string& name, const std::string& help,
                                const std::vector<std::string>& label_names, CounterCallback callback) {
  CLEARING_ASSERT(callback != nullptr);
  std::lock_guard lock(mutex_);
  Entry& entry = add(name, MetricType::counter, help, label_names, {});
  CLEARING_ASSERT_MSG(!entry.counters && !entry.callback, "counter registered twice");
  entry.callback = std::move(callback);
}

std::string Registry::render() const {
  // Snapshot the entries (never erased, never moved) and render without the registry lock,
  // so a slow callback does not block registration or the hot path.
  std::vector<std::pair<std::string, const Entry*>> entries;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) entries.emplace_back(name, entry.get());
  }
  std::string out;
  for (const auto& [name, entry] : entries) {
    out += "# HELP " + name + ' ';
    append_escaped(out, entry->help, false);
    out += "\n# TYPE " + name + ' ';
    out += type_name(entry->type);
    out.push_back('\n');
    const auto& names = entry->label_names;
    const auto sample = [&out, &name](std::string_view suffix) -> std::string& {
      out += name;
      out += suffix;
      return out;
    };
    if (entry->counters) {
      const auto& family = *entry->counters;
      std::lock_guard lock(family.mutex_);
      for (const auto& [values, counter] : family.series_) {
        append_labels(sample(""), names, values);
        out.push_back(' ');
        append_uint(out, counter->value());
        out.push_back('\n');
      }
    } else if (entry->gauges) {
      const auto& family = *entry->gauges;
      std::lock_guard lock(family.mutex_);
      for (const auto& [values, gauge] : family.series_) {
        append_labels(sample(""), names, values);
        out.push_back(' ');
        append_double(out, gauge->value());
        out.push_back('\n');
      }
    } else if (entry->histograms) {
      const auto& family = *entry->histograms;
      std::lock_guard lock(family.mutex_);
      for (const auto& [values, histogram] : family.series_) {
        const auto snapshot = histogram->snapshot();
        for (std::size_t i = 0; i <= entry->upper_bounds.size(); ++i) {
          std::string le;
          if (i < entry->upper_bounds.size()) {
            append_double(le, entry->upper_bounds[i]);
          } else {
            le = "+Inf";
          }
          append_labels(sample("_bucket"), names, values, "le", le);
          out.push_back(' ');
          append_uint(out, snapshot.cumulative[i]);
          out.push_back('\n');
        }
        append_labels(sample("_sum"), names, values);
        out.push_back(' ');
        append_double(out, snapshot.sum);
        out.push_back('\n');
        append_labels(sample("_count"), names, values);
        out.push_back(' ');
        append_uint(out, snapshot.cumulative.back());
        out.push_back('\n');
      }
    } else if (entry->callback) {
      std::vector<std::pair<LabelValues, double>> values;
      try {
        values = entry->callback();
      } catch (const std::exception&) {
        values.clear();  // no samples this scrape; the caller's own logging says why
      }
      // Sorted and without duplicate label sets, like the stored families.
      std::stable_sort(values.begin(), values.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0 && values[i].first == values[i - 1].first) continue;
        CLEARING_ASSERT_MSG(values[i].first.size() == names.size(), name.c_str());
        append_labels(sample(""), names, values[i].first);
        out.push_back(' ');
        append_double(out, values[i].second);
        out.push_back('\n');
      }
    }
  }
  return out;
}

}  // namespace clearing::base::metrics
