#pragma once
// The body of a POST /v1/transfers the mock's tests send: valid for DK unless a test changes
// the creditor, the amount or the currency.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace clearing::clearing_mock::testing {

inline std::string transfer_body(const std::string& reference,
                                 const std::string& creditor = "DK5000400440116243",
                                 std::int64_t amount = 125000,
                                 const std::string& currency = "DKK") {
  return nlohmann::json{{"reference", reference},
                        {"amount_minor", amount},
                        {"currency", currency},
                        {"debtor_account", "5301-0001234567"},
                        {"debtor_name", "Ada Lovelace"},
                        {"creditor_account", creditor},
                        {"creditor_name", "Charles Babbage"},
                        {"remittance_info", "Invoice 42"}}
      .dump();
}

}  // namespace clearing::clearing_mock::testing
