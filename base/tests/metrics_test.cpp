#include "clearing/base/metrics.hpp"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <thread>

using namespace clearing::base::metrics;

TEST_CASE("names are validated as the exposition format requires") {
  struct Example {
    bool (*is_valid)(std::string_view);
    const char* name;
    bool valid;
  };
  for (const auto& example : {
           Example{is_valid_metric_name, "clearing_answers_total", true},
           Example{is_valid_metric_name, "_x:y:z9", true},
           Example{is_valid_metric_name, ":colon_first", true},
           Example{is_valid_metric_name, "", false},
           Example{is_valid_metric_name, "9lives", false},
           Example{is_valid_metric_name, "with-dash", false},
           Example{is_valid_metric_name, "with space", false},
           Example{is_valid_metric_name, "ünïcode", false},
           Example{is_valid_label_name, "class", true},
           Example{is_valid_label_name, "_x1", true},
           Example{is_valid_label_name, "__reserved", false},
           Example{is_valid_label_name, "a:b", false},
           Example{is_valid_label_name, "1a", false},
           Example{is_valid_label_name, "", false},
       }) {
    CAPTURE(example.name);
    CHECK(example.is_valid(example.name) == example.valid);
  }
}

TEST_CASE("an empty registry renders nothing") { CHECK(Registry().render().empty()); }

TEST_CASE("a counter without labels") {
  Registry registry;
  Counter c = registry.counter("clearing_transfers_total", "Transfers seen.").with({});
  c.inc();
  c.inc(41);
  CHECK(c.value() == 42);
  CHECK(registry.render() ==
        "# HELP clearing_transfers_total Transfers seen.\n"
        "# TYPE clearing_transfers_total counter\n"
        "clearing_transfers_total 42\n");
}

TEST_CASE("a family without series renders HELP and TYPE only") {
  Registry registry;
  registry.counter("clearing_answers_total", "Answers by class.", {"class"});
  CHECK(registry.render() ==
        "# HELP clearing_answers_total Answers by class.\n"
        "# TYPE clearing_answers_total counter\n");
}

TEST_CASE("labelled counters: series sorted by label values, handles are stable") {
  Registry registry;
  auto& family = registry.counter("clearing_answers_total", "Answers by class.", {"class", "cc"});
  Counter settled = family.with({"settled", "dk"});
  Counter rejected = family.with({"rejected", "dk"});
  settled.inc(3);
  rejected.inc();
  CHECK(family.with({"settled", "dk"}) == settled);
  CHECK_FALSE(family.with({"settled", "dk"}) == rejected);
  // Registering again with the same shape returns the same family.
  CHECK(&registry.counter("clearing_answers_total", "Answers by class.", {"class", "cc"}) ==
        &family);
  CHECK(registry.render() ==
        "# HELP clearing_answers_total Answers by class.\n"
        "# TYPE clearing_answers_total counter\n"
        "clearing_answers_total{class=\"rejected\",cc=\"dk\"} 1\n"
        "clearing_answers_total{class=\"settled\",cc=\"dk\"} 3\n");
}

TEST_CASE("gauges: set, add, fractional and special values") {
  Registry registry;
  auto& family = registry.gauge("clearing_relay_lag", "Events not yet published.", {"stream"});
  family.with({"a"}).set(7);
  family.with({"b"}).set(0.25);
  family.with({"b"}).add(1);
  family.with({"c"}).set(-3);
  family.with({"c"}).dec();
  family.with({"d"}).set(std::numeric_limits<double>::infinity());
  family.with({"e"}).set(std::nan(""));
  family.with({"f"}).set(1e21);
  CHECK(registry.render() ==
        "# HELP clearing_relay_lag Events not yet published.\n"
        "# TYPE clearing_relay_lag gauge\n"
        "clearing_relay_lag{stream=\"a\"} 7\n"
        "clearing_relay_lag{stream=\"b\"} 1.25\n"
        "clearing_relay_lag{stream=\"c\"} -4\n"
        "clearing_relay_lag{stream=\"d\"} +Inf\n"
        "clearing_relay_lag{stream=\"e\"} Nan\n"  // Go's ParseFloat reads any case
        "clearing_relay_lag{stream=\"f\"} 1e+21\n");
}

TEST_CASE("callback gauges are read at every scrape, sorted, duplicates dropped") {
  Registry registry;
  int scrapes = 0;
  registry.gauge_callback("clearing_transfers", "Transfers by state.", {"state"}, [&scrapes] {
    ++scrapes;
    return std::vector<std::pair<LabelValues, double>>{
        {{"settled"}, 10.0 * scrapes}, {{"accepted"}, 2}, {{"settled"}, 99}};
  });
  const std::string expected_first =
      "# HELP clearing_transfers Transfers by state.\n"
      "# TYPE clearing_transfers gauge\n"
      "clearing_transfers{state=\"accepted\"} 2\n"
      "clearing_transfers{state=\"settled\"} 10\n";
  CHECK(registry.render() == expected_first);
  CHECK(registry.render().find("{state=\"settled\"} 20\n") != std::string::npos);
  CHECK(scrapes == 2);
}

TEST_CASE("callback counters render as counters, read at every scrape") {
  Registry registry;
  std::uint64_t abandoned = 0;
  registry.counter_callback(
      "clearing_calls_abandoned_total", "Calls abandoned since start.", {}, [&abandoned] {
        return std::vector<std::pair<LabelValues, double>>{{{}, static_cast<double>(abandoned)}};
      });
  abandoned = 3;
  CHECK(registry.render() ==
        "# HELP clearing_calls_abandoned_total Calls abandoned since start.\n"
        "# TYPE clearing_calls_abandoned_total counter\n"
        "clearing_calls_abandoned_total 3\n");
  abandoned = 4;
  CHECK(registry.render().find("\nclearing_calls_abandoned_total 4\n") != std::string::npos);
}

TEST_CASE("a throwing callback renders its family without samples") {
  Registry registry;
  registry.gauge_callback("clearing_db_value", "From the database.", {},
                          []() -> std::vector<std::pair<LabelValues, double>> {
                            throw std::runtime_error("database down");
                          });
  registry.counter("clearing_z_total", "After it.").with({}).inc();
  CHECK(registry.render() ==
        "# HELP clearing_db_value From the database.\n"
        "# TYPE clearing_db_value gauge\n"
        "# HELP clearing_z_total After it.\n"
        "# TYPE clearing_z_total counter\n"
        "clearing_z_total 1\n");
}

// The library writes a histogram's count and sum before its buckets.
TEST_CASE("histograms: cumulative buckets with +Inf, sum and count") {
  Registry registry;
  auto& family = registry.histogram("clearing_attempt_duration_seconds", "Clearing call latency.",
                                    {"endpoint"}, {0.05, 0.1, 1, 2.5});
  Histogram submit = family.with({"submit"});
  submit.observe(0.01);  // first bucket
  submit.observe(0.05);  // upper bounds are inclusive
  submit.observe(0.5);   // le=1
  submit.observe(10);    // only +Inf
  CHECK(registry.render() ==
        "# HELP clearing_attempt_duration_seconds Clearing call latency.\n"
        "# TYPE clearing_attempt_duration_seconds histogram\n"
        "clearing_attempt_duration_seconds_count{endpoint=\"submit\"} 4\n"
        "clearing_attempt_duration_seconds_sum{endpoint=\"submit\"} 10.56\n"
        "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"0.05\"} 2\n"
        "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"0.1\"} 2\n"
        "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"1\"} 3\n"
        "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"2.5\"} 3\n"
        "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"+Inf\"} 4\n");
}

TEST_CASE("a histogram without labels, in milliseconds") {
  Registry registry;
  Histogram h =
      registry.histogram("clearing_commit_latency_ms", "Commit latency.", {}, {1, 10}).with({});
  h.observe(3);
  CHECK(registry.render() ==
        "# HELP clearing_commit_latency_ms Commit latency.\n"
        "# TYPE clearing_commit_latency_ms histogram\n"
        "clearing_commit_latency_ms_count 1\n"
        "clearing_commit_latency_ms_sum 3\n"
        "clearing_commit_latency_ms_bucket{le=\"1\"} 0\n"
        "clearing_commit_latency_ms_bucket{le=\"10\"} 1\n"
        "clearing_commit_latency_ms_bucket{le=\"+Inf\"} 1\n");
}

TEST_CASE("escaping: label values escape backslash, quote and newline; HELP not the quote") {
  Registry registry;
  registry.counter("clearing_parked_total", "Parked \"bad\" input\\ per\nreason.", {"reason"})
      .with({"a\\b \"quoted\"\nnext"})
      .inc();
  CHECK(registry.render() ==
        "# HELP clearing_parked_total Parked \"bad\" input\\\\ per\\nreason.\n"
        "# TYPE clearing_parked_total counter\n"
        "clearing_parked_total{reason=\"a\\\\b \\\"quoted\\\"\\nnext\"} 1\n");
}

TEST_CASE("families are rendered in name order") {
  Registry registry;
  registry.gauge("b_metric", "B.").with({}).set(2);
  registry.counter("a_metric_total", "A.").with({}).inc();
  const auto text = registry.render();
  CHECK(text.find("a_metric_total") < text.find("b_metric"));
}

TEST_CASE("concurrent increments are all counted") {
  Registry registry;
  Counter c = registry.counter("clearing_hits_total", "Hits.").with({});
  Histogram h = registry.histogram("clearing_hit_seconds", "Hit time.", {}, {1}).with({});
  constexpr int kThreads = 4;
  constexpr int kIncrements = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(c.value() == kThreads * kIncrements);
  CHECK(registry.render().find("clearing_hit_seconds_count 400000\n") != std::string::npos);
}

namespace {

// Whether `text` has exactly this line.
bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

// `promtool check metrics` (the Prometheus linter) on `text`: its exit status, 0 when the
// text is valid and without lint problems (promtool prints them unless told to be quiet).
// PROMTOOL names another binary than the one on PATH.
int promtool_check(const std::string& text, bool quiet = false) {
  const std::string command =
      std::string("\"${PROMTOOL:-promtool}\" check metrics") + (quiet ? " >/dev/null 2>&1" : "");
  FILE* pipe = popen(command.c_str(), "w");
  REQUIRE(pipe != nullptr);
  CHECK(std::fwrite(text.data(), 1, text.size(), pipe) == text.size());
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// A registry with every kind of family passes promtool, and the lines that make it valid
// are as the format says: escapes, a counter from a callback, histogram buckets up to +Inf.
// promtool comes from Debian's `prometheus`, which scripts/setup installs; the test fails
// without it: a lint that is skipped on a fresh machine checks nothing (issue 17). CTest runs
// this case as base_metrics_promtool_test.
TEST_CASE("sample for promtool") {
  REQUIRE_MESSAGE(
      std::system("command -v \"${PROMTOOL:-promtool}\" >/dev/null") == 0,
      "promtool not found: run scripts/setup (Debian package prometheus) or set PROMTOOL");
  Registry registry;
  registry.counter("clearing_answers_total", "Clearing answers by class.", {"class"})
      .with({"settled"})
      .inc(3);
  registry.gauge("clearing_relay_lag_events", "Events not yet published.", {"stream"})
      .with({"adapter.dk.payments.v1"})
      .set(2);
  registry.gauge_callback("clearing_transfers", "Transfers by state.", {"state"}, [] {
    return std::vector<std::pair<LabelValues, double>>{{{"settled"}, 5}, {{"accepted"}, 1}};
  });
  auto latency = registry
                     .histogram("clearing_attempt_duration_seconds", "Clearing call latency.",
                                {"endpoint"}, {0.01, 0.1, 1})
                     .with({"submit"});
  latency.observe(0.02);
  latency.observe(2);
  registry.counter_callback(
      "clearing_feed_failures_total", "Feed failures since start.", {"kind"}, [] {
        return std::vector<std::pair<LabelValues, double>>{{{"timeout"}, 2}, {{"maintenance"}, 0}};
      });
  registry.counter("clearing_parked_total", "Parked \"bad\" input\\ by\nreason.", {"reason"})
      .with({"not \"json\"\\\n"})
      .inc();
  const std::string text = registry.render();
  INFO(text);

  CHECK(has_line(text, "clearing_answers_total{class=\"settled\"} 3"));
  CHECK(has_line(text, "clearing_relay_lag_events{stream=\"adapter.dk.payments.v1\"} 2"));
  CHECK(has_line(text, "# TYPE clearing_feed_failures_total counter"));
  CHECK(has_line(text, "clearing_feed_failures_total{kind=\"maintenance\"} 0"));
  CHECK(
      text.find(
          "clearing_transfers{state=\"accepted\"} 1\nclearing_transfers{state=\"settled\"} 5\n") !=
      std::string::npos);
  CHECK(has_line(text,
                 "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"0.01\"} 0"));
  CHECK(
      has_line(text, "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"0.1\"} 1"));
  CHECK(has_line(text,
                 "clearing_attempt_duration_seconds_bucket{endpoint=\"submit\",le=\"+Inf\"} 2"));
  CHECK(has_line(text, "clearing_attempt_duration_seconds_sum{endpoint=\"submit\"} 2.02"));
  CHECK(has_line(text, "clearing_attempt_duration_seconds_count{endpoint=\"submit\"} 2"));
  // HELP escapes backslash and newline; a label value also the quote.
  CHECK(has_line(text, "# HELP clearing_parked_total Parked \"bad\" input\\\\ by\\nreason."));
  CHECK(has_line(text, "clearing_parked_total{reason=\"not \\\"json\\\"\\\\\\n\"} 1"));

  CHECK(promtool_check(text) == 0);
  // promtool does read what it is given: a raw newline in HELP, a counter without `_total`.
  CHECK(promtool_check(text + "# HELP clearing_broken Broken\nhelp.\n", true) != 0);
  CHECK(
      promtool_check(
          text + "# HELP clearing_calls Calls.\n# TYPE clearing_calls counter\nclearing_calls 1\n",
          true) != 0);
}
