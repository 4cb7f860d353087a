#pragma once
// What the clearing client's tests against a live server share: a valid submit request and a
// bounded wait for an answer.

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

template <class T>
T get(std::future<T> future) {
  REQUIRE(future.wait_for(kHangBound) == std::future_status::ready);
  return future.get();
}

}  // namespace clearing::clearing_client::testing
