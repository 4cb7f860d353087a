#pragma once
// The clearing's side of ../shared/contracts/clearing-api.md: the answer bodies the clearing
// writes and a feed payment as one element of a page. classify.hpp reads them (the client's
// side); clearing-mock writes its answers with these, and the incoming poller keeps a parked
// payment in the same form, so both ends come from one description of the contract
// (answer_codec_test pins the bytes and reads each body back with classify).
// Light header: std only.

#include <optional>
#include <string>

#include "clearing/clearing_client/answer.hpp"

namespace clearing::clearing_client {

// 201 ACSC / 202 PDNG on submit, 200 on inquiry.
struct AcceptedBody {
  bool pending = false;  // PDNG: settles later; ACSC otherwise
  std::string clearing_reference;
  std::string settlement_date;  // YYYY-MM-DD
  // The request's key, echoed. The contract does not ask for it; a clearing that sends it
  // lets the client refuse an answer meant for another request (reference_mismatch).
  std::optional<std::string> reference;
};

// 200 RJCT: rejected for good.
struct RejectedBody {
  std::string reason_code;  // ISO 20022, four of [A-Z0-9]
  std::string reason;
  std::optional<std::string> reference;  // as AcceptedBody::reference
};

// {"error": {"code", "message"}}: 400, 404, 409, 422, 500-504, and the mainframe's 200.
struct ErrorBody {
  std::string code;
  std::string message;
};

// JSON text, keys in the contract's spelling (sorted). Text that is not valid UTF-8 is
// replaced, never thrown on.
std::string encode_answer_body(const AcceptedBody& body);
std::string encode_answer_body(const RejectedBody& body);
std::string encode_answer_body(const ErrorBody& body);

// One payment as an element of a feed page's `payments` array (every field of the contract).
std::string encode_incoming_payment(const IncomingPayment& payment);

}  // namespace clearing::clearing_client
