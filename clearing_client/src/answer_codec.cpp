#include "clearing/clearing_client/answer_codec.hpp"

#include <nlohmann/json.hpp>

namespace clearing::clearing_client {
namespace {

using json = nlohmann::json;

std::string text_of(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void echo_reference(json& body, const std::optional<std::string>& reference) {
  if (reference) body["reference"] = *reference;
}

}  // namespace

std::string encode_answer_body(const AcceptedBody& body) {
  json out = {{"status", body.pending ? "PDNG" : "ACSC"},
              {"clearing_reference", body.clearing_reference},
              {"settlement_date", body.settlement_date}};
  echo_reference(out, body.reference);
  return text_of(out);
}

std::string encode_answer_body(const RejectedBody& body) {
  json out = {{"status", "RJCT"}, {"reason_code", body.reason_code}, {"reason", body.reason}};
  echo_reference(out, body.reference);
  return text_of(out);
}

std::string encode_answer_body(const ErrorBody& body) {
  return text_of(json{{"error", {{"code", body.code}, {"message", body.message}}}});
}

std::string encode_incoming_payment(const IncomingPayment& payment) {
  return text_of(json{{"cursor", payment.cursor},
                      {"clearing_reference", payment.clearing_reference},
                      {"amount_minor", payment.amount_minor},
                      {"currency", payment.currency},
                      {"debtor_account", payment.debtor_account},
                      {"debtor_name", payment.debtor_name},
                      {"creditor_account", payment.creditor_account},
                      {"creditor_name", payment.creditor_name},
                      {"remittance_info", payment.remittance_info},
                      {"received_at", payment.received_at}});
}

}  // namespace clearing::clearing_client
