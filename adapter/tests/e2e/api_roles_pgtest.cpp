// Least privilege on the adapter's API (issue 21, item 4), a test per role: the service runs
// (in this process, on the embedded Kafka) with its API token (named "api": reader and
// metrics), a metrics token and an operator token, and every route it registers is asked
// with each, and with none. A token reaches exactly the routes of its roles; any other route
// answers 403 naming the role it needs; no token, 401 everywhere but /healthz and /readyz.
// The routes are the service's own list (Service::api_routes), so a route added later (parked
// actions, erase) is walked too, and each must name its role.

#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "clearing/adapter/service.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/http/client.hpp"
#include "clearing/support/command_lines.hpp"
#include "test_database.hpp"

using namespace clearing;
using clearing::testing::TestDatabase;

namespace {

constexpr const char* kApiToken = "api-token-0123456789abcdef0123456";
constexpr const char* kMetricsToken = "metrics-token-0123456789abcdef012";
constexpr const char* kOperatorToken = "operator-token-0123456789abcdef01";

struct RunningAdapter {
  TestDatabase database;
  std::unique_ptr<external_streams::EmbeddedKafka> kafka;
  std::unique_ptr<adapter::Service> service;

  RunningAdapter() {
    auto started = external_streams::EmbeddedKafka::start();
    REQUIRE(started);
    kafka = std::move(*started);
    const int port = support::free_port();
    config::MapEnvironment env(
        {{"CLEARING_ADAPTER_DATABASE_URL", database.url()},
         {"CLEARING_ADAPTER_KAFKA_BROKERS", kafka->bootstrap_servers()},
         {"CLEARING_ADAPTER_CLEARING_URL", "http://127.0.0.1:9"},
         {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-token-16"},
         {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://127.0.0.1:9"},
         {"CLEARING_ADAPTER_HTTP_ADDRESS", "127.0.0.1:" + std::to_string(port)},
         {"CLEARING_ADAPTER_API_TOKEN", kApiToken},
         {"CLEARING_ADAPTER_METRICS_TOKEN", kMetricsToken},
         {"CLEARING_ADAPTER_OPERATOR_TOKEN", kOperatorToken},
         {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-catchup-token-0123"},
         {"CLEARING_ADAPTER_DATA_KEK", std::string(support::kTestDataKek)}});
    std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
    auto cfg = config::parse_config(nlohmann::json::parse(in).dump(), "dk.json", env);
    REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().to_string()));
    for (const auto& [topic, partitions] : adapter::configured_topics(*cfg))
      REQUIRE(kafka->create_topic(topic, partitions));
    auto created = adapter::Service::create(*cfg, kafka->bootstrap_servers());
    REQUIRE(created);
    service = std::move(*created);
    REQUIRE(service->start());
  }
  ~RunningAdapter() { service->stop(); }
};

// A path for the pattern: each {name} filled with something the route can take.
std::string path_of(const std::string& pattern) {
  static const std::map<std::string, std::string> kValues{
      {"id", "t-1"}, {"stream", "adapter.dk.payments.v1"}, {"partition", "0"}};
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern[i] == '{') {
      const auto close = pattern.find('}', i);
      out += kValues.at(pattern.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

http::ClientResponse ask(const adapter::Service& service, const http::HttpServer::RouteInfo& route,
                         const std::string& token) {
  auto answer = http::send(
      {.method = route.method,
       .url = "http://127.0.0.1:" + std::to_string(service.http_port()) + path_of(route.pattern),
       .bearer_token = token,
       .headers = {{"Content-Type", "application/json"}},
       .body = route.method == "POST" ? "{}" : "",
       .timeout_ms = 10'000});
  REQUIRE(answer);
  return *answer;
}

// Asks every route with `token` (holding `roles`; "" for none; `known` false for a token the
// adapter does not have): the routes of those roles answer as their handlers do, the others
// 403 naming the role (401 without a known token); the routes without auth answer either
// way. Returns how many routes it reached.
int walk(const adapter::Service& service, const std::string& token,
         const std::vector<std::string>& roles, bool known = true) {
  const auto routes = service.api_routes();
  REQUIRE(routes.size() >= 8);
  int reached = 0;
  for (const auto& route : routes) {
    CAPTURE(route.method);
    CAPTURE(route.pattern);
    // Least privilege: no route opens to any token whatever its role.
    if (route.requires_auth) CHECK_FALSE(route.role.empty());
    const auto answer = ask(service, route, token);
    CAPTURE(answer.body);
    const bool allowed =
        !route.requires_auth || std::find(roles.begin(), roles.end(), route.role) != roles.end();
    if (allowed) {
      CHECK(answer.status != 401);
      CHECK(answer.status != 403);
      ++reached;
    } else if (token.empty() || !known) {
      CHECK(answer.status == 401);
    } else {
      CHECK(answer.status == 403);
      const auto body = nlohmann::json::parse(answer.body);
      CHECK(body["error"]["code"] == "FORBIDDEN");
      CHECK(body["error"]["message"] == "this route needs a token with the role " + route.role);
      CHECK(answer.body.find(token) == std::string::npos);
    }
  }
  return reached;
}

std::vector<std::string> routes_of(const adapter::Service& service, const std::string& role) {
  std::vector<std::string> out;
  for (const auto& route : service.api_routes())
    if (route.role == role) out.push_back(route.method + " " + route.pattern);
  return out;
}

}  // namespace

TEST_CASE("role reader (the API token): the catch-up API, /transfers, /parked; 403 on operator") {
  RunningAdapter adapter;
  const auto& service = *adapter.service;
  CHECK(routes_of(service, "reader") ==
        std::vector<std::string>{"GET /streams/{stream}/partitions/{partition}/events",
                                 "GET /transfers/{id}", "GET /parked", "GET /parked/{id}"});
  // The API token also opens /metrics, as it always did; never an operator route.
  CHECK(walk(service, kApiToken, {"reader", "metrics"}) == 2 + 4 + 1);
  // What the reader gets is real: the catch-up page of a stream that exists here.
  const auto page = http::get("http://127.0.0.1:" + std::to_string(service.http_port()) +
                                  "/streams/adapter.dk.payments.v1/partitions/0/events?from=1",
                              kApiToken, 10'000);
  REQUIRE(page);
  CHECK(page->status == 200);
}

TEST_CASE("role metrics: /metrics only; 403 on reader and operator routes") {
  RunningAdapter adapter;
  const auto& service = *adapter.service;
  CHECK(routes_of(service, "metrics") == std::vector<std::string>{"GET /metrics"});
  CHECK(walk(service, kMetricsToken, {"metrics"}) == 2 + 1);
  const auto metrics =
      http::get("http://127.0.0.1:" + std::to_string(service.http_port()) + "/metrics",
                kMetricsToken, 10'000);
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->body.find("# TYPE ") != std::string::npos);
}

TEST_CASE("role operator: the operator actions only; 403 on reader and metrics routes") {
  RunningAdapter adapter;
  const auto& service = *adapter.service;
  const auto operator_routes = routes_of(service, "operator");
  CHECK(std::find(operator_routes.begin(), operator_routes.end(), "POST /transfers/{id}/resolve") !=
        operator_routes.end());
  for (const char* route : {"POST /parked/{id}/close", "POST /parked/{id}/replay",
                            "POST /parked/{id}/book", "POST /parked/{id}/return"}) {
    CAPTURE(route);
    CHECK(std::find(operator_routes.begin(), operator_routes.end(), route) !=
          operator_routes.end());
  }
  CHECK(walk(service, kOperatorToken, {"operator"}) ==
        2 + static_cast<int>(operator_routes.size()));
}

TEST_CASE("no token: 401 on every route but /healthz and /readyz") {
  RunningAdapter adapter;
  const auto& service = *adapter.service;
  std::vector<std::string> open;
  for (const auto& route : service.api_routes())
    if (!route.requires_auth) open.push_back(route.method + " " + route.pattern);
  CHECK(open == std::vector<std::string>{"GET /healthz", "GET /readyz"});
  CHECK(walk(service, "", {}) == 2);
  // An unknown token is no token.
  CHECK(walk(service, "not-a-token-0123456789abcdef012345", {}, false) == 2);
}
