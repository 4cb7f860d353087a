#pragma once
// The one place where the clearing client's classified answer becomes the saga's
// command. Pure; every answer class maps to exactly one ClearingAnswerClass.

#include <cstdint>

#include "clearing/clearing_client/answer.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::adapter {

sagas::ClearingAnswerClass to_saga_class(clearing_client::AnswerClass answer_class) noexcept;

// The cause text kept in ClearingOutcomeUnknown: the stable cause name, plus the HTTP
// status when there was one ("server_error (HTTP 502)"). Never carries body text that
// could hold account data.
std::string unknown_cause_text(const clearing_client::ClearingAnswer& answer);

sagas::RecordClearingAnswer to_command(const clearing_client::ClearingAnswer& answer,
                                       const std::string& transfer_id, std::int32_t attempt,
                                       sagas::ClearingAction kind, base::Timestamp now,
                                       std::int32_t jitter_permille,
                                       const sagas::RetryPolicy& policy);

// The body of POST /v1/transfers for a transfer's request.
clearing_client::SubmitRequest to_submit_request(const sagas::TransferRequest& request);

}  // namespace clearing::adapter
