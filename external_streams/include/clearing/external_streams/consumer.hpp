#pragma once
// The inbound consumer: a librdkafka consumer in a consumer group. Messages are applied
// per partition in seq order inside one PostgreSQL transaction per batch, together with
// the partition's last applied seq and Kafka offset:
//   seq <= last         duplicate: skipped and counted;
//   seq == last + 1     applied through the caller's InboundHandler, last = seq;
//   seq >  last + 1     gap: the missing seqs are fetched from the producer's catch-up
//                      API and applied first. A seq beyond the producer's head is one the
//                      producer never issued: that message is parked (seq_beyond_head).
// Bad input (not JSON, missing or bad fields, bad seq, unknown type, invalid data) is
// handed to the handler's park() with the raw message and a typed reason, and consumption
// goes on. A bad message whose envelope still names its stream, partition and seq takes
// that seq (parked, the seq counted as consumed), so gap repair never asks for it again.
//
// One partition never stops another (docs/streams.md, "Bad input and partitions"):
// - a gap that cannot be filled now (catch-up API down, no answer) holds only its own
//   partition: what came before it commits, the partition is paused in Kafka and, after
//   a backoff, sought back to the offset after its last stored one and resumed;
// - a gap the catch-up API refuses to fill for a cause retrying cannot mend (FetchError
//   not retryable: our token refused, no such stream, an answer outside the contract)
//   holds its partition too, with that cause in its reason and one error line saying what
//   to fix; it is tried again only every operator_fix_retry_interval, so an operator's
//   fix is picked up without a restart and the producer is not hammered meanwhile. The
//   tail check slows down the same way for such a partition, with the same error line;
// - a batch the database refuses is tried again partition by partition; a partition
//   refused again for a reason that retrying cannot mend (a data error, a handler's
//   rollback that is not retryable) is tried message by message, and the one message the
//   database refuses is parked alone (unstorable) with its reason, its seq counted;
// - a database that is unavailable holds every partition it refuses, each retried with
//   its own backoff.
// A held partition is reported (stats().held, an error log line when the hold starts, an
// info line when the partition flows again), never silent.
// On (re)assignment the consumer seeks each partition to the offset after the one stored
// with its last applied message, so a restart or a rebalance resumes exactly.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "clearing/base/name_table.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/external_streams/errors.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/message.hpp"
#include "clearing/external_streams/stream_store.hpp"

namespace clearing::external_streams {

// A message as it came off Kafka.
struct RawMessage {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = -1;  // -1 when it came from the catch-up API
  std::string key;
  std::string value;
  // The W3C trace context headers the producer sent (Kafka headers `traceparent`,
  // `tracestate`), as received; empty when absent or from the catch-up API.
  std::string traceparent;
  std::string tracestate;
};

// One element of a catch-up page: the element as JSON text (what is parked if it is bad)
// and the message read from it, or why it could not be read.
struct FetchedMessage {
  std::string raw;
  tl::expected<ExternalMessage, MessageError> parsed;
};

// A page of the producer's catch-up API: seqs from `from` on, and the producer's head
// (its highest seq of the partition), which tells a gap from a seq it never issued.
struct FetchedPage {
  std::vector<FetchedMessage> messages;
  std::int64_t head = 0;
};

// Why a catch-up page could not be had. Retryable: the producer, or the way to it, may be
// back at the next try (the hold's backoff). Not retryable: the same request gets the same
// answer until someone changes a setting (our token, the URL) or the producer, so the
// consumer holds the partition with the cause and asks an operator to act.
enum class FetchErrc {
  unreachable,    // no connection, or it broke (resolve, connect, write, read)
  timeout,        // no answer within the fetcher's deadline
  unauthorized,   // HTTP 401 or 403: our token refused
  not_found,      // HTTP 404: no such stream or partition at that URL
  bad_answer,     // not the contract: another 4xx, a body that is not a page, one over the limit
  server_error,   // HTTP 5xx or 429: the producer's trouble, for now
  misconfigured,  // the fetcher's own settings cannot work (a bad URL, TLS refused)
};

constexpr bool is_retryable(FetchErrc code) noexcept {
  return code == FetchErrc::unreachable || code == FetchErrc::timeout ||
         code == FetchErrc::server_error;
}

inline constexpr base::NameTable<FetchErrc, 7> kFetchErrcNames{{
    {FetchErrc::unreachable, "unreachable"},
    {FetchErrc::timeout, "timeout"},
    {FetchErrc::unauthorized, "unauthorized"},
    {FetchErrc::not_found, "not_found"},
    {FetchErrc::bad_answer, "bad_answer"},
    {FetchErrc::server_error, "server_error"},
    {FetchErrc::misconfigured, "misconfigured"},
}};
static_assert(base::lists_every_enumerator(kFetchErrcNames, FetchErrc::misconfigured));

constexpr std::string_view to_string(FetchErrc code) noexcept {
  return base::name_in(kFetchErrcNames, code).value_or("unknown");
}

// The message: what happened and, when retrying cannot help, what to fix (the setting to
// check). Shown in logs and stats: never a token, nor a message's values.
using FetchError = CodedError<FetchErrc>;

// Fetches seqs [from, from + limit) of a partition from the producer's catch-up API. An
// error means the page could not be had, typed by whether another try can help.
using CatchUpFetcher = std::function<tl::expected<FetchedPage, FetchError>(
    const std::string& stream, std::int32_t partition, std::int64_t from, std::int64_t limit)>;

// Why a handler did not apply a message, and so what the consumer does next: decided by
// this type, never by catching.
//  - unusable: the message's content cannot be used (unknown type, invalid data). It is
//    parked with this reason (InboundHandler::park), its seq counts as consumed, and the
//    batch goes on.
//  - rollback: the batch's transaction must roll back (a database failure beneath the
//    handler). The StoreError inside decides as for a batch the database refuses: a
//    retryable one holds the partition and tries it again after a backoff; any other is
//    narrowed down to its message, which is parked alone (unstorable), its seq counted.
class ApplyError {
 public:
  static ApplyError unusable(MessageError reason) { return ApplyError(std::move(reason)); }
  static ApplyError rollback(eventstore::StoreError cause) { return ApplyError(std::move(cause)); }

  bool is_unusable() const noexcept { return std::holds_alternative<MessageError>(error_); }
  const MessageError& reason() const;           // is_unusable()
  const eventstore::StoreError& cause() const;  // !is_unusable()
  const std::string& message() const noexcept;  // either's words, for logs and tests

 private:
  explicit ApplyError(MessageError reason) : error_(std::move(reason)) {}
  explicit ApplyError(eventstore::StoreError cause) : error_(std::move(cause)) {}
  std::variant<MessageError, eventstore::StoreError> error_;
};

// What the consumer hands its messages to: the one interface of an inbound stream's
// meaning. Every call runs in the batch's one transaction, on the consumer's thread, in
// the messages' order; errors are values, so nothing needs to throw. (The consumer still
// catches what a handler throws anyway, as a last resort: see consumer.cpp.)
class InboundHandler {
 public:
  virtual ~InboundHandler() = default;

  // A batch's transaction has begun: also when a failed batch is tried again, or one of
  // its partitions or messages alone, so a handler that gathers for a set-wise write drops
  // what an earlier try gathered here.
  virtual void begin_batch(eventstore::Transaction&) {}

  // Applies one message, whose seq is the partition's next (the translation to a command).
  virtual tl::expected<void, ApplyError> apply(eventstore::Transaction& tx,
                                               const ExternalMessage& message) = 0;

  // Keeps an unusable message with its reason. `parsed` is set when the envelope was
  // readable. An error rolls the batch back, as a rollback from apply does.
  virtual eventstore::StoreResult<void> park(eventstore::Transaction& tx, const RawMessage& raw,
                                             const MessageError& reason,
                                             const std::optional<ExternalMessage>& parsed) = 0;

  // After the batch's last message, before its progress is stored: where a set-wise handler
  // writes what it gathered. An error rolls the batch back, as a rollback from apply does.
  virtual eventstore::StoreResult<void> end_batch(eventstore::Transaction&) { return {}; }
};

// The default of ConsumerOptions::operator_fix_retry_interval.
inline constexpr std::chrono::milliseconds kOperatorFixRetryInterval{30'000};

// How the partitions of the topics are shared among the instances of one group.
enum class PartitionAssignment {
  // Kafka's consumer group: the group coordinator assigns, and a dead member's partitions
  // wait for its session timeout (45 s by default) while an eager rebalance stops the others'.
  kafka_group,
  // PostgreSQL session-level advisory locks (ownership.hpp, as the relays share their
  // partitions): each instance assigns itself the partitions it holds the locks of, a dead
  // instance's locks end with its session (at once for a killed process) and the others take
  // them at their next refresh; nobody else's partitions stop. Offsets live in PostgreSQL
  // already, so this is right on any Kafka cluster. Needs `partitions`.
  database,
};

// The advisory lock classes of the consumers' partition ownership (first key of the two-int
// form): distinct from the relays' (relay.hpp).
inline constexpr std::int32_t kConsumerPartitionLockClass = 0x636e7370;  // "cnsp"
inline constexpr std::int32_t kConsumerMemberLockClass = 0x636e6d62;     // "cnmb"

struct ConsumerOptions {
  KafkaClientOptions kafka;
  std::string group_id;
  std::vector<std::string> topics;
  int batch_max = 500;  // messages per transaction
  std::chrono::milliseconds poll_timeout{50};
  std::int64_t catch_up_page = 500;                    // seqs fetched per catch-up request
  std::chrono::milliseconds retry_backoff_max{5'000};  // between tries of a held partition
  // Between tries of a partition held for a cause retrying cannot mend (a FetchError that
  // is not retryable), and between its tail checks: slow, yet an operator's fix is picked
  // up without a restart.
  std::chrono::milliseconds operator_fix_retry_interval{kOperatorFixRetryInterval};
  // How often each assigned partition's progress is compared with the producer's head (the
  // catch-up API's `head`); a partition behind it that did not move since the last check
  // fetches its missing tail, so a lost last message is repaired within about twice this.
  // 0 turns the check off (also without a catch-up fetcher).
  std::chrono::milliseconds tail_check_interval{0};
  PartitionAssignment assignment = PartitionAssignment::kafka_group;
  std::int32_t partitions =
      0;  // database assignment: each topic's partition count, [1, kPartitionsMax]
  // Database assignment: how often ownership is refreshed (the most a dead instance's
  // partitions wait), how long the server keeps a silent owner's session (a host that lost
  // power), and how long a partition given to another instance waits before anyone takes it.
  std::chrono::milliseconds ownership_refresh{100};
  std::chrono::milliseconds owner_loss_timeout{3'000};
  std::chrono::milliseconds handover_grace{1'000};
  // Called on the consumer's thread after a batch that applied messages has committed
  // (not for batches of duplicates and parked messages only): wakes in-process workers
  // that the applied messages gave work to, e.g. the dispatcher. Must not block.
  std::function<void()> on_applied;
};

// A partition that does not flow now, and why (no values of the messages in it).
struct HeldPartition {
  std::string reason;
  std::chrono::system_clock::time_point since;
  int failures = 0;  // tries in a row that ended in this hold
  // Retrying cannot mend the cause (the reason says what to fix): tried again only every
  // operator_fix_retry_interval.
  bool needs_operator = false;
};

// An assigned partition against its producer, as the last tail check saw it.
struct PartitionProgress {
  std::int64_t applied_seq = 0;
  std::int64_t producer_head = -1;  // -1 until a check had an answer
  std::chrono::system_clock::time_point checked_at{};
  // Since when the partition has been behind the head at the same applied seq (not moving);
  // empty (epoch) while it is level with the head or moving.
  std::chrono::system_clock::time_point behind_still_since{};
};

struct ConsumerStats {
  std::int64_t applied = 0;
  std::int64_t duplicates = 0;
  std::int64_t gap_fetched = 0;  // messages applied from the catch-up API
  std::int64_t batches = 0;
  std::map<std::string, std::int64_t> parked;  // by MessageErrc name
  std::int64_t isolations = 0;  // batches the database refused, tried again partition by partition
  std::map<PartitionKey, HeldPartition> held;  // partitions that do not flow now
  std::int64_t tail_repaired = 0;  // messages fetched because the tail check found them missing
  // Tail checks that found a partition behind and still while Kafka had its messages: its
  // fetch was restarted and the catch-up API fed it.
  std::int64_t fetch_restarts = 0;
  std::map<PartitionKey, PartitionProgress>
      progress;          // assigned partitions, by the last tail check
  bool stalled = false;  // some partition is held
  std::string
      last_error;  // the class of the last error that refused a whole batch (never its text)
  // The group has given this consumer its first assignment (possibly of no partitions):
  // until then it reads nothing, however ready the rest is. Stays set through later
  // rebalances.
  bool joined = false;
  std::int64_t partitions_assigned = 0;  // now; 0 between a revocation and the next assignment
  std::int64_t members_seen = 0;         // database assignment: live instances of the group
  std::vector<PartitionKey> assignment;  // the partitions this instance reads now
};

class StreamConsumer {
 public:
  // Errors: an option out of its range (OptionsError), or a Kafka client librdkafka would not
  // make (KafkaError).
  static tl::expected<std::unique_ptr<StreamConsumer>, SetupError> create(
      eventstore::ConnectionPool& pool, ConsumerOptions options,
      std::unique_ptr<InboundHandler> handler, CatchUpFetcher fetcher = {});
  ~StreamConsumer();

  void start();
  void stop();  // graceful: the batch in hand commits or rolls back, then the consumer closes

  // Retries the held partitions whose backoff is over, polls once (up to poll_timeout)
  // and applies what came: the number of messages handled (held partitions' messages are
  // not handled: they are read again when their hold is retried).
  int run_once();

  // Applies messages as if they had come from Kafka (the same path: used by tests of the
  // contract). Returns the number handled, as run_once.
  int apply(std::vector<RawMessage> batch);

  ConsumerStats stats() const;

  struct Impl;

 private:
  explicit StreamConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::external_streams
