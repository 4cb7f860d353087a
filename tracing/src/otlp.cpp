#include "clearing/tracing/otlp.hpp"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>

#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/http/client.hpp"
#include "clearing/http/url.hpp"

namespace clearing::tracing {
namespace {

using Json = nlohmann::json;

Json any_value(const AttributeValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return {{"stringValue", *s}};
  // OTLP/JSON writes 64-bit integers as strings (the protobuf JSON mapping).
  if (const auto* i = std::get_if<std::int64_t>(&value)) return {{"intValue", std::to_string(*i)}};
  return {{"boolValue", std::get<bool>(value)}};
}

Json attributes(const std::vector<Attribute>& list) {
  Json out = Json::array();
  for (const auto& a : list) out.push_back({{"key", a.key}, {"value", any_value(a.value)}});
  return out;
}

Json span_json(const SpanData& s) {
  Json j = {{"traceId", s.trace_id},
            {"spanId", s.span_id},
            {"name", s.name},
            {"kind", static_cast<int>(s.kind)},
            {"startTimeUnixNano", std::to_string(s.start_unix_ns)},
            {"endTimeUnixNano", std::to_string(s.end_unix_ns)},
            {"attributes", attributes(s.attributes)}};
  if (!s.parent_span_id.empty()) j["parentSpanId"] = s.parent_span_id;
  if (!s.tracestate.empty()) j["traceState"] = s.tracestate;
  // Status code 2: ERROR; an unset status is left out.
  if (s.error) j["status"] = {{"code", 2}, {"message", s.error_message}};
  return j;
}

}  // namespace

std::string encode_otlp_json(std::span<const SpanData> spans, const std::string& service_name) {
  Json list = Json::array();
  for (const auto& s : spans) list.push_back(span_json(s));
  const Json request = {
      {"resourceSpans",
       Json::array(
           {{{"resource",
              {{"attributes", attributes({{"service.name", service_name},
                                          {"telemetry.sdk.name", std::string("clearing")},
                                          {"telemetry.sdk.language", std::string("cpp")}})}}},
             {"scopeSpans",
              Json::array({{{"scope", {{"name", "clearing"}}}, {"spans", list}}})}}})}};
  return request.dump();
}

struct OtlpHttpExporter::Impl {
  OtlpExporterOptions options;
  std::shared_ptr<spdlog::logger> log = base::module_logger("tracing");
  mutable std::mutex mutex;
  std::deque<SpanData> queue;
  OtlpExporterStats stats;
  bool failing = false;   // the last batch failed: logged once per change
  std::mutex post_mutex;  // one POST at a time
  base::BackgroundThread worker;

  void run() {
    while (!worker.stopping()) {
      worker.wait_woken(options.interval);
      worker.clear_woken();
      post_all();
    }
    post_all();
  }

  std::vector<SpanData> take(std::size_t n) {
    std::lock_guard lock(mutex);
    std::vector<SpanData> batch;
    while (!queue.empty() && batch.size() < n) {
      batch.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    return batch;
  }

  void post_all() {
    std::lock_guard posting(post_mutex);
    for (;;) {
      auto batch = take(options.batch_max);
      if (batch.empty()) return;
      post(batch);
    }
  }

  void post(const std::vector<SpanData>& batch) {
    http::ClientRequest request;
    request.method = "POST";
    request.url = options.traces_url;
    request.headers = {{"Content-Type", "application/json"}};
    request.body = encode_otlp_json(batch, options.service_name);
    request.timeout_ms = options.timeout_ms;
    request.body_bytes_max = 1024 * 1024;
    const auto answer = http::send(request);
    const bool ok = answer && answer->status >= 200 && answer->status < 300;
    std::lock_guard lock(mutex);
    if (ok) {
      stats.spans_exported += static_cast<std::int64_t>(batch.size());
    } else {
      stats.spans_dropped += static_cast<std::int64_t>(batch.size());
      ++stats.batches_failed;
    }
    if (ok == !failing) return;
    failing = !ok;
    if (failing)
      log->warn("span export failing url={} cause={} dropped={}", options.traces_url,
                answer ? "status " + std::to_string(answer->status) : answer.error().message,
                stats.spans_dropped);
    else
      log->info("span export recovered dropped={}", stats.spans_dropped);
  }
};

OtlpHttpExporter::OtlpHttpExporter(OtlpExporterOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.batch_max == 0) impl_->options.batch_max = 1;
  impl_->worker.start([impl = impl_.get()] { impl->run(); });
}

OtlpHttpExporter::~OtlpHttpExporter() { stop(); }

void OtlpHttpExporter::export_span(SpanData span) {
  bool full_batch = false;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->queue.size() >= impl_->options.queue_max) {
      ++impl_->stats.spans_dropped;
      return;
    }
    impl_->queue.push_back(std::move(span));
    full_batch = impl_->queue.size() >= impl_->options.batch_max;
  }
  if (full_batch) impl_->worker.wake();
}

void OtlpHttpExporter::flush() { impl_->post_all(); }

void OtlpHttpExporter::stop() { impl_->worker.stop(); }

const OtlpExporterOptions& OtlpHttpExporter::options() const { return impl_->options; }

OtlpExporterStats OtlpHttpExporter::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

tl::expected<TracingSettings, std::string> settings_from_environment(
    const std::string& default_service_name,
    const std::function<const char*(const char*)>& getenv) {
  const auto read = [&](const char* name) -> std::string {
    const char* value = getenv ? getenv(name) : std::getenv(name);
    return value == nullptr ? std::string() : std::string(value);
  };
  TracingSettings settings;
  const auto sampler_name = read("OTEL_TRACES_SAMPLER");
  if (!sampler_name.empty()) {
    auto sampler = parse_sampler(sampler_name, read("OTEL_TRACES_SAMPLER_ARG"));
    if (!sampler)
      return tl::unexpected(
          "OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG: unknown sampler or a "
          "ratio outside 0..1: " +
          sampler_name);
    settings.sampler = *sampler;
  }
  std::string url = read("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const char* variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
  if (url.empty()) {
    url = read("OTEL_EXPORTER_OTLP_ENDPOINT");
    variable = "OTEL_EXPORTER_OTLP_ENDPOINT";
    if (!url.empty()) {
      while (!url.empty() && url.back() == '/') url.pop_back();
      url += "/v1/traces";
    }
  }
  if (url.empty()) return settings;  // off
  if (auto parsed = http::parse_url(url); !parsed)
    return tl::unexpected(std::string(variable) + ": not an http(s) URL (" +
                          std::string(http::to_string(parsed.error())) + ")");
  OtlpExporterOptions options;
  options.traces_url = url;
  const auto service = read("OTEL_SERVICE_NAME");
  options.service_name = service.empty() ? default_service_name : service;
  settings.exporter = options;
  return settings;
}

tl::expected<InstalledTracing, std::string> install_from_environment(
    const std::string& default_service_name) {
  auto settings = settings_from_environment(default_service_name);
  if (!settings) return tl::unexpected(settings.error());
  InstalledTracing installed;
  if (settings->exporter)
    installed.exporter = std::make_shared<OtlpHttpExporter>(*settings->exporter);
  installed.tracer =
      std::make_shared<const Tracer>(TracerOptions{settings->sampler, installed.exporter});
  install_global_tracer(installed.tracer);
  return installed;
}

}  // namespace clearing::tracing
