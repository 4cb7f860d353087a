// What /readyz answers and what the log says about readiness (readiness.hpp): pure, no
// sockets. Moved from the HTTP server's test when the server moved to http/.

#include "clearing/adapter/readiness.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace clearing::adapter;

namespace {

// A logger that writes "<level> <message>\n" lines into `lines`.
std::shared_ptr<spdlog::logger> logger_into(std::ostringstream& lines, const std::string& name) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
  sink->set_pattern("%l %v");
  return std::make_shared<spdlog::logger>(name, sink);
}

// A ReadinessLog whose lines the test reads.
struct CapturedLog {
  explicit CapturedLog(const std::string& name) : log(logger_into(lines, name)) {}
  std::ostringstream lines;  // before `log`: it is made first
  ReadinessLog log;
};

}  // namespace

TEST_CASE("/readyz names the components that are not ready, logged once per change (item 7)") {
  // The service's /readyz used to answer {"detail":"consumer: <PostgreSQL error>"} with the
  // DETAIL/CONTEXT of the failed row (an account number, a name), and the consumer logged it
  // at every retry. The states now are words from a fixed list; nothing else gets through.
  CapturedLog captured("readiness-test");
  auto& log = captured.log;
  const auto& lines = captured.lines;
  using C = ReadinessComponent;
  using S = ComponentState;
  const std::vector<ComponentReadiness> starting{{C::service, S::starting, {}},
                                                 {C::database, S::ok, {}},
                                                 {C::inbound_consumer, S::not_joined, {}}};
  const std::vector<ComponentReadiness> ready{
      {C::service, S::ok, {}}, {C::database, S::ok, {}}, {C::inbound_consumer, S::ok, {}}};
  const std::vector<ComponentReadiness> broken{
      {C::service, S::ok, {}},
      {C::database, S::unavailable, clearing::eventstore::StoreErrc::connection_failed},
      {C::inbound_consumer, S::stalled, {}}};

  const auto first = log.observe(starting);
  CHECK_FALSE(first.ready);
  CHECK(
      first.body ==
      R"({"ready":false,"components":{"service":"starting","database":"ok","inbound_consumer":"not_joined"}})");
  for (int probe = 0; probe < 19; ++probe) log.observe(starting);  // no new line
  const auto up = log.observe(ready);
  CHECK(up.ready);
  CHECK(up.body ==
        R"({"ready":true,"components":{"service":"ok","database":"ok","inbound_consumer":"ok"}})");
  for (int probe = 0; probe < 19; ++probe) log.observe(broken);
  const auto down = log.observe(broken);
  CHECK_FALSE(down.ready);
  CHECK(
      down.body ==
      R"({"ready":false,"components":{"service":"ok","database":"unavailable","inbound_consumer":"stalled"}})");
  CHECK(down.summary ==
        "service=ok database=unavailable(connection_failed) inbound_consumer=stalled");
  log.observe(ready);
  CHECK(lines.str() ==
        "info not ready yet service=starting database=ok inbound_consumer=not_joined\n"
        "info ready service=ok database=ok inbound_consumer=ok\n"
        "warning not ready service=ok database=unavailable(connection_failed) "
        "inbound_consumer=stalled\n"
        "info ready service=ok database=ok inbound_consumer=ok\n");
}

TEST_CASE(
    "/readyz: an inbound consumer with some partitions held is degraded, still ready; all held is "
    "a stall") {
  // One held partition must raise an alert (clearing_inbound_partitions_held), not take the
  // instance out of rotation: the other partitions flow (docs/streams.md).
  CapturedLog captured("readiness-degraded-test");
  auto& log = captured.log;
  const auto& lines = captured.lines;
  using C = ReadinessComponent;
  using S = ComponentState;
  const auto degraded =
      log.observe({{C::service, S::ok, {}}, {C::inbound_consumer, S::degraded, {}}});
  CHECK(degraded.ready);
  CHECK(degraded.body ==
        R"({"ready":true,"components":{"service":"ok","inbound_consumer":"degraded"}})");
  const auto stalled =
      log.observe({{C::service, S::ok, {}}, {C::inbound_consumer, S::stalled, {}}});
  CHECK_FALSE(stalled.ready);
  CHECK(lines.str() ==
        "info ready service=ok inbound_consumer=degraded\n"
        "warning not ready service=ok inbound_consumer=stalled\n");
}

TEST_CASE(
    "/readyz covers the dispatcher and the incoming poller: starting, ok, failing, degraded, "
    "stopped") {
  using S = ComponentState;
  CHECK(worker_state({}) == S::starting);                 // not made yet
  CHECK(worker_state({.created = true}) == S::starting);  // made, the service not started
  CHECK(worker_state({.created = true, .service_started = true, .running = true}) == S::ok);
  // Its claims or pages fail in the database: not ready.
  CHECK(
      worker_state({.created = true, .service_started = true, .running = true, .failing = true}) ==
      S::failing);
  // The clearing's feed fails (a maintenance window): an alert, still ready.
  CHECK(
      worker_state({.created = true, .service_started = true, .running = true, .degraded = true}) ==
      S::degraded);
  CHECK(worker_state({.created = true,
                      .service_started = true,
                      .running = true,
                      .failing = true,
                      .degraded = true}) == S::failing);
  // Its thread has ended while the service runs (it is stopping).
  CHECK(worker_state({.created = true, .service_started = true, .running = false}) == S::stopped);

  CapturedLog captured("readiness-workers-test");
  auto& log = captured.log;
  const auto& lines = captured.lines;
  using C = ReadinessComponent;
  const auto feed_down =
      log.observe({{C::dispatcher, S::ok, {}}, {C::incoming_poller, S::degraded, {}}});
  CHECK(feed_down.ready);
  CHECK(feed_down.body ==
        R"({"ready":true,"components":{"dispatcher":"ok","incoming_poller":"degraded"}})");
  const auto stopping =
      log.observe({{C::dispatcher, S::stopped, {}}, {C::incoming_poller, S::failing, {}}});
  CHECK_FALSE(stopping.ready);
  CHECK(stopping.body ==
        R"({"ready":false,"components":{"dispatcher":"stopped","incoming_poller":"failing"}})");
  CHECK(lines.str() ==
        "info ready dispatcher=ok incoming_poller=degraded\n"
        "warning not ready dispatcher=stopped incoming_poller=failing\n");
}
