#include "clearing/external_streams/testing/internal_history.hpp"

#include <cstdio>

#include "clearing/base/uuid.hpp"

namespace clearing::external_streams::sample_history {
namespace {

using Json = nlohmann::json;

std::string event_uuid(int n) {
  char text[40];
  std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", n);
  return text;
}

std::string transfer_id(int i) {
  char text[16];
  std::snprintf(text, sizeof text, "t-%05d", i);
  return text;
}

std::string day(int i) { return "2026-11-2" + std::to_string(6 + i % 3); }

eventstore::EventData internal(int i, int k, std::string type, Json data) {
  return {
      eventstore::EventId{event_uuid(i * 16 + k)}, std::move(type), std::move(data),
      eventstore::Metadata{"corr-" + transfer_id(i), "core-" + transfer_id(i), nullptr, nullptr}};
}

Json party(const char* name, const char* scheme, const char* account) {
  return {{"name", name}, {"account", {{"scheme", scheme}, {"id", account}}}};
}

eventstore::EventData initiated(int i) {
  const auto id = transfer_id(i);
  return internal(i, 0, "TransferInitiated",
                  {{"transfer_id", id},
                   {"account_id", "core-account-17"},
                   {"amount", {{"minor_units", 1000 + 7 * i}, {"currency", "DKK"}}},
                   {"debtor", party("Ada Lovelace", "BBAN", "5301-0001234567")},
                   {"creditor", party("Charles Babbage", "IBAN", "DK5000400440116243")},
                   {"remittance_info", "Invoice " + std::to_string(i)},
                   {"requested_at", "2026-11-26T09:00:00.000Z"},
                   {"correlation_id", "corr-" + id},
                   {"initiated_at", "2026-11-26T09:00:00.123Z"},
                   {"deadline_at", "2026-11-26T10:00:00.123Z"},
                   {"idempotency_key", id}});
}

std::vector<eventstore::EventData> pending(int i) {
  std::vector<eventstore::EventData> out;
  if (i % 3 == 0) return out;  // a third of the transfers settle at once
  for (int attempt = 1; attempt <= (i % 7 == 1 ? 2 : 1); ++attempt)
    out.push_back(internal(i, attempt, "TransferAcceptedPending",
                           {{"transfer_id", transfer_id(i)},
                            {"attempt", attempt},
                            {"clearing_reference", "CR-" + transfer_id(i)},
                            {"expected_settlement_date", day(i)},
                            {"latency_ms", 40 + attempt}}));
  return out;
}

// How a transfer ends: settled, rejected, or investigated and resolved by hand (settled or
// rejected; `undated`: settled by hand without a settlement date); some are then asked for
// again with another body (a duplicate refused).
std::vector<eventstore::EventData> outcome(int i, bool undated) {
  const auto id = transfer_id(i);
  std::vector<eventstore::EventData> out;
  if (i % 11 == 10) {
    out.push_back(internal(i, 4, "TransferUnderInvestigation",
                           {{"transfer_id", id},
                            {"since", "2026-11-26T10:00:00.000Z"},
                            {"attempts", 6},
                            {"last_error", "timeout"}}));
    const bool succeeded = i % 2 == 0;
    out.push_back(internal(i, 5, "TransferResolvedManually",
                           {{"transfer_id", id},
                            {"outcome", succeeded ? "succeeded" : "rejected"},
                            {"reason", "confirmed by phone"},
                            {"operator_name", "operator-7"},
                            {"clearing_reference", succeeded ? "CR-" + id : ""},
                            {"settlement_date", succeeded && !undated ? day(i) : ""},
                            {"reason_code", succeeded ? "" : "AC04"},
                            {"corrects_state", "under_investigation"},
                            {"attempts", 6},
                            {"resolved_at", "2026-11-26T11:00:00.000Z"}}));
  } else if (i % 5 == 4) {
    out.push_back(internal(i, 4, "TransferRejected",
                           {{"transfer_id", id},
                            {"attempt", 1},
                            {"reason_code", "AC04"},
                            {"reason", "account closed"},
                            {"latency_ms", 42}}));
  } else {
    out.push_back(internal(i, 4, "TransferSettled",
                           {{"transfer_id", id},
                            {"attempt", 1},
                            {"clearing_reference", "CR-" + id},
                            {"settlement_date", day(i)},
                            {"latency_ms", 42}}));
  }
  if (i % 13 == 12)
    out.push_back(internal(i, 6, "DuplicateTransferRequestRefused",
                           {{"transfer_id", id},
                            {"reason_code", "DUPL"},
                            {"reason", "different request"},
                            {"differing_fields", {"amount"}},
                            {"correlation_id", "corr-dup-" + id},
                            {"received_at", "2026-11-26T09:00:00.005Z"}}));
  return out;
}

Append incoming(int i) {
  const auto reference = "CR-IN-" + std::to_string(i);
  return {"incoming-payment-" + reference,
          {internal(i, 15, "IncomingPaymentRecorded",
                    {{"payment_id", "p-" + std::to_string(i)},
                     {"clearing_reference", reference},
                     {"cursor", std::to_string(100000 + i)},
                     {"amount", {{"minor_units", 50000 + i}, {"currency", "DKK"}}},
                     {"debtor", party("Charles Babbage", "IBAN", "DK5000400440116243")},
                     {"creditor", party("Ada Lovelace", "BBAN", "5301-0001234567")},
                     {"remittance_info", "Rent"},
                     {"received_at", day(i) + "T09:00:00.000Z"}})}};
}

}  // namespace

std::vector<Append> script(int first, int n, bool undated) {
  std::vector<Append> out;
  for (int step = first; step < first + n + 2; ++step) {
    if (step < first + n) out.push_back({"transfer-" + transfer_id(step), {initiated(step)}});
    if (const int i = step - 1; i >= first && i < first + n) {
      if (auto p = pending(i); !p.empty()) out.push_back({"transfer-" + transfer_id(i), p});
      if (i % 4 == 0) out.push_back(incoming(i));
    }
    if (const int i = step - 2; i >= first && i < first + n)
      out.push_back({"transfer-" + transfer_id(i), outcome(i, undated)});
  }
  return out;
}

std::vector<eventstore::EventData> settled_transfer(const std::string& id) {
  const eventstore::Metadata meta{"corr-" + id, "core-event", nullptr, nullptr};
  return {{eventstore::EventId{base::new_uuid()},
           "TransferInitiated",
           {{"transfer_id", id}, {"amount", {{"minor_units", 1250}, {"currency", "DKK"}}}},
           meta},
          {eventstore::EventId{base::new_uuid()},
           "TransferSettled",
           {{"transfer_id", id},
            {"attempt", 1},
            {"clearing_reference", "CR-" + id},
            {"settlement_date", "2026-11-26"},
            {"latency_ms", 3}},
           meta}};
}

}  // namespace clearing::external_streams::sample_history
