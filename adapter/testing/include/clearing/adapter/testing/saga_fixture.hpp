#pragma once
// Shared set-up for the adapter's tests and benchmarks that run the Transfer saga in process
// (against the clearing mock): one retry policy, requests with valid (or deliberately
// invalid) accounts, a fresh database with the store's, the adapter's and the external
// streams' schema, and the reconciliation of outcomes with the ledger.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clearing/adapter/transfer_api.hpp"
#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_mock/mock_state.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/http/client.hpp"
#include "clearing/privacy/vault.hpp"
#include "test_database.hpp"

namespace clearing::testing {

inline sagas::CountryRules dk_rules() {
  return sagas::CountryRules{sagas::Country::dk, *sagas::Currency::parse("DKK"), 100'000'000};
}

// Fast retries so a run takes seconds, with the same shape as production. The deadline is
// the one timeout that neither tests nor benchmarks exercise with this policy (resolve_pgtest
// sets its own): past it a transfer goes to people (TransferUnderInvestigation), so it is
// ten minutes, longer than any run, so that a backlog of thousands on a slow machine never
// reaches it (the tests had 60 s, bench/saga and bench/streams 600 s; no test waits for it).
inline sagas::RetryPolicy fast_policy() {
  return sagas::RetryPolicy{.backoff_initial_ms = 10,
                            .backoff_max_ms = 200,
                            .backoff_multiplier = 2,
                            .unknown_outcomes_before_inquiry = 2,
                            .pending_inquiry_interval_ms = 30,
                            .investigation_inquiry_interval_ms = 200,
                            .deadline_ms = 600'000};
}

// The API's routes as a DK service has them: the default calendar (Saturday and Sunday off, no
// holidays, cut-off 13:00 UTC) and the rules above.
inline adapter::TransferRoutesOptions routes_options() {
  adapter::TransferRoutesOptions options;
  options.country.code = base::Country::dk;
  options.country.currency = "DKK";
  options.country.amount_limit_minor = dk_rules().amount_limit_minor;
  options.inbound = {dk_rules(), fast_policy()};
  return options;
}

// A valid TransferRequested of the core's stream (docs/streams.md): its data for
// `transfer_id`, and the envelope around data at stream, partition and seq (fresh ids).
inline nlohmann::json core_request_data(const std::string& transfer_id) {
  return {
      {"transfer_id", transfer_id},
      {"account_id", "acct-1"},
      {"amount", {{"minor_units", 1000}, {"currency", "DKK"}}},
      {"debtor", {{"name", "Ada"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
      {"creditor",
       {{"name", "Charles"}, {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
      {"remittance_info", "Invoice"},
      {"requested_at", "2026-11-26T09:00:00Z"}};
}
inline nlohmann::json core_envelope(const std::string& stream, int partition, std::int64_t seq,
                                    nlohmann::json data) {
  return {{"stream", stream},
          {"partition", partition},
          {"seq", seq},
          {"event_id", base::new_uuid()},
          {"type", "TransferRequested"},
          {"occurred_at", "2026-11-26T09:00:00.000Z"},
          {"correlation_id", base::new_uuid()},
          {"source_event_id", base::new_uuid()},
          {"data", std::move(data)}};
}

// What kind of request the i-th transfer of a test is.
enum class RequestKind { valid, invalid_account, wrong_currency, closed_account };

sagas::InitiateTransfer make_initiate(int index, RequestKind kind, base::Timestamp now,
                                      const sagas::RetryPolicy& policy = fast_policy());

// The event store's, the adapter's and the external streams' migrations (throws on failure).
void migrate(eventstore::ConnectionPool& pool);

struct SagaDatabase {
  TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<adapter::TransferService> transfers;
  SagaDatabase();
  // Personal data sealed from here on, as the service does: the privacy tables, and a vault
  // with a fresh KEK as the pool's protector.
  std::shared_ptr<privacy::Vault> seal_personal_data();
  // How many transfers are in each status (transfer_status projection).
  std::map<std::string, int> statuses() const;
  int terminal_count() const;
};

// Waits until every transaction that wrote events of `db` so far lies below the horizon
// under which a subscription hands events out (a test running beside this one on the same
// server can hold it back for a moment); throws after 30 s.
void wait_for_horizon(const SagaDatabase& db);

// The events of a transfer's stream in order, and their types joined by commas
// ("TransferInitiated,RetryScheduled"); throw when the stream cannot be read.
std::vector<eventstore::RecordedEvent> transfer_events(SagaDatabase& db, const std::string& id);
std::string transfer_event_types(SagaDatabase& db, const std::string& id);

// POST `body` (JSON) to 127.0.0.1:`port``path` with a bearer token; throws when no answer
// comes (an HTTP status is an answer).
http::ClientResponse post_json(std::uint16_t port, const std::string& path, const std::string& body,
                               const std::string& token);

// GET `path` of 127.0.0.1:`port` with a bearer token: the JSON of a 200; throws otherwise.
nlohmann::json get_json(std::uint16_t port, const std::string& path, const std::string& token);

// The error code of an API's refusal ({"error":{"code"}}), "" when it has none.
std::string error_code(const http::ClientResponse& answer);

// Everything an operator's action on parked input could change: the events, and every parked
// row's state (id=state, ...).
std::string parked_snapshot(const SagaDatabase& db);

// Compares every transfer's outcome with the mock's ledger; returns the violations, one
// line each (empty when all agree).
struct Reconciliation {
  int succeeded = 0, rejected = 0, unfinished = 0;
  int executions_max = 0;
  std::vector<std::string> violations;
};
Reconciliation reconcile(SagaDatabase& db, const std::vector<std::string>& transfer_ids,
                         const std::vector<clearing_mock::LedgerEntry>& ledger);

}  // namespace clearing::testing
