// The Transfer decider as a specification: given events, when a command, then events (or a
// refusal). Every state meets every command and every answer class in the tables below.

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clearing/sagas/transfer_decider.hpp"
#include "invalid_command_case.hpp"

using namespace clearing::sagas;
using clearing::base::Timestamp;
using Cls = ClearingAnswerClass;
using Events = std::vector<TransferEvent>;

namespace {

// ---------------------------------------------------------------------------------------
// Fixtures.

const std::string kId = "7c1f3a52-0d4e-4b8a-9f1e-2a3b4c5d6e7f";
const std::string kRef = "CR-000123";
constexpr std::int64_t kLatencyMs = 42;
constexpr std::int64_t kRetryAfterMs = 120'000;

// 2026-11-26T09:00:00Z, built without parsing so that globals can use it.
Timestamp t0() {
  using namespace std::chrono;
  return Timestamp{sys_days{year{2026} / 11 / 26}.time_since_epoch() + hours{9}};
}
Timestamp at_ms(std::int64_t ms) { return t0() + std::chrono::milliseconds{ms}; }
const Timestamp kEarly = at_ms(10'000);        // well before the deadline
const Timestamp kLate = at_ms(2 * 3'600'000);  // an hour past the deadline

Currency dkk() { return *Currency::parse("DKK"); }

RetryPolicy policy() {
  RetryPolicy p;
  p.backoff_initial_ms = 1'000;
  p.backoff_max_ms = 8'000;
  p.backoff_multiplier = 2;
  p.unknown_outcomes_before_inquiry = 3;
  p.pending_inquiry_interval_ms = 60'000;
  p.investigation_inquiry_interval_ms = 300'000;
  p.deadline_ms = 3'600'000;
  return p;
}

InitiateTransfer initiate() {
  InitiateTransfer c;
  c.request = TransferRequest{
      .transfer_id = kId,
      .account_id = "core-account-17",
      .amount = Money{125'000, dkk()},
      .debtor = Party{"Ada Lovelace", Account{AccountScheme::bban, "5301-0001234567"}},
      .creditor = Party{"Charles Babbage", Account{AccountScheme::iban, "DK5000400440116243"}},
      .remittance_info = "Invoice 42",
      .requested_at = t0(),
  };
  c.correlation_id = "5b7d6a52-4c2e-4bb0-8a1b-0c0d9e1f2a3b";
  c.now = t0();
  c.rules = CountryRules{Country::dk, dkk(), 10'000'000};
  c.policy = policy();
  return c;
}

TransferInitiated initiated() {
  const auto c = initiate();
  return TransferInitiated{.request = c.request,
                           .correlation_id = c.correlation_id,
                           .initiated_at = t0(),
                           .deadline_at = at_ms(3'600'000),
                           .idempotency_key = kId};
}

// A classified answer with the fields its class carries on the wire.
RecordClearingAnswer answer(Cls cls, std::int32_t attempt, ClearingAction kind, Timestamp now) {
  RecordClearingAnswer a;
  a.transfer_id = kId;
  a.attempt = attempt;
  a.kind = kind;
  a.cls = cls;
  a.latency_ms = kLatencyMs;
  a.now = now;
  a.policy = policy();
  switch (cls) {
    case Cls::settled:
      a.clearing_reference = kRef, a.settlement_date = "2026-11-26";
      break;
    case Cls::pending:
      a.clearing_reference = kRef, a.settlement_date = "2026-11-27";
      break;
    case Cls::rejected:
      a.reason_code = "AC04", a.reason = "account closed";
      break;
    case Cls::unknown:
      a.cause = "timeout";
      break;
    case Cls::maintenance:
      a.retry_after_ms = kRetryAfterMs;
      break;
    case Cls::malformed_request:
      a.reason = "bad body";
      break;
    case Cls::key_reused:
      a.reason = "key reused with another body";
      break;
    default:
      break;
  }
  return a;
}

ResolveManually resolve(ManualOutcome outcome) {
  ResolveManually r;
  r.transfer_id = kId;
  r.outcome = outcome;
  r.reason = "confirmed by phone with the clearing";
  r.operator_name = "operator-7";
  if (outcome == ManualOutcome::succeeded) r.clearing_reference = kRef;
  if (outcome == ManualOutcome::rejected) r.reason_code = "NARR";
  r.now = kLate;
  return r;
}

// Event builders, in the order of the answer classes; the answers of the tables take
// kLatencyMs, those of the given histories another latency.
TransferEvent settled(std::int32_t a, std::int64_t latency = kLatencyMs) {
  return TransferSettled{.transfer_id = kId,
                         .attempt = a,
                         .clearing_reference = kRef,
                         .settlement_date = "2026-11-26",
                         .latency_ms = latency};
}
TransferEvent pending(std::int32_t a, std::int64_t latency = kLatencyMs) {
  return TransferAcceptedPending{.transfer_id = kId,
                                 .attempt = a,
                                 .clearing_reference = kRef,
                                 .expected_settlement_date = "2026-11-27",
                                 .latency_ms = latency};
}
TransferEvent rejected(std::int32_t a, std::int64_t latency = kLatencyMs) {
  return TransferRejected{.transfer_id = kId,
                          .attempt = a,
                          .reason_code = "AC04",
                          .reason = "account closed",
                          .latency_ms = latency};
}
TransferEvent unknown(std::int32_t a, std::string cause = "timeout",
                      std::int64_t latency = kLatencyMs) {
  return ClearingOutcomeUnknown{
      .transfer_id = kId, .attempt = a, .cause = std::move(cause), .latency_ms = latency};
}
TransferEvent in_progress(std::int32_t a) {
  return ClearingReportedInProgress{.transfer_id = kId, .attempt = a, .latency_ms = kLatencyMs};
}
TransferEvent key_conflict(std::int32_t a) {
  return IdempotencyKeyConflictDetected{.transfer_id = kId,
                                        .attempt = a,
                                        .idempotency_key = kId,
                                        .reason = "key reused with another body",
                                        .latency_ms = kLatencyMs};
}
TransferEvent unavailable(std::int32_t a, std::int64_t latency = kLatencyMs) {
  return ClearingUnavailable{
      .transfer_id = kId, .attempt = a, .retry_after_ms = kRetryAfterMs, .latency_ms = latency};
}
TransferEvent malformed(std::int32_t a) {
  return TransferRejected{.transfer_id = kId,
                          .attempt = a,
                          .reason_code = "FF01",
                          .reason = "bad body",
                          .latency_ms = kLatencyMs};
}
TransferEvent not_found(std::int32_t a) {
  return ClearingReportedNotFound{.transfer_id = kId, .attempt = a, .latency_ms = kLatencyMs};
}
TransferEvent unauthorized(std::int32_t a) {
  return ClearingUnauthorized{.transfer_id = kId, .attempt = a, .latency_ms = kLatencyMs};
}
TransferEvent retry(ClearingAction action, std::int32_t a, Timestamp due, std::string reason) {
  return RetryScheduled{.transfer_id = kId,
                        .idempotency_key = kId,
                        .action = action,
                        .attempt = a,
                        .due_at = due,
                        .reason = std::move(reason)};
}
TransferEvent contradiction(std::int32_t a, std::string terminal, Cls cls, std::string ref,
                            std::string code, std::string reason, Timestamp at) {
  return ContradictingClearingAnswerReceived{.transfer_id = kId,
                                             .attempt = a,
                                             .terminal_state = std::move(terminal),
                                             .answer = std::string(answer_class_name(cls)),
                                             .clearing_reference = std::move(ref),
                                             .reason_code = std::move(code),
                                             .reason = std::move(reason),
                                             .received_at = at};
}
// The event of resolve(outcome) for a transfer in `corrects_state` after `attempts`.
TransferEvent resolved(ManualOutcome outcome, std::string corrects_state, std::int32_t attempts) {
  const bool success = outcome == ManualOutcome::succeeded;
  return TransferResolvedManually{.transfer_id = kId,
                                  .outcome = outcome,
                                  .reason = "confirmed by phone with the clearing",
                                  .operator_name = "operator-7",
                                  .clearing_reference = success ? kRef : "",
                                  .settlement_date = "",
                                  .reason_code = success ? "" : "NARR",
                                  .corrects_state = std::move(corrects_state),
                                  .attempts = attempts,
                                  .resolved_at = kLate};
}

constexpr auto kSubmit = ClearingAction::submit;
constexpr auto kInquiry = ClearingAction::inquiry;
const std::string kResubmit = "outcome unknown: resubmit";
const std::string kInquire = "outcome unknown: inquiry";
const std::string kInProgress = "clearing reports in progress: inquiry";
const std::string kMaintenance = "clearing unavailable: retry after maintenance";
const std::string kUnauthorized = "clearing refused our credentials: retry";
const std::string kSettlement = "awaiting settlement: inquiry";
const std::string kNotFound = "clearing has no record: resubmit with the same key";
const std::string kInvestigation = "under investigation: inquiry";

TransferState given(const Events& events) {
  return clearing::eventstore::fold<TransferDecider>(events);
}

Events when(const TransferCommand& command, const TransferState& state) {
  auto decision = TransferDecider::decide(command, state);
  REQUIRE_MESSAGE(decision.has_value(), decision.error().message);
  return *decision;
}

TransferRefusalCode refused(const TransferCommand& command, const TransferState& state) {
  auto decision = TransferDecider::decide(command, state);
  REQUIRE_FALSE(decision.has_value());
  return decision.error().code;
}

TransferState apply_all(TransferState state, const Events& events) {
  for (const auto& e : events) state = TransferDecider::evolve(state, e);
  return state;
}

// The given-histories of every state (besides empty).
struct Given {
  std::string name;
  Events history;
  std::int32_t attempt;  // the current attempt
  ClearingAction kind;   // what is scheduled for it (submit for parked/terminal: attempt 1)
  Timestamp now;         // when the answers of the table arrive
};

std::vector<Given> all_states() {
  return {
      {"initiated", {initiated()}, 1, kSubmit, kEarly},
      {"submitting",
       {initiated(), unavailable(1, 5), retry(kSubmit, 2, at_ms(1'000), kMaintenance)},
       2,
       kSubmit,
       kEarly},
      {"outcome_unknown",
       {initiated(), unknown(1, "timeout", 5), retry(kSubmit, 2, at_ms(1'000), kResubmit)},
       2,
       kSubmit,
       kEarly},
      {"pending_settlement",
       {initiated(), pending(1, 5), retry(kInquiry, 2, at_ms(60'000), kSettlement)},
       2,
       kInquiry,
       kEarly},
      {"under_investigation",
       {initiated(), unknown(1, "timeout", 5),
        TransferUnderInvestigation{
            .transfer_id = kId, .since = at_ms(3'600'000), .attempts = 1, .last_error = "timeout"},
        retry(kInquiry, 2, at_ms(3'900'000), kInvestigation)},
       2,
       kInquiry,
       kLate},
      {"parked_for_review",
       {initiated(), IdempotencyKeyConflictDetected{.transfer_id = kId,
                                                    .attempt = 1,
                                                    .idempotency_key = kId,
                                                    .reason = "key reused",
                                                    .latency_ms = 5}},
       1,
       kSubmit,
       kEarly},
      {"succeeded", {initiated(), settled(1, 5)}, 1, kSubmit, kEarly},
      {"rejected", {initiated(), rejected(1, 5)}, 1, kSubmit, kEarly},
  };
}

Given state_named(const std::string& name) {
  for (auto& g : all_states())
    if (g.name == name) return g;
  FAIL("no such state " << name);
  return {};
}

const std::vector<Cls> kAllClasses = {
    Cls::settled,    Cls::pending,     Cls::rejected,          Cls::unknown,   Cls::in_progress,
    Cls::key_reused, Cls::maintenance, Cls::malformed_request, Cls::not_found, Cls::unauthorized};

// The projection rule: after every decision the work item is exactly what the events say.
void check_next_action_consistent(const TransferState& before, const Events& events,
                                  const TransferState& after) {
  const auto action = next_action(after);
  const auto last_retry = std::find_if(events.rbegin(), events.rend(), [](const auto& e) {
    return std::holds_alternative<RetryScheduled>(e);
  });
  if (is_terminal(after.status) || after.status == TransferStatus::parked_for_review) {
    CHECK_FALSE(action.has_value());
  } else if (last_retry != events.rend()) {
    const auto& r = std::get<RetryScheduled>(*last_retry);
    REQUIRE(action.has_value());
    CHECK(*action == ScheduledAction{r.action, r.attempt, r.due_at, kId});
  } else if (events.empty()) {
    CHECK(action == next_action(before));
  } else {
    REQUIRE(action.has_value());  // only TransferInitiated schedules implicitly
    CHECK(*action == ScheduledAction{kSubmit, 1, after.initiated_at, kId});
  }
}

// One row of a state's table: the answer class and the exact events it must give.
struct Cell {
  Cls cls;
  Events expected;
};

void check_table(const std::string& state_name_text, const std::vector<Cell>& cells) {
  const auto g = state_named(state_name_text);
  const auto state = given(g.history);
  REQUIRE(state_name(state) == state_name_text);
  REQUIRE(cells.size() == kAllClasses.size());
  for (const auto& cell : cells) {
    CAPTURE(state_name_text);
    CAPTURE(answer_class_name(cell.cls));
    const auto events = when(answer(cell.cls, g.attempt, g.kind, g.now), state);
    CHECK(events == cell.expected);
    check_next_action_consistent(state, events, apply_all(state, events));
  }
}

// The table of a state in which every answer class is a no-op except those of `alarms`.
std::vector<Cell> no_ops_except(const std::vector<Cell>& alarms) {
  std::vector<Cell> cells;
  for (auto cls : kAllClasses) {
    const auto alarm = std::find_if(alarms.begin(), alarms.end(),
                                    [cls](const Cell& cell) { return cell.cls == cls; });
    cells.push_back({cls, alarm == alarms.end() ? Events{} : alarm->expected});
  }
  return cells;
}

// The table of a state whose submission of attempt `a` is due and nothing is known to be
// executed (initiated, submitting, outcome_unknown): the answers that leave the outcome
// open schedule attempt a + 1 after `backoff` (maintenance after its Retry-After, pending
// after the pending inquiry interval), a final answer ends it.
std::vector<Cell> submission_answers(std::int32_t a, Timestamp n, std::chrono::seconds backoff) {
  return {
      {Cls::settled, {settled(a)}},
      {Cls::pending,
       {pending(a), retry(kInquiry, a + 1, n + std::chrono::minutes{1}, kSettlement)}},
      {Cls::rejected, {rejected(a)}},
      {Cls::unknown, {unknown(a), retry(kSubmit, a + 1, n + backoff, kResubmit)}},
      {Cls::in_progress, {in_progress(a), retry(kInquiry, a + 1, n + backoff, kInProgress)}},
      {Cls::key_reused, {key_conflict(a)}},
      {Cls::maintenance,
       {unavailable(a), retry(kSubmit, a + 1, n + std::chrono::minutes{2}, kMaintenance)}},
      {Cls::malformed_request, {malformed(a)}},
      {Cls::not_found,
       {unknown(a, "unexpected 404 on submission"), retry(kSubmit, a + 1, n + backoff, kResubmit)}},
      {Cls::unauthorized, {unauthorized(a), retry(kSubmit, a + 1, n + backoff, kUnauthorized)}},
  };
}

}  // namespace

// =======================================================================================
// Initiation.

TEST_CASE(
    "given no transfer, when a valid InitiateTransfer, then TransferInitiated and the "
    "first submission is due now with the transfer id as key") {
  const auto events = when(initiate(), TransferDecider::initial_state());
  CHECK(events == Events{initiated()});
  const auto state = given(events);
  CHECK(state_name(state) == "initiated");
  CHECK(state.idempotency_key == kId);
  CHECK(state.deadline_at == at_ms(3'600'000));
  CHECK(next_action(state) == ScheduledAction{kSubmit, 1, t0(), kId});
}

TEST_CASE(
    "given no transfer, when InitiateTransfer fails validation, then it is initiated and "
    "rejected with the ISO 20022 code, and the clearing is never called") {
  const std::vector<sagas_tests::InvalidCommandCase<InitiateTransfer>> cases = {
      {"creditor account",
       [](InitiateTransfer& c) { c.request.creditor.account.id = "DK5000400440116244"; }, "AC01",
       "creditor account: account number check digits do not match"},
      {"debtor account",
       [](InitiateTransfer& c) { c.request.debtor.account.id = "5301:0001234567"; }, "AC01",
       "debtor account: account number contains invalid characters"},
      {"foreign IBAN",
       [](InitiateTransfer& c) { c.request.creditor.account.id = "GB82WEST12345698765432"; },
       "AC01", "creditor account: IBAN belongs to another country"},
      {"a scheme the country's config does not use",
       [](InitiateTransfer& c) { c.rules.account_schemes = {AccountScheme::iban}; }, "AC01",
       "debtor account: account scheme is not used in this country"},
      {"currency", [](InitiateTransfer& c) { c.request.amount.currency = *Currency::parse("SEK"); },
       "AM03", "currency SEK not processable; expected DKK"},
      {"zero amount", [](InitiateTransfer& c) { c.request.amount.minor_units = 0; }, "AM02",
       "amount must be positive"},
      {"negative amount", [](InitiateTransfer& c) { c.request.amount.minor_units = -5; }, "AM02",
       "amount must be positive"},
      {"over the limit", [](InitiateTransfer& c) { c.request.amount.minor_units = 10'000'001; },
       "AM02", "amount exceeds the limit of 10000000 DKK"},
      {"empty transfer id", [](InitiateTransfer& c) { c.request.transfer_id.clear(); }, "FF01",
       "missing field transfer_id"},
      {"empty account id", [](InitiateTransfer& c) { c.request.account_id.clear(); }, "FF01",
       "missing field account_id"},
      {"empty creditor name", [](InitiateTransfer& c) { c.request.creditor.name.clear(); }, "FF01",
       "missing field creditor.name"},
      {"empty debtor account", [](InitiateTransfer& c) { c.request.debtor.account.id.clear(); },
       "FF01", "missing field debtor.account"},
      {"long remittance",
       [](InitiateTransfer& c) { c.request.remittance_info = std::string(141, 'x'); }, "FF01",
       "remittance info longer than 140 characters"},
      {"long name", [](InitiateTransfer& c) { c.request.debtor.name = std::string(141, 'x'); },
       "FF01", "name longer than 140 characters"},
      {"141 characters of two bytes each",
       [](InitiateTransfer& c) {
         c.request.creditor.name.clear();
         for (int i = 0; i < 141; ++i) c.request.creditor.name += "\xC3\x98";
       },
       "FF01", "name longer than 140 characters"},
      {"NUL in a name",
       [](InitiateTransfer& c) { c.request.debtor.name = std::string("Ada\0Lovelace", 12); },
       "FF01", "debtor.name is not printable UTF-8 text"},
      {"newline in the remittance",
       [](InitiateTransfer& c) { c.request.remittance_info = "line\nforged"; }, "FF01",
       "remittance_info is not printable UTF-8 text"},
      {"invalid UTF-8 in a name", [](InitiateTransfer& c) { c.request.creditor.name = "Bad \xFF"; },
       "FF01", "creditor.name is not printable UTF-8 text"},
      {"a message the adapter could not read",
       [](InitiateTransfer& c) {
         c.format_problem = "TransferRequested.debtor.name is 262144 bytes, more than 1024";
       },
       "FF01", "TransferRequested.debtor.name is 262144 bytes, more than 1024"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto command = c.applied_to(initiate());
    const auto events = when(command, TransferDecider::initial_state());
    REQUIRE(events.size() == 2);
    CHECK(std::get<TransferInitiated>(events[0]).request.transfer_id ==
          command.request.transfer_id);
    CHECK(events[1] == TransferEvent{TransferRejected{.transfer_id = command.request.transfer_id,
                                                      .attempt = 0,
                                                      .reason_code = c.code,
                                                      .reason = c.reason,
                                                      .latency_ms = 0}});
    const auto state = given(events);
    CHECK(state_name(state) == "rejected");
    CHECK_FALSE(next_action(state).has_value());
  }
}

TEST_CASE("140 characters are counted as characters: 71 x 'Ø' (142 bytes) is a valid name") {
  auto command = initiate();
  command.request.debtor.name.clear();
  for (int i = 0; i < 71; ++i) command.request.debtor.name += "\xC3\x98";
  REQUIRE(command.request.debtor.name.size() == 142);
  CHECK(when(command, TransferDecider::initial_state()) == Events{TransferEvent{[&] {
          auto event = initiated();
          event.request.debtor.name = command.request.debtor.name;
          return event;
        }()}});
}

TEST_CASE("an amount exactly at the limit is accepted") {
  auto command = initiate();
  command.request.amount.minor_units = command.rules.amount_limit_minor;
  CHECK(when(command, TransferDecider::initial_state()).size() == 1);
}

TEST_CASE(
    "given any state, when the same InitiateTransfer is redelivered later under another "
    "correlation id, then nothing happens") {
  for (const auto& g : all_states()) {
    CAPTURE(g.name);
    auto command = initiate();
    command.now = kLate;
    command.correlation_id = "another-correlation";
    command.policy.deadline_ms = 1;  // policy is not content either
    CHECK(when(command, given(g.history)).empty());
  }
}

TEST_CASE(
    "given any state, when a different request arrives with the same transfer id, then "
    "DuplicateTransferRequestRefused DUPL and the first request goes on unchanged") {
  for (const auto& g : all_states()) {
    CAPTURE(g.name);
    auto command = initiate();
    command.request.amount.minor_units = 999;
    command.request.creditor.name = "Someone Else";
    command.correlation_id = "corr-2";
    command.now = kEarly;
    const auto state = given(g.history);
    const auto events = when(command, state);
    CHECK(events == Events{DuplicateTransferRequestRefused{
                        .transfer_id = kId,
                        .reason_code = "DUPL",
                        .reason = "transfer id already used by a different request",
                        .differing_fields = {"amount", "creditor"},
                        .correlation_id = "corr-2",
                        .received_at = kEarly}});
    CHECK(apply_all(state, events) == state);
  }
}

TEST_CASE(
    "given any state, when any command names another transfer than the stream's, then it "
    "is refused") {
  for (const auto& g : all_states()) {
    CAPTURE(g.name);
    const auto state = given(g.history);
    auto other_initiate = initiate();
    other_initiate.request.transfer_id = "other";
    CHECK(refused(other_initiate, state) == TransferRefusalCode::transfer_id_mismatch);
    for (auto cls : kAllClasses) {
      CAPTURE(answer_class_name(cls));
      auto other_answer = answer(cls, g.attempt, g.kind, g.now);
      other_answer.transfer_id = "other";
      CHECK(refused(other_answer, state) == TransferRefusalCode::transfer_id_mismatch);
    }
    for (auto outcome : {ManualOutcome::succeeded, ManualOutcome::rejected}) {
      auto other_resolution = resolve(outcome);
      other_resolution.transfer_id = "other";
      CHECK(refused(other_resolution, state) == TransferRefusalCode::transfer_id_mismatch);
    }
  }
}

TEST_CASE("an InitiateTransfer for another transfer id than the stream's is refused") {
  auto command = initiate();
  command.request.transfer_id = "other";
  CHECK(refused(command, given({initiated()})) == TransferRefusalCode::transfer_id_mismatch);
}

// =======================================================================================
// Every state x every answer class.

TEST_CASE("given no transfer, every answer and a manual resolution are refused") {
  const auto empty = TransferDecider::initial_state();
  CHECK(state_name(empty) == "empty");
  CHECK_FALSE(next_action(empty).has_value());
  for (auto cls : kAllClasses) {
    CAPTURE(answer_class_name(cls));
    CHECK(refused(answer(cls, 1, kSubmit, kEarly), empty) == TransferRefusalCode::unknown_transfer);
  }
  CHECK(refused(resolve(ManualOutcome::succeeded), empty) == TransferRefusalCode::unknown_transfer);
}

TEST_CASE("given initiated (attempt 1 submit), when each answer class arrives, then ...") {
  check_table("initiated", submission_answers(1, kEarly, std::chrono::seconds{1}));
}

TEST_CASE(
    "given submitting (attempt 2 submit, nothing done yet), when each answer class "
    "arrives, then ...") {
  check_table("submitting", submission_answers(2, kEarly, std::chrono::seconds{1}));
}

TEST_CASE(
    "given outcome_unknown (one unknown, attempt 2 resubmit), when each answer class "
    "arrives, then backoff grows to 2 s and ...") {
  check_table("outcome_unknown", submission_answers(2, kEarly, std::chrono::seconds{2}));
}

TEST_CASE(
    "given pending_settlement (attempt 2 inquiry), when each answer class arrives, "
    "then ...") {
  const auto n = kEarly;
  check_table(
      "pending_settlement",
      {
          {Cls::settled, {settled(2)}},
          {Cls::pending,
           {pending(2), retry(kInquiry, 3, n + std::chrono::minutes{1}, kSettlement)}},
          {Cls::rejected, {rejected(2)}},
          {Cls::unknown, {unknown(2), retry(kInquiry, 3, n + std::chrono::seconds{1}, kInquire)}},
          {Cls::in_progress,
           {in_progress(2), retry(kInquiry, 3, n + std::chrono::seconds{1}, kInProgress)}},
          {Cls::key_reused, {key_conflict(2)}},
          {Cls::maintenance,
           {unavailable(2), retry(kInquiry, 3, n + std::chrono::minutes{2}, kMaintenance)}},
          {Cls::malformed_request,
           {unknown(2, "inquiry refused as malformed: bad body"),
            retry(kInquiry, 3, n + std::chrono::seconds{1}, kInquire)}},
          {Cls::not_found, {not_found(2), retry(kSubmit, 3, n, kNotFound)}},
          {Cls::unauthorized,
           {unauthorized(2), retry(kInquiry, 3, n + std::chrono::seconds{1}, kUnauthorized)}},
      });
}

TEST_CASE(
    "given under_investigation (attempt 2 inquiry, past the deadline), when each answer "
    "class arrives, then inquiries go on slowly and nothing is rejected for a timeout") {
  const auto n = kLate;
  const auto slow = n + std::chrono::minutes{5};
  check_table("under_investigation",
              {
                  {Cls::settled, {settled(2)}},
                  {Cls::pending,
                   {pending(2), retry(kInquiry, 3, n + std::chrono::minutes{1}, kSettlement)}},
                  {Cls::rejected, {rejected(2)}},
                  {Cls::unknown, {unknown(2), retry(kInquiry, 3, slow, kInvestigation)}},
                  {Cls::in_progress, {in_progress(2), retry(kInquiry, 3, slow, kInvestigation)}},
                  {Cls::key_reused, {key_conflict(2)}},
                  {Cls::maintenance, {unavailable(2), retry(kInquiry, 3, slow, kInvestigation)}},
                  {Cls::malformed_request,
                   {unknown(2, "inquiry refused as malformed: bad body"),
                    retry(kInquiry, 3, slow, kInvestigation)}},
                  {Cls::not_found, {not_found(2), retry(kSubmit, 3, n, kNotFound)}},
                  {Cls::unauthorized, {unauthorized(2), retry(kInquiry, 3, slow, kInvestigation)}},
              });
}

TEST_CASE(
    "given parked_for_review, when any answer arrives, then nothing happens: people "
    "decide") {
  check_table("parked_for_review", no_ops_except({}));
}

TEST_CASE(
    "given succeeded, when each answer class arrives, then an echo is a no-op and a "
    "contradiction an alarm") {
  // not_found on a submission says nothing (see below for inquiry).
  check_table("succeeded", no_ops_except({{Cls::rejected,
                                           {contradiction(1, "succeeded", Cls::rejected, "", "AC04",
                                                          "account closed", kEarly)}}}));
}

TEST_CASE(
    "given rejected, when each answer class arrives, then an acceptance is a "
    "contradiction and anything else a no-op") {
  check_table(
      "rejected",
      no_ops_except({
          {Cls::settled, {contradiction(1, "rejected", Cls::settled, kRef, "", "", kEarly)}},
          {Cls::pending, {contradiction(1, "rejected", Cls::pending, kRef, "", "", kEarly)}},
      }));
}

// =======================================================================================
// Terminal immutability and contradictions.

TEST_CASE(
    "given succeeded, when the clearing answers settled with another reference or not "
    "found on inquiry, then an alarm and the state is unchanged") {
  const auto state = given(state_named("succeeded").history);
  auto other = answer(Cls::settled, 1, kSubmit, kEarly);
  other.clearing_reference = "CR-999";
  auto events = when(other, state);
  CHECK(events == Events{contradiction(1, "succeeded", Cls::settled, "CR-999", "", "", kEarly)});
  CHECK(apply_all(state, events) == state);
  events = when(answer(Cls::not_found, 1, kInquiry, kEarly), state);
  CHECK(events == Events{contradiction(1, "succeeded", Cls::not_found, "", "", "", kEarly)});
  CHECK(apply_all(state, events) == state);
}

TEST_CASE("a terminal state never changes, whatever command comes") {
  for (const auto* name : {"succeeded", "rejected"}) {
    CAPTURE(name);
    const auto state = given(state_named(name).history);
    std::vector<TransferCommand> commands;
    for (auto cls : kAllClasses)
      for (auto kind : {kSubmit, kInquiry})
        for (std::int32_t attempt : {1, 2, 7})
          commands.push_back(answer(cls, attempt, kind, kLate));
    commands.push_back(initiate());
    auto other = initiate();
    other.request.amount.minor_units = 1;
    commands.push_back(other);
    for (const auto& command : commands) {
      const auto decision = TransferDecider::decide(command, state);
      if (!decision) continue;
      const auto after = apply_all(state, *decision);
      CHECK(after == state);
      CHECK_FALSE(next_action(after).has_value());
    }
    CHECK(refused(resolve(ManualOutcome::succeeded), state) ==
          TransferRefusalCode::already_terminal);
  }
}

// =======================================================================================
// Stale answers.

TEST_CASE(
    "given attempt 2 is current, when a late answer for attempt 1 arrives, then only a "
    "final answer is recorded") {
  const auto state = given(state_named("outcome_unknown").history);
  for (auto cls : kAllClasses) {
    CAPTURE(answer_class_name(cls));
    const auto events = when(answer(cls, 1, kSubmit, kEarly), state);
    if (cls == Cls::settled) {
      CHECK(events == Events{settled(1)});
    } else if (cls == Cls::rejected) {
      CHECK(events == Events{rejected(1)});
    } else {
      CHECK(events.empty());
    }
  }
}

TEST_CASE("when the same answer is recorded twice, then the second is a no-op") {
  auto state = given({initiated()});
  const auto first = answer(Cls::unknown, 1, kSubmit, kEarly);
  state = apply_all(state, when(first, state));
  CHECK(when(first, state).empty());
}

TEST_CASE(
    "given any state with a call due, when an answer of the other kind arrives for the "
    "current attempt, then it is refused whatever its class") {
  for (const auto* name : {"initiated", "submitting", "outcome_unknown", "pending_settlement",
                           "under_investigation"}) {
    CAPTURE(name);
    const auto g = state_named(name);
    const auto state = given(g.history);
    const auto other_kind = g.kind == kSubmit ? kInquiry : kSubmit;
    for (auto cls : kAllClasses) {
      CAPTURE(answer_class_name(cls));
      CHECK(refused(answer(cls, g.attempt, other_kind, g.now), state) ==
            TransferRefusalCode::answer_kind_mismatch);
    }
  }
}

TEST_CASE("an answer whose kind differs from the scheduled action is refused") {
  const auto state = given({initiated()});
  CHECK(refused(answer(Cls::unknown, 1, kInquiry, kEarly), state) ==
        TransferRefusalCode::answer_kind_mismatch);
  auto other = answer(Cls::unknown, 1, kSubmit, kEarly);
  other.transfer_id = "other";
  CHECK(refused(other, state) == TransferRefusalCode::transfer_id_mismatch);
}

// =======================================================================================
// Backoff, Retry-After, inquiries, deadline.

TEST_CASE("backoff grows by the multiplier and stops at the cap") {
  const auto p = policy();
  CHECK(backoff_delay_ms(p, 1, 0) == 1'000);
  CHECK(backoff_delay_ms(p, 2, 0) == 2'000);
  CHECK(backoff_delay_ms(p, 3, 0) == 4'000);
  CHECK(backoff_delay_ms(p, 4, 0) == 8'000);
  CHECK(backoff_delay_ms(p, 5, 0) == 8'000);
  CHECK(backoff_delay_ms(p, 1'000'000, 0) == 8'000);
}

TEST_CASE("jitter takes off at most half of the delay and never exceeds the cap") {
  const auto p = policy();
  for (std::int32_t step = 1; step <= 40; ++step) {
    const auto base = backoff_delay_ms(p, step, 0);
    for (std::int32_t jitter : {0, 1, 250, 500, 998, 999}) {
      CAPTURE(step);
      CAPTURE(jitter);
      const auto delay = backoff_delay_ms(p, step, jitter);
      CHECK(delay <= base);
      CHECK(delay >= base / 2);
      CHECK(delay <= p.backoff_max_ms);
    }
  }
  CHECK(backoff_delay_ms(p, 1, 999) == 1'000 - 500 * 999 / 1000);
}

TEST_CASE("backoff clamps a careless policy instead of trusting it") {
  RetryPolicy p = policy();
  p.backoff_multiplier = 0;
  CHECK(backoff_delay_ms(p, 10, 0) == 1'000);
  p.backoff_initial_ms = -5;
  CHECK(backoff_delay_ms(p, 1, 0) == 1);
  p = policy();
  p.backoff_max_ms = std::numeric_limits<std::int64_t>::max();
  p.backoff_multiplier = 1'000'000;
  CHECK(backoff_delay_ms(p, 100, 0) == kBackoffCeilingMs);
  CHECK(backoff_delay_ms(policy(), 1, 5'000) == backoff_delay_ms(policy(), 1, 999));
  CHECK(backoff_delay_ms(policy(), 1, -3) == 1'000);
}

TEST_CASE("the jitter of the command shifts the due time within the bounds") {
  const auto state = given({initiated()});
  auto a = answer(Cls::unknown, 1, kSubmit, kEarly);
  a.jitter_permille = 500;
  const auto events = when(a, state);
  CHECK(events[1] == retry(kSubmit, 2, kEarly + std::chrono::milliseconds{750}, kResubmit));
}

TEST_CASE(
    "Retry-After is honoured as given, whatever the jitter, and without it the initial "
    "backoff applies") {
  const auto state = given({initiated()});
  auto a = answer(Cls::maintenance, 1, kSubmit, kEarly);
  a.retry_after_ms = 3'600'000 - 20'000;  // longer than the backoff cap
  a.jitter_permille = 999;
  CHECK(when(a, state)[1] ==
        retry(kSubmit, 2, kEarly + std::chrono::milliseconds{3'580'000}, kMaintenance));
  a.retry_after_ms = 0;
  CHECK(when(a, state)[1] == retry(kSubmit, 2, kEarly + std::chrono::seconds{1}, kMaintenance));
}

namespace {
// Decide and apply; returns the events.
Events step(TransferState& state, const RecordClearingAnswer& a) {
  const auto events = when(a, state);
  state = apply_all(state, events);
  return events;
}
RecordClearingAnswer next_answer(const TransferState& state, Cls cls, Timestamp now) {
  const auto action = next_action(state);
  REQUIRE(action.has_value());
  return answer(cls, action->attempt, action->action, now);
}
}  // namespace

TEST_CASE(
    "after N consecutive unknown outcomes the next action is an inquiry; maintenance "
    "does not count; not found resubmits with the same key at once") {
  auto state = given({initiated()});
  step(state, next_answer(state, Cls::unknown, kEarly));  // 1 unknown
  CHECK(next_action(state)->action == kSubmit);
  step(state, next_answer(state, Cls::maintenance, kEarly));  // nothing done: not counted
  CHECK(next_action(state)->action == kSubmit);
  CHECK(state_name(state) == "outcome_unknown");          // the first attempt is still open
  step(state, next_answer(state, Cls::unknown, kEarly));  // 2 unknowns
  CHECK(next_action(state)->action == kSubmit);
  step(state, next_answer(state, Cls::unknown, kEarly));  // 3 unknowns: N reached
  CHECK(next_action(state)->action == kInquiry);
  CHECK(next_action(state)->attempt == 5);
  step(state, next_answer(state, Cls::unknown, kEarly));  // an inquiry failed: inquire again
  CHECK(next_action(state)->action == kInquiry);
  const auto events = step(state, next_answer(state, Cls::not_found, kEarly));
  CHECK(events == Events{not_found(6), retry(kSubmit, 7, kEarly, kNotFound)});
  CHECK(state_name(state) == "submitting");
  CHECK(next_action(state) == ScheduledAction{kSubmit, 7, kEarly, kId});
  step(state, next_answer(state, Cls::unknown, kEarly));  // the count starts afresh
  CHECK(next_action(state)->action == kSubmit);
}

TEST_CASE(
    "past the deadline an unknown outcome puts the transfer under investigation once, "
    "then inquiries go on at the investigation interval") {
  auto state = given({initiated()});
  step(state, next_answer(state, Cls::unknown, kEarly));
  const auto deadline = at_ms(3'600'000);
  auto events = step(state, next_answer(state, Cls::unknown, deadline));
  CHECK(events ==
        Events{unknown(2),
               TransferUnderInvestigation{
                   .transfer_id = kId, .since = deadline, .attempts = 2, .last_error = "timeout"},
               retry(kInquiry, 3, deadline + std::chrono::minutes{5}, kInvestigation)});
  CHECK(state_name(state) == "under_investigation");
  events = step(state, next_answer(state, Cls::unknown, kLate));
  CHECK(events ==
        Events{unknown(3), retry(kInquiry, 4, kLate + std::chrono::minutes{5}, kInvestigation)});
  // not found while investigated: resubmit, and the transfer stays watched.
  step(state, next_answer(state, Cls::not_found, kLate));
  CHECK(state_name(state) == "under_investigation");
  events = step(state, next_answer(state, Cls::unknown, kLate));
  CHECK(events ==
        Events{unknown(5), retry(kInquiry, 6, kLate + std::chrono::minutes{5}, kInvestigation)});
  CHECK(state_name(state) == "under_investigation");
}

TEST_CASE(
    "past the deadline a maintenance window on the first submission also escalates, and "
    "a longer Retry-After still wins") {
  auto state = given({initiated()});
  auto a = next_answer(state, Cls::maintenance, kLate);
  a.retry_after_ms = 600'000;
  const auto events = step(state, a);
  CHECK(events ==
        Events{ClearingUnavailable{.transfer_id = kId,
                                   .attempt = 1,
                                   .retry_after_ms = 600'000,
                                   .latency_ms = kLatencyMs},
               TransferUnderInvestigation{.transfer_id = kId,
                                          .since = kLate,
                                          .attempts = 1,
                                          .last_error = "clearing unavailable (maintenance)"},
               retry(kInquiry, 2, kLate + std::chrono::minutes{10}, kInvestigation)});
}

TEST_CASE("a pending transfer is not escalated by the deadline: the clearing has accepted it") {
  auto state = given(state_named("pending_settlement").history);
  const auto events = step(state, next_answer(state, Cls::unknown, kLate));
  CHECK(events ==
        Events{unknown(2), retry(kInquiry, 3, kLate + std::chrono::seconds{1}, kInquire)});
  CHECK(state_name(state) == "pending_settlement");
}

TEST_CASE(
    "a long run of open answers never rejects, investigates once, keeps one key and "
    "always has a next action") {
  const std::vector<Cls> open = {Cls::unknown,      Cls::in_progress,       Cls::maintenance,
                                 Cls::unauthorized, Cls::malformed_request, Cls::not_found};
  auto state = given({initiated()});
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  int investigations = 0;
  Timestamp now = t0();
  for (int i = 0; i < 2'000; ++i) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto cls = open[(seed >> 33) % open.size()];
    now = std::max(now, next_action(state)->due_at);
    auto a = next_answer(state, cls, now);
    a.jitter_permille = static_cast<std::int32_t>((seed >> 13) % 1000);
    if (cls == Cls::malformed_request && a.kind == kSubmit) continue;  // a real rejection
    const auto events = step(state, a);
    for (const auto& e : events) {
      CHECK_FALSE(std::holds_alternative<TransferRejected>(e));
      if (std::holds_alternative<TransferUnderInvestigation>(e)) ++investigations;
      if (const auto* r = std::get_if<RetryScheduled>(&e)) CHECK(r->idempotency_key == kId);
    }
    REQUIRE(next_action(state).has_value());
    CHECK(next_action(state)->idempotency_key == kId);
  }
  CHECK(now > at_ms(3'600'000));
  CHECK(investigations == 1);
  CHECK(state_name(state) == "under_investigation");
}

// =======================================================================================
// Manual resolution.

TEST_CASE(
    "given under investigation or parked, when people resolve it, then it is terminal "
    "and the event names what it corrects") {
  for (const auto* name : {"under_investigation", "parked_for_review"}) {
    CAPTURE(name);
    const auto g = state_named(name);
    const auto state = given(g.history);
    const auto events = when(resolve(ManualOutcome::succeeded), state);
    CHECK(events == Events{resolved(ManualOutcome::succeeded, name, g.attempt)});
    const auto after = apply_all(state, events);
    CHECK(state_name(after) == "succeeded");
    CHECK(after.resolved_manually);
    CHECK_FALSE(next_action(after).has_value());
    // A later contradicting answer is an alarm, not a change.
    const auto late = when(answer(Cls::rejected, g.attempt, g.kind, kLate), after);
    REQUIRE(late.size() == 1);
    CHECK(std::holds_alternative<ContradictingClearingAnswerReceived>(late[0]));
  }
  const auto state = given(state_named("under_investigation").history);
  const auto events = when(resolve(ManualOutcome::rejected), state);
  const auto after = apply_all(state, events);
  CHECK(state_name(after) == "rejected");
  CHECK(after.reason_code == "NARR");
}

TEST_CASE(
    "manual resolution is refused while automation works, for a terminal transfer, and "
    "when incomplete") {
  for (const auto* name : {"initiated", "submitting", "outcome_unknown", "pending_settlement"}) {
    CAPTURE(name);
    CHECK(refused(resolve(ManualOutcome::succeeded), given(state_named(name).history)) ==
          TransferRefusalCode::not_under_investigation);
  }
  for (const auto* name : {"succeeded", "rejected"}) {
    CAPTURE(name);
    CHECK(refused(resolve(ManualOutcome::rejected), given(state_named(name).history)) ==
          TransferRefusalCode::already_terminal);
  }
  const auto state = given(state_named("under_investigation").history);
  auto r = resolve(ManualOutcome::succeeded);
  r.clearing_reference.clear();
  CHECK(refused(r, state) == TransferRefusalCode::incomplete_resolution);
  r = resolve(ManualOutcome::rejected);
  r.reason_code.clear();
  CHECK(refused(r, state) == TransferRefusalCode::incomplete_resolution);
  r = resolve(ManualOutcome::succeeded);
  r.operator_name.clear();
  CHECK(refused(r, state) == TransferRefusalCode::incomplete_resolution);
}

TEST_CASE(
    "given each state, when people resolve it as succeeded or as rejected, then only "
    "an investigated or parked transfer takes it, and the event names what it corrects") {
  using Code = TransferRefusalCode;
  const std::vector<std::pair<std::string, std::optional<Code>>> rows = {
      {"initiated", Code::not_under_investigation},
      {"submitting", Code::not_under_investigation},
      {"outcome_unknown", Code::not_under_investigation},
      {"pending_settlement", Code::not_under_investigation},
      {"under_investigation", std::nullopt},
      {"parked_for_review", std::nullopt},
      {"succeeded", Code::already_terminal},
      {"rejected", Code::already_terminal},
  };
  for (const auto& [name, refusal] : rows) {
    for (auto outcome : {ManualOutcome::succeeded, ManualOutcome::rejected}) {
      CAPTURE(name);
      CAPTURE(manual_outcome_name(outcome));
      const auto g = state_named(name);
      const auto state = given(g.history);
      if (refusal) {
        CHECK(refused(resolve(outcome), state) == *refusal);
        continue;
      }
      const bool success = outcome == ManualOutcome::succeeded;
      const auto events = when(resolve(outcome), state);
      CHECK(events == Events{resolved(outcome, name, g.attempt)});
      const auto after = apply_all(state, events);
      CHECK(state_name(after) == (success ? "succeeded" : "rejected"));
      CHECK_FALSE(next_action(after).has_value());
    }
  }
  CHECK(refused(resolve(ManualOutcome::rejected), TransferDecider::initial_state()) ==
        Code::unknown_transfer);
}

// =======================================================================================
// Evolve reads back what decide wrote. Every test above folds the events decide returned,
// so those streams pass evolve's assertions; these streams were not written by the decider
// and stop the process (checked in a child process).

namespace {
bool stops_the_process(const std::function<void()>& run) {
  std::fflush(nullptr);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The assertion's message is expected, and doctest's crash report is for the parent.
    std::signal(SIGABRT, SIG_DFL);
    if (std::freopen("/dev/null", "w", stdout) == nullptr ||
        std::freopen("/dev/null", "w", stderr) == nullptr)
      _exit(2);
    run();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

bool folding_stops(const Events& stream) {
  return stops_the_process([&stream] { given(stream); });
}
}  // namespace

TEST_CASE("evolve stops on a stream with another key, transfer or attempt numbering") {
  CHECK_FALSE(folding_stops({initiated(), unknown(1), retry(kSubmit, 2, kEarly, kResubmit)}));
  SUBCASE("initiated twice") { CHECK(folding_stops({initiated(), initiated()})); }
  SUBCASE("an idempotency key other than the transfer id") {
    auto event = initiated();
    event.idempotency_key = "another-key";
    CHECK(folding_stops({event}));
  }
  SUBCASE("an event before the transfer was initiated") { CHECK(folding_stops({settled(1)})); }
  SUBCASE("an event of another transfer") {
    auto event = std::get<TransferSettled>(settled(1));
    event.transfer_id = "other";
    CHECK(folding_stops({initiated(), event}));
  }
  SUBCASE("a retry under another key") {
    auto event = std::get<RetryScheduled>(retry(kSubmit, 2, kEarly, kResubmit));
    event.idempotency_key = "another-key";
    CHECK(folding_stops({initiated(), unknown(1), event}));
  }
  SUBCASE("a retry that skips an attempt") {
    CHECK(folding_stops({initiated(), unknown(1), retry(kSubmit, 3, kEarly, kResubmit)}));
  }
  SUBCASE("a retry while the previous call is still due") {
    CHECK(folding_stops({initiated(), retry(kSubmit, 2, kEarly, kResubmit)}));
  }
  SUBCASE("a non-final answer for a stale attempt") {
    auto stream = state_named("outcome_unknown").history;
    stream.push_back(unknown(1));
    CHECK(folding_stops(stream));
  }
  SUBCASE("a final answer for an attempt not yet made") {
    CHECK(folding_stops({initiated(), settled(2)}));
  }
  SUBCASE("not found for a submission") { CHECK(folding_stops({initiated(), not_found(1)})); }
  SUBCASE("a key conflict about another key") {
    auto event = std::get<IdempotencyKeyConflictDetected>(key_conflict(1));
    event.idempotency_key = "another-key";
    CHECK(folding_stops({initiated(), event}));
  }
}

TEST_CASE("evolve stops on an event in a state it cannot follow") {
  const auto open = Events{initiated(), unknown(1)};  // attempt 1 answered, no retry yet
  SUBCASE("an outcome after the terminal one") {
    CHECK(folding_stops({initiated(), settled(1), rejected(1)}));
  }
  SUBCASE("an answer recorded for a parked transfer") {
    CHECK(folding_stops({initiated(), key_conflict(1), unknown(1)}));
  }
  SUBCASE("investigated twice") {
    auto stream = state_named("under_investigation").history;
    stream.push_back(TransferUnderInvestigation{
        .transfer_id = kId, .since = kLate, .attempts = 2, .last_error = "timeout"});
    CHECK(folding_stops(stream));
  }
  SUBCASE("an investigation that miscounts the attempts") {
    auto stream = open;
    stream.push_back(TransferUnderInvestigation{
        .transfer_id = kId, .since = kLate, .attempts = 7, .last_error = "timeout"});
    CHECK(folding_stops(stream));
  }
  SUBCASE("a contradiction of an outcome not yet known") {
    CHECK(folding_stops({initiated(), contradiction(1, "succeeded", Cls::rejected, "", "AC04",
                                                    "account closed", kEarly)}));
  }
  SUBCASE("a manual resolution while automation works") {
    CHECK(folding_stops({initiated(), resolved(ManualOutcome::succeeded, "initiated", 1)}));
  }
}

TEST_CASE("state names are the metric labels") {
  std::map<std::string, std::string> seen;
  for (const auto& g : all_states()) CHECK(state_name(given(g.history)) == g.name);
  CHECK(status_name(TransferStatus::empty) == "empty");
}

// =======================================================================================
// Maintenance windows (issue 23, item 3): a call due inside a known window is deferred to
// its end, once per window, without a call and without touching the outcome.

namespace {

// [t0, t0 + 3 h): holds every state's `now` (kEarly and kLate) and lies after each state's
// scheduled due time.
const Timestamp kWindowEnd = at_ms(3 * 3'600'000);
MaintenanceWindows window_over_t0() {
  return {.weekly = {}, .dated = {DatedMaintenanceWindow{t0(), kWindowEnd}}};
}
const std::string kWindowName = "2026-11-26T09:00:00.000Z/2026-11-26T12:00:00.000Z";

// The command as the dispatcher makes it: with the window of `windows` that `now` lies in.
DeferClearingCall defer(std::int32_t attempt, ClearingAction kind, Timestamp now,
                        const MaintenanceWindows& windows = window_over_t0()) {
  return DeferClearingCall{.transfer_id = kId,
                           .attempt = attempt,
                           .kind = kind,
                           .now = now,
                           .window = active_maintenance(windows, now)};
}

TransferEvent deferred(std::int32_t attempt, ClearingAction kind, Timestamp now,
                       Timestamp until = kWindowEnd, std::string window = kWindowName) {
  return SubmissionDeferred{.transfer_id = kId,
                            .attempt = attempt,
                            .action = kind,
                            .until = until,
                            .window = std::move(window),
                            .deferred_at = now};
}

}  // namespace

TEST_CASE(
    "given every state, when its due call falls inside a maintenance window, then an open "
    "transfer's call is deferred to the window's end once, and nothing else changes") {
  for (const auto& g : all_states()) {
    CAPTURE(g.name);
    const auto state = given(g.history);
    const auto events = when(defer(g.attempt, g.kind, g.now), state);
    const bool open =
        !is_terminal(state.status) && state.status != TransferStatus::parked_for_review;
    if (!open) {
      CHECK(events.empty());
      continue;
    }
    CHECK(events == Events{deferred(g.attempt, g.kind, g.now)});
    const auto after = apply_all(state, events);
    CHECK(next_action(after) == ScheduledAction{g.kind, g.attempt, kWindowEnd, kId});
    // The status, the attempt, the backoff, the deadline: all as before.
    auto expected = state;
    expected.scheduled->due_at = kWindowEnd;
    CHECK(after == expected);
    // Once per window: the same command again, later inside the window, changes nothing.
    CHECK(when(defer(g.attempt, g.kind, g.now + std::chrono::minutes{5}), after).empty());
  }
}

TEST_CASE("given every state, when its due call falls outside every window, then no events") {
  for (const auto& g : all_states()) {
    CAPTURE(g.name);
    const auto state = given(g.history);
    CHECK(when(defer(g.attempt, g.kind, kWindowEnd), state).empty());  // the end is outside
    CHECK(when(defer(g.attempt, g.kind, g.now, MaintenanceWindows{}), state).empty());
    // A window handed in that does not hold `now` (before its start, at or after its end)
    // defers nothing: its end would not be later than `now`, or not the window of `now`.
    for (const auto now : {t0() - std::chrono::milliseconds{1}, kWindowEnd}) {
      auto command = defer(g.attempt, g.kind, g.now);
      REQUIRE(command.window.has_value());
      command.now = now;
      CHECK(when(command, state).empty());
    }
  }
}

TEST_CASE(
    "given every open state, a deferral for a stale attempt is a no-op, one of the other kind "
    "is refused, and one for no transfer or another transfer is refused") {
  for (const auto* name : {"initiated", "submitting", "outcome_unknown", "pending_settlement",
                           "under_investigation"}) {
    CAPTURE(name);
    const auto g = state_named(name);
    const auto state = given(g.history);
    if (g.attempt > 1) CHECK(when(defer(g.attempt - 1, g.kind, g.now), state).empty());
    const auto other_kind = g.kind == kSubmit ? kInquiry : kSubmit;
    CHECK(refused(defer(g.attempt, other_kind, g.now), state) ==
          TransferRefusalCode::answer_kind_mismatch);
    auto other = defer(g.attempt, g.kind, g.now);
    other.transfer_id = "other";
    CHECK(refused(other, state) == TransferRefusalCode::transfer_id_mismatch);
  }
  CHECK(refused(defer(1, kSubmit, kEarly), TransferDecider::initial_state()) ==
        TransferRefusalCode::unknown_transfer);
}

TEST_CASE(
    "back-to-back windows: one event for each; at the first one's end the second defers again") {
  MaintenanceWindows windows = window_over_t0();
  const auto second_end = kWindowEnd + std::chrono::hours{1};
  windows.dated.push_back(DatedMaintenanceWindow{kWindowEnd, second_end});
  auto state = given({initiated()});
  auto events = when(defer(1, kSubmit, kEarly, windows), state);
  CHECK(events == Events{deferred(1, kSubmit, kEarly)});
  state = apply_all(state, events);
  events = when(defer(1, kSubmit, kWindowEnd, windows), state);
  CHECK(events == Events{deferred(1, kSubmit, kWindowEnd, second_end,
                                  "2026-11-26T12:00:00.000Z/2026-11-26T13:00:00.000Z")});
  state = apply_all(state, events);
  CHECK(next_action(state)->due_at == second_end);
  CHECK(when(defer(1, kSubmit, second_end, windows), state).empty());
}

TEST_CASE(
    "a window longer than the deadline: the deferral does not escalate (nothing was sent); the "
    "first setback after the window does, as any setback past the deadline") {
  auto state = given({initiated()});
  auto events = when(defer(1, kSubmit, kEarly), state);  // until t0 + 3 h, deadline t0 + 1 h
  state = apply_all(state, events);
  CHECK(state.status == TransferStatus::initiated);
  CHECK_FALSE(state.investigating_since.has_value());
  CHECK(state.deadline_at == at_ms(3'600'000));
  events = when(answer(Cls::settled, 1, kSubmit, kWindowEnd), state);
  CHECK(events == Events{settled(1)});
  events = when(answer(Cls::unknown, 1, kSubmit, kWindowEnd), state);
  REQUIRE(events.size() == 3);
  CHECK(std::holds_alternative<TransferUnderInvestigation>(events[1]));
}

TEST_CASE("evolve stops on a deferral that does not move the due call later or names another") {
  SUBCASE("a deferral to before the call was due") {
    CHECK(folding_stops({initiated(), deferred(1, kSubmit, at_ms(-2'000), at_ms(-1'000))}));
  }
  SUBCASE("a deferral of the other kind") {
    CHECK(folding_stops({initiated(), deferred(1, kInquiry, kEarly)}));
  }
  SUBCASE("a deferral of a stale attempt") {
    auto stream = state_named("outcome_unknown").history;
    stream.push_back(deferred(1, kSubmit, kEarly));
    CHECK(folding_stops(stream));
  }
  SUBCASE("a deferral of a settled transfer") {
    CHECK(folding_stops({initiated(), settled(1), deferred(1, kSubmit, kEarly)}));
  }
}
