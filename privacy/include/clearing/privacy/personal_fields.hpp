#pragma once
// Which fields of a document are personal data, and whose. One rule for every document the
// adapter stores (internal events, external stream messages, the clearing API's request
// bodies, parked messages that parse as JSON), taken from the wire contracts' shapes:
// - a party, an object under "debtor" or "creditor": its "name" string, and its account's
//   "id" (or the account itself when it is a string);
// - "remittance_info" anywhere;
// - the clearing API's flat fields "debtor_name", "debtor_account", "creditor_name",
//   "creditor_account" anywhere.
// Ids, amounts, dates and reason codes are not personal here: the core's "account_id" is its
// own pseudonymous id, and it names the subject.
//
// The subject (whose key seals the document): the document's top-level "account_id" (an
// outgoing transfer: the core's account), else its creditor's account (an incoming payment:
// the bank's customer who is paid), else none.

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace clearing::privacy {

// Calls `visit` with every personal string of `document`, in place, depth first.
void for_each_personal_field(nlohmann::json& document,
                             const std::function<void(std::string&)>& visit);

std::optional<std::string> find_subject(const nlohmann::json& document);

}  // namespace clearing::privacy
