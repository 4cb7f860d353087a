#include "clearing/adapter/testing/saga_fixture.hpp"

#include <chrono>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::testing {

sagas::InitiateTransfer make_initiate(int index, RequestKind kind, base::Timestamp now,
                                      const sagas::RetryPolicy& policy) {
  char account[32];
  // Creditor account numbers ending in 0004 are closed at the mock: avoid them unless asked.
  std::snprintf(account, sizeof account, "5301-%010d", 100000 + index * 10 + 1);
  sagas::InitiateTransfer c;
  c.request.transfer_id = base::new_uuid();
  c.request.account_id = "acct-" + std::to_string(index % 50);
  c.request.amount = {1000 + index, *sagas::Currency::parse("DKK")};
  c.request.debtor = {"Debtor " + std::to_string(index),
                      {sagas::AccountScheme::bban, "1234-0000012345"}};
  c.request.creditor = {"Creditor " + std::to_string(index), {sagas::AccountScheme::bban, account}};
  c.request.remittance_info = "Invoice " + std::to_string(index);
  c.request.requested_at = now;
  c.correlation_id = base::new_uuid();
  c.now = now;
  c.rules = dk_rules();
  c.policy = policy;
  switch (kind) {
    case RequestKind::valid:
      break;
    case RequestKind::invalid_account:
      c.request.creditor.account.id = "53O1-12";
      break;
    case RequestKind::wrong_currency:
      c.request.amount.currency = *sagas::Currency::parse("EUR");
      break;
    case RequestKind::closed_account:
      c.request.creditor.account.id = "5301-0000000004";
      break;
  }
  return c;
}

void migrate(eventstore::ConnectionPool& pool) {
  for (const auto* migrations :
       {&eventstore::eventstore_migrations(), &adapter::adapter_migrations(),
        &external_streams::external_streams_migrations()}) {
    auto applied = eventstore::apply_migrations(pool, *migrations);
    if (!applied) throw std::runtime_error("migrations: " + applied.error().message);
  }
}

SagaDatabase::SagaDatabase() {
  eventstore::DatabaseOptions options;
  options.url = database.url();
  options.connections_max = 16;
  pool = std::make_unique<eventstore::ConnectionPool>(options);
  migrate(*pool);
  store = std::make_unique<eventstore::EventStore>(*pool);
  transfers = std::make_unique<adapter::TransferService>(*store);
}

std::shared_ptr<privacy::Vault> SagaDatabase::seal_personal_data() {
  auto migrated = eventstore::apply_migrations(*pool, privacy::privacy_migrations());
  if (!migrated) throw std::runtime_error("privacy migrations: " + migrated.error().message);
  auto vault = privacy::Vault::create(
      {.database = pool->options(), .keys = privacy::KeyRing{privacy::random_key(), {}}});
  if (!vault) throw std::runtime_error("vault: " + vault.error().message);
  pool->set_protector(*vault);
  return *vault;
}

std::vector<eventstore::RecordedEvent> transfer_events(SagaDatabase& db, const std::string& id) {
  auto events = db.store->read_stream(adapter::transfer_stream(id));
  if (!events) throw std::runtime_error("reading transfer " + id + ": " + events.error().message);
  return std::move(*events);
}

std::string transfer_event_types(SagaDatabase& db, const std::string& id) {
  std::string types;
  for (const auto& event : transfer_events(db, id))
    types += (types.empty() ? "" : ",") + event.type;
  return types;
}

void wait_for_horizon(const SagaDatabase& db) {
  for (int attempt = 0; attempt < 3000; ++attempt) {
    if (db.database.query_value("select coalesce((select max(transaction_id) from events)"
                                " < pg_snapshot_xmin(pg_current_snapshot()), true)") == "t")
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error(
      "the server's oldest transaction did not move past this test's events in 30 s");
}

http::ClientResponse post_json(std::uint16_t port, const std::string& path, const std::string& body,
                               const std::string& token) {
  auto answer = http::send({.method = "POST",
                            .url = "http://127.0.0.1:" + std::to_string(port) + path,
                            .bearer_token = token,
                            .headers = {{"Content-Type", "application/json"}},
                            .body = body,
                            .timeout_ms = 10'000});
  if (!answer) throw std::runtime_error("POST " + path + ": " + answer.error().message);
  return std::move(*answer);
}

nlohmann::json get_json(std::uint16_t port, const std::string& path, const std::string& token) {
  auto answer = http::get("http://127.0.0.1:" + std::to_string(port) + path, token, 10'000);
  if (!answer) throw std::runtime_error("GET " + path + ": " + answer.error().message);
  if (answer->status != 200)
    throw std::runtime_error("GET " + path + ": HTTP " + std::to_string(answer->status) + " " +
                             answer->body);
  return nlohmann::json::parse(answer->body);
}

std::string error_code(const http::ClientResponse& answer) {
  const auto json = nlohmann::json::parse(answer.body, nullptr, false);
  if (!json.is_object() || !json.contains("error") || !json["error"].is_object()) return "";
  return json["error"].value("code", "");
}

std::string parked_snapshot(const SagaDatabase& db) {
  return db.database.query_value("select count(*) from events") + "|" +
         db.database.query_value(
             "select string_agg(id || '=' || state, ',' order by id) from parked_messages");
}

std::map<std::string, int> SagaDatabase::statuses() const {
  pqxx::connection c(database.url());
  pqxx::nontransaction tx(c);
  std::map<std::string, int> out;
  for (const auto& row : tx.exec("select status, count(*) from transfer_status group by status"))
    out[row[0].as<std::string>()] = row[1].as<int>();
  return out;
}

int SagaDatabase::terminal_count() const {
  auto s = statuses();
  return s["succeeded"] + s["rejected"];
}

namespace {
// The attempt number on the transfer's TransferRejected event (-1 when none).
int rejected_attempt(SagaDatabase& db, const std::string& id) {
  auto events = db.store->read_stream(adapter::transfer_stream(id));
  if (!events) return -1;
  for (const auto& e : *events)
    if (e.type == "TransferRejected") return e.data.value("attempt", -1);
  return -1;
}
}  // namespace

Reconciliation reconcile(SagaDatabase& db, const std::vector<std::string>& transfer_ids,
                         const std::vector<clearing_mock::LedgerEntry>& ledger) {
  Reconciliation r;
  std::map<std::string, const clearing_mock::LedgerEntry*> by_reference;
  for (const auto& entry : ledger) {
    by_reference[entry.reference] = &entry;
    r.executions_max = std::max(r.executions_max, entry.execution_count);
    if (entry.execution_count > 1)
      r.violations.push_back(entry.reference + " executed " +
                             std::to_string(entry.execution_count) + " times");
  }
  for (const auto& id : transfer_ids) {
    auto loaded =
        db.pool->transact([&](eventstore::Transaction& tx) { return db.transfers->load(tx, id); });
    if (!loaded) {
      r.violations.push_back(id + ": cannot load: " + loaded.error().message);
      continue;
    }
    const auto& state = loaded->state;
    const auto it = by_reference.find(id);
    const auto* entry = it == by_reference.end() ? nullptr : it->second;
    const bool executed = entry && entry->execution_count > 0;
    switch (state.status) {
      case sagas::TransferStatus::succeeded:
        ++r.succeeded;
        if (!executed)
          r.violations.push_back(id + ": succeeded but never executed");
        else if (entry->clearing_reference != state.clearing_reference)
          r.violations.push_back(id + ": clearing reference differs from the ledger");
        break;
      case sagas::TransferStatus::rejected:
        ++r.rejected;
        if (executed) r.violations.push_back(id + ": rejected but executed in the ledger");
        // A rejection must come from validation (attempt 0: the clearing was never
        // called) or from the clearing's own RJCT, never from an unknown outcome.
        if (entry == nullptr && rejected_attempt(db, id) != 0)
          r.violations.push_back(id +
                                 ": rejected after clearing calls without a clearing rejection");
        if (entry != nullptr && entry->status != "RJCT")
          r.violations.push_back(id + ": rejected but the ledger says " + entry->status);
        break;
      default:
        ++r.unfinished;
        r.violations.push_back(id + ": not finished (" + std::string(sagas::state_name(state)) +
                               ")");
    }
  }
  return r;
}

}  // namespace clearing::testing
