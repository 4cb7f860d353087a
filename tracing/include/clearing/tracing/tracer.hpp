#pragma once
// Spans, OpenTelemetry-compatible, without an OpenTelemetry SDK (none is packaged in Debian
// 12): a Tracer starts spans under a W3C trace context (base/trace_context.hpp), its sampler
// decides which are recorded, and ended spans go to an exporter (otlp.hpp). Std only.
//
// A span's context is what is propagated (traceparent on a call, a Kafka header, an event's
// metadata): it is there whether or not the span is recorded, so a trace passes through a
// process that does not export, as the specification asks. Attributes carry ids and classes
// (transfer id, attempt, answer class), never names or account numbers.
//
// Thread safe: a Tracer is shared; a Span belongs to one thread at a time.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "clearing/base/trace_context.hpp"

namespace clearing::tracing {

// OTLP's SpanKind numbers.
enum class SpanKind { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };

using AttributeValue = std::variant<std::string, std::int64_t, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
  friend bool operator==(const Attribute&, const Attribute&) = default;
};

// A span as recorded: what the exporter sends.
struct SpanData {
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;  // empty for a root
  std::string tracestate;
  std::string name;
  SpanKind kind = SpanKind::internal;
  std::int64_t start_unix_ns = 0;
  std::int64_t end_unix_ns = 0;
  std::vector<Attribute> attributes;
  bool error = false;  // status ERROR; otherwise UNSET
  std::string error_message;
};

// Where ended, recorded spans go. export_span must not block (a bounded queue: a span that
// does not fit is dropped and counted).
class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  virtual void export_span(SpanData span) = 0;
};

// OTEL_TRACES_SAMPLER's values (the OpenTelemetry SDK environment specification).
enum class SamplerKind {
  always_on,
  always_off,
  traceidratio,
  parentbased_always_on,
  parentbased_always_off,
  parentbased_traceidratio,
};
struct Sampler {
  SamplerKind kind = SamplerKind::parentbased_always_on;
  double ratio = 1.0;  // traceidratio kinds: 0..1

  // Whether a new span in `trace_id` is sampled, under `parent` (null for a root).
  bool sample(const std::string& trace_id, const base::TraceContext* parent) const;
};
// "always_on", ... and OTEL_TRACES_SAMPLER_ARG's ratio (default 1.0); nullopt when unknown
// or the ratio is not a number in 0..1.
std::optional<Sampler> parse_sampler(std::string_view name, std::string_view arg);

class Tracer;

// A span under way. Ends (and is exported when recorded) at end() or when destroyed.
class Span {
 public:
  Span() = default;  // a span of no tracer: records nothing, its context empty
  Span(Span&&) noexcept;
  Span& operator=(Span&&) noexcept;
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  ~Span();

  // What to propagate: this span as the parent of what follows.
  const base::TraceContext& context() const { return context_; }
  bool recording() const { return data_ != nullptr; }

  // The value is made an attribute only when the span is recorded: a span that records
  // nothing (tracing off, the default) costs its callers no copies or allocations.
  template <class Value>
  Span& set(std::string_view key, Value&& value) {
    if (data_) set_recorded(key, AttributeValue(std::forward<Value>(value)));
    return *this;
  }
  Span& set_error(std::string message);
  void end();

 private:
  friend class Tracer;
  void set_recorded(std::string_view key, AttributeValue value);
  base::TraceContext context_;
  std::unique_ptr<SpanData> data_;  // null: not recorded
  std::shared_ptr<SpanExporter> exporter_;
};

struct TracerOptions {
  Sampler sampler;
  std::shared_ptr<SpanExporter> exporter;  // null: nothing is recorded (contexts still made)
};

class Tracer {
 public:
  Tracer() = default;  // off: contexts only
  explicit Tracer(TracerOptions options);

  // A span under `parent` (its trace; null or an invalid context: a new trace).
  Span start(std::string name, const base::TraceContext* parent,
             SpanKind kind = SpanKind::internal) const;
  Span start(std::string name, const std::optional<base::TraceContext>& parent,
             SpanKind kind = SpanKind::internal) const {
    return start(std::move(name), parent ? &*parent : nullptr, kind);
  }

  bool exporting() const { return options_.exporter != nullptr; }

 private:
  TracerOptions options_;
};

// The process's tracer, read by the components that make spans (the inbound consumer, the
// dispatcher, the derivation, the relay) instead of being handed through each of them:
// off (contexts only) until a service installs one from its settings. Thread safe.
std::shared_ptr<const Tracer> global_tracer();
void install_global_tracer(std::shared_ptr<const Tracer> tracer);

// The context of the work the calling thread does now (OpenTelemetry's "current context"),
// for calls made deep below it that take no context of their own (the catch-up fetcher,
// called by the consumer while it handles a message). Null when none.
const base::TraceContext* current_context();
// Makes `context` the thread's current one until destroyed (the previous one then again).
class ScopedContext {
 public:
  explicit ScopedContext(base::TraceContext context);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  base::TraceContext context_;
  const base::TraceContext* previous_;
};

// The time now as OTLP counts it.
std::int64_t now_unix_ns();

}  // namespace clearing::tracing
