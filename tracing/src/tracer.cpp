#include "clearing/tracing/tracer.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <mutex>

namespace clearing::tracing {
namespace {

// The trace id's last 16 hex digits as a number: the ratio samplers compare it with the
// ratio's share of 2^64, so every process with the same ratio decides a trace the same way.
std::uint64_t trace_id_low(const std::string& trace_id) {
  std::uint64_t value = 0;
  if (trace_id.size() != 32) return 0;
  std::from_chars(trace_id.data() + 16, trace_id.data() + 32, value, 16);
  return value;
}

bool ratio_sample(const std::string& trace_id, double ratio) {
  if (ratio >= 1.0) return true;
  if (ratio <= 0.0) return false;
  const auto bound = static_cast<std::uint64_t>(std::ldexp(ratio, 64));
  return trace_id_low(trace_id) < bound;
}

std::mutex global_mutex;
std::shared_ptr<const Tracer>& global_slot() {
  static std::shared_ptr<const Tracer> slot = std::make_shared<const Tracer>();
  return slot;
}

thread_local const base::TraceContext* current = nullptr;

}  // namespace

const base::TraceContext* current_context() { return current; }

ScopedContext::ScopedContext(base::TraceContext context)
    : context_(std::move(context)), previous_(current) {
  current = &context_;
}

ScopedContext::~ScopedContext() { current = previous_; }

std::shared_ptr<const Tracer> global_tracer() {
  std::lock_guard lock(global_mutex);
  return global_slot();
}

void install_global_tracer(std::shared_ptr<const Tracer> tracer) {
  std::lock_guard lock(global_mutex);
  global_slot() = tracer ? std::move(tracer) : std::make_shared<const Tracer>();
}

bool Sampler::sample(const std::string& trace_id, const base::TraceContext* parent) const {
  switch (kind) {
    case SamplerKind::always_on:
      return true;
    case SamplerKind::always_off:
      return false;
    case SamplerKind::traceidratio:
      return ratio_sample(trace_id, ratio);
    case SamplerKind::parentbased_always_on:
      return parent ? parent->sampled() : true;
    case SamplerKind::parentbased_always_off:
      return parent ? parent->sampled() : false;
    case SamplerKind::parentbased_traceidratio:
      return parent ? parent->sampled() : ratio_sample(trace_id, ratio);
  }
  return false;
}

std::optional<Sampler> parse_sampler(std::string_view name, std::string_view arg) {
  static const std::pair<std::string_view, SamplerKind> kNames[] = {
      {"always_on", SamplerKind::always_on},
      {"always_off", SamplerKind::always_off},
      {"traceidratio", SamplerKind::traceidratio},
      {"parentbased_always_on", SamplerKind::parentbased_always_on},
      {"parentbased_always_off", SamplerKind::parentbased_always_off},
      {"parentbased_traceidratio", SamplerKind::parentbased_traceidratio},
  };
  Sampler sampler;
  bool known = false;
  for (const auto& [text, kind] : kNames)
    if (name == text) {
      sampler.kind = kind;
      known = true;
    }
  if (!known) return std::nullopt;
  const bool ratio_kind = sampler.kind == SamplerKind::traceidratio ||
                          sampler.kind == SamplerKind::parentbased_traceidratio;
  if (ratio_kind && !arg.empty()) {
    double ratio = -1;
    const auto [end, error] = std::from_chars(arg.data(), arg.data() + arg.size(), ratio);
    if (error != std::errc{} || end != arg.data() + arg.size() || !(ratio >= 0.0 && ratio <= 1.0))
      return std::nullopt;
    sampler.ratio = ratio;
  }
  return sampler;
}

std::int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Span::Span(Span&&) noexcept = default;

Span& Span::operator=(Span&& other) noexcept {
  if (this != &other) {
    end();
    context_ = std::move(other.context_);
    data_ = std::move(other.data_);
    exporter_ = std::move(other.exporter_);
  }
  return *this;
}

Span::~Span() { end(); }

void Span::set_recorded(std::string_view key, AttributeValue value) {
  for (auto& a : data_->attributes)
    if (a.key == key) {
      a.value = std::move(value);
      return;
    }
  data_->attributes.push_back({std::string(key), std::move(value)});
}

Span& Span::set_error(std::string message) {
  if (data_) {
    data_->error = true;
    data_->error_message = std::move(message);
  }
  return *this;
}

void Span::end() {
  if (!data_) return;
  data_->end_unix_ns = now_unix_ns();
  auto exporter = std::move(exporter_);
  auto data = std::move(data_);
  if (exporter) exporter->export_span(std::move(*data));
}

Tracer::Tracer(TracerOptions options) : options_(std::move(options)) {}

Span Tracer::start(std::string name, const base::TraceContext* parent, SpanKind kind) const {
  const bool has_parent = parent != nullptr && base::is_trace_hex(parent->trace_id, 32) &&
                          base::is_trace_hex(parent->span_id, 16);
  Span span;
  span.context_ = has_parent ? base::child_of(*parent) : base::new_trace(false);
  const bool sampled =
      options_.sampler.sample(span.context_.trace_id, has_parent ? parent : nullptr);
  span.context_.flags =
      static_cast<std::uint8_t>((span.context_.flags & ~0x01) | (sampled ? 1 : 0));
  if (!sampled || !options_.exporter) return span;
  span.data_ = std::make_unique<SpanData>();
  span.data_->trace_id = span.context_.trace_id;
  span.data_->span_id = span.context_.span_id;
  if (has_parent) span.data_->parent_span_id = parent->span_id;
  span.data_->tracestate = span.context_.tracestate;
  span.data_->name = std::move(name);
  span.data_->kind = kind;
  span.data_->start_unix_ns = now_unix_ns();
  span.exporter_ = options_.exporter;
  return span;
}

}  // namespace clearing::tracing
