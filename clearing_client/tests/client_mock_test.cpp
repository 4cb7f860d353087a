// The clearing client against the clearing mock, in-process: one test per answer class and
// per fault class, plus the pool, the in-flight bound, deadlines, stop() and the incoming feed.
// Every test starts its own mock, so tests do not share ledgers or fault schedules.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "clearing/clearing_client/client.hpp"
#include "clearing/clearing_mock/mock_server.hpp"
#include "client_test_support.hpp"

using namespace clearing::clearing_client;
using namespace clearing::clearing_mock;
using clearing::clearing_client::testing::get;
using clearing::clearing_client::testing::kHangBound;
using clearing::clearing_client::testing::transfer;
using namespace std::chrono_literals;

namespace {

struct Setup {
  std::unique_ptr<MockServer> mock;
  std::unique_ptr<ClearingClient> client;
};

ClientOptions client_options(const MockServer& mock) {
  ClientOptions options;
  options.base_url = mock.base_url();
  options.bearer_token = "mock-token";
  options.request_timeout_ms = 3'000;
  options.connect_timeout_ms = 1'000;
  options.in_flight_max = 8;
  options.pool_connections_max = 4;
  return options;
}

Setup start(MockOptions mock_options = {}, const std::function<void(ClientOptions&)>& adjust = {}) {
  Setup setup;
  auto mock = MockServer::start(std::move(mock_options));
  REQUIRE_MESSAGE(mock.has_value(), (mock ? "" : mock.error()));
  setup.mock = std::move(*mock);
  auto options = client_options(*setup.mock);
  if (adjust) adjust(options);
  auto client = ClearingClient::start(options);
  REQUIRE_MESSAGE(client.has_value(), (client ? "" : client.error().message));
  setup.client = std::move(*client);
  return setup;
}

// A second client for the setup's mock, the same options but for the base URL.
std::unique_ptr<ClearingClient> client_at(const Setup& setup, std::string base_url) {
  auto options = client_options(*setup.mock);
  options.base_url = std::move(base_url);
  auto client = ClearingClient::start(options);
  REQUIRE(client);
  return std::move(*client);
}

ClearingAnswer submit(Setup& setup, SubmitRequest request) {
  return get(setup.client->submit(std::move(request)));
}

ClearingAnswer inquire(Setup& setup, std::string reference) {
  return get(setup.client->inquire(std::move(reference)));
}

std::optional<LedgerEntry> ledger_row(Setup& setup, const std::string& reference) {
  for (auto& row : setup.mock->state().ledger()) {
    if (row.reference == reference) return row;
  }
  return std::nullopt;
}

void set_fault(Setup& setup, double FaultSettings::*fault, double probability) {
  auto faults = setup.mock->state().faults();
  faults.*fault = probability;
  setup.mock->state().set_faults(faults);
}

void clear_faults(Setup& setup) {
  auto faults = setup.mock->state().faults();
  const auto hold_ms = faults.hold_ms;
  faults = FaultSettings{};
  faults.hold_ms = hold_ms;
  setup.mock->state().set_faults(faults);
}

// Waits (bounded) until the mock sees `count` requests in flight.
void wait_for_mock_in_flight(Setup& setup, std::int64_t count) {
  const auto until = std::chrono::steady_clock::now() + kHangBound;
  while (setup.mock->state().stats().in_flight_now < count) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(5ms);
  }
}

void check_unknown(const ClearingAnswer& answer, UnknownCause cause) {
  INFO("answer=", to_string(answer.answer_class), " cause=", to_string(answer.cause),
       " detail=", answer.detail);
  CHECK(answer.answer_class == AnswerClass::unknown);
  CHECK(answer.cause == cause);
}

// The mock's options with `fault` at probability 1.0: every request meets it.
MockOptions always(double FaultSettings::*fault, MockOptions options = {}) {
  options.faults.*fault = 1.0;
  return options;
}

// The mock's options with a delay of min_ms to max_ms (uniform) before `probability` of the
// answers.
MockOptions delayed(double probability, int min_ms, int max_ms, MockOptions options = {}) {
  options.faults.delay = probability;
  options.faults.delay_ms_min = min_ms;
  options.faults.delay_ms_max = max_ms;
  return options;
}

// After a fault that struck once the mainframe had executed: executed exactly once, and with
// the fault gone the same request (the same key) settles with the ledger's reference, still
// executed once.
void check_executed_once_then_settles(Setup& setup, const std::string& reference) {
  REQUIRE(ledger_row(setup, reference));
  CHECK(ledger_row(setup, reference)->execution_count == 1);
  clear_faults(setup);
  const auto final_answer = submit(setup, transfer(reference));
  CHECK(final_answer.answer_class == AnswerClass::settled);
  CHECK(final_answer.clearing_reference == ledger_row(setup, reference)->clearing_reference);
  CHECK(ledger_row(setup, reference)->execution_count == 1);
}

// Short client deadline, long mock hold: the timeout faults outlast the client.
MockOptions holding_mock() {
  MockOptions options;
  options.faults.hold_ms = 3'000;
  return options;
}
void short_deadline(ClientOptions& options) {
  options.request_timeout_ms = 300;
  options.connect_timeout_ms = 300;
}

}  // namespace

// ---- answer classes -------------------------------------------------------------------------

TEST_CASE("settled: 201 ACSC with clearing reference and settlement date") {
  auto setup = start();
  const auto answer = submit(setup, transfer("t-settled"));
  CHECK(answer.answer_class == AnswerClass::settled);
  CHECK(answer.http_status == 201);
  CHECK(answer.status == "ACSC");
  CHECK_FALSE(answer.settlement_date.empty());
  const auto row = ledger_row(setup, "t-settled");
  REQUIRE(row);
  CHECK(row->clearing_reference == answer.clearing_reference);
  CHECK(row->execution_count == 1);
  CHECK(inquire(setup, "t-settled").answer_class == AnswerClass::settled);
}

TEST_CASE("pending after the cut-off, then settled on the second inquiry") {
  MockOptions options;
  options.always_after_cutoff = true;
  options.settle_after_inquiries = 2;
  auto setup = start(options);
  const auto accepted = submit(setup, transfer("t-pending"));
  CHECK(accepted.answer_class == AnswerClass::pending);
  CHECK(accepted.http_status == 202);
  const auto first = inquire(setup, "t-pending");
  CHECK(first.answer_class == AnswerClass::pending);
  const auto second = inquire(setup, "t-pending");
  CHECK(second.answer_class == AnswerClass::settled);
  CHECK(second.clearing_reference == accepted.clearing_reference);
  CHECK(second.settlement_date == accepted.settlement_date);
  CHECK(ledger_row(setup, "t-pending")->execution_count == 1);
}

TEST_CASE("rejected with every reason code the mock produces, never executed") {
  MockOptions options;
  options.amount_minor_max = 1'000'000;
  auto setup = start(options);
  struct Case {
    const char* name;
    SubmitRequest request;
    const char* reason_code;
  };
  auto bad_debtor = transfer("r-ac01-debtor");
  bad_debtor.debtor_account = "5301-12345678901";  // 11-digit account number
  const Case cases[] = {
      {"invalid creditor IBAN", transfer("r-ac01", "DK5000400440116244"), "AC01"},
      {"invalid debtor BBAN", bad_debtor, "AC01"},
      {"closed account", transfer("r-ac04", "5301-0000000004"), "AC04"},
      {"blocked account", transfer("r-ac06", "5301-0000000006"), "AC06"},
      {"wrong currency", transfer("r-am03", "5301-0000000001", 100, "SEK"), "AM03"},
      {"over the limit", transfer("r-am02", "5301-0000000001", 2'000'000), "AM02"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const auto answer = submit(setup, c.request);
    CHECK(answer.answer_class == AnswerClass::rejected);
    CHECK(answer.http_status == 200);
    CHECK(answer.reason_code == c.reason_code);
    CHECK_FALSE(answer.reason.empty());
    const auto inquired = inquire(setup, c.request.reference);
    CHECK(inquired.answer_class == AnswerClass::rejected);
    CHECK(inquired.reason_code == c.reason_code);
    CHECK(ledger_row(setup, c.request.reference)->execution_count == 0);
  }
}

TEST_CASE("in_progress: the same key while the first request is still being processed") {
  auto setup = start(delayed(1.0, 600, 600));
  auto first = setup.client->submit(transfer("t-busy"));
  wait_for_mock_in_flight(setup, 1);
  REQUIRE(setup.mock->state().in_progress_count() == 1);
  const auto second = submit(setup, transfer("t-busy"));
  CHECK(second.answer_class == AnswerClass::in_progress);
  CHECK(second.http_status == 409);
  CHECK(get(std::move(first)).answer_class == AnswerClass::settled);
  CHECK(ledger_row(setup, "t-busy")->execution_count == 1);
}

TEST_CASE("key_reused: the same key with another body") {
  auto setup = start();
  REQUIRE(submit(setup, transfer("t-reuse")).answer_class == AnswerClass::settled);
  const auto answer = submit(setup, transfer("t-reuse", "DK5000400440116243", 1));
  CHECK(answer.answer_class == AnswerClass::key_reused);
  CHECK(answer.http_status == 422);
  CHECK(ledger_row(setup, "t-reuse")->execution_count == 1);
}

TEST_CASE("the same key and the same body replay the first answer") {
  auto setup = start();
  const auto first = submit(setup, transfer("t-replay"));
  const auto again = submit(setup, transfer("t-replay"));
  CHECK(first.answer_class == AnswerClass::settled);
  CHECK(again.answer_class == AnswerClass::settled);
  CHECK(again.clearing_reference == first.clearing_reference);
  CHECK(again.settlement_date == first.settlement_date);
  CHECK(setup.mock->state().stats().replays == 1);
  CHECK(ledger_row(setup, "t-replay")->execution_count == 1);
}

TEST_CASE("maintenance: 503 with Retry-After, nothing executed") {
  MockOptions options;
  options.faults.maintenance_503 = 1.0;
  options.faults.retry_after_s = 7;
  auto setup = start(options);
  const auto answer = submit(setup, transfer("t-maint"));
  CHECK(answer.answer_class == AnswerClass::maintenance);
  CHECK(answer.http_status == 503);
  CHECK(answer.retry_after_ms == 7'000);
  CHECK_FALSE(ledger_row(setup, "t-maint"));
  CHECK(setup.mock->state().stats().faults.at("maintenance_503") == 1);
}

TEST_CASE("malformed_request: 400 for a bad amount and for a missing field") {
  auto setup = start();
  CHECK(submit(setup, transfer("t-bad", "DK5000400440116243", 0)).answer_class ==
        AnswerClass::malformed_request);
  auto nameless = transfer("t-bad2");
  nameless.creditor_name.clear();
  const auto answer = submit(setup, nameless);
  CHECK(answer.answer_class == AnswerClass::malformed_request);
  CHECK(answer.http_status == 400);
  CHECK(setup.mock->state().ledger().empty());
}

TEST_CASE("not_found: inquiry of a reference the clearing never accepted") {
  auto setup = start();
  const auto answer = inquire(setup, "never-sent");
  CHECK(answer.answer_class == AnswerClass::not_found);
  CHECK(answer.http_status == 404);
}

TEST_CASE("unauthorized: a wrong bearer token") {
  auto setup = start({}, [](ClientOptions& options) { options.bearer_token = "wrong"; });
  const auto answer = submit(setup, transfer("t-auth"));
  CHECK(answer.answer_class == AnswerClass::unauthorized);
  CHECK(answer.http_status == 401);
  CHECK(setup.mock->state().ledger().empty());
}

TEST_CASE("unknown/connect_failed: nothing listens") {
  std::string dead_url;
  {
    auto mock = MockServer::start({});
    REQUIRE(mock);
    dead_url = (*mock)->base_url();
  }  // stopped: the port is closed now
  ClientOptions options;
  options.base_url = dead_url;
  options.bearer_token = "mock-token";
  auto client = ClearingClient::start(options);
  REQUIRE(client);
  check_unknown(get((*client)->submit(transfer("t-dead"))), UnknownCause::connect_failed);
}

TEST_CASE("unknown/unexpected_status: a route the clearing does not know") {
  auto setup = start({}, [](ClientOptions& options) { options.base_url += "/wrong-prefix"; });
  const auto answer = submit(setup, transfer("t-route"));
  check_unknown(answer, UnknownCause::unexpected_status);
  CHECK(answer.http_status == 404);
}

// ---- fault classes, each at probability 1.0 ------------------------------------------------

TEST_CASE("fault delay: the answer comes late but right") {
  auto options = delayed(1.0, 50, 100);
  options.faults.latency_ms = 10;
  auto setup = start(options);
  CHECK(submit(setup, transfer("t-delay")).answer_class == AnswerClass::settled);
  CHECK(setup.mock->state().stats().faults.at("delay") == 1);
}

TEST_CASE("fault timeout_before_execute: unknown/timeout, nothing executed; the retry executes") {
  auto setup =
      start(always(&FaultSettings::timeout_before_execute, holding_mock()), short_deadline);
  check_unknown(submit(setup, transfer("t-tbe")), UnknownCause::timeout);
  CHECK_FALSE(ledger_row(setup, "t-tbe"));
  clear_faults(setup);
  // The held request still counts as in progress until its hold ends: retry until final.
  ClearingAnswer retried;
  for (int attempt = 0; attempt < 100; ++attempt) {  // bounded: the hold is 3 s
    retried = submit(setup, transfer("t-tbe"));
    if (retried.answer_class != AnswerClass::in_progress) break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(retried.answer_class == AnswerClass::settled);
  CHECK(ledger_row(setup, "t-tbe")->execution_count == 1);
}

TEST_CASE("fault timeout_after_execute: executed exactly once although the client retries") {
  auto setup = start(always(&FaultSettings::timeout_after_execute, holding_mock()), short_deadline);
  check_unknown(submit(setup, transfer("t-tae")), UnknownCause::timeout);
  check_unknown(submit(setup, transfer("t-tae")), UnknownCause::timeout);  // retry, same key
  check_executed_once_then_settles(setup, "t-tae");
  CHECK(setup.mock->state().stats().executions_total == 1);
}

TEST_CASE("fault close_after_execute: unknown/connection_reset, executed exactly once") {
  auto setup = start(always(&FaultSettings::close_after_execute));
  check_unknown(submit(setup, transfer("t-cae")), UnknownCause::connection_reset);
  check_unknown(submit(setup, transfer("t-cae")), UnknownCause::connection_reset);
  check_executed_once_then_settles(setup, "t-cae");
  CHECK(setup.mock->state().stats().executions_total == 1);
}

TEST_CASE("fault reset_before_execute: unknown/connection_reset, nothing executed") {
  auto setup = start(always(&FaultSettings::reset_before_execute));
  check_unknown(submit(setup, transfer("t-rbe")), UnknownCause::connection_reset);
  CHECK_FALSE(ledger_row(setup, "t-rbe"));
  clear_faults(setup);
  CHECK(submit(setup, transfer("t-rbe")).answer_class == AnswerClass::settled);
  CHECK(ledger_row(setup, "t-rbe")->execution_count == 1);
}

TEST_CASE("faults http_500 and http_502: unknown/server_error, nothing executed") {
  for (auto fault : {&FaultSettings::http_500, &FaultSettings::http_502}) {
    auto setup = start();
    set_fault(setup, fault, 1.0);
    const auto answer = submit(setup, transfer("t-5xx"));
    check_unknown(answer, UnknownCause::server_error);
    CHECK((answer.http_status == 500 || answer.http_status == 502));
    CHECK(setup.mock->state().ledger().empty());
  }
}

TEST_CASE("fault http_504: unknown/server_error, and the mainframe did execute") {
  auto setup = start(always(&FaultSettings::http_504));
  const auto answer = submit(setup, transfer("t-504"));
  check_unknown(answer, UnknownCause::server_error);
  CHECK(answer.http_status == 504);
  check_executed_once_then_settles(setup, "t-504");
}

TEST_CASE("fault error_body_200: unknown/error_body_200, nothing executed") {
  auto setup = start(always(&FaultSettings::error_body_200));
  const auto answer = submit(setup, transfer("t-e200"));
  check_unknown(answer, UnknownCause::error_body_200);
  CHECK(answer.http_status == 200);
  CHECK(setup.mock->state().ledger().empty());
}

TEST_CASE("fault malformed_json: unknown/unparsable_body, executed once, replay settles") {
  auto setup = start(always(&FaultSettings::malformed_json));
  check_unknown(submit(setup, transfer("t-json")), UnknownCause::unparsable_body);
  check_unknown(inquire(setup, "t-json"), UnknownCause::unparsable_body);
  check_executed_once_then_settles(setup, "t-json");
}

TEST_CASE("faults also hit inquiries and the feed") {
  auto setup = start(always(&FaultSettings::http_502));
  check_unknown(inquire(setup, "anything"), UnknownCause::server_error);
  const auto page = get(setup.client->incoming(std::nullopt, 10));
  CHECK_FALSE(page.ok);
  CHECK(page.failure.cause == UnknownCause::server_error);
}

// ---- pool, bounds, deadlines, stop ---------------------------------------------------------

void reuse(ClientOptions& options) { options.reuse_connections = true; }

TEST_CASE(
    "by default every call has a connection of its own: nothing is ever read on a connection "
    "another call used") {
  auto setup = start();
  for (int i = 0; i < 5; ++i)
    REQUIRE(submit(setup, transfer("t-own-" + std::to_string(i))).answer_class ==
            AnswerClass::settled);
  const auto stats = setup.client->stats();
  CHECK(stats.connections_opened == 5);
  CHECK(stats.connections_reused == 0);
  CHECK(setup.mock->state().stats().connections_accepted == 5);
}

TEST_CASE(
    "with reuse_connections, the pool reuses one keep-alive connection for sequential requests") {
  auto setup = start({}, reuse);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(submit(setup, transfer("t-pool-" + std::to_string(i))).answer_class ==
            AnswerClass::settled);
  }
  const auto stats = setup.client->stats();
  CHECK(stats.requests_started == 50);
  CHECK(stats.connections_opened == 1);
  CHECK(stats.connections_reused == 49);
  CHECK(setup.mock->state().stats().connections_accepted == 1);
}

TEST_CASE("a connection that broke is discarded, not reused") {
  auto setup = start(always(&FaultSettings::close_after_execute));
  check_unknown(submit(setup, transfer("t-broken")), UnknownCause::connection_reset);
  clear_faults(setup);
  CHECK(submit(setup, transfer("t-fresh")).answer_class == AnswerClass::settled);
  CHECK(setup.client->stats().connections_opened == 2);
}

TEST_CASE("a pooled connection the server closed while idle is replaced transparently") {
  MockOptions options;
  options.idle_timeout_ms = 100;
  auto setup = start(options, reuse);
  REQUIRE(submit(setup, transfer("t-idle-1")).answer_class == AnswerClass::settled);
  std::this_thread::sleep_for(400ms);  // the mock closes the idle connection meanwhile
  CHECK(submit(setup, transfer("t-idle-2")).answer_class == AnswerClass::settled);
  CHECK(setup.client->stats().connections_opened == 2);
  // Found closed before reuse (issue 16): nothing was written on it, so no stale retry.
  CHECK(setup.client->stats().idle_connections_discarded == 1);
  CHECK(setup.client->stats().stale_retries == 0);
  CHECK(setup.client->stats().connections_reused == 0);
}

TEST_CASE("no more than in_flight_max requests are on the wire at once") {
  auto setup = start(delayed(1.0, 100, 100), [](ClientOptions& client) {
    client.in_flight_max = 3;
    client.request_timeout_ms = 10'000;
    client.reuse_connections = true;  // so the connections opened show the bound too
  });
  std::vector<std::future<ClearingAnswer>> futures;
  for (int i = 0; i < 12; ++i) {
    futures.push_back(setup.client->submit(transfer("t-bound-" + std::to_string(i))));
  }
  for (auto& future : futures) CHECK(get(std::move(future)).answer_class == AnswerClass::settled);
  const auto stats = setup.client->stats();
  CHECK(stats.in_flight_peak <= 3);
  CHECK(stats.in_flight_peak >= 1);
  CHECK(stats.requests_started == 12);
  CHECK(setup.mock->state().stats().in_flight_peak <= 3);
  CHECK(stats.connections_opened <= 3);
}

TEST_CASE(
    "adaptive: while the clearing's latency holds, the limit grows and lets waiters through") {
  auto setup = start(delayed(1.0, 50, 50), [](ClientOptions& client) {
    client.in_flight_max = 64;
    client.adaptive_concurrency = true;
    client.concurrency_initial = 4;
    client.concurrency_min = 2;
    client.request_timeout_ms = 10'000;
  });
  CHECK(setup.client->concurrency_limit() == 4);
  std::vector<std::future<ClearingAnswer>> futures;
  for (int i = 0; i < 400; ++i) {
    futures.push_back(setup.client->submit(transfer("t-grow-" + std::to_string(i))));
  }
  for (auto& future : futures) CHECK(get(std::move(future)).answer_class == AnswerClass::settled);
  const auto stats = setup.client->stats();
  CHECK(stats.concurrency_limit > 4);
  CHECK(stats.concurrency_limit <= 64);
  CHECK(stats.concurrency_limit == setup.client->concurrency_limit());
  CHECK(stats.concurrency_limit_raises >= 1);
  CHECK(stats.in_flight_peak > 4);
  CHECK(stats.in_flight_peak <= 64);
  CHECK(setup.mock->state().stats().in_flight_peak <= 64);
}

TEST_CASE("adaptive: 503s cut the limit down to concurrency_min, and not below") {
  MockOptions options;
  options.faults.maintenance_503 = 1.0;
  auto setup = start(options, [](ClientOptions& client) {
    client.in_flight_max = 16;
    client.adaptive_concurrency = true;
    client.concurrency_initial = 16;
    client.concurrency_min = 2;
  });
  // Windows close after 100 ms and 10 answers: 16 -> 12 -> 9 -> 6 -> 4 -> 3 -> 2 takes six.
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until && setup.client->concurrency_limit() > 2) {
    std::vector<std::future<ClearingAnswer>> futures;
    for (int i = 0; i < 16; ++i) futures.push_back(setup.client->inquire("t-drop"));
    for (auto& future : futures) CHECK(get(std::move(future)).http_status == 503);
    std::this_thread::sleep_for(20ms);
  }
  const auto stats = setup.client->stats();
  CHECK(stats.concurrency_limit == 2);
  CHECK(stats.concurrency_limit_cuts >= 6);
  CHECK(stats.concurrency_limit_raises == 0);
}

TEST_CASE("fixed concurrency (the default): the limit is in_flight_max and never moves") {
  auto setup = start(delayed(1.0, 20, 20), [](ClientOptions& client) { client.in_flight_max = 5; });
  std::vector<std::future<ClearingAnswer>> futures;
  for (int i = 0; i < 60; ++i) {
    futures.push_back(setup.client->submit(transfer("t-fixed-" + std::to_string(i))));
  }
  for (auto& future : futures) CHECK(get(std::move(future)).answer_class == AnswerClass::settled);
  const auto stats = setup.client->stats();
  CHECK(stats.concurrency_limit == 5);
  CHECK(setup.client->concurrency_limit() == 5);
  CHECK(stats.concurrency_limit_raises + stats.concurrency_limit_cuts == 0);
  CHECK(stats.in_flight_peak == 5);
}

TEST_CASE("beyond waiting_max a call is refused at once: connect_failed, nothing sent") {
  auto setup = start(delayed(1.0, 500, 500), [](ClientOptions& client) {
    client.in_flight_max = 1;
    client.waiting_max = 1;
  });
  auto first = setup.client->submit(transfer("t-q-1"));   // on the wire
  auto second = setup.client->submit(transfer("t-q-2"));  // waits for the slot
  auto third = setup.client->submit(transfer("t-q-3"));   // over the limit
  const auto refused = get(std::move(third));
  check_unknown(refused, UnknownCause::connect_failed);
  CHECK(refused.detail.find("overloaded") != std::string::npos);
  CHECK(get(std::move(first)).answer_class == AnswerClass::settled);
  CHECK(get(std::move(second)).answer_class == AnswerClass::settled);
  CHECK_FALSE(ledger_row(setup, "t-q-3"));
  CHECK(setup.client->stats().rejected_overloaded == 1);
}

TEST_CASE("the deadline holds: a server that never answers gives unknown/timeout") {
  auto options = holding_mock();
  options.faults.hold_ms = 60'000;
  options.faults.timeout_before_execute = 1.0;
  auto setup = start(options, short_deadline);
  auto future = setup.client->inquire("t-deadline");
  // Far below the mock's hold: the answer can only come from the client's own deadline.
  REQUIRE(future.wait_for(kHangBound) == std::future_status::ready);
  check_unknown(future.get(), UnknownCause::timeout);
}

TEST_CASE("stop() cancels in-flight calls and refuses later ones, without throwing") {
  auto options = holding_mock();
  options.faults.hold_ms = 60'000;
  options.faults.timeout_before_execute = 1.0;
  auto setup = start(options, [](ClientOptions& client) { client.request_timeout_ms = 60'000; });
  auto in_flight = setup.client->submit(transfer("t-stop"));
  wait_for_mock_in_flight(setup, 1);
  setup.client->stop();
  REQUIRE(in_flight.wait_for(0s) == std::future_status::ready);
  const auto cancelled = in_flight.get();
  check_unknown(cancelled, UnknownCause::connection_reset);
  CHECK(cancelled.detail.find("cancelled") != std::string::npos);
  const auto later = get(setup.client->submit(transfer("t-after-stop")));
  check_unknown(later, UnknownCause::connection_reset);
  CHECK(later.detail.find("cancelled") != std::string::npos);
}

// ---- incoming feed -------------------------------------------------------------------------

TEST_CASE("the incoming feed pages to the end; re-sent payments keep their reference") {
  MockOptions options;
  options.incoming_generated = 10;
  options.incoming_resend_probability = 1.0;
  auto setup = start(options);
  std::optional<std::string> cursor;
  std::set<std::string> references;
  int delivered = 0;
  int resent = 0;
  for (int page_number = 0; page_number < 20; ++page_number) {  // bounded walk
    const auto page = get(setup.client->incoming(cursor, 4));
    REQUIRE(page.ok);
    for (const auto& payment : page.payments) {
      ++delivered;
      if (!references.insert(payment.clearing_reference).second) ++resent;
      CHECK(payment.amount_minor > 0);
      CHECK(payment.currency == "DKK");
      CHECK_FALSE(payment.creditor_account.empty());
      CHECK_FALSE(payment.received_at.empty());
    }
    if (page.next_cursor == cursor) break;  // nothing new
    cursor = page.next_cursor;
  }
  CHECK(references.size() == 10);
  CHECK(resent > 0);
  CHECK(delivered == 10 + resent);
  CHECK(setup.mock->state().stats().incoming_resends >= resent);

  REQUIRE(setup.mock->state()
              .add_incoming(R"({"clearing_reference":"INJ-1","amount_minor":700,
                  "currency":"DKK","debtor_account":"5301-0000000001",
                  "creditor_account":"5301-0000000002"})")
              .status == 201);
  const auto page = get(setup.client->incoming(cursor, 4));
  REQUIRE(page.ok);
  REQUIRE_FALSE(page.payments.empty());
  CHECK(page.payments.back().clearing_reference == "INJ-1");
}

// ---- TLS -----------------------------------------------------------------------------------

TEST_CASE("https to a server that does not speak TLS fails the handshake: connect_failed") {
  auto setup = start();
  auto client = client_at(setup, "https://127.0.0.1:" + std::to_string(setup.mock->port()));
  check_unknown(get(client->submit(transfer("t-tls"))), UnknownCause::connect_failed);
  CHECK(setup.mock->state().ledger().empty());
}

TEST_CASE("a missing CA file is refused at creation with a clear message") {
  ClientOptions options;
  options.base_url = "https://127.0.0.1:1";
  options.bearer_token = "t";
  options.ca_file = "/nonexistent/ca.pem";
  auto client = ClearingClient::start(options);
  REQUIRE_FALSE(client);
  CHECK(client.error().message.find("ca_file") != std::string::npos);
  CHECK(client.error().field == "ca_file");
}

// ---- load with faults: every future completes, stop() returns ------------------------------

namespace {

// The end-to-end scenario that once left futures unanswered and stop() blocked: far more
// concurrent calls than in-flight slots, a one-thread mock with every kind of fault, and held
// connections that outlast the client's deadline.
MockOptions faulty_holding_mock() {
  MockOptions options;
  options.threads = 1;
  options.faults.timeout_after_execute = 0.02;
  options.faults.close_after_execute = 0.02;
  options.faults.http_502 = 0.02;
  options.faults.error_body_200 = 0.02;
  options.faults.malformed_json = 0.02;
  options.faults.maintenance_503 = 0.02;
  options.faults.retry_after_s = 1;
  options.faults.hold_ms = 1'500;  // longer than the client's deadline
  return options;
}

void dispatcher_like(ClientOptions& options) {
  options.request_timeout_ms = 1'000;
  options.connect_timeout_ms = 500;
  options.in_flight_max = 16;
  options.pool_connections_max = 16;
}

// A wait for a slot and the request each take at most request_timeout_ms; the margin is for a
// slow, shared machine, far below a hang.
constexpr auto kAnswerBound = 2 * 1'000ms + 3s;

}  // namespace

namespace {

// Runs call(i) for every i in [0, calls) on `workers` threads, each taking the next i, as
// the dispatcher's workers share their calls.
template <class Call>
void run_on_workers(int workers, int calls, Call call) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&] {
      for (int i = next++; i < calls; i = next++) call(i);
    });
  for (auto& thread : threads) thread.join();
}

// The answer, or nothing (counted in `late`) when it took longer than kAnswerBound; then it
// is still waited for (bounded), so the client outlives no caller of its futures.
std::optional<ClearingAnswer> answer_in_bound(std::future<ClearingAnswer> future,
                                              std::atomic<int>& late) {
  if (future.wait_for(kAnswerBound) == std::future_status::ready) return future.get();
  ++late;
  future.wait_for(kHangBound);
  return std::nullopt;
}

// The end of a load: nothing in flight or waiting, and stop() returns promptly.
void check_idle_then_stops_promptly(ClearingClient& client) {
  const auto stats = client.stats();
  CHECK(stats.in_flight_now == 0);
  CHECK(stats.waiting_now == 0);
  const auto started = std::chrono::steady_clock::now();
  client.stop();
  CHECK(std::chrono::steady_clock::now() - started < 2s);
}

void load_with_faults(std::uint64_t seed) {
  auto mock_options = faulty_holding_mock();
  mock_options.seed = seed;
  CAPTURE(seed);
  auto setup = start(mock_options, dispatcher_like);
  constexpr int kWorkers = 64;  // like the dispatcher: 64 calls for 16 slots
  constexpr int kTransfers = 300;
  std::atomic<int> late{0};
  std::atomic<int> answered{0};
  run_on_workers(kWorkers, kTransfers, [&](int i) {
    const std::string reference = "t-load-" + std::to_string(i);
    for (int round = 0; round < 3; ++round) {
      const auto answer = answer_in_bound(
          round == 0 ? setup.client->submit(transfer(reference)) : setup.client->inquire(reference),
          late);
      if (!answer) continue;
      ++answered;
      if (answer->answer_class != AnswerClass::unknown) break;
    }
  });
  CHECK(late.load() == 0);
  CHECK(answered.load() >= kTransfers);
  CHECK(setup.client->stats().in_flight_peak <= 16);
  check_idle_then_stops_promptly(*setup.client);
}

}  // namespace

TEST_CASE("under faults and held connections every future completes within its bounds") {
  // Seed 11 is the end-to-end test's fault schedule.
  for (const std::uint64_t seed : {1u, 11u, 5u}) load_with_faults(seed);
}

TEST_CASE("stop() with calls in flight and waiting under faults returns promptly") {
  auto options = delayed(0.5, 50, 400, faulty_holding_mock());
  options.faults.timeout_before_execute = 0.2;
  auto setup = start(options, dispatcher_like);
  std::vector<std::future<ClearingAnswer>> futures;
  for (int i = 0; i < 200; ++i) {
    futures.push_back(setup.client->submit(transfer("t-stopload-" + std::to_string(i))));
    if (i % 20 == 0) std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    setup.client->stop();
    stopped = true;
  });
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (!stopped && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  const bool stopped_in_time = stopped.load();
  CHECK(stopped_in_time);
  int unfinished = 0;
  for (auto& future : futures) {
    if (future.wait_for(stopped_in_time ? 0s : kHangBound) != std::future_status::ready) {
      ++unfinished;
    }
  }
  CHECK(unfinished == 0);
  stopper.join();  // hangs here only if stop() never returns: the test runner's timeout shows it
}

TEST_CASE("waits for a slot that time out while slots are handed over: every future completes") {
  auto options = delayed(0.3, 0, 300, faulty_holding_mock());
  options.faults.timeout_after_execute = 0.15;
  options.faults.timeout_before_execute = 0.1;
  options.faults.close_after_execute = 0.1;
  auto setup = start(options, [](ClientOptions& client) {
    dispatcher_like(client);
    client.in_flight_max = 4;
    client.pool_connections_max = 2;
  });
  constexpr int kWorkers = 48;
  constexpr int kCalls = 600;
  std::atomic<int> late{0};
  std::atomic<int> slot_timeouts{0};
  run_on_workers(kWorkers, kCalls, [&](int i) {
    const std::string reference = "t-slot-" + std::to_string(i % 150);
    const auto answer = answer_in_bound(
        i % 2 == 0 ? setup.client->submit(transfer(reference)) : setup.client->inquire(reference),
        late);
    if (answer && answer->detail.find("no in-flight slot") != std::string::npos) ++slot_timeouts;
  });
  CHECK(late.load() == 0);
  MESSAGE("slot waits that timed out: ", slot_timeouts.load());
  check_idle_then_stops_promptly(*setup.client);
}

TEST_CASE("a host name is resolved; stop() during calls to it returns promptly") {
  auto setup = start();
  auto created = client_at(setup, "http://localhost:" + std::to_string(setup.mock->port()));
  auto& client = *created;
  CHECK(get(client.submit(transfer("t-name-1"))).answer_class == AnswerClass::settled);
  std::vector<std::future<ClearingAnswer>> futures;
  for (int i = 0; i < 40; ++i) futures.push_back(client.inquire("t-name-1"));
  client.stop();
  for (auto& future : futures) {
    REQUIRE(future.wait_for(0s) == std::future_status::ready);
    const auto answer = future.get();
    const bool settled_or_cancelled =
        answer.answer_class == AnswerClass::settled || answer.detail.find("cancelled") == 0;
    CHECK(settled_or_cancelled);
  }
}
