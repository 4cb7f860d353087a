#pragma once
// Parking: input the adapter cannot use is kept with a typed reason, never dropped; and
// read back, in pages bounded in bytes, by GET /parked and GET /parked/{id}.
//
// Writing never fails on content: the raw value is stored as bytes (bytea, sent as a
// binary parameter, so NUL and invalid UTF-8 are kept exactly), and every text column is
// made storable (base::escape_text: control characters and invalid UTF-8 as \xHH, a
// backslash as \\) and bounded in bytes by the limits below. A failure of park() is a
// database failure, never the message's fault.
//
// Reading never loads a whole raw value for a listing: each row carries the first
// kParkedRawPreviewBytes of its raw (cut in SQL) and its full length.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "clearing/eventstore/protector.hpp"
#include "clearing/eventstore/types.hpp"

namespace clearing::adapter {

struct ParkedMessage {
  std::string source;       // "kafka", "clearing-feed"
  std::string reason_code;  // stable snake_case: "not_json", "missing_field", ...
  std::string reason;       // for people; no account numbers
  std::string raw;          // the message as received: any bytes
  std::optional<std::string> topic;
  std::optional<std::int32_t> partition;
  std::optional<std::int64_t> offset;
  std::optional<std::string> correlation_id;
  // An incoming payment the saga parked (IncomingPaymentParked): its payment id. Such a row is
  // of kind "incoming_payment" (else "message"), at most one per payment, and an operator books
  // or returns it (parked_actions.hpp) rather than closing or replaying it.
  std::optional<std::string> payment_id;
  // Its clearing reference, which names the payment's stream (adapter/0009; an id, kept clear).
  std::optional<std::string> clearing_reference;
};

// The source of a parked incoming payment's row.
inline constexpr std::string_view kParkedPaymentSource = "incoming-payment";

// What park() stores of each text field at most, in bytes after escaping (a longer one is
// cut on a code point boundary and ends with "...").
inline constexpr std::size_t kParkedSourceBytesMax = 64;
inline constexpr std::size_t kParkedReasonCodeBytesMax = 64;
inline constexpr std::size_t kParkedReasonBytesMax = 1024;
inline constexpr std::size_t kParkedTopicBytesMax = 256;  // Kafka allows 249 characters
inline constexpr std::size_t kParkedCorrelationIdBytesMax = 256;
// The raw value is kept whole up to this size, far above what a Kafka consumer receives
// (1 MB by default); beyond it the first kParkedRawBytesMax bytes are kept and the reason
// says so, so that parking still cannot fail.
inline constexpr std::size_t kParkedRawBytesMax = 64 << 20;

// Inside the caller's transaction, so the parking commits with the consumer's progress.
// A payment's row (payment_id given) is written once: parked again, it is left as it is.
// With a protector (the pool's: personal data at rest, eventstore/protector.hpp) the raw
// value is sealed whole, under the subject its JSON names (or none), and its first
// kParkedRawPreviewBytes apart for listings; the reads below open them. Error: the
// protector's (its key table out of reach).
eventstore::StoreResult<void> park(eventstore::Transaction& tx, const ParkedMessage& message,
                                   const eventstore::DataProtector* protector);

// Reading. Limits of GET /parked and GET /parked/{id}:
inline constexpr int kParkedPageMax = 1000;                    // rows per page (?limit=)
inline constexpr int kParkedPageDefault = 100;                 // when ?limit= is not given
inline constexpr std::size_t kParkedAnswerBytesMax = 1 << 20;  // one listing page, whole answer
inline constexpr std::size_t kParkedRawPreviewBytes = 4096;    // the raw shown per listed row
inline constexpr std::size_t kParkedRawChunkBytes = 1 << 20;   // the raw shown by GET /parked/{id}

// One page of the listing, newest first: rows with id < before_id (all when nullopt),
// with reason_code == reason_code when given, at most `limit` rows and at most
// kParkedAnswerBytesMax bytes of answer. The rows' order and the cursor are the ids:
// new rows get larger ids, so they never shift a page being walked.
struct ParkedListing {
  std::optional<std::string> reason_code;
  std::optional<std::int64_t> before_id;
  int limit = kParkedPageDefault;  // 1..kParkedPageMax
};

// The page as the JSON body of GET /parked:
//   {"parked": [row...], "next": "/parked?before_id=N&limit=L[&reason=R]" | null,
//    "next_before_id": N | null}
// Each row: id, source, reason_code, reason, topic, partition, offset, correlation_id,
// parked_at, and its raw as `raw_bytes` (the full length), `raw_encoding` ("text": `raw`
// is the bytes as a string, valid UTF-8 without control characters other than tab, CR and
// LF; "base64": `raw` is the bytes in base64, and `raw_escaped` shows them for reading,
// with \xHH for control characters and invalid bytes), `raw` (the first
// kParkedRawPreviewBytes bytes at most, less the part of a character they cut) and
// `raw_truncated` (raw does not reach the end of the value: GET /parked/{id} has it whole),
// `state` (open, closed or replayed: an operator's action, parked_actions.hpp; a payment's:
// open, booked or returned) and `kind`: "message", or "incoming_payment" with its
// `payment_id` (the raw is then the IncomingPaymentParked event's data, opened like any raw).
// Throws what pqxx throws (run it inside ConnectionPool::transact).
// An erased subject's raw reads "[erased]" (eventstore::kErased), its raw_bytes that length.
eventstore::StoreResult<std::string> parked_page(eventstore::Transaction& tx,
                                                 const ParkedListing& listing,
                                                 const eventstore::DataProtector* protector);

enum class ParkedReadError { unknown_id, beyond_end };

// One parked message as the JSON body of GET /parked/{id}: the row as in the listing,
// with `raw` the bytes from `from_byte` on, at most kParkedRawChunkBytes of them,
// `raw_from_byte`, and `next` ("/parked/{id}?from_byte=M", or null when raw reaches the
// end of the value). The answer is at most about 2 x kParkedRawChunkBytes (a text raw
// of quotes or backslashes doubles in JSON). beyond_end: from_byte > the raw's length.
// A raw the protector cannot open fails the transaction: eventstore::StoreFailure, which
// ConnectionPool::transact returns as its StoreError.
tl::expected<std::string, ParkedReadError> parked_message(
    eventstore::Transaction& tx, std::int64_t id, std::int64_t from_byte,
    const eventstore::DataProtector* protector);

// A parked message's state: open until an operator closes it or replays it (issue 22,
// parked_actions.hpp); the events of those actions are in the stream "parked-<id>".
inline constexpr std::string_view kParkedOpen = "open";
inline constexpr std::string_view kParkedClosed = "closed";
inline constexpr std::string_view kParkedReplayed = "replayed";
inline constexpr std::string_view kParkedBooked = "booked";
inline constexpr std::string_view kParkedReturned = "returned";

// What a replay needs of a parked message: its row, locked (for update) until the caller's
// transaction ends, and its whole raw value, opened when it is sealed.
struct ParkedRaw {
  std::int64_t id = 0;
  std::string source, reason_code;
  std::optional<std::string> topic;
  std::optional<std::int32_t> partition;
  std::optional<std::string> correlation_id;
  std::optional<std::string> payment_id;  // a parked incoming payment's
  std::string state;                      // kParkedOpen, kParkedClosed, kParkedReplayed, ...
  std::string raw;
};
// unknown_id: no such row. A raw the protector cannot open fails the transaction, as above.
tl::expected<ParkedRaw, ParkedReadError> parked_for_action(
    eventstore::Transaction& tx, std::int64_t id, const eventstore::DataProtector* protector);

// A message's state and correlation id, its row locked as parked_for_action's, without its raw;
// a payment's row with its clearing reference, which names the payment's stream
// (incoming-payment-<reference>): the row's (adapter/0009), else, for a row that a version
// before 0009 wrote after 0009 ran (a rolling upgrade), the one its IncomingPaymentParked event
// names. Neither is sealed (a reference is an id, not personal data: docs/personal-data.md), so
// nothing here needs the data key; nullopt when neither names one.
struct ParkedState {
  std::string state;
  std::optional<std::string> correlation_id;
  std::optional<std::string> payment_id;
  std::optional<std::string> clearing_reference;  // a payment's
};
std::optional<ParkedState> lock_parked_state(eventstore::Transaction& tx, std::int64_t id);

// The clearing reference that the IncomingPaymentParked event of `payment_id` names (its events
// are found by the events_alarms index), nullopt when there is none. Reads no sealed data.
std::optional<std::string> parked_event_reference(eventstore::Transaction& tx,
                                                  const std::string& payment_id);

// Sets a message's state (kParkedClosed, kParkedReplayed), in the transaction that appends the
// action's event. A payment's row is set_parked_payment_state's.
void set_parked_state(eventstore::Transaction& tx, std::int64_t id, std::string_view state);

// What an operator's action writes of a parked incoming payment's row: its state, and its
// clearing reference.
struct ParkedPaymentState {
  std::string payment_id;
  std::string clearing_reference;
  std::string_view state;  // kParkedBooked or kParkedReturned
};
// The one writer of a parked payment row's state after park() inserted it open (with its
// clearing reference), in the transaction that records an operator's booking or return; the
// reference is written too, for a row an older version inserted without it. Only an open row is
// written (an action never undone): false when the payment has no open row.
bool set_parked_payment_state(eventstore::Transaction& tx, const ParkedPaymentState& payment);

}  // namespace clearing::adapter
