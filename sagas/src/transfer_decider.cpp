#include "clearing/sagas/transfer_decider.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "clearing/base/assert.hpp"
#include "clearing/base/text.hpp"

// Read top to bottom: evolve (one small function per event, each asserting what decide
// asserted or guaranteed when it wrote the event), then the decisions (initiation,
// clearing answers, manual resolution), then the public functions.

namespace clearing::sagas {
namespace {

using Events = std::vector<TransferEvent>;
using Decision = tl::expected<Events, TransferRefusal>;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// A transfer between initiation and its outcome that automation still works on: a clearing
// call is due exactly in these states.
bool is_open(TransferStatus status) {
  return status != TransferStatus::empty && !is_terminal(status) &&
         status != TransferStatus::parked_for_review;
}

// =======================================================================================
// Evolve. Never fails on a stream this decider wrote; the assertions say what "wrote"
// means, so a stream written otherwise stops the load instead of moving money on it.

// Every event after TransferInitiated belongs to the transfer it started.
void assert_same_transfer(const TransferState& state, const std::string& transfer_id) {
  CLEARING_ASSERT(state.status != TransferStatus::empty);
  CLEARING_ASSERT_MSG(transfer_id == state.request.transfer_id, "event of another transfer");
}

// An answer event the decider records only for the current attempt, whose call was due.
void assert_current_answer(const TransferState& state, const std::string& transfer_id,
                           std::int32_t attempt) {
  assert_same_transfer(state, transfer_id);
  CLEARING_ASSERT_MSG(is_open(state.status), "answer recorded for a closed transfer");
  CLEARING_ASSERT_MSG(attempt == state.attempt, "a stale non-final answer was recorded");
  CLEARING_ASSERT(state.scheduled.has_value() && state.scheduled->attempt == attempt);
}

// A final answer (settled, rejected) is recorded for any attempt so far, even a stale one;
// attempt 0 is a rejection by validation, before any call.
void assert_final_answer(const TransferState& state, const std::string& transfer_id,
                         std::int32_t attempt) {
  assert_same_transfer(state, transfer_id);
  CLEARING_ASSERT_MSG(is_open(state.status), "outcome recorded for a closed transfer");
  CLEARING_ASSERT(attempt >= 0 && attempt <= state.attempt);
}

// The clearing call for `attempt` becomes due: always with the transfer's one key.
void schedule(TransferState& state, ClearingAction action, std::int32_t attempt, Timestamp due_at) {
  state.attempt = attempt;
  state.scheduled = ScheduledAction{.action = action,
                                    .attempt = attempt,
                                    .due_at = due_at,
                                    .idempotency_key = state.idempotency_key};
}

void apply(TransferState& state, const TransferInitiated& event) {
  CLEARING_ASSERT_MSG(state.status == TransferStatus::empty, "a transfer is initiated once");
  CLEARING_ASSERT_MSG(event.idempotency_key == event.request.transfer_id,
                      "the idempotency key is the transfer id");
  state.status = TransferStatus::initiated;
  state.request = event.request;
  state.correlation_id = event.correlation_id;
  state.idempotency_key = event.idempotency_key;
  state.initiated_at = event.initiated_at;
  state.deadline_at = event.deadline_at;
  schedule(state, ClearingAction::submit, 1, event.initiated_at);
}

void finish(TransferState& state, TransferStatus terminal) {
  state.status = terminal;
  state.scheduled.reset();
}

void apply(TransferState& state, const TransferRejected& event) {
  assert_final_answer(state, event.transfer_id, event.attempt);
  finish(state, TransferStatus::rejected);
  state.reason_code = event.reason_code;
  state.reason = event.reason;
}

void apply(TransferState& state, const DuplicateTransferRequestRefused& event) {
  assert_same_transfer(state, event.transfer_id);
}

void apply(TransferState& state, const RetryScheduled& event) {
  assert_same_transfer(state, event.transfer_id);
  CLEARING_ASSERT_MSG(is_open(state.status), "retry scheduled for a closed transfer");
  CLEARING_ASSERT_MSG(event.idempotency_key == state.idempotency_key,
                      "one transfer, one idempotency key");
  CLEARING_ASSERT_MSG(event.attempt == state.attempt + 1, "attempts are numbered in sequence");
  CLEARING_ASSERT_MSG(!state.scheduled.has_value(), "a retry follows the answer it is for");
  schedule(state, event.action, event.attempt, event.due_at);
}

void apply(TransferState& state, const TransferSettled& event) {
  assert_final_answer(state, event.transfer_id, event.attempt);
  finish(state, TransferStatus::succeeded);
  state.clearing_reference = event.clearing_reference;
  state.settlement_date = event.settlement_date;
}

void apply(TransferState& state, const TransferAcceptedPending& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  state.status = TransferStatus::pending_settlement;
  state.scheduled.reset();
  state.clearing_reference = event.clearing_reference;
  state.settlement_date = event.expected_settlement_date;
  state.unknown_outcomes = 0;
  state.backoff_step = 0;
}

// An answer that leaves the outcome open. Something may now have happened at the
// clearing, so a transfer waiting for its first answer has an unknown outcome; a pending
// or investigated transfer stays what it is.
void apply_open_answer(TransferState& state, std::string last_error) {
  if (state.status == TransferStatus::initiated || state.status == TransferStatus::submitting)
    state.status = state.investigating_since ? TransferStatus::under_investigation
                                             : TransferStatus::outcome_unknown;
  state.scheduled.reset();
  ++state.backoff_step;
  state.last_error = std::move(last_error);
}

void apply(TransferState& state, const ClearingOutcomeUnknown& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  apply_open_answer(state, event.cause);
  ++state.unknown_outcomes;
}

void apply(TransferState& state, const ClearingReportedInProgress& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  apply_open_answer(state, "clearing reports the transfer in progress");
}

void apply(TransferState& state, const IdempotencyKeyConflictDetected& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  CLEARING_ASSERT_MSG(event.idempotency_key == state.idempotency_key,
                      "the conflict is about this transfer's key");
  finish(state, TransferStatus::parked_for_review);
  state.reason = "idempotency key conflict: " + event.reason;
}

// An answer that says nothing was done: the status stays (an earlier attempt's outcome
// may still be open), except that a first submission becomes a repeated one.
void apply_nothing_done(TransferState& state, std::string last_error) {
  if (state.status == TransferStatus::initiated) state.status = TransferStatus::submitting;
  state.scheduled.reset();
  state.last_error = std::move(last_error);
}

void apply(TransferState& state, const ClearingUnavailable& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  apply_nothing_done(state, "clearing unavailable (maintenance)");
}

void apply(TransferState& state, const ClearingUnauthorized& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  apply_nothing_done(state, "clearing refused our credentials (401)");
  ++state.backoff_step;
}

void apply(TransferState& state, const ClearingReportedNotFound& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  CLEARING_ASSERT_MSG(state.scheduled->action == ClearingAction::inquiry,
                      "only an inquiry can find nothing");
  // Nothing exists under the key: the earlier outcomes are known now (nothing happened).
  // A transfer once investigated stays so until its outcome is known: people watch it.
  state.status =
      state.investigating_since ? TransferStatus::under_investigation : TransferStatus::submitting;
  state.scheduled.reset();
  state.unknown_outcomes = 0;
  state.last_error = "clearing has no record of the transfer";
}

void apply(TransferState& state, const TransferUnderInvestigation& event) {
  assert_same_transfer(state, event.transfer_id);
  CLEARING_ASSERT_MSG(is_open(state.status), "only an open transfer is investigated");
  CLEARING_ASSERT_MSG(!state.investigating_since.has_value(), "investigated once per transfer");
  CLEARING_ASSERT(event.attempts == state.attempt);
  state.status = TransferStatus::under_investigation;
  state.investigating_since = event.since;
  state.last_error = event.last_error;
}

void apply(TransferState& state, const ContradictingClearingAnswerReceived& event) {
  assert_same_transfer(state, event.transfer_id);
  CLEARING_ASSERT_MSG(is_terminal(state.status), "only a terminal outcome is contradicted");
}

void apply(TransferState& state, const TransferResolvedManually& event) {
  assert_same_transfer(state, event.transfer_id);
  CLEARING_ASSERT_MSG(state.status == TransferStatus::under_investigation ||
                          state.status == TransferStatus::parked_for_review,
                      "people resolve only what automation could not");
  CLEARING_ASSERT(event.attempts == state.attempt);
  state.resolved_manually = true;
  if (event.outcome == ManualOutcome::succeeded) {
    finish(state, TransferStatus::succeeded);
    state.clearing_reference = event.clearing_reference;
    state.settlement_date = event.settlement_date;
  } else {
    finish(state, TransferStatus::rejected);
    state.reason_code = event.reason_code;
    state.reason = event.reason;
  }
}

void apply(TransferState& state, const SubmissionDeferred& event) {
  assert_current_answer(state, event.transfer_id, event.attempt);
  CLEARING_ASSERT_MSG(state.scheduled->action == event.action, "the deferred call is the due one");
  CLEARING_ASSERT_MSG(event.until > event.deferred_at && event.until > state.scheduled->due_at,
                      "a deferral moves the call later");
  // Nothing was sent: the status, the backoff and the deadline stay; only the time moves.
  state.scheduled->due_at = event.until;
}

// =======================================================================================
// Decide.

Timestamp after(Timestamp at, std::int64_t delay_ms) {
  return at + std::chrono::milliseconds{delay_ms};
}

tl::unexpected<TransferRefusal> refuse(TransferRefusalCode code, std::string message) {
  return tl::unexpected(TransferRefusal{code, std::move(message)});
}

// ---------------------------------------------------------------------------------------
// Initiation: validation and the duplicate check.

struct ValidationFailure {
  std::string_view reason_code;
  std::string reason;
};

std::optional<ValidationFailure> format_failure(const InitiateTransfer& command) {
  const TransferRequest& request = command.request;
  const std::pair<std::string_view, const std::string*> required[] = {
      {"transfer_id", &request.transfer_id},     {"account_id", &request.account_id},
      {"debtor.name", &request.debtor.name},     {"debtor.account", &request.debtor.account.id},
      {"creditor.name", &request.creditor.name}, {"creditor.account", &request.creditor.account.id},
  };
  // The adapter could not read the request: its reason, not a guess from empty fields.
  if (!command.format_problem.empty())
    return ValidationFailure{kReasonInvalidFormat, command.format_problem};
  for (const auto& [name, value] : required) {
    if (value->empty())
      return ValidationFailure{kReasonInvalidFormat, "missing field " + std::string(name)};
  }
  const std::pair<std::string_view, const std::string*> texts[] = {
      {"debtor.name", &request.debtor.name},
      {"creditor.name", &request.creditor.name},
      {"remittance_info", &request.remittance_info},
  };
  for (const auto& [name, value] : texts) {
    if (!base::is_printable_utf8(*value))
      return ValidationFailure{kReasonInvalidFormat,
                               std::string(name) + " is not printable UTF-8 text"};
  }
  // Max140Text counts characters: 71 x "Ø" is 142 bytes and a valid name.
  if (*base::utf8_length(request.debtor.name) > kNameLengthMax ||
      *base::utf8_length(request.creditor.name) > kNameLengthMax)
    return ValidationFailure{kReasonInvalidFormat, "name longer than 140 characters"};
  if (*base::utf8_length(request.remittance_info) > kRemittanceInfoLengthMax)
    return ValidationFailure{kReasonInvalidFormat, "remittance info longer than 140 characters"};
  return std::nullopt;
}

std::optional<ValidationFailure> amount_failure(const Money& amount, const CountryRules& rules) {
  if (amount.currency != rules.currency)
    return ValidationFailure{kReasonCurrency, "currency " + std::string(amount.currency.code()) +
                                                  " not processable; expected " +
                                                  std::string(rules.currency.code())};
  if (amount.minor_units <= 0)
    return ValidationFailure{kReasonAmountLimit, "amount must be positive"};
  if (amount.minor_units > rules.amount_limit_minor)
    return ValidationFailure{kReasonAmountLimit,
                             "amount exceeds the limit of " +
                                 to_string(Money{rules.amount_limit_minor, rules.currency})};
  return std::nullopt;
}

std::optional<ValidationFailure> account_failure(const TransferRequest& request,
                                                 const CountryRules& rules) {
  const std::pair<std::string_view, const Account*> accounts[] = {
      {"debtor", &request.debtor.account}, {"creditor", &request.creditor.account}};
  for (const auto& [role, account] : accounts) {
    if (auto valid = validate_account(rules, *account); !valid) {
      return ValidationFailure{
          kReasonInvalidAccount,
          std::string(role) + " account: " + std::string(account_error_message(valid.error()))};
    }
  }
  return std::nullopt;
}

// The first failure in the order a person fixes them: form, then money, then accounts.
std::optional<ValidationFailure> validation_failure(const InitiateTransfer& command) {
  if (auto failure = format_failure(command)) return failure;
  if (auto failure = amount_failure(command.request.amount, command.rules)) return failure;
  return account_failure(command.request, command.rules);
}

Decision decide_first_initiate(const InitiateTransfer& command) {
  Events events{TransferInitiated{
      .request = command.request,
      .correlation_id = command.correlation_id,
      .initiated_at = command.now,
      .deadline_at = after(command.now, command.policy.deadline_ms),
      .idempotency_key = command.request.transfer_id,
  }};
  if (auto failure = validation_failure(command)) {
    events.push_back(TransferRejected{
        .transfer_id = command.request.transfer_id,
        .attempt = 0,  // refused by validation: the clearing was never called
        .reason_code = std::string(failure->reason_code),
        .reason = std::move(failure->reason),
        .latency_ms = 0,
    });
  }
  return events;
}

Decision decide_initiate(const InitiateTransfer& command, const TransferState& state) {
  if (state.status == TransferStatus::empty) return decide_first_initiate(command);
  if (command.request.transfer_id != state.request.transfer_id)
    return refuse(TransferRefusalCode::transfer_id_mismatch, "command for another transfer");
  auto differences = differing_fields(state.request, command.request);
  if (differences.empty()) return Events{};  // a redelivery: already done
  return Events{DuplicateTransferRequestRefused{
      .transfer_id = command.request.transfer_id,
      .reason_code = std::string(kReasonDuplicate),
      .reason = "transfer id already used by a different request",
      .differing_fields = std::move(differences),
      .correlation_id = command.correlation_id,
      .received_at = command.now,
  }};
}

// ---------------------------------------------------------------------------------------
// Clearing answers.

bool is_final_answer(ClearingAnswerClass cls) {
  return cls == ClearingAnswerClass::settled || cls == ClearingAnswerClass::rejected;
}

// Against a terminal outcome, an answer that states another outcome (or, for a settled
// transfer, that the clearing never had it) is a contradiction; anything else is a late
// echo of what is already known.
bool contradicts(const RecordClearingAnswer& answer, const TransferState& state) {
  using Cls = ClearingAnswerClass;
  const bool states_acceptance = answer.cls == Cls::settled || answer.cls == Cls::pending;
  if (state.status == TransferStatus::rejected) return states_acceptance;
  CLEARING_ASSERT(state.status == TransferStatus::succeeded);
  if (states_acceptance)
    return !answer.clearing_reference.empty() &&
           answer.clearing_reference != state.clearing_reference;
  if (answer.cls == Cls::rejected) return true;
  return answer.cls == Cls::not_found && answer.kind == ClearingAction::inquiry;
}

Decision decide_after_terminal(const RecordClearingAnswer& answer, const TransferState& state) {
  if (!contradicts(answer, state)) return Events{};
  return Events{ContradictingClearingAnswerReceived{
      .transfer_id = answer.transfer_id,
      .attempt = answer.attempt,
      .terminal_state = std::string(status_name(state.status)),
      .answer = std::string(answer_class_name(answer.cls)),
      .clearing_reference = answer.clearing_reference,
      .reason_code = answer.reason_code,
      .reason = answer.reason,
      .received_at = answer.now,
  }};
}

// The retry a setback asks for, before the deadline rule has its say.
struct PlannedRetry {
  ClearingAction action;
  Timestamp due_at;
  std::string reason;
};

RetryScheduled schedule(const TransferState& state, PlannedRetry retry) {
  // Every call of a transfer carries its one key, and attempts count up by one.
  CLEARING_ASSERT(state.idempotency_key == state.request.transfer_id);
  return RetryScheduled{
      .transfer_id = state.request.transfer_id,
      .idempotency_key = state.idempotency_key,
      .action = retry.action,
      .attempt = state.attempt + 1,
      .due_at = retry.due_at,
      .reason = std::move(retry.reason),
  };
}

// Past the deadline an unsettled outcome goes to people once, and inquiries go on at the
// slower investigation pace. A pending transfer is exempt: the clearing has accepted it and
// will settle it on its own calendar.
bool escalates(const TransferState& state, Timestamp now) {
  return now >= state.deadline_at && state.status != TransferStatus::pending_settlement;
}

// The answers that leave the outcome open (unknown, 409, 503, 401): the answer event, then
// past the deadline TransferUnderInvestigation (once), then exactly one RetryScheduled.
Events on_setback(const RecordClearingAnswer& answer, const TransferState& state,
                  TransferEvent answer_event, PlannedRetry retry, std::string last_error) {
  Events events{std::move(answer_event)};
  if (escalates(state, answer.now)) {
    if (!state.investigating_since) {
      events.push_back(TransferUnderInvestigation{
          .transfer_id = state.request.transfer_id,
          .since = answer.now,
          .attempts = state.attempt,
          .last_error = std::move(last_error),
      });
    }
    const auto slow_due = after(answer.now, answer.policy.investigation_inquiry_interval_ms);
    retry = PlannedRetry{ClearingAction::inquiry, std::max(retry.due_at, slow_due),
                         "under investigation: inquiry"};
  }
  events.push_back(schedule(state, std::move(retry)));
  return events;
}

Timestamp backoff_due(const RecordClearingAnswer& answer, const TransferState& state) {
  return after(answer.now,
               backoff_delay_ms(answer.policy, state.backoff_step + 1, answer.jitter_permille));
}

Events on_unknown(const RecordClearingAnswer& answer, const TransferState& state,
                  std::string cause) {
  if (cause.empty()) cause = "unknown outcome";
  // Once inquiring, keep inquiring until the clearing says something definite; before
  // that, resubmit with the same key until N unknowns in a row.
  const bool inquire = answer.kind == ClearingAction::inquiry ||
                       state.unknown_outcomes + 1 >= answer.policy.unknown_outcomes_before_inquiry;
  PlannedRetry retry{inquire ? ClearingAction::inquiry : ClearingAction::submit,
                     backoff_due(answer, state),
                     inquire ? "outcome unknown: inquiry" : "outcome unknown: resubmit"};
  return on_setback(answer, state,
                    ClearingOutcomeUnknown{.transfer_id = answer.transfer_id,
                                           .attempt = answer.attempt,
                                           .cause = cause,
                                           .latency_ms = answer.latency_ms},
                    std::move(retry), cause);
}

Events on_in_progress(const RecordClearingAnswer& answer, const TransferState& state) {
  return on_setback(answer, state,
                    ClearingReportedInProgress{.transfer_id = answer.transfer_id,
                                               .attempt = answer.attempt,
                                               .latency_ms = answer.latency_ms},
                    PlannedRetry{ClearingAction::inquiry, backoff_due(answer, state),
                                 "clearing reports in progress: inquiry"},
                    "clearing reports the transfer in progress");
}

Events on_maintenance(const RecordClearingAnswer& answer, const TransferState& state) {
  // Retry-After is honoured as given; without one, the initial backoff.
  const auto wait_ms =
      answer.retry_after_ms > 0 ? answer.retry_after_ms : answer.policy.backoff_initial_ms;
  return on_setback(answer, state,
                    ClearingUnavailable{.transfer_id = answer.transfer_id,
                                        .attempt = answer.attempt,
                                        .retry_after_ms = answer.retry_after_ms,
                                        .latency_ms = answer.latency_ms},
                    PlannedRetry{answer.kind, after(answer.now, wait_ms),
                                 "clearing unavailable: retry after maintenance"},
                    "clearing unavailable (maintenance)");
}

Events on_unauthorized(const RecordClearingAnswer& answer, const TransferState& state) {
  return on_setback(answer, state,
                    ClearingUnauthorized{.transfer_id = answer.transfer_id,
                                         .attempt = answer.attempt,
                                         .latency_ms = answer.latency_ms},
                    PlannedRetry{answer.kind, backoff_due(answer, state),
                                 "clearing refused our credentials: retry"},
                    "clearing refused our credentials (401)");
}

Events on_pending(const RecordClearingAnswer& answer, const TransferState& state) {
  return Events{
      TransferAcceptedPending{.transfer_id = answer.transfer_id,
                              .attempt = answer.attempt,
                              .clearing_reference = answer.clearing_reference,
                              .expected_settlement_date = answer.settlement_date,
                              .latency_ms = answer.latency_ms},
      schedule(state, PlannedRetry{ClearingAction::inquiry,
                                   after(answer.now, answer.policy.pending_inquiry_interval_ms),
                                   "awaiting settlement: inquiry"})};
}

Events on_not_found(const RecordClearingAnswer& answer, const TransferState& state) {
  // Nothing was executed under the key, so a resubmission with the same key is safe and
  // is due at once: the inquiry itself was the wait.
  return Events{
      ClearingReportedNotFound{.transfer_id = answer.transfer_id,
                               .attempt = answer.attempt,
                               .latency_ms = answer.latency_ms},
      schedule(state, PlannedRetry{ClearingAction::submit, answer.now,
                                   "clearing has no record: resubmit with the same key"})};
}

Events on_settled(const RecordClearingAnswer& answer) {
  return Events{TransferSettled{.transfer_id = answer.transfer_id,
                                .attempt = answer.attempt,
                                .clearing_reference = answer.clearing_reference,
                                .settlement_date = answer.settlement_date,
                                .latency_ms = answer.latency_ms}};
}

Events on_rejected(const RecordClearingAnswer& answer, std::string reason_code) {
  if (reason_code.empty()) reason_code = std::string(kReasonNotSpecified);
  return Events{TransferRejected{.transfer_id = answer.transfer_id,
                                 .attempt = answer.attempt,
                                 .reason_code = std::move(reason_code),
                                 .reason = answer.reason,
                                 .latency_ms = answer.latency_ms}};
}

Events on_key_reused(const RecordClearingAnswer& answer, const TransferState& state) {
  return Events{IdempotencyKeyConflictDetected{.transfer_id = answer.transfer_id,
                                               .attempt = answer.attempt,
                                               .idempotency_key = state.idempotency_key,
                                               .reason = answer.reason,
                                               .latency_ms = answer.latency_ms}};
}

Events answer_events(const RecordClearingAnswer& answer, const TransferState& state) {
  using Cls = ClearingAnswerClass;
  const bool on_inquiry = answer.kind == ClearingAction::inquiry;
  switch (answer.cls) {
    case Cls::settled:
      return on_settled(answer);
    case Cls::rejected:
      return on_rejected(answer, answer.reason_code);
    case Cls::pending:
      return on_pending(answer, state);
    case Cls::unknown:
      return on_unknown(answer, state, answer.cause);
    case Cls::in_progress:
      return on_in_progress(answer, state);
    case Cls::maintenance:
      return on_maintenance(answer, state);
    case Cls::unauthorized:
      return on_unauthorized(answer, state);
    case Cls::key_reused:
      return on_key_reused(answer, state);
    case Cls::malformed_request:
      // A 400 on a submission means nothing was executed; on an inquiry it says nothing
      // about the transfer (an earlier submission may have executed), so it is an
      // inquiry failure and must never become a rejection.
      if (!on_inquiry) return on_rejected(answer, std::string(kReasonInvalidFormat));
      return on_unknown(answer, state, "inquiry refused as malformed: " + answer.reason);
    case Cls::not_found:
      // 404 has a meaning only for an inquiry; on a submission it is an unexpected answer.
      if (on_inquiry) return on_not_found(answer, state);
      return on_unknown(answer, state, "unexpected 404 on submission");
  }
  return on_unknown(answer, state, "unclassified answer");
}

Decision decide_answer(const RecordClearingAnswer& answer, const TransferState& state) {
  if (state.status == TransferStatus::empty)
    return refuse(TransferRefusalCode::unknown_transfer, "answer for a transfer never initiated");
  if (answer.transfer_id != state.request.transfer_id)
    return refuse(TransferRefusalCode::transfer_id_mismatch, "answer for another transfer");
  if (is_terminal(state.status)) return decide_after_terminal(answer, state);
  if (state.status == TransferStatus::parked_for_review) return Events{};
  const bool current = answer.attempt == state.attempt;
  if (!current) return is_final_answer(answer.cls) ? answer_events(answer, state) : Events{};
  CLEARING_ASSERT(state.scheduled.has_value());
  if (state.scheduled->action != answer.kind)
    return refuse(TransferRefusalCode::answer_kind_mismatch,
                  "answer kind differs from the scheduled action of the attempt");
  return answer_events(answer, state);
}

// ---------------------------------------------------------------------------------------
// Manual resolution.

std::optional<std::string> resolution_gap(const ResolveManually& command) {
  if (command.operator_name.empty()) return "operator name missing";
  if (command.reason.empty()) return "reason missing";
  if (command.outcome == ManualOutcome::succeeded && command.clearing_reference.empty())
    return "clearing reference missing for a success";
  if (command.outcome == ManualOutcome::rejected && command.reason_code.empty())
    return "reason code missing for a rejection";
  return std::nullopt;
}

Decision decide_resolve(const ResolveManually& command, const TransferState& state) {
  if (state.status == TransferStatus::empty)
    return refuse(TransferRefusalCode::unknown_transfer, "no such transfer");
  if (command.transfer_id != state.request.transfer_id)
    return refuse(TransferRefusalCode::transfer_id_mismatch, "command for another transfer");
  if (is_terminal(state.status))
    return refuse(TransferRefusalCode::already_terminal, "the transfer has its outcome");
  if (state.status != TransferStatus::under_investigation &&
      state.status != TransferStatus::parked_for_review)
    return refuse(TransferRefusalCode::not_under_investigation,
                  "the transfer is still handled automatically");
  if (auto gap = resolution_gap(command))
    return refuse(TransferRefusalCode::incomplete_resolution, std::move(*gap));
  return Events{TransferResolvedManually{
      .transfer_id = command.transfer_id,
      .outcome = command.outcome,
      .reason = command.reason,
      .operator_name = command.operator_name,
      .clearing_reference = command.clearing_reference,
      .settlement_date = command.settlement_date,
      .reason_code = command.reason_code,
      .corrects_state = std::string(state_name(state)),
      .attempts = state.attempt,
      .resolved_at = command.now,
  }};
}

// ---------------------------------------------------------------------------------------
// Maintenance windows.

Decision decide_defer(const DeferClearingCall& command, const TransferState& state) {
  if (state.status == TransferStatus::empty)
    return refuse(TransferRefusalCode::unknown_transfer, "deferral for a transfer never initiated");
  if (command.transfer_id != state.request.transfer_id)
    return refuse(TransferRefusalCode::transfer_id_mismatch, "command for another transfer");
  // No call due (an outcome, or parked for people), or the row is about an older attempt:
  // nothing to defer.
  if (!is_open(state.status) || command.attempt != state.attempt) return Events{};
  CLEARING_ASSERT(state.scheduled.has_value());
  if (state.scheduled->action != command.kind)
    return refuse(TransferRefusalCode::answer_kind_mismatch,
                  "deferral kind differs from the scheduled action of the attempt");
  const auto& window = command.window;
  // Outside every window (none given, or one that does not hold `now`: its end would not be
  // later), or already due at (or after) this window's end: one event per window per transfer.
  if (!window || command.now < window->start || command.now >= window->end ||
      state.scheduled->due_at >= window->end)
    return Events{};
  return Events{SubmissionDeferred{.transfer_id = command.transfer_id,
                                   .attempt = command.attempt,
                                   .action = command.kind,
                                   .until = window->end,
                                   .window = window->window,
                                   .deferred_at = command.now}};
}

}  // namespace

// =======================================================================================
// Public functions.

tl::expected<void, AccountError> validate_account(const CountryRules& rules,
                                                  const Account& account) {
  if (!account.id.empty() && std::find(rules.account_schemes.begin(), rules.account_schemes.end(),
                                       account.scheme) == rules.account_schemes.end())
    return tl::unexpected(AccountError::scheme_not_used);
  return validate_account(rules.country, account);
}

std::int64_t backoff_delay_ms(const RetryPolicy& policy, std::int32_t step,
                              std::int32_t jitter_permille) noexcept {
  const std::int64_t cap = std::clamp<std::int64_t>(policy.backoff_max_ms, 1, kBackoffCeilingMs);
  const std::int64_t multiplier = std::max<std::int64_t>(policy.backoff_multiplier, 1);
  std::int64_t delay = std::clamp<std::int64_t>(policy.backoff_initial_ms, 1, cap);
  // Bounded: with multiplier >= 2 the cap (at most a week) is reached within 40 steps.
  for (std::int32_t i = 1; i < step && multiplier > 1 && delay < cap; ++i)
    delay = delay > cap / multiplier ? cap : delay * multiplier;
  const std::int64_t jitter = std::clamp<std::int32_t>(jitter_permille, 0, kJitterPermilleMax);
  return delay - delay / 2 * jitter / 1000;
}

std::vector<std::string> differing_fields(const TransferRequest& a, const TransferRequest& b) {
  std::vector<std::string> names;
  if (a.transfer_id != b.transfer_id) names.emplace_back("transfer_id");
  if (a.account_id != b.account_id) names.emplace_back("account_id");
  if (a.amount != b.amount) names.emplace_back("amount");
  if (a.debtor != b.debtor) names.emplace_back("debtor");
  if (a.creditor != b.creditor) names.emplace_back("creditor");
  if (a.remittance_info != b.remittance_info) names.emplace_back("remittance_info");
  if (a.requested_at != b.requested_at) names.emplace_back("requested_at");
  return names;
}

const std::string& target_transfer_id(const TransferCommand& command) noexcept {
  return std::visit(
      Overloaded{
          [](const InitiateTransfer& c) -> const std::string& { return c.request.transfer_id; },
          [](const auto& c) -> const std::string& { return c.transfer_id; },
      },
      command);
}

bool is_terminal(TransferStatus status) noexcept {
  return status == TransferStatus::succeeded || status == TransferStatus::rejected;
}

std::string_view state_name(const TransferState& state) noexcept {
  return status_name(state.status);
}

std::optional<ScheduledAction> next_action(const TransferState& state) {
  if (!is_open(state.status)) return std::nullopt;
  // evolve keeps `scheduled` set in every open state once a decision is fully applied.
  CLEARING_ASSERT(state.scheduled.has_value());
  CLEARING_ASSERT(state.scheduled->idempotency_key == state.idempotency_key);
  return state.scheduled;
}

// ---------------------------------------------------------------------------------------
// The decider.

TransferState TransferDecider::initial_state() { return TransferState{}; }

TransferState TransferDecider::evolve(const TransferState& state, const TransferEvent& event) {
  TransferState next = state;
  std::visit([&next](const auto& e) { apply(next, e); }, event);
  return next;
}

tl::expected<std::vector<TransferEvent>, TransferRefusal> TransferDecider::decide(
    const TransferCommand& command, const TransferState& state) {
  return std::visit(Overloaded{
                        [&state](const InitiateTransfer& c) { return decide_initiate(c, state); },
                        [&state](const RecordClearingAnswer& c) { return decide_answer(c, state); },
                        [&state](const ResolveManually& c) { return decide_resolve(c, state); },
                        [&state](const DeferClearingCall& c) { return decide_defer(c, state); },
                    },
                    command);
}

}  // namespace clearing::sagas
