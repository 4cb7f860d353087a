#pragma once
// What the clearing client's tests share: a valid submit request (the contract's example), a
// bounded wait for an answer, and the check of the fields a transfer and a feed payment share.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <string>

#include "clearing/clearing_client/answer.hpp"

namespace clearing::clearing_client::testing {

// Generous, so that a slow, shared CI machine never fails a test on timing: it only turns a
// hang into a failure.
inline constexpr std::chrono::seconds kHangBound{20};

inline SubmitRequest transfer(std::string reference, std::string creditor = "DK5000400440116243",
                              std::int64_t amount_minor = 125'000, std::string currency = "DKK") {
  SubmitRequest request;
  request.reference = std::move(reference);
  request.amount_minor = amount_minor;
  request.currency = std::move(currency);
  request.debtor_account = "5301-0001234567";
  request.debtor_name = "Ada Lovelace";
  request.creditor_account = std::move(creditor);
  request.creditor_name = "Charles Babbage";
  request.remittance_info = "Invoice 42";
  return request;
}

// The fields a submitted transfer (SubmitRequest) and a feed payment (IncomingPayment) share,
// read back equal to the ones written: the amount, the currency and the two parties.
template <class Payment>
void check_same_payment_fields(const Payment& read, const Payment& written) {
  CHECK(read.amount_minor == written.amount_minor);
  CHECK(read.currency == written.currency);
  CHECK(read.debtor_account == written.debtor_account);
  CHECK(read.debtor_name == written.debtor_name);
  CHECK(read.creditor_account == written.creditor_account);
  CHECK(read.creditor_name == written.creditor_name);
  CHECK(read.remittance_info == written.remittance_info);
}

template <class T>
T get(std::future<T> future) {
  REQUIRE(future.wait_for(kHangBound) == std::future_status::ready);
  return future.get();
}

}  // namespace clearing::clearing_client::testing
