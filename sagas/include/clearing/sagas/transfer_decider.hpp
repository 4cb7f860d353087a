#pragma once
// The Transfer aggregate: one outgoing payment from a request of the banking core to
// exactly one terminal outcome (Succeeded or Rejected), through any number of clearing
// calls. Read top to bottom (STYLE.md): policy and vocabulary, events, state, commands,
// and the decider (evolve, then decide).
//
// Invariants (DESIGN.md section 7, each proven in tests/transfer_test.cpp):
//  - one transfer, one idempotency key (= transfer_id), for ever; every scheduled clearing
//    call carries it;
//  - a timeout (any unknown outcome) never becomes a rejection: past the deadline the
//    transfer goes UnderInvestigation once and inquiries go on, slower;
//  - a terminal state never changes; a contradicting later answer is an alarm event;
//  - each clearing answer gives exactly one answer event, plus at most one RetryScheduled
//    (and, once, TransferUnderInvestigation).
//
// Pure: no clock reads (time is `now` in each command), no randomness (jitter is a command
// field), no I/O, no logging. Not thread safe by itself, and needs not be: all functions
// are free of shared state.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <variant>
#include <vector>

#include "clearing/base/clock.hpp"
#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/account.hpp"
#include "clearing/sagas/maintenance_window.hpp"
#include "clearing/sagas/money.hpp"

namespace clearing::sagas {

using base::Timestamp;

// ---------------------------------------------------------------------------------------
// Policy (from config; passed inside the commands so that decisions stay pure).

struct CountryRules {
  Country country = Country::dk;
  Currency currency;                    // the only currency the adapter accepts
  std::int64_t amount_limit_minor = 0;  // inclusive upper limit per transfer
  // The schemes the country's accounts come in (config: country.account_schemes); an account
  // of another scheme is refused (AccountError::scheme_not_used) like one the registry has no
  // rule for.
  std::vector<AccountScheme> account_schemes{AccountScheme::iban, AccountScheme::bban};
  friend bool operator==(const CountryRules&, const CountryRules&) = default;
};

// validate_account(rules.country, account) for an account of a scheme in use.
tl::expected<void, AccountError> validate_account(const CountryRules& rules,
                                                  const Account& account);

struct RetryPolicy {
  std::int64_t backoff_initial_ms = 1'000;
  std::int64_t backoff_max_ms = 60'000;              // the cap; never exceeded, jitter included
  std::int64_t backoff_multiplier = 2;               // integer: no floating point in scheduling
  std::int32_t unknown_outcomes_before_inquiry = 3;  // N consecutive unknowns -> inquire
  std::int64_t pending_inquiry_interval_ms = 60'000;
  std::int64_t investigation_inquiry_interval_ms = 300'000;
  std::int64_t deadline_ms = 3'600'000;  // from initiation to UnderInvestigation
  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

// Backoffs are bounded even with a careless config: a week at most.
inline constexpr std::int64_t kBackoffCeilingMs = 7LL * 24 * 3600 * 1000;
inline constexpr std::int32_t kJitterPermilleMax = 999;

// The delay before the retry after the `step`-th consecutive setback (step >= 1):
// base = min(backoff_max_ms, backoff_initial_ms * multiplier^(step - 1)), then jitter takes
// off up to half: base - base/2 * jitter_permille/1000, so the result lies in
// [base/2, base] and never exceeds the cap. Out-of-range inputs are clamped (multiplier
// >= 1, initial >= 1, jitter 0..999), never trusted.
std::int64_t backoff_delay_ms(const RetryPolicy& policy, std::int32_t step,
                              std::int32_t jitter_permille) noexcept;

// ---------------------------------------------------------------------------------------
// Vocabulary shared by commands and events.

struct Party {
  std::string name;
  Account account;
  friend bool operator==(const Party&, const Party&) = default;
};

// What the dispatcher does at the clearing: POST /v1/transfers or GET /v1/transfers/{key}.
// The names of this and every enumeration below are in names.hpp, one table each.
enum class ClearingAction { submit, inquiry };
std::string_view action_name(ClearingAction action) noexcept;  // "submit", "inquiry"
std::optional<ClearingAction> parse_action(std::string_view name) noexcept;

// The classes of answer of the clearing contract, as the adapter maps the client's result.
// sagas defines its own enum so that it does not depend on the client.
enum class ClearingAnswerClass {
  settled,            // 201 ACSC (or ACSC on inquiry)
  pending,            // 202 PDNG (or PDNG on inquiry)
  rejected,           // 200 RJCT with a reason code
  unknown,            // timeout, reset, 500/502/504, 200 with error body, unparsable body
  in_progress,        // 409 IN_PROGRESS
  key_reused,         // 422 IDEMPOTENCY_KEY_REUSED
  maintenance,        // 503 with Retry-After: nothing was done
  malformed_request,  // 400: nothing was executed
  not_found,          // 404 on inquiry: the clearing never accepted this key
  unauthorized,       // 401: nothing was done; people must fix the credentials
};
std::string_view answer_class_name(ClearingAnswerClass cls) noexcept;  // "settled", ...

enum class ManualOutcome { succeeded, rejected };
std::string_view manual_outcome_name(ManualOutcome outcome) noexcept;
std::optional<ManualOutcome> parse_manual_outcome(std::string_view name) noexcept;

// The content of a transfer request: what the core asked for. Two requests with the same
// transfer id are the same request exactly when these fields are equal (the fingerprint);
// when it was delivered (`now`) and under which correlation id do not matter.
struct TransferRequest {
  std::string transfer_id;
  std::string account_id;  // the core's account id
  Money amount;
  Party debtor;
  Party creditor;
  std::string remittance_info;
  Timestamp requested_at{};
  friend bool operator==(const TransferRequest&, const TransferRequest&) = default;
};

// Names of the fields in which two requests differ ("amount", "creditor", ...): what a
// DUPL event reports, without the values.
std::vector<std::string> differing_fields(const TransferRequest& a, const TransferRequest& b);

// ISO 20022 ExternalStatusReason1Code values the decider produces itself.
inline constexpr std::string_view kReasonInvalidAccount = "AC01";
inline constexpr std::string_view kReasonAmountLimit = "AM02";
inline constexpr std::string_view kReasonCurrency = "AM03";
inline constexpr std::string_view kReasonInvalidFormat = "FF01";
inline constexpr std::string_view kReasonDuplicate = "DUPL";
inline constexpr std::string_view kReasonNotSpecified = "MS03";

// Field limits of ISO 20022 pacs.008 (Max140Text): longer text is refused with FF01.
inline constexpr std::size_t kNameLengthMax = 140;
inline constexpr std::size_t kRemittanceInfoLengthMax = 140;

// ---------------------------------------------------------------------------------------
// Events. `kType` is the persisted type name: stable, never renamed (golden tests).
// Build them with designated initialisers (`TransferSettled{.transfer_id = ..., ...}`), so
// that two fields of one type cannot be swapped unnoticed. What decide writes into an
// event, evolve asserts when it reads it back (the key, the attempt numbering, the state
// the event may follow): a stream that breaks them was not written by this decider.

// The request is kept whatever happens next, valid or not. The first submission
// (attempt 1) is due at `initiated_at` unless a TransferRejected follows at once.
struct TransferInitiated {
  static constexpr std::string_view kType = "TransferInitiated";
  TransferRequest request;  // stored flat: its fields are the event's first seven
  std::string correlation_id;
  Timestamp initiated_at{};
  Timestamp deadline_at{};
  std::string idempotency_key;
  friend bool operator==(const TransferInitiated&, const TransferInitiated&) = default;
};

// Terminal. attempt 0: refused by validation, the clearing was never called.
struct TransferRejected {
  static constexpr std::string_view kType = "TransferRejected";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string reason_code;
  std::string reason;
  std::int64_t latency_ms = 0;
  friend bool operator==(const TransferRejected&, const TransferRejected&) = default;
};

// A second, different request with a used transfer id. Changes nothing: the first goes on.
struct DuplicateTransferRequestRefused {
  static constexpr std::string_view kType = "DuplicateTransferRequestRefused";
  std::string transfer_id;
  std::string reason_code;  // always "DUPL"
  std::string reason;
  std::vector<std::string> differing_fields;
  std::string correlation_id;  // of the refused request
  Timestamp received_at{};
  friend bool operator==(const DuplicateTransferRequestRefused&,
                         const DuplicateTransferRequestRefused&) = default;
};

// The next clearing call: a timer kept as an event, so it survives restarts.
struct RetryScheduled {
  static constexpr std::string_view kType = "RetryScheduled";
  std::string transfer_id;
  std::string idempotency_key;
  ClearingAction action = ClearingAction::submit;
  std::int32_t attempt = 0;
  Timestamp due_at{};
  std::string reason;
  friend bool operator==(const RetryScheduled&, const RetryScheduled&) = default;
};

// Terminal.
struct TransferSettled {
  static constexpr std::string_view kType = "TransferSettled";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string clearing_reference;
  std::string settlement_date;
  std::int64_t latency_ms = 0;
  friend bool operator==(const TransferSettled&, const TransferSettled&) = default;
};

// Accepted, settles later. Recorded for every pending answer (the first one is the
// transition the core hears about as TransferPending).
struct TransferAcceptedPending {
  static constexpr std::string_view kType = "TransferAcceptedPending";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string clearing_reference;
  std::string expected_settlement_date;
  std::int64_t latency_ms = 0;
  friend bool operator==(const TransferAcceptedPending&, const TransferAcceptedPending&) = default;
};

struct ClearingOutcomeUnknown {
  static constexpr std::string_view kType = "ClearingOutcomeUnknown";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string cause;
  std::int64_t latency_ms = 0;
  friend bool operator==(const ClearingOutcomeUnknown&, const ClearingOutcomeUnknown&) = default;
};

struct ClearingReportedInProgress {
  static constexpr std::string_view kType = "ClearingReportedInProgress";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::int64_t latency_ms = 0;
  friend bool operator==(const ClearingReportedInProgress&,
                         const ClearingReportedInProgress&) = default;
};

// A defect (our key came with another body): parks the transfer for people.
struct IdempotencyKeyConflictDetected {
  static constexpr std::string_view kType = "IdempotencyKeyConflictDetected";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string idempotency_key;
  std::string reason;
  std::int64_t latency_ms = 0;
  friend bool operator==(const IdempotencyKeyConflictDetected&,
                         const IdempotencyKeyConflictDetected&) = default;
};

// Maintenance window: nothing was done; not an unknown outcome.
struct ClearingUnavailable {
  static constexpr std::string_view kType = "ClearingUnavailable";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::int64_t retry_after_ms = 0;
  std::int64_t latency_ms = 0;
  friend bool operator==(const ClearingUnavailable&, const ClearingUnavailable&) = default;
};

// The clearing never accepted the key: resubmitting with the same key is safe.
struct ClearingReportedNotFound {
  static constexpr std::string_view kType = "ClearingReportedNotFound";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::int64_t latency_ms = 0;
  friend bool operator==(const ClearingReportedNotFound&,
                         const ClearingReportedNotFound&) = default;
};

// Our credentials were refused: nothing was done; an alarm for people, retried meanwhile.
struct ClearingUnauthorized {
  static constexpr std::string_view kType = "ClearingUnauthorized";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::int64_t latency_ms = 0;
  friend bool operator==(const ClearingUnauthorized&, const ClearingUnauthorized&) = default;
};

// Past the deadline with the outcome still unknown: people are alerted, inquiries go on.
// Recorded once per transfer.
struct TransferUnderInvestigation {
  static constexpr std::string_view kType = "TransferUnderInvestigation";
  std::string transfer_id;
  Timestamp since{};
  std::int32_t attempts = 0;
  std::string last_error;
  friend bool operator==(const TransferUnderInvestigation&,
                         const TransferUnderInvestigation&) = default;
};

// An alarm: the clearing answered against a terminal outcome. The state does not change.
struct ContradictingClearingAnswerReceived {
  static constexpr std::string_view kType = "ContradictingClearingAnswerReceived";
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::string terminal_state;  // "succeeded" or "rejected"
  std::string answer;          // answer_class_name
  std::string clearing_reference;
  std::string reason_code;
  std::string reason;
  Timestamp received_at{};
  friend bool operator==(const ContradictingClearingAnswerReceived&,
                         const ContradictingClearingAnswerReceived&) = default;
};

// Terminal. `corrects_state` and `attempts` say what the people corrected; the adapter
// adds the ids of the events they looked at in metadata (only the store knows them).
struct TransferResolvedManually {
  static constexpr std::string_view kType = "TransferResolvedManually";
  std::string transfer_id;
  ManualOutcome outcome = ManualOutcome::succeeded;
  std::string reason;
  std::string operator_name;
  std::string clearing_reference;
  std::string settlement_date;
  std::string reason_code;
  std::string corrects_state;  // state_name before the resolution
  std::int32_t attempts = 0;
  Timestamp resolved_at{};
  friend bool operator==(const TransferResolvedManually&,
                         const TransferResolvedManually&) = default;
};

// The due clearing call fell inside a known maintenance window of the clearing: it was not
// made, and is due again at the window's end (`until`), same attempt, same key. Recorded at
// most once per window per transfer. `action` says which call: submissions and inquiries are
// both deferred (an inquiry in a window would only collect 503s too). A deferral is not a
// setback: no backoff step, no escalation, and the transfer's deadline does not move.
struct SubmissionDeferred {
  static constexpr std::string_view kType = "SubmissionDeferred";
  std::string transfer_id;
  std::int32_t attempt = 0;
  ClearingAction action = ClearingAction::submit;
  Timestamp until{};   // the window's end: the call is due then
  std::string window;  // ActiveMaintenance::window, e.g. "weekly Sun 01:00-03:00"
  Timestamp deferred_at{};
  friend bool operator==(const SubmissionDeferred&, const SubmissionDeferred&) = default;
};

using TransferEvent =
    std::variant<TransferInitiated, TransferRejected, DuplicateTransferRequestRefused,
                 RetryScheduled, TransferSettled, TransferAcceptedPending, ClearingOutcomeUnknown,
                 ClearingReportedInProgress, IdempotencyKeyConflictDetected, ClearingUnavailable,
                 ClearingReportedNotFound, ClearingUnauthorized, TransferUnderInvestigation,
                 ContradictingClearingAnswerReceived, TransferResolvedManually, SubmissionDeferred>;

// ---------------------------------------------------------------------------------------
// State.

// initiated and submitting are the AwaitingSubmission state: a submit is due and nothing
// is known to have been executed (initiated: no answer yet; submitting: only answers that
// say nothing was done: maintenance, 401, 404 on inquiry).
enum class TransferStatus {
  empty,
  initiated,
  submitting,
  outcome_unknown,
  pending_settlement,
  under_investigation,
  parked_for_review,
  succeeded,
  rejected,
};

// "empty", "initiated", "submitting", "outcome_unknown", "pending_settlement",
// "under_investigation", "parked_for_review", "succeeded", "rejected".
std::string_view status_name(TransferStatus status) noexcept;

bool is_terminal(TransferStatus status) noexcept;

// A clearing call that is due: the dispatcher's work item.
struct ScheduledAction {
  ClearingAction action = ClearingAction::submit;
  std::int32_t attempt = 0;
  Timestamp due_at{};
  std::string idempotency_key;
  friend bool operator==(const ScheduledAction&, const ScheduledAction&) = default;
};

struct TransferState {
  TransferStatus status = TransferStatus::empty;
  TransferRequest request;  // what the dispatcher submits
  std::string correlation_id;
  std::string idempotency_key;  // = request.transfer_id, for ever
  Timestamp initiated_at{};
  Timestamp deadline_at{};
  std::int32_t attempt = 0;                  // the latest scheduled attempt
  std::optional<ScheduledAction> scheduled;  // set exactly when a clearing call is due
  std::int32_t unknown_outcomes = 0;         // consecutive; a not-found or pending resets
  std::int32_t backoff_step = 0;             // consecutive setbacks: the backoff exponent
  std::optional<Timestamp> investigating_since;
  std::string last_error;
  std::string clearing_reference;
  std::string settlement_date;  // expected while pending, actual once succeeded
  std::string reason_code;      // rejected
  std::string reason;           // rejected, parked
  bool resolved_manually = false;
  friend bool operator==(const TransferState&, const TransferState&) = default;
};

std::string_view state_name(const TransferState& state) noexcept;

// The clearing call due for this transfer, if any: present exactly in the non-terminal
// states other than ParkedForReview (empty, parked, succeeded, rejected -> nullopt). It
// always carries the transfer's idempotency key and the attempt number its answer must
// name. The adapter keeps its work-queue row equal to this after every append, in the
// same transaction.
std::optional<ScheduledAction> next_action(const TransferState& state);

// ---------------------------------------------------------------------------------------
// Commands.

// From the core's TransferRequested. Idempotent: the same content again is a no-op.
struct InitiateTransfer {
  TransferRequest request;
  std::string correlation_id;
  Timestamp now{};
  CountryRules rules;
  RetryPolicy policy;
  // Set by the adapter when the core's message could not be read into this command (a
  // field missing, too large, not text): the transfer is rejected FF01 with this reason
  // instead of a guess from the fields left empty. Names fields, never values.
  std::string format_problem;
};

// One classified answer of the clearing to the call made for `attempt`.
// Stale answers: an answer whose attempt is not the current one (a late answer, or the
// same answer recorded twice) is ignored, except settled and rejected. The clearing
// executes a key at most once, so a final answer is true whichever call it came from, and
// dropping it would leave the transfer asking for an outcome it was already told.
// Answers to a ParkedForReview transfer are ignored: after a key conflict nobody knows
// which body an answer is about, so people decide (ResolveManually).
struct RecordClearingAnswer {
  std::string transfer_id;
  std::int32_t attempt = 0;  // the ScheduledAction::attempt the call was made for
  ClearingAction kind = ClearingAction::submit;
  ClearingAnswerClass cls = ClearingAnswerClass::unknown;
  std::string clearing_reference;   // settled, pending
  std::string settlement_date;      // settled (actual), pending (expected): "YYYY-MM-DD"
  std::string reason_code;          // rejected
  std::string reason;               // rejected, malformed_request, key_reused: the text
  std::string cause;                // unknown: "timeout", "connection reset", "HTTP 502", ...
  std::int64_t retry_after_ms = 0;  // maintenance: Retry-After; 0 when absent
  std::int64_t latency_ms = 0;
  Timestamp now{};
  std::int32_t jitter_permille = 0;  // 0..999, chosen at random by the caller
  RetryPolicy policy;
};

// People settle what automation could not: only for UnderInvestigation or ParkedForReview.
struct ResolveManually {
  std::string transfer_id;
  ManualOutcome outcome = ManualOutcome::succeeded;
  std::string reason;
  std::string operator_name;
  std::string clearing_reference;  // required for succeeded
  std::string settlement_date;     // optional for succeeded
  std::string reason_code;         // required for rejected
  Timestamp now{};
};

// The dispatcher is about to make the call scheduled for `attempt` at `now`, and `window` is
// the maintenance window `now` lies in (active_maintenance over the configured windows, found
// once by the dispatcher for its whole batch; nullopt: none). Inside it the call is deferred to
// the window's end (SubmissionDeferred). No events when there is no window or `window` does not
// hold `now`, when the call is already due no earlier than its end (deferred once for this
// window), when the attempt is not the current one, or when the transfer is closed or parked:
// the dispatcher then makes the call (or, with no call due, nothing). The kind must be the
// scheduled action's (else answer_kind_mismatch).
struct DeferClearingCall {
  std::string transfer_id;
  std::int32_t attempt = 0;
  ClearingAction kind = ClearingAction::submit;
  Timestamp now{};
  std::optional<ActiveMaintenance> window;
};

using TransferCommand =
    std::variant<InitiateTransfer, RecordClearingAnswer, ResolveManually, DeferClearingCall>;

// The transfer a command is for: the stream it must be decided on.
const std::string& target_transfer_id(const TransferCommand& command) noexcept;

// ---------------------------------------------------------------------------------------
// Decider.

// Why a command could not be decided at all (not a domain outcome: those are events).
enum class TransferRefusalCode {
  unknown_transfer,         // an answer or resolution for a transfer never initiated
  transfer_id_mismatch,     // the command names another transfer than the stream holds
  answer_kind_mismatch,     // the answer's kind is not the action scheduled for the attempt
  already_terminal,         // manual resolution of a transfer that has its outcome
  not_under_investigation,  // manual resolution while automation still works on it
  incomplete_resolution,    // manual resolution without operator, reason, reference or code
};
std::string_view refusal_code_name(TransferRefusalCode code) noexcept;

struct TransferRefusal {
  TransferRefusalCode code;
  std::string message;
  friend bool operator==(const TransferRefusal&, const TransferRefusal&) = default;
};

struct TransferDecider {
  using State = TransferState;
  using Event = TransferEvent;
  using Command = TransferCommand;
  using Rejection = TransferRefusal;

  static State initial_state();
  static State evolve(const State& state, const Event& event);
  static tl::expected<std::vector<Event>, Rejection> decide(const Command& command,
                                                            const State& state);
};

static_assert(clearing::eventstore::Decider<TransferDecider>);

}  // namespace clearing::sagas
