// The hostile answers on the wire (issue 16): what a client reads from the mock's socket
// when a stray or duplicate response follows the answer, or a field is damaged, and that the
// ledger keeps the truth meanwhile. A plain POSIX socket client (raw_client.hpp), so that
// nothing between the test and the bytes tidies them up.

#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "clearing/clearing_mock/mock_server.hpp"
#include "raw_client.hpp"
#include "transfer_body.hpp"

using namespace clearing::clearing_mock;
using clearing::clearing_mock::testing::RawClient;
using clearing::clearing_mock::testing::Reply;
using clearing::clearing_mock::testing::transfer_body;
using nlohmann::json;

namespace {

std::unique_ptr<MockServer> start(FaultSettings faults, std::uint64_t seed = 5) {
  MockOptions options;
  options.seed = seed;
  options.faults = faults;
  auto server = MockServer::start(options);
  REQUIRE(server);
  return std::move(*server);
}

// A mock that gives every answer this hostile fault.
std::unique_ptr<MockServer> start_always(double FaultSettings::*fault) {
  FaultSettings faults;
  faults.*fault = 1;
  return start(faults);
}

json parsed(const Reply& reply) { return json::parse(reply.body); }

}  // namespace

TEST_CASE(
    "a stray response follows the answer on the kept-alive connection, and executes nothing") {
  FaultSettings faults;
  faults.stray_response = 1;
  faults.stray_delay_ms_max = 20;
  auto server = start(faults);
  RawClient client(server->port());
  int late = 0, at_once = 0;
  for (int i = 0; i < 8; ++i) {
    const auto key = "T-" + std::to_string(i);
    // Every other transfer is rejected by the clearing (AC04): the stray is about neither.
    client.send("POST", "/v1/transfers",
                transfer_body(key, i % 2 ? "5301-0000000004" : "DK5000400440116243"), key);
    const auto answer = client.read();
    REQUIRE(answer);
    CHECK(parsed(*answer)["status"] == (i % 2 ? "RJCT" : "ACSC"));
    const auto stray = client.read();
    REQUIRE(stray);  // nothing was asked for it
    const auto body = parsed(*stray);
    if (body["status"] == "ACSC") {
      CHECK(stray->status == 201);
      CHECK(body["clearing_reference"].get<std::string>().rfind("STRAY5-", 0) == 0);
    } else {
      CHECK(stray->status == 200);
      CHECK(body["reason_code"] == "AC04");
    }
    (body.contains("reference") ? late : at_once) += 1;
  }
  CHECK(late + at_once == 8);
  const auto ledger = server->state().ledger();
  REQUIRE(ledger.size() == 8);
  for (const auto& row : ledger) {
    CHECK(row.execution_count == (row.status == "RJCT" ? 0 : 1));
    CHECK(row.clearing_reference.find("STRAY") == std::string::npos);
  }
  CHECK(server->state().stats().faults.at("stray_response") == 8);
  CHECK(server->state().stats().executions_total == 4);
}

TEST_CASE(
    "a duplicate response is the answer twice; an inquiry afterwards answers the truth once") {
  auto server = start_always(&FaultSettings::duplicate_response);
  RawClient client(server->port());
  client.send("POST", "/v1/transfers", transfer_body("T-1"), "T-1");
  const auto first = client.read();
  const auto second = client.read();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->status == 201);
  CHECK(second->status == first->status);
  CHECK(second->body == first->body);
  server->state().set_faults(FaultSettings{});
  client.send("GET", "/v1/transfers/T-1");
  const auto inquiry = client.read();
  REQUIRE(inquiry);
  CHECK(parsed(*inquiry)["clearing_reference"] == parsed(*first)["clearing_reference"]);
  CHECK(server->state().stats().executions_total == 1);
  CHECK(server->state().stats().faults.at("duplicate_response") == 1);
}

TEST_CASE("a connection the client closes gets the duplicate too, then the close") {
  auto server = start_always(&FaultSettings::duplicate_response);
  RawClient client(server->port());
  client.send("POST", "/v1/transfers", transfer_body("T-1"), "T-1", /*keep_alive=*/false);
  const auto first = client.read();
  const auto second = client.read();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(second->body == first->body);
  CHECK_FALSE(client.read());  // then the mock closed: a client reading one answer is safe
  CHECK(server->state().stats().faults.at("duplicate_response") == 1);
  CHECK(server->state().stats().executions_total == 1);
}

TEST_CASE(
    "a NUL and a 1 MB clearing reference go on the wire; the ledger and later answers keep the "
    "real one") {
  auto server = start_always(&FaultSettings::nul_field);
  RawClient client(server->port());
  client.send("POST", "/v1/transfers", transfer_body("T-1"), "T-1");
  const auto nul = client.read();
  REQUIRE(nul);
  CHECK(nul->body.find("\\u0000") != std::string::npos);
  const auto real_reference = server->state().ledger().at(0).clearing_reference;
  CHECK(parsed(*nul)["clearing_reference"] == real_reference + std::string(1, '\0') + "X");

  FaultSettings oversize;
  oversize.oversize_field = 1;
  server->state().set_faults(oversize);
  client.send("GET", "/v1/transfers/T-1");
  const auto big = client.read();
  REQUIRE(big);
  CHECK(big->body.size() > kOversizeFieldBytes);

  server->state().set_faults(FaultSettings{});
  client.send("POST", "/v1/transfers", transfer_body("T-1"), "T-1");  // the replay
  const auto replay = client.read();
  REQUIRE(replay);
  CHECK(parsed(*replay)["clearing_reference"] == real_reference);
  CHECK(server->state().ledger().at(0).execution_count == 1);
  CHECK(server->state().stats().executions_total == 1);
}

TEST_CASE("a client that sends before it has its last answer is counted; one that waits is not") {
  auto server = start(FaultSettings{});
  RawClient client(server->port());
  client.send("GET", "/v1/transfers/T-1");
  REQUIRE(client.read());
  client.send("GET", "/v1/transfers/T-2");
  REQUIRE(client.read());
  CHECK(server->state().stats().requests_before_answer == 0);
  // Two requests in one write: the first's answer is written with the second already there.
  client.send_bytes(RawClient::request("GET", "/v1/transfers/T-3") +
                    RawClient::request("GET", "/v1/transfers/T-4"));
  REQUIRE(client.read());
  REQUIRE(client.read());
  CAPTURE(server->state().stats().requests_before_answer);
  CHECK(server->state().stats().requests_before_answer == 1);
}
