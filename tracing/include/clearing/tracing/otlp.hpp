#pragma once
// Export over OTLP/HTTP with the JSON encoding (OpenTelemetry protocol 1.x: POST
// {endpoint}/v1/traces, Content-Type application/json, an ExportTraceServiceRequest of
// resourceSpans / scopeSpans / spans; ids as hex, times as strings of Unix nanoseconds).
//
// The exporter queues ended spans (bounded: a span that does not fit is dropped and counted),
// and a thread of its own posts them in batches with http/'s client, one POST at a time,
// every `interval` or as soon as a batch is full. A batch the receiver does not take (no
// connection, a timeout, a status other than 2xx) is dropped and counted, never retried: a
// receiver that is down costs the service nothing but the count.
//
// Configured by the OpenTelemetry SDK's standard variables (from_environment): tracing is off
// when neither OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT is set.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tl/expected.hpp>

#include "clearing/tracing/tracer.hpp"

namespace clearing::tracing {

// The ExportTraceServiceRequest of `spans`, as JSON text.
std::string encode_otlp_json(std::span<const SpanData> spans, const std::string& service_name);

struct OtlpExporterOptions {
  std::string traces_url;  // the full URL posted to, e.g. http://jaeger:4318/v1/traces
  std::string service_name = "unknown_service";
  std::size_t queue_max = 2048;
  std::size_t batch_max = 512;
  std::chrono::milliseconds interval{1000};
  int timeout_ms = 2'000;
};

struct OtlpExporterStats {
  std::int64_t spans_exported = 0;  // accepted by the receiver (2xx)
  std::int64_t spans_dropped = 0;   // queue full, or their batch not accepted
  std::int64_t batches_failed = 0;
};

class OtlpHttpExporter final : public SpanExporter {
 public:
  explicit OtlpHttpExporter(OtlpExporterOptions options);
  ~OtlpHttpExporter() override;  // stops: posts what is queued once, then ends

  void export_span(SpanData span) override;
  // Posts what is queued now, on the caller's thread too (tests, shutdown).
  void flush();
  void stop();

  OtlpExporterStats stats() const;
  const OtlpExporterOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What the environment asks for. Off (nullopt exporter options) when no endpoint is set.
struct TracingSettings {
  std::optional<OtlpExporterOptions> exporter;
  Sampler sampler;
};
// Reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or OTEL_EXPORTER_OTLP_ENDPOINT (with
// "/v1/traces" appended), OTEL_SERVICE_NAME (default `default_service_name`),
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG through `getenv` (std::getenv by default).
// An unknown sampler or a bad ratio, or an endpoint that is not an http(s) URL, is an error
// naming the variable.
tl::expected<TracingSettings, std::string> settings_from_environment(
    const std::string& default_service_name,
    const std::function<const char*(const char*)>& getenv = {});

// The process's tracing as the environment asks (settings_from_environment): installs the
// global tracer, and returns its exporter (null when tracing is off: contexts are still made
// and passed on). The owner stops the exporter at shutdown, so that queued spans are posted.
struct InstalledTracing {
  std::shared_ptr<OtlpHttpExporter> exporter;  // null: off
  std::shared_ptr<const Tracer> tracer;
};
tl::expected<InstalledTracing, std::string> install_from_environment(
    const std::string& default_service_name);

}  // namespace clearing::tracing
