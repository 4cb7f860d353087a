#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "clearing/tracing/otlp.hpp"
#include "clearing/tracing/otlp_receiver.hpp"
#include "clearing/tracing/tracer.hpp"

using namespace clearing;
using namespace clearing::tracing;
using Json = nlohmann::json;

namespace {

// Keeps ended spans, for the tracer's own cases.
struct Collect final : SpanExporter {
  std::vector<SpanData> spans;
  void export_span(SpanData span) override { spans.push_back(std::move(span)); }
};

const char* kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

}  // namespace

TEST_CASE("OTLP JSON: the ExportTraceServiceRequest shape, hex ids, times as strings") {
  SpanData span;
  span.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  span.span_id = "00f067aa0ba902b7";
  span.parent_span_id = "53995c3f42cd8ad8";
  span.tracestate = "rojo=00f067aa0ba902b7";
  span.name = "clearing submit";
  span.kind = SpanKind::client;
  span.start_unix_ns = 1'700'000'000'123'456'789;
  span.end_unix_ns = 1'700'000'000'223'456'789;
  span.attributes = {
      {"transfer.id", std::string("T-1")}, {"clearing.attempt", std::int64_t{3}}, {"retry", true}};
  span.error = true;
  span.error_message = "timeout";
  SpanData root;
  root.trace_id = span.trace_id;
  root.span_id = "53995c3f42cd8ad8";
  root.name = "consume";
  root.start_unix_ns = 1;
  root.end_unix_ns = 2;
  const std::vector<SpanData> spans{span, root};
  const auto body = Json::parse(encode_otlp_json(spans, "clearing-adapter"));

  REQUIRE(body["resourceSpans"].size() == 1);
  const auto& resource = body["resourceSpans"][0];
  CHECK(resource["resource"]["attributes"][0] ==
        Json{{"key", "service.name"}, {"value", {{"stringValue", "clearing-adapter"}}}});
  REQUIRE(resource["scopeSpans"].size() == 1);
  const auto& out = resource["scopeSpans"][0]["spans"];
  REQUIRE(out.size() == 2);
  CHECK(out[0]["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(out[0]["spanId"] == "00f067aa0ba902b7");
  CHECK(out[0]["parentSpanId"] == "53995c3f42cd8ad8");
  CHECK(out[0]["traceState"] == "rojo=00f067aa0ba902b7");
  CHECK(out[0]["name"] == "clearing submit");
  CHECK(out[0]["kind"] == 3);
  CHECK(out[0]["startTimeUnixNano"] == "1700000000123456789");
  CHECK(out[0]["endTimeUnixNano"] == "1700000000223456789");
  CHECK(out[0]["attributes"] ==
        Json::array({{{"key", "transfer.id"}, {"value", {{"stringValue", "T-1"}}}},
                     {{"key", "clearing.attempt"}, {"value", {{"intValue", "3"}}}},
                     {{"key", "retry"}, {"value", {{"boolValue", true}}}}}));
  CHECK(out[0]["status"] == Json{{"code", 2}, {"message", "timeout"}});
  // A root has no parentSpanId, an unset status no status, an empty tracestate none either.
  CHECK_FALSE(out[1].contains("parentSpanId"));
  CHECK_FALSE(out[1].contains("status"));
  CHECK_FALSE(out[1].contains("traceState"));
  CHECK(out[1]["kind"] == 1);
}

TEST_CASE("tracer: children keep the trace and name their parent; roots start a trace") {
  auto collect = std::make_shared<Collect>();
  const Tracer tracer(TracerOptions{Sampler{SamplerKind::always_on, 1.0}, collect});
  const auto parent = *base::parse_traceparent(kParent, "rojo=1");
  {
    auto consume = tracer.start("consume", &parent, SpanKind::consumer);
    CHECK(consume.recording());
    CHECK(consume.context().trace_id == parent.trace_id);
    CHECK(consume.context().tracestate == "rojo=1");
    consume.set("transfer.id", std::string("T-1")).set("transfer.id", std::string("T-2"));
    auto decide = tracer.start("decide", consume.context());
    decide.end();
    decide.end();  // once only
  }
  auto root = tracer.start("root", nullptr);
  root.end();
  REQUIRE(collect->spans.size() == 3);
  const auto& decide = collect->spans[0];
  const auto& consume = collect->spans[1];
  CHECK(decide.name == "decide");
  CHECK(decide.parent_span_id == consume.span_id);
  CHECK(consume.parent_span_id == "00f067aa0ba902b7");
  CHECK(consume.kind == SpanKind::consumer);
  CHECK(consume.attributes == std::vector<Attribute>{{"transfer.id", std::string("T-2")}});
  CHECK(consume.end_unix_ns >= consume.start_unix_ns);
  CHECK(collect->spans[2].parent_span_id.empty());
  CHECK(collect->spans[2].trace_id != parent.trace_id);
}

TEST_CASE("tracer off or not sampled: contexts still propagate, nothing is recorded") {
  const Tracer off;
  const auto parent = *base::parse_traceparent(kParent);
  auto span = off.start("consume", &parent);
  CHECK_FALSE(span.recording());
  CHECK(span.context().trace_id == parent.trace_id);
  CHECK(span.context().span_id != parent.span_id);
  CHECK(span.context().sampled());  // the caller's decision passes on (parentbased_always_on)

  auto collect = std::make_shared<Collect>();
  const Tracer never(TracerOptions{Sampler{SamplerKind::always_off, 1.0}, collect});
  auto unsampled = never.start("x", &parent);
  CHECK_FALSE(unsampled.recording());
  CHECK_FALSE(unsampled.context().sampled());
  unsampled.end();
  CHECK(collect->spans.empty());
}

TEST_CASE("samplers: the standard names, parent-based decisions, a ratio by trace id") {
  CHECK(parse_sampler("always_on", "")->kind == SamplerKind::always_on);
  CHECK(parse_sampler("parentbased_always_off", "")->kind == SamplerKind::parentbased_always_off);
  CHECK(parse_sampler("traceidratio", "0.25")->ratio == 0.25);
  CHECK(parse_sampler("traceidratio", "")->ratio == 1.0);
  CHECK_FALSE(parse_sampler("sometimes", "").has_value());
  CHECK_FALSE(parse_sampler("traceidratio", "1.5").has_value());
  CHECK_FALSE(parse_sampler("traceidratio", "half").has_value());
  CHECK_FALSE(parse_sampler("parentbased_traceidratio", "-0.1").has_value());

  auto sampled = *base::parse_traceparent(kParent);
  auto unsampled = sampled;
  unsampled.flags = 0;
  const Sampler parent_on{SamplerKind::parentbased_always_on, 1.0};
  CHECK(parent_on.sample(sampled.trace_id, &sampled));
  CHECK_FALSE(parent_on.sample(unsampled.trace_id, &unsampled));
  CHECK(parent_on.sample(sampled.trace_id, nullptr));
  const Sampler parent_off{SamplerKind::parentbased_always_off, 1.0};
  CHECK(parent_off.sample(sampled.trace_id, &sampled));
  CHECK_FALSE(parent_off.sample(sampled.trace_id, nullptr));
  const Sampler always_on{SamplerKind::always_on, 1.0};
  CHECK(always_on.sample(unsampled.trace_id, &unsampled));

  // A ratio of 0.25 samples about a quarter of random traces, and the same trace every time.
  const Sampler quarter{SamplerKind::traceidratio, 0.25};
  int taken = 0;
  for (int i = 0; i < 4000; ++i) {
    const auto id = base::new_trace_id();
    const bool first = quarter.sample(id, nullptr);
    CHECK(quarter.sample(id, nullptr) == first);
    taken += first ? 1 : 0;
  }
  CHECK(taken > 800);
  CHECK(taken < 1200);
  CHECK_FALSE(Sampler{SamplerKind::traceidratio, 0.0}.sample(base::new_trace_id(), nullptr));
}

TEST_CASE("settings from the environment: off when unset, the standard variables otherwise") {
  std::map<std::string, std::string> env;
  const auto getenv = [&env](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto off = settings_from_environment("clearing-adapter", getenv);
  REQUIRE(off.has_value());
  CHECK_FALSE(off->exporter.has_value());
  CHECK(off->sampler.kind == SamplerKind::parentbased_always_on);

  env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://jaeger:4318/";
  auto on = settings_from_environment("clearing-adapter", getenv);
  REQUIRE(on.has_value());
  REQUIRE(on->exporter.has_value());
  CHECK(on->exporter->traces_url == "http://jaeger:4318/v1/traces");
  CHECK(on->exporter->service_name == "clearing-adapter");

  env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "https://collector:4318/custom/traces";
  env["OTEL_SERVICE_NAME"] = "adapter-a";
  env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio";
  env["OTEL_TRACES_SAMPLER_ARG"] = "0.5";
  auto both = settings_from_environment("clearing-adapter", getenv);
  REQUIRE(both.has_value());
  CHECK(both->exporter->traces_url == "https://collector:4318/custom/traces");
  CHECK(both->exporter->service_name == "adapter-a");
  CHECK(both->sampler.kind == SamplerKind::parentbased_traceidratio);
  CHECK(both->sampler.ratio == 0.5);

  env["OTEL_TRACES_SAMPLER"] = "often";
  auto bad_sampler = settings_from_environment("clearing-adapter", getenv);
  REQUIRE_FALSE(bad_sampler.has_value());
  CHECK(bad_sampler.error().find("OTEL_TRACES_SAMPLER") != std::string::npos);
  env["OTEL_TRACES_SAMPLER"] = "always_on";
  env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "ftp://collector";
  auto bad_url = settings_from_environment("clearing-adapter", getenv);
  REQUIRE_FALSE(bad_url.has_value());
  CHECK(bad_url.error().find("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != std::string::npos);
}

TEST_CASE("exporter: batches reach a receiver as OTLP JSON; a bounded queue drops and counts") {
  testing::OtlpReceiver receiver;
  OtlpExporterOptions options;
  options.traces_url = receiver.endpoint() + "/v1/traces";
  options.service_name = "tracing-test";
  options.batch_max = 4;
  options.queue_max = 8;
  options.interval = std::chrono::milliseconds(60'000);  // only full batches and flush post
  auto exporter = std::make_shared<OtlpHttpExporter>(options);
  const Tracer tracer(TracerOptions{Sampler{SamplerKind::always_on, 1.0}, exporter});
  auto parent = tracer.start("parent", nullptr);
  for (int i = 0; i < 5; ++i) tracer.start("child " + std::to_string(i), parent.context()).end();
  parent.end();
  // Four made a full batch, posted at once; the other two wait for the interval or a flush.
  REQUIRE(receiver.wait_for([](const auto& spans) { return spans.size() >= 4; }));
  exporter->flush();
  const auto spans = receiver.spans();
  REQUIRE(spans.size() == 6);
  CHECK(receiver.bodies().size() == 2);
  CHECK(receiver.content_types()[0] == "application/json");
  for (const auto& s : spans) {
    CHECK(s.service == "tracing-test");
    CHECK(s.trace_id() == spans.back().trace_id());
  }
  CHECK(spans.back().name() == "parent");
  CHECK(spans[0].parent_span_id() == spans.back().span_id());
  CHECK(exporter->stats().spans_exported == 6);
  CHECK(exporter->stats().spans_dropped == 0);

  // The receiver gone: the batches fail and are dropped, counted, and the caller never waits.
  receiver.stop();
  for (int i = 0; i < 30; ++i) tracer.start("lost", nullptr).end();
  exporter->flush();
  const auto stats = exporter->stats();
  CHECK(stats.spans_exported == 6);
  CHECK(stats.spans_dropped == 30);
  CHECK(stats.batches_failed >= 1);
}

TEST_CASE("the current context: set for a scope, nested, restored, per thread") {
  CHECK(current_context() == nullptr);
  const auto outer = *base::parse_traceparent(kParent);
  {
    ScopedContext in_outer(outer);
    REQUIRE(current_context() != nullptr);
    CHECK(*current_context() == outer);
    const auto inner = base::child_of(outer);
    {
      ScopedContext in_inner(inner);
      CHECK(*current_context() == inner);
      std::thread([] { CHECK(current_context() == nullptr); }).join();
    }
    CHECK(*current_context() == outer);
  }
  CHECK(current_context() == nullptr);
}

TEST_CASE("the process's tracer: off until installed, and off again after") {
  auto off = global_tracer()->start("x", nullptr);
  CHECK_FALSE(off.recording());
  auto collect = std::make_shared<Collect>();
  install_global_tracer(
      std::make_shared<const Tracer>(TracerOptions{Sampler{SamplerKind::always_on, 1.0}, collect}));
  global_tracer()->start("recorded", nullptr).end();
  install_global_tracer(nullptr);
  global_tracer()->start("not recorded", nullptr).end();
  REQUIRE(collect->spans.size() == 1);
  CHECK(collect->spans[0].name == "recorded");
}
