// One trace across every process (issue 22, item 1): core-sim, clearing-adapter and
// clearing-mock run as processes of their own, each exporting OTLP/HTTP to a receiver in this
// test. For each transfer the core requested, one trace runs core → adapter → clearing →
// adapter → core, parent by parent:
//
//   core-sim          core request transfer            (FundsReserved keeps its context)
//   core-sim            publish core.dk.payments.v1    (the relay: the traceparent header)
//   clearing-adapter      consume core.dk.payments.v1
//   clearing-adapter        decide                     (TransferInitiated keeps its context)
//   clearing-adapter          clearing submit          (the call's traceparent header)
//   clearing-mock               the mock's server span
//   clearing-adapter            decide                 (the answer's events keep its context)
//   clearing-adapter              derive …             (the outcome's derivation)
//   clearing-adapter              publish adapter.dk.payments.v1
//   core-sim                        consume adapter.dk.payments.v1
//
// Exported attributes carry ids and classes only: the transfers' account numbers are in no span.

#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "clearing/tracing/otlp_receiver.hpp"
#include "system_processes.hpp"

using namespace clearing;
using namespace clearing::testing;
using clearing::processes::Process;
using Span = tracing::testing::OtlpReceiver::ReceivedSpan;

namespace {

constexpr int kTransfers = 4;

std::map<std::string, std::string> otel(const std::string& endpoint, const std::string& service) {
  return {{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint}, {"OTEL_SERVICE_NAME", service}};
}

std::string string_attribute(const Span& s, const std::string& key) {
  const auto value = s.attribute(key);
  return value.is_object() ? value.value("stringValue", "") : std::string();
}

// The span of `trace` named `name` (by prefix) in `service` whose parent is `parent`.
const Span* child(const std::vector<Span>& spans, const Span& parent, const std::string& service,
                  const std::string& name) {
  for (const auto& s : spans)
    if (s.trace_id() == parent.trace_id() && s.parent_span_id() == parent.span_id() &&
        s.service == service && s.name().rfind(name, 0) == 0)
      return &s;
  return nullptr;
}

std::vector<std::string> column(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  std::vector<std::string> out;
  for (const auto& row : tx.exec(sql)) out.push_back(row[0].as<std::string>());
  return out;
}

}  // namespace

TEST_CASE("one trace runs core-sim → adapter → clearing-mock → adapter → core-sim") {
  tracing::testing::OtlpReceiver receiver;
  SystemProcesses system({.name = "tracing_processes",
                          .mock = {.seed = 3},
                          .mock_env = otel(receiver.endpoint(), "clearing-mock"),
                          .adapter_env = otel(receiver.endpoint(), "clearing-adapter")});
  auto core_args = system.core_args();
  core_args.transfers = kTransfers;
  core_args.seed = 9;
  core_args.timeout_s = 120;
  Process core(support::core_sim_argv(CORE_SIM, core_args), otel(receiver.endpoint(), "core-sim"));
  after(core.read_line(30'000), "catch-up ");
  // core-sim ends when every transfer is resolved, posting its queued spans as it stops; the
  // adapter and the mock post theirs when stopped by SIGTERM.
  REQUIRE_MESSAGE(core.wait(150'000) == 0, core.stderr_text().substr(0, 3000));
  system.adapter.signal(SIGTERM);
  CHECK(system.adapter.wait(30'000) == 0);
  system.mock.signal(SIGTERM);
  CHECK(system.mock.wait(30'000) == 0);

  const auto spans = receiver.spans();
  std::set<std::string> services;
  for (const auto& s : spans) services.insert(s.service);
  CHECK(services == std::set<std::string>{"core-sim", "clearing-adapter", "clearing-mock"});

  const auto transfers = column(system.core_db, "select transfer_id from core_transfers");
  REQUIRE(transfers.size() == static_cast<std::size_t>(kTransfers));
  std::set<std::string> traces;
  for (const auto& id : transfers) {
    CAPTURE(id);
    const Span* root = nullptr;
    for (const auto& s : spans)
      if (s.service == "core-sim" && s.name() == "core request transfer" &&
          string_attribute(s, "transfer.id") == id)
        root = &s;
    REQUIRE(root != nullptr);
    CHECK(root->parent_span_id().empty());
    traces.insert(root->trace_id());

    const auto* published = child(spans, *root, "core-sim", "publish core.dk.payments.v1");
    REQUIRE(published != nullptr);
    const auto* consumed = child(spans, *published, "clearing-adapter", "consume core.dk");
    REQUIRE(consumed != nullptr);
    CHECK(string_attribute(*consumed, "transfer.id") == id);
    const auto* decided = child(spans, *consumed, "clearing-adapter", "decide");
    REQUIRE(decided != nullptr);
    // The first attempt, under the decision that scheduled it; the mock's span under it.
    const auto* call = child(spans, *decided, "clearing-adapter", "clearing submit");
    REQUIRE(call != nullptr);
    CHECK(string_attribute(*call, "transfer.id") == id);
    CHECK(child(spans, *call, "clearing-mock", "") != nullptr);
    // The settled answer's decision, the derivation of the outcome, its publication and the
    // core's consumption of it, each under the one before, all in the root's trace. The mock
    // may answer a first submit with a pending or a timeout: the chain ends in the attempt
    // whose decision led to the outcome, found by walking down from the root.
    const Span* core_consumed = nullptr;
    for (const auto& s : spans)
      if (s.trace_id() == root->trace_id() && s.service == "core-sim" &&
          s.name() == "consume adapter.dk.payments.v1")
        core_consumed = &s;
    REQUIRE(core_consumed != nullptr);
    // Its ancestors, parent by parent, up to the root: each in the same trace.
    std::vector<std::string> chain;
    const Span* at = core_consumed;
    for (int depth = 0; at != nullptr && depth < 64; ++depth) {
      chain.push_back(at->service + ":" + at->name());
      const Span* parent = nullptr;
      for (const auto& s : spans)
        if (s.trace_id() == at->trace_id() && s.span_id() == at->parent_span_id()) parent = &s;
      at = parent;
    }
    std::string told;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) told += *it + " > ";
    CAPTURE(told);
    REQUIRE(chain.size() >= 8);
    CHECK(chain.back() == "core-sim:core request transfer");
    CHECK(chain[0] == "core-sim:consume adapter.dk.payments.v1");
    CHECK(chain[1] == "clearing-adapter:publish adapter.dk.payments.v1");
    CHECK(told.find("clearing-adapter:clearing ") != std::string::npos);
    CHECK(chain[2] == "clearing-adapter:decide");  // the settled answer's decision
    // The outcome's derivation, beside its publication under that decision.
    const Span* settled = core_consumed;
    for (int up = 0; up < 2 && settled != nullptr; ++up) {
      const Span* parent = nullptr;
      for (const auto& s : spans)
        if (s.trace_id() == settled->trace_id() && s.span_id() == settled->parent_span_id())
          parent = &s;
      settled = parent;
    }
    REQUIRE(settled != nullptr);
    CHECK(child(spans, *settled, "clearing-adapter", "derive") != nullptr);
  }
  CHECK(traces.size() == transfers.size());  // a trace per transfer

  // No account number of the core's transfers in any exported span.
  const auto accounts = column(system.core_db, "select distinct account_id from core_transfers");
  REQUIRE_FALSE(accounts.empty());
  for (const auto& body : receiver.bodies())
    for (const auto& account : accounts) CHECK(body.find(account) == std::string::npos);
}
