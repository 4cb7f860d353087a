#pragma once
// Shared set-up for tests that run the Transfer saga against the clearing mock: a fresh
// database with the store's and the adapter's schema, requests with valid (or
// deliberately invalid) accounts, and the reconciliation of outcomes with the ledger.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/clearing_mock/mock_state.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "test_database.hpp"

namespace clearing::testing {

inline sagas::CountryRules dk_rules() {
  return sagas::CountryRules{sagas::Country::dk, *sagas::Currency::parse("DKK"), 100'000'000};
}

// Fast retries so a test run takes seconds, with the same shape as production.
inline sagas::RetryPolicy fast_policy() {
  sagas::RetryPolicy p;
  p.backoff_initial_ms = 10;
  p.backoff_max_ms = 200;
  p.backoff_multiplier = 2;
  p.unknown_outcomes_before_inquiry = 2;
  p.pending_inquiry_interval_ms = 30;
  p.investigation_inquiry_interval_ms = 200;
  p.deadline_ms = 60'000;
  return p;
}

// What kind of request the i-th transfer of a test is.
enum class RequestKind { valid, invalid_account, wrong_currency, closed_account };

sagas::InitiateTransfer make_initiate(int index, RequestKind kind, base::Timestamp now,
                                      const sagas::RetryPolicy& policy = fast_policy());

struct SagaDatabase {
  TestDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<adapter::TransferService> transfers;
  SagaDatabase();
  // How many transfers are in each status (transfer_status projection).
  std::map<std::string, int> statuses() const;
  int terminal_count() const;
};

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
