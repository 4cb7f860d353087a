#pragma once
// The inbound consumer: a librdkafka consumer in a consumer group. Messages are applied
// per partition in seq order inside one PostgreSQL transaction per batch, together with
// the partition's last applied seq and Kafka offset:
//   seq <= last         duplicate: skipped and counted;
//   seq == last + 1     applied through the caller's applier, last = seq;
//   seq >  last + 1     gap: the missing seqs are fetched from the producer's catch-up
//                      API and applied first; until they can be fetched, nothing later
//                      of that partition is applied (the consumer reports itself stalled).
// Bad input (not JSON, missing fields, bad seq, unknown type, invalid data) is handed to
// the caller's parker with the raw message and a typed reason, and consumption goes on.
// On (re)assignment the consumer seeks each partition to the offset after the one stored
// with its last applied message, so a restart or a rebalance resumes exactly.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clearing/eventstore/database.hpp"
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
};

// Fetches seqs [from, from + limit) of a partition from the producer's catch-up API.
using CatchUpFetcher = std::function<tl::expected<std::vector<ExternalMessage>, std::string>(
    const std::string& stream, std::int32_t partition, std::int64_t from, std::int64_t limit)>;

// Applies one message in the transaction (the translation to a command). An error means
// the content is unusable (unknown type, invalid data): the message is parked and its seq
// counts as consumed. Database exceptions propagate and roll the batch back.
using MessageApplier =
    std::function<tl::expected<void, MessageError>(eventstore::Transaction&, const ExternalMessage&)>;

// Keeps an unusable message with its reason (in the same transaction). `parsed` is set
// when the envelope was readable.
using MessageParker = std::function<void(eventstore::Transaction&, const RawMessage&, const MessageError&,
                                         const std::optional<ExternalMessage>& parsed)>;

// Optional calls around each batch's transaction, for an applier that writes set-wise:
// `begin` when the transaction starts (also when a failed batch is tried again: drop
// what an earlier try gathered), `end` after the batch's last message, before the
// progress is stored. An error from `end` rolls the batch back; it is tried again.
struct BatchScope {
  std::function<void(eventstore::Transaction&)> begin;
  std::function<tl::expected<void, std::string>(eventstore::Transaction&)> end;
};

struct ConsumerOptions {
  KafkaClientOptions kafka;
  std::string group_id;
  std::vector<std::string> topics;
  int batch_max = 500;                        // messages per transaction
  std::chrono::milliseconds poll_timeout{50};
  std::int64_t catch_up_page = 500;           // seqs fetched per catch-up request
  std::chrono::milliseconds retry_backoff_max{5'000};
  // Called on the consumer's thread after a batch that applied messages has committed
  // (not for batches of duplicates and parked messages only): wakes in-process workers
  // that the applied messages gave work to, e.g. the dispatcher. Must not block.
  std::function<void()> on_applied;
};

struct ConsumerStats {
  std::int64_t applied = 0;
  std::int64_t duplicates = 0;
  std::int64_t gap_fetched = 0;  // messages applied from the catch-up API
  std::int64_t batches = 0;
  std::map<std::string, std::int64_t> parked;  // by MessageErrc name
  bool stalled = false;
  std::string last_error;
  // The group has given this consumer its first assignment (possibly of no partitions):
  // until then it reads nothing, however ready the rest is. Stays set through later
  // rebalances.
  bool joined = false;
  std::int64_t partitions_assigned = 0;  // now; 0 between a revocation and the next assignment
};

class StreamConsumer {
 public:
  static tl::expected<std::unique_ptr<StreamConsumer>, std::string> create(
      eventstore::ConnectionPool& pool, ConsumerOptions options, MessageApplier applier,
      MessageParker parker, CatchUpFetcher fetcher, BatchScope scope = {});
  ~StreamConsumer();

  void start();
  void stop();  // graceful: the batch in hand commits or rolls back, then the consumer closes

  // Polls once (up to poll_timeout) and applies what came: messages handled, or the
  // error that rolled the batch back (the batch is kept and retried on the next call).
  tl::expected<int, std::string> run_once();

  // Applies messages as if they had come from Kafka (the same path: used for the
  // catch-up of gaps and by tests of the contract).
  tl::expected<int, std::string> apply(std::vector<RawMessage> batch);

  ConsumerStats stats() const;

  struct Impl;

 private:
  explicit StreamConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clearing::external_streams
