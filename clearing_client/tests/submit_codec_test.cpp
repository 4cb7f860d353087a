// Golden test of the clearing API's submit body (shared/contracts/clearing-api.md): the
// contract's example encoded to the exact text and decoded to the exact values, and the
// decoder's refusals, one per kind of bad field. The client writes the body; the dispatcher
// reads a stored one back with the same codec.

#include <doctest/doctest.h>

#include <string>

#include "clearing/clearing_client/classify.hpp"
#include "client_test_support.hpp"

using namespace clearing::clearing_client;

namespace {

// The contract's example, with a transfer id in place of "<transfer_id>".
constexpr const char* kContractSubmitBody =
    R"({ "reference": "t-1", "amount_minor": 125000, "currency": "DKK",
  "debtor_account": "5301-0001234567", "debtor_name": "Ada Lovelace",
  "creditor_account": "DK5000400440116243", "creditor_name": "Charles Babbage",
  "remittance_info": "Invoice 42" })";

constexpr const char* kEncodedSubmitBody =
    R"({"amount_minor":125000,"creditor_account":"DK5000400440116243","creditor_name":"Charles Babbage",)"
    R"("currency":"DKK","debtor_account":"5301-0001234567","debtor_name":"Ada Lovelace","reference":"t-1",)"
    R"("remittance_info":"Invoice 42"})";

// The contract's example as a request: the client tests' transfer with the key "t-1".
SubmitRequest contract_request() { return testing::transfer("t-1"); }

void check_equal(const SubmitRequest& a, const SubmitRequest& b) {
  CHECK(a.reference == b.reference);
  testing::check_same_payment_fields(a, b);
}

SubmitBodyError refusal(const std::string& body) {
  const auto decoded = decode_submit_body(body);
  REQUIRE_FALSE(decoded.has_value());
  return decoded.error();
}

std::string replaced(std::string body, const std::string& from, const std::string& to) {
  const auto at = body.find(from);
  REQUIRE(at != std::string::npos);
  return body.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE(
    "submit body: the contract's example decodes to its values; encoding gives the exact text") {
  const auto decoded = decode_submit_body(kContractSubmitBody);
  REQUIRE(decoded.has_value());
  check_equal(*decoded, contract_request());
  CHECK(encode_submit_body(contract_request()) == kEncodedSubmitBody);
  const auto again = decode_submit_body(encode_submit_body(contract_request()));
  REQUIRE(again.has_value());
  check_equal(*again, contract_request());
}

TEST_CASE("submit body: one refusal per kind of bad field") {
  struct Refused {
    std::string body;
    SubmitBodyErrc code;
    std::string field;
    std::string message;
  };
  const auto invalid = SubmitBodyErrc::invalid_field;
  const std::string amount = R"("amount_minor":125000)";
  const Refused cases[] = {
      {"not json", SubmitBodyErrc::not_an_object, "", "the body is not a JSON object"},
      {"[1, 2]", SubmitBodyErrc::not_an_object, "", "the body is not a JSON object"},
      {replaced(kEncodedSubmitBody, R"("reference":"t-1")", R"("reference":7)"), invalid,
       "reference", "reference is not a string"},
      {replaced(kEncodedSubmitBody, amount, R"("amount_minor":"125000")"), invalid, "amount_minor",
       "amount_minor is not an integer"},
      {replaced(kEncodedSubmitBody, amount, R"("amount_minor":1250.5)"), invalid, "amount_minor",
       "amount_minor is not an integer"},
      {replaced(kEncodedSubmitBody, amount, R"("amount_minor":9223372036854775808)"), invalid,
       "amount_minor", "amount_minor is not an integer"},
      {replaced(kEncodedSubmitBody, R"("currency":"DKK",)", ""), invalid, "currency",
       "currency is not a string"},
      {replaced(kEncodedSubmitBody, R"("creditor_name":"Charles Babbage")",
                R"("creditor_name":null)"),
       invalid, "creditor_name", "creditor_name is not a string"},
      {replaced(kEncodedSubmitBody, R"("remittance_info":"Invoice 42")",
                R"("remittance_info":["x"])"),
       invalid, "remittance_info", "remittance_info is not a string"},
  };
  for (const auto& refused : cases) {
    CAPTURE(refused.body);
    CHECK(refusal(refused.body) == SubmitBodyError{refused.code, refused.field, refused.message});
  }
  CHECK(to_string(SubmitBodyErrc::invalid_field) == "invalid_field");
}

TEST_CASE("submit body: remittance information is optional, absent or null reads as none") {
  for (const auto& without :
       {replaced(kEncodedSubmitBody, R"(,"remittance_info":"Invoice 42")", ""),
        replaced(kEncodedSubmitBody, R"("remittance_info":"Invoice 42")",
                 R"("remittance_info":null)")}) {
    CAPTURE(without);
    const auto decoded = decode_submit_body(without);
    REQUIRE(decoded.has_value());
    CHECK(decoded->remittance_info.empty());
    CHECK(decoded->creditor_name == "Charles Babbage");
  }
}
