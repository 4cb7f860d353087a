// The contradiction alarm (issue 22, item 4; commit eda0495) made to happen by the dispatcher:
// a transfer settled (another instance recorded the clearing's ACSC for the same attempt
// while this one's call was under way), then this instance's answer says rejected. The
// saga records ContradictingClearingAnswerReceived and keeps the outcome; the dispatcher logs
// one error-level line, which in JSON mode parses, says level error, and carries no name and no
// account number; clearing_contradictions_total goes from 0 to 1.

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/logging.hpp"
#include "hostile_clearing_client.hpp"
#include "hostile_http_server.hpp"
#include "service_metrics.hpp"

using namespace clearing;
using namespace clearing::testing;

namespace {

// The value of `series` in a /metrics text, or nullopt.
std::optional<double> metric(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

// The dispatcher's log lines, in the JSON format, while it lives.
struct CapturedJsonLog {
  std::ostringstream lines;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink =
      std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
  std::shared_ptr<spdlog::logger> log = base::module_logger("dispatcher");
  CapturedJsonLog() {
    sink->set_formatter(base::make_log_formatter(base::LogFormat::json));
    log->sinks().push_back(sink);
  }
  ~CapturedJsonLog() {
    auto& sinks = log->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  }
};

}  // namespace

TEST_CASE(
    "a contradicting answer after a terminal outcome: one event, one error-level JSON line "
    "without personal data, and clearing_contradictions_total goes up") {
  SagaDatabase db;
  base::SystemClock clock;
  auto command = make_initiate(1, RequestKind::valid, clock.now());
  const auto id = command.request.transfer_id;
  REQUIRE(db.transfers->execute(command, {command.correlation_id, "core-1", nullptr, ""}));

  // While this instance's submission is under way, another records the clearing's ACSC for
  // the same attempt (a lease taken over); then this call's answer comes: rejected.
  HostileHttpServer server([&](const ScriptedRequest& request) -> ScriptedReply {
    if (request.method != "POST") return {http_response(500, "{}"), false};
    sagas::RecordClearingAnswer settled;
    settled.transfer_id = id;
    settled.attempt = 1;
    settled.kind = sagas::ClearingAction::submit;
    settled.cls = sagas::ClearingAnswerClass::settled;
    settled.clearing_reference = "CLR-FIRST";
    settled.settlement_date = "2026-11-26";
    settled.now = clock.now();
    settled.policy = fast_policy();
    auto recorded = db.transfers->execute(
        settled, {command.correlation_id, "other", nullptr, "answer|" + id + "|1|other-instance"});
    if (!recorded) return {http_response(500, "{}"), false};
    return {http_response(200, R"({"status":"RJCT","reason_code":"AC04","reason":"closed"})"),
            false};
  });
  auto client = start_hostile_client(server, HostileConnections::own_per_call);

  base::metrics::Registry registry;
  std::unique_ptr<clearing_client::ClearingClient> no_client;
  std::unique_ptr<adapter::Dispatcher> no_dispatcher;
  std::unique_ptr<adapter::IncomingPoller> no_poller;
  std::unique_ptr<eventstore::Subscription> no_derivation;
  auto lookups = std::make_shared<external_streams::DerivationLookups>();
  std::unique_ptr<external_streams::StreamConsumer> no_consumer;
  adapter::register_service_metrics(
      registry,
      {db.pool, no_client, no_dispatcher, no_poller, no_derivation, lookups, no_consumer, clock},
      base::module_logger("test"));
  CHECK(metric(registry.render(), "clearing_contradictions_total") == 0.0);

  CapturedJsonLog captured;
  adapter::DispatcherOptions options;
  options.owner = "alarm";
  options.policy = fast_policy();
  adapter::Dispatcher dispatcher(*db.transfers, *client, clock, options);
  REQUIRE(dispatcher.run_once());

  // The outcome stands; the contradiction is an event beside it.
  CHECK(db.statuses() == std::map<std::string, int>{{"succeeded", 1}});
  CHECK(db.database.query_value("select string_agg(type, ',' order by version) from events where "
                                "stream_id = 'transfer-" +
                                id + "'") ==
        "TransferInitiated,TransferSettled,ContradictingClearingAnswerReceived");
  CHECK(metric(registry.render(), "clearing_contradictions_total") == 1.0);

  // One error line about it, JSON, without names or accounts.
  std::vector<nlohmann::json> errors;
  std::istringstream in(captured.lines.str());
  for (std::string line; std::getline(in, line);) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_MESSAGE(!json.is_discarded(), line);
    if (json.value("level", "") == "error") errors.push_back(json);
    for (const auto& personal :
         {command.request.debtor.name, command.request.creditor.name,
          command.request.debtor.account.id, command.request.creditor.account.id}) {
      CAPTURE(personal);
      CHECK(line.find(personal) == std::string::npos);
    }
  }
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].value("module", "") == "dispatcher");
  CHECK(errors[0].value("transfer_id", "") == id);
  CHECK(errors[0].value("class", "") == "rejected");
  CHECK(errors[0].value("correlation_id", "") == command.correlation_id);
  CHECK(errors[0].value("message", "").find("ALARM contradicting clearing answer") == 0);
}
