#include "clearing/external_streams/consumer.hpp"

#include <librdkafka/rdkafka.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "clearing/base/assert.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/text.hpp"
#include "clearing/base/trace_context.hpp"
#include "clearing/external_streams/ownership.hpp"
#include "clearing/tracing/tracer.hpp"
#include "kafka_internal.hpp"

namespace clearing::external_streams {
namespace {

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::Transaction;
using Clock = std::chrono::steady_clock;

// Seqs one transaction fetches from the catch-up API for one partition: a bound on one
// transaction's work. A longer gap is filled over several transactions, one after another.
constexpr std::int64_t kGapFetchMax = 100'000;
// Catch-up pages of one repair that bring nothing new before the repair gives up: a
// producer that answers older seqs again and again must not keep the consumer for ever.
constexpr int kRepairIdlePagesMax = 3;
// How long a seek back of a held partition may take before it is tried again later.
constexpr int kSeekTimeoutMs = 2'000;
// A held partition's reason as kept in stats and logs.
constexpr std::size_t kReasonBytesMax = 500;
// A traceparent header longer than this is not read (version 00 is 55 bytes; later versions
// may add fields after it).
constexpr std::size_t kTraceparentBytesMax = 256;

// What of a database error may be told: its class, and for a parked message's reason (read
// behind the API token, beside the raw message itself) the first line of the server's
// message. Never its DETAIL or CONTEXT lines, which quote the row's values (an account
// number, a name): those stay out of logs, stats and /readyz.
std::string database_error_headline(const StoreError& error) {
  const auto line_end = error.message.find('\n');
  return std::string(eventstore::to_string(error.code)) + ": " +
         base::escape_text(std::string_view(error.message).substr(0, line_end),
                           kReasonBytesMax / 2);
}

std::string describe(const std::string& stream, std::int32_t partition) {
  return stream + "/" + std::to_string(partition);
}

// What a handler threw, as the failure of its try. Handlers return their errors
// (ApplyError, StoreError): this is the last-resort net for what one throws anyway (a bug,
// an allocation failure, a library exception it did not translate), so that the consumer's
// thread never dies of it. Not retryable: the batch is narrowed down to its message, which
// is parked alone (unstorable), as for any refusal that retrying cannot mend.
StoreError failure_of(std::exception_ptr thrown) {
  try {
    std::rethrow_exception(thrown);
  } catch (const std::exception& e) {
    return StoreError{StoreErrc::handler_failed, e.what()};
  } catch (...) {
    return StoreError{StoreErrc::handler_failed, "unknown exception"};
  }
}

// Why a partition stopped inside a transaction: what came before it commits.
struct Stop {
  std::string reason;
  bool at_once = false;  // more work of the same kind is due now (a long gap), no backoff
  // Retrying cannot mend it (a catch-up refusal the reason says how to fix): tried again
  // only every operator_fix_retry_interval.
  bool needs_operator = false;
};

// A catch-up page that could not be had, as a stop of the partition that needed it: its
// reason names the cause (the FetchErrc) and the fetcher's words, which say what to fix
// when retrying cannot help.
Stop fetch_stop(const std::string& what, const FetchError& error) {
  return Stop{.reason = what + ": " + std::string(to_string(error.code)) + ": " + error.message,
              .needs_operator = !error.is_retryable()};
}

}  // namespace

const MessageError& ApplyError::reason() const {
  CLEARING_ASSERT(is_unusable());
  return std::get<MessageError>(error_);
}

const StoreError& ApplyError::cause() const {
  CLEARING_ASSERT(!is_unusable());
  return std::get<StoreError>(error_);
}

const std::string& ApplyError::message() const noexcept {
  return is_unusable() ? std::get<MessageError>(error_).message
                       : std::get<StoreError>(error_).message;
}

struct StreamConsumer::Impl {
  eventstore::ConnectionPool& pool;
  ConsumerOptions options;
  std::unique_ptr<InboundHandler> handler;
  CatchUpFetcher fetcher;
  rd_kafka_t* consumer = nullptr;
  std::shared_ptr<spdlog::logger> log = base::module_logger("consumer");

  // Partitions that do not flow now. `paused`: its messages are not read (those still in
  // hand are dropped: they are read again after the seek back). After the backoff it is
  // sought back and resumed, and stays held until a batch handles it without a stop.
  struct Hold {
    HeldPartition shown;
    Clock::time_point retry_at;
    bool paused = true;
  };
  std::map<PartitionKey, Hold> holds;  // consumer thread only (the rebalance callback too)

  // The tail check (options.tail_check_interval): the partitions assigned now, and each
  // one's applied seq at the last check, to tell a partition that is behind and still from
  // one whose messages are on their way.
  std::vector<PartitionKey> assigned;
  std::map<PartitionKey, std::int64_t> seq_at_last_check;
  Clock::time_point next_tail_check{};
  std::set<PartitionKey> undelivered;  // behind and still while Kafka has their messages
  // Partitions whose last tail check was refused for a cause retrying cannot mend: not
  // checked again before this.
  std::map<PartitionKey, Clock::time_point> tail_check_not_before;

  // Database assignment (PartitionAssignment::database): the locks this instance holds, and
  // whether Kafka's assignment must be made again to match them.
  std::unique_ptr<PartitionOwnership> ownership;
  bool assignment_due = true;
  std::string ownership_error;  // the last refresh's error message, logged once per change
  // Why the tail check or the assignment could not run, per what it was about ("" when it
  // ran): such a failure is retried at the next round and logged once per change, never lost.
  std::map<std::string, std::string> round_failures;

  void note_round(const std::string& what, std::string failure) {
    auto& last = round_failures[what];
    if (last == failure) return;
    if (failure.empty()) {
      log->info("inbound {} works again", what);
    } else {
      log->warn("inbound {} failing reason=\"{}\": tried again at the next round", what,
                base::escape_text(failure, kReasonBytesMax));
    }
    last = std::move(failure);
  }

  base::BackgroundThread worker;

  mutable std::mutex stats_mutex;
  ConsumerStats stats;

  Impl(eventstore::ConnectionPool& p, ConsumerOptions o, std::unique_ptr<InboundHandler> h,
       CatchUpFetcher f)
      : pool(p), options(std::move(o)), handler(std::move(h)), fetcher(std::move(f)) {}

  ~Impl() {
    if (consumer) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }

  // On assignment, every partition starts after the offset stored with its last applied
  // message (or at the beginning): the database, not Kafka, says where we are. Holds end
  // with the assignment (the partitions start afresh), and the application's pause of a
  // partition outlives a reassignment in librdkafka, so every assigned one is resumed.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    self->holds.clear();
    self->assigned.clear();
    self->seq_at_last_check.clear();
    self->tail_check_not_before.clear();
    self->undelivered.clear();
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      auto positioned = self->pool.transact([&](Transaction& tx) -> eventstore::StoreResult<void> {
        for (int i = 0; i < partitions->cnt; ++i) {
          auto& tp = partitions->elems[i];
          auto progress = read_progress(tx, tp.topic, tp.partition);
          if (!progress) return tl::unexpected(progress.error());
          tp.offset = *progress && (*progress)->kafka_offset >= 0 ? (*progress)->kafka_offset + 1
                                                                  : RD_KAFKA_OFFSET_BEGINNING;
        }
        return {};
      });
      if (!positioned) {
        // Without the stored offsets we cannot resume exactly: start from the beginning,
        // which is safe (duplicates are skipped by seq and offset), only slower.
        self->log->error(
            "reading stored offsets failed error_class={}: assigning from the beginning",
            eventstore::to_string(positioned.error().code));
        for (int i = 0; i < partitions->cnt; ++i)
          partitions->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
      }
      rd_kafka_assign(rk, partitions);
      rd_kafka_resume_partitions(rk, partitions);
      for (int i = 0; i < partitions->cnt; ++i)
        self->assigned.emplace_back(partitions->elems[i].topic, partitions->elems[i].partition);
      self->log->info("partitions assigned count={}", partitions->cnt);
      std::lock_guard lock(self->stats_mutex);
      self->stats.joined = true;
      self->stats.partitions_assigned = partitions->cnt;
      self->stats.assignment = self->assigned;
      self->stats.held.clear();
      self->stats.stalled = false;
      self->stats.progress.clear();
    } else {
      rd_kafka_assign(rk, nullptr);
      self->log->info("partitions revoked");
      std::lock_guard lock(self->stats_mutex);
      self->stats.partitions_assigned = 0;
      self->stats.assignment.clear();
      self->stats.held.clear();
      self->stats.stalled = false;
      self->stats.progress.clear();
    }
  }

  static OwnershipOptions ownership_options(const ConsumerOptions& options) {
    OwnershipOptions o;
    o.partition_lock_class = kConsumerPartitionLockClass;
    o.member_lock_class = kConsumerMemberLockClass;
    o.scope = options.group_id + "|";
    std::vector<PartitionKey> partitions;
    for (const auto& topic : options.topics)
      for (std::int32_t p = 0; p < options.partitions; ++p) partitions.emplace_back(topic, p);
    o.partitions = std::move(partitions);
    o.role = "consumer";
    o.refresh = options.ownership_refresh;
    o.owner_loss_timeout = options.owner_loss_timeout;
    o.handover_grace = options.handover_grace;
    return o;
  }

  tl::expected<void, KafkaError> open() {
    auto conf = make_conf(consumer_settings(options.kafka, options.group_id));
    if (!conf) return tl::unexpected(conf.error());
    const bool by_database = options.assignment == PartitionAssignment::database;
    if (!by_database) {
      rd_kafka_conf_set_rebalance_cb(*conf, &Impl::on_rebalance);
      rd_kafka_conf_set_opaque(*conf, this);
    }
    char error[512];
    consumer = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, error, sizeof error);
    if (!consumer) {
      rd_kafka_conf_destroy(*conf);
      return tl::unexpected(
          KafkaError{KafkaErrc::client_failed, std::string("kafka consumer: ") + error});
    }
    rd_kafka_poll_set_consumer(consumer);
    if (by_database) {
      // No group membership at all: this instance assigns itself what it owns.
      ownership =
          std::make_unique<PartitionOwnership>(pool.options(), ownership_options(options), log);
      return {};
    }
    auto* topics = rd_kafka_topic_partition_list_new(static_cast<int>(options.topics.size()));
    for (const auto& topic : options.topics)
      rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
    const auto err = rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err)
      return tl::unexpected(KafkaError{KafkaErrc::client_failed,
                                       std::string("kafka subscribe: ") + rd_kafka_err2str(err)});
    return {};
  }

  // The last `traceparent` and `tracestate` headers, as sent (the inbound handler checks
  // them); a value longer than a valid one could be is not read.
  static void read_trace_headers(rd_kafka_message_t* m, RawMessage& raw) {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    const auto read = [headers](const char* name, std::size_t max, std::string& out) {
      const void* value = nullptr;
      std::size_t size = 0;
      if (rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          value != nullptr && size <= max)
        out.assign(static_cast<const char*>(value), size);
    };
    read("traceparent", kTraceparentBytesMax, raw.traceparent);
    read("tracestate", base::kTraceStateBytesMax, raw.tracestate);
  }

  std::vector<RawMessage> poll_batch() {
    std::vector<RawMessage> batch;
    auto timeout = static_cast<int>(options.poll_timeout.count());
    while (static_cast<int>(batch.size()) < options.batch_max) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, timeout);
      if (m == nullptr) break;
      timeout = 0;  // take what is already there, do not wait for more
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          log->warn("kafka consume error={} detail={}", rd_kafka_err2name(m->err),
                    base::escape_text(rd_kafka_message_errstr(m), kReasonBytesMax));
        rd_kafka_message_destroy(m);
        continue;
      }
      RawMessage raw;
      raw.topic = rd_kafka_topic_name(m->rkt);
      raw.partition = m->partition;
      raw.offset = m->offset;
      if (m->key) raw.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) raw.value.assign(static_cast<const char*>(m->payload), m->len);
      read_trace_headers(m, raw);
      rd_kafka_message_destroy(m);
      batch.push_back(std::move(raw));
    }
    return batch;
  }

  // --- one transaction -----------------------------------------------------------------

  struct Counts {
    std::int64_t applied = 0, duplicates = 0, gap_fetched = 0;
    std::map<std::string, std::int64_t> parked;
  };

  struct TryResult {
    Counts counts;
    std::map<PartitionKey, Stop> stopped;  // partitions that stopped at a message: the rest waits
  };

  // An error of these rolls the transaction back (the handler's word, typed).
  eventstore::StoreResult<void> park(Transaction& tx, const RawMessage& raw,
                                     const MessageError& error,
                                     const std::optional<ExternalMessage>& parsed, Counts& counts) {
    if (auto parked = handler->park(tx, raw, error, parsed); !parked) return parked;
    ++counts.parked[to_string(error.code)];
    return {};
  }

  // Applies one well-formed message whose seq is exactly last + 1: an unusable one is
  // parked, a rollback ends the transaction.
  eventstore::StoreResult<void> apply_next(Transaction& tx, const RawMessage& raw,
                                           const ExternalMessage& m, InboundProgress& progress,
                                           Counts& counts) {
    CLEARING_ASSERT(m.seq == progress.last_seq + 1);
    auto applied = handler->apply(tx, m);
    if (!applied && !applied.error().is_unusable()) return tl::unexpected(applied.error().cause());
    if (!applied) {
      if (auto parked = park(tx, raw, applied.error().reason(), m, counts); !parked) return parked;
    } else {
      ++counts.applied;
    }
    progress.last_seq = m.seq;
    return {};
  }

  // A bad message that holds its place in the stream (its seq is exactly last + 1): parked,
  // and the seq counts as consumed.
  eventstore::StoreResult<void> park_in_place(Transaction& tx, const RawMessage& raw,
                                              const MessageError& error, InboundProgress& progress,
                                              Counts& counts) {
    CLEARING_ASSERT(error.seq && *error.seq == progress.last_seq + 1);
    if (auto parked = park(tx, raw, error, std::nullopt, counts); !parked) return parked;
    progress.last_seq = *error.seq;
    return {};
  }

  enum class Repair { filled, beyond_head, stopped };
  struct RepairResult {
    Repair outcome = Repair::filled;
    Stop stop;
  };

  // Fetches and applies the seqs missing before `seq`. A page that cannot be had stops this
  // partition only; an error is the handler's rollback of the whole transaction.
  eventstore::StoreResult<RepairResult> repair_gap(Transaction& tx, const std::string& stream,
                                                   std::int32_t partition, std::int64_t seq,
                                                   InboundProgress& progress, Counts& counts) {
    const auto where = describe(stream, partition);
    auto stopped = [](std::string reason, bool at_once = false) {
      return RepairResult{Repair::stopped, Stop{std::move(reason), at_once}};
    };
    if (!fetcher)
      return stopped("gap before seq " + std::to_string(seq) + " of " + where +
                     " and no catch-up API");
    std::int64_t fetched = 0;
    int idle_pages = 0;
    while (progress.last_seq + 1 < seq) {
      if (fetched >= kGapFetchMax)
        return stopped("gap of " + where + " filled up to seq " +
                           std::to_string(progress.last_seq) + ", continuing",
                       true);
      const auto from = progress.last_seq + 1;
      const auto limit = std::min(options.catch_up_page, seq - from);
      auto page = fetcher(stream, partition, from, limit);
      if (!page)
        return RepairResult{
            Repair::stopped,
            fetch_stop("catch-up of " + where + " from " + std::to_string(from), page.error())};
      if (page->messages.empty()) {
        // The producer's head is its highest seq: a seq beyond it was never issued.
        if (page->head < seq) return RepairResult{Repair::beyond_head, {}};
        return stopped("catch-up of " + where + " from " + std::to_string(from) +
                       " returned nothing (head " + std::to_string(page->head) + ")");
      }
      const auto before = progress.last_seq;
      for (const auto& element : page->messages) {
        const auto& parsed = element.parsed;
        std::optional<std::int64_t> element_seq =
            parsed ? std::optional(parsed->seq) : parsed.error().seq;
        const bool same_partition =
            parsed ? parsed->stream == stream && parsed->partition == partition
                   : parsed.error().stream == stream && parsed.error().partition == partition;
        if (!element_seq || !same_partition)
          return stopped("catch-up of " + where +
                         " answered a message of no readable position in it");
        if (*element_seq <= progress.last_seq) continue;
        if (*element_seq != progress.last_seq + 1)
          return stopped("catch-up of " + where + " answered seq " + std::to_string(*element_seq) +
                         " where " + std::to_string(progress.last_seq + 1) + " was asked");
        if (*element_seq >= seq) break;
        RawMessage raw{stream, partition, -1, parsed ? parsed->key : std::string(), element.raw};
        auto taken = parsed ? apply_next(tx, raw, *parsed, progress, counts)
                            : park_in_place(tx, raw, parsed.error(), progress, counts);
        if (!taken) return tl::unexpected(taken.error());
        ++counts.gap_fetched;
        ++fetched;
      }
      if (progress.last_seq == before && ++idle_pages >= kRepairIdlePagesMax)
        return stopped("catch-up of " + where + " from " + std::to_string(from) +
                       " brought nothing new");
    }
    return {};
  }

  // Handles one message of a partition whose progress is `p`. A Stop leaves the message
  // (and the rest of its partition in this batch) for a later try; an error is the
  // handler's rollback of the whole transaction.
  eventstore::StoreResult<std::optional<Stop>> handle(Transaction& tx, const RawMessage& raw,
                                                      InboundProgress& p, Counts& counts) {
    auto parsed = parse_message(std::string_view(raw.value));
    if (parsed) {
      parsed->traceparent = raw.traceparent;
      parsed->tracestate = raw.tracestate;
    }
    // The message's trace is the current one while it is handled: a gap it reveals is
    // fetched under it (make_http_catch_up_fetcher).
    std::optional<tracing::ScopedContext> in_trace;
    if (auto context = base::parse_traceparent(raw.traceparent, raw.tracestate))
      in_trace.emplace(std::move(*context));
    if (parsed && (parsed->stream != raw.topic || parsed->partition != raw.partition))
      parsed = tl::unexpected(MessageError{MessageErrc::wrong_stream,
                                           "envelope names " + parsed->stream + "/" +
                                               std::to_string(parsed->partition) + " but came on " +
                                               describe(raw.topic, raw.partition)});
    const std::optional<std::int64_t> seq =
        parsed ? std::optional(parsed->seq)
               : (parsed.error().stream == raw.topic && parsed.error().partition == raw.partition
                      ? parsed.error().seq
                      : std::nullopt);
    const auto go_on =
        [](eventstore::StoreResult<void> done) -> eventstore::StoreResult<std::optional<Stop>> {
      if (!done) return tl::unexpected(done.error());
      return std::nullopt;
    };
    if (!seq)  // no place in the stream: parked, nothing else moves
      return go_on(park(tx, raw, parsed.error(), std::nullopt, counts));
    // A seq already consumed is a duplicate, readable or not: a bad message parked in its
    // place (from the catch-up API, say) is not parked again when Kafka brings it too.
    if (*seq <= p.last_seq) {
      ++counts.duplicates;
      return std::nullopt;
    }
    if (*seq > p.last_seq + 1) {
      auto repaired = repair_gap(tx, raw.topic, raw.partition, *seq, p, counts);
      if (!repaired) return tl::unexpected(repaired.error());
      if (repaired->outcome == Repair::stopped) return std::move(repaired->stop);
      if (repaired->outcome == Repair::beyond_head)
        return go_on(park(
            tx, raw,
            MessageError{MessageErrc::seq_beyond_head, "seq " + std::to_string(*seq) +
                                                           " is beyond the producer's head of " +
                                                           describe(raw.topic, raw.partition)},
            parsed ? std::optional(*parsed) : std::nullopt, counts));
    }
    if (!parsed) return go_on(park_in_place(tx, raw, parsed.error(), p, counts));
    parsed->key = raw.key;
    return go_on(apply_next(tx, raw, *parsed, p, counts));
  }

  // One transaction of the handler's over the partitions `keys`: begin_batch, their
  // progress locked, `body`, end_batch, their progress stored. `body` answers whether there
  // is anything to store (false: it found its work done meanwhile), or the error that rolls
  // the transaction back. Throws nothing: see failure_of for what a handler throws.
  template <class Body>
  eventstore::StoreResult<void> in_batch(const std::set<PartitionKey>& keys, Body&& body) {
    try {
      return pool.transact([&](Transaction& tx) -> eventstore::StoreResult<void> {
        handler->begin_batch(tx);
        auto locked = lock_progress(tx, keys);
        if (!locked) return tl::unexpected(locked.error());
        eventstore::StoreResult<bool> worked = body(tx, *locked);
        if (!worked) return tl::unexpected(worked.error());
        if (!*worked) return {};
        if (auto ended = handler->end_batch(tx); !ended) return ended;
        return store_progress(tx, *locked);
      });
    } catch (...) {
      return tl::unexpected(failure_of(std::current_exception()));
    }
  }

  // One transaction over `batch` (any partitions). Throws nothing: a failure is the
  // typed error of the whole try, and nothing of it committed.
  eventstore::StoreResult<TryResult> try_apply(const std::vector<RawMessage>& batch) {
    TryResult result;
    // Every partition of the batch locked with one statement, stored with one at the end.
    std::set<PartitionKey> partitions;
    for (const auto& raw : batch) partitions.emplace(raw.topic, raw.partition);
    auto done =
        in_batch(partitions, [&](Transaction& tx, auto& progress) -> eventstore::StoreResult<bool> {
          result = TryResult{};
          for (const auto& raw : batch) {
            const PartitionKey key{raw.topic, raw.partition};
            if (result.stopped.contains(key)) continue;
            auto& p = progress.at(key);
            // A Kafka position at or below the stored one was handled (applied, skipped or
            // parked) by a committed transaction: read again after a rebalance raced a batch,
            // a seek back, or a commit whose answer was lost. The seq would catch a message
            // that has one; this also keeps a message without one from being parked twice.
            if (raw.offset >= 0 && raw.offset <= p.kafka_offset) {
              ++result.counts.duplicates;
              continue;
            }
            auto stop = handle(tx, raw, p, result.counts);
            if (!stop) return tl::unexpected(stop.error());
            if (*stop) {
              result.stopped.emplace(key, std::move(**stop));
              continue;
            }
            if (raw.offset >= 0) p.kafka_offset = raw.offset;
          }
          return true;
        });
    if (!done) return tl::unexpected(done.error());
    return result;
  }

  // --- holds -----------------------------------------------------------------------------

  std::chrono::milliseconds backoff(int failures) const {
    return std::min(options.retry_backoff_max,
                    std::chrono::milliseconds(20) * (1 << std::min(failures, 8)));
  }

  // How long a held partition waits before its next try.
  std::chrono::milliseconds pause_after(const Stop& stop, int failures) const {
    if (stop.at_once) return std::chrono::milliseconds(0);
    if (stop.needs_operator) return options.operator_fix_retry_interval;
    return backoff(failures);
  }

  void set_paused(const PartitionKey& key, bool paused) {
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, key.first.c_str(), key.second);
    if (paused) {
      rd_kafka_pause_partitions(consumer, list);
    } else {
      rd_kafka_resume_partitions(consumer, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  void hold(const PartitionKey& key, const Stop& stop) {
    auto [it, fresh] = holds.try_emplace(key);
    auto& h = it->second;
    if (fresh) h.shown.since = std::chrono::system_clock::now();
    if (!stop.at_once) ++h.shown.failures;
    const auto reason = base::escape_text(stop.reason, kReasonBytesMax);
    // One error line when a partition stops and one when its reason changes: a stall is
    // never silent, and a stall that lasts does not flood the log.
    if (fresh || h.shown.reason != reason) {
      if (stop.needs_operator) {
        log->error(
            "inbound partition held until an operator acts stream={} partition={} reason=\"{}\""
            " retry_every_s={}: retrying cannot help, fix what the reason names",
            key.first, key.second, reason,
            std::chrono::duration_cast<std::chrono::seconds>(options.operator_fix_retry_interval)
                .count());
      } else {
        const auto level = stop.at_once ? spdlog::level::info : spdlog::level::err;
        log->log(level, "inbound partition held stream={} partition={} reason=\"{}\"", key.first,
                 key.second, reason);
      }
    }
    h.shown.reason = reason;
    h.shown.needs_operator = stop.needs_operator;
    h.retry_at = Clock::now() + pause_after(stop, h.shown.failures);
    h.paused = true;
    if (consumer) set_paused(key, true);
  }

  void release(const PartitionKey& key) {
    auto it = holds.find(key);
    if (it == holds.end() || it->second.paused) return;
    log->info("inbound partition flowing again stream={} partition={} held_for_s={}", key.first,
              key.second,
              std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                               it->second.shown.since)
                  .count());
    holds.erase(it);
  }

  // Held partitions whose backoff is over: sought back to the offset after their last
  // stored one (Kafka drops what it had fetched beyond) and resumed. They stay held until
  // a batch handles them without a stop.
  void retry_due_holds() {
    const auto now = Clock::now();
    for (auto& [key, h] : holds) {
      if (!h.paused || h.retry_at > now || consumer == nullptr) continue;
      if (!seek_to_stored(key)) {
        h.retry_at = now + backoff(++h.shown.failures);
        continue;
      }
      h.paused = false;
      set_paused(key, false);
    }
  }

  // The partition's fetch starts again at the offset after its last stored one (Kafka drops
  // what it had fetched beyond). False when the offset could not be read or the seek failed.
  bool seek_to_stored(const PartitionKey& key) {
    auto stored =
        pool.transact([&](Transaction& tx) { return read_progress(tx, key.first, key.second); });
    if (!stored) return false;
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, key.first.c_str(), key.second)->offset =
        *stored && (**stored).kafka_offset >= 0 ? (**stored).kafka_offset + 1
                                                : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer, list, kSeekTimeoutMs);
    const bool sought = error == nullptr && list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error) rd_kafka_error_destroy(error);
    rd_kafka_topic_partition_list_destroy(list);
    return sought;
  }

  void publish_holds() {
    std::lock_guard lock(stats_mutex);
    stats.held.clear();
    for (const auto& [key, h] : holds) stats.held.emplace(key, h.shown);
    stats.stalled = !holds.empty();
  }

  // --- a batch ---------------------------------------------------------------------------

  void record(const Counts& counts) {
    std::lock_guard lock(stats_mutex);
    stats.applied += counts.applied;
    stats.duplicates += counts.duplicates;
    stats.gap_fetched += counts.gap_fetched;
    ++stats.batches;
    for (const auto& [reason, n] : counts.parked) stats.parked[reason] += n;
  }

  // After a committed try: the partitions that stopped are held, those that went through
  // flow again.
  void settle(const std::vector<RawMessage>& batch, const TryResult& result) {
    record(result.counts);
    for (const auto& [key, stop] : result.stopped) hold(key, stop);
    for (const auto& raw : batch) {
      const PartitionKey key{raw.topic, raw.partition};
      if (!result.stopped.contains(key)) release(key);
    }
    if ((result.counts.applied > 0 || result.counts.gap_fetched > 0) && options.on_applied)
      options.on_applied();
  }

  // The one message of a partition the database refuses, for a reason retrying cannot
  // mend: parked alone with that reason (the payload as bytes, nothing of it applied), its
  // Kafka offset and, when its envelope holds its place, its seq counted as consumed.
  tl::expected<void, StoreError> park_unstorable(const RawMessage& raw, const StoreError& refusal) {
    Counts counts;
    const PartitionKey key{raw.topic, raw.partition};
    // A fresh batch (begin_batch): what the refused tries had gathered is not written again.
    auto done =
        in_batch({key}, [&](Transaction& tx, auto& locked) -> eventstore::StoreResult<bool> {
          counts = Counts{};
          auto& p = locked.at(key);
          if (raw.offset >= 0 && raw.offset <= p.kafka_offset) return false;  // handled meanwhile
          auto parsed = parse_message(std::string_view(raw.value));
          MessageError error{MessageErrc::unstorable,
                             "the database refused this message's effects (" +
                                 database_error_headline(refusal) + ")"};
          const auto seq = parsed ? std::optional(parsed->seq) : parsed.error().seq;
          eventstore::StoreResult<void> parked;
          if (seq && *seq == p.last_seq + 1 && (parsed || parsed.error().stream == raw.topic)) {
            error.seq = seq;
            error.stream = raw.topic;
            error.partition = raw.partition;
            parked = park_in_place(tx, raw, error, p, counts);
          } else {
            parked = park(tx, raw, error, std::nullopt, counts);
          }
          if (!parked) return tl::unexpected(parked.error());
          if (raw.offset >= 0) p.kafka_offset = raw.offset;
          return true;
        });
    if (!done) return tl::unexpected(done.error());
    record(counts);
    log->error("inbound message unstorable, parked stream={} partition={} offset={} error_class={}",
               raw.topic, raw.partition, raw.offset, eventstore::to_string(refusal.code));
    return {};
  }

  // One partition's messages after the whole batch was refused: in one transaction, and
  // when that is refused for a reason retrying cannot mend, message by message.
  // `refused`: the try of exactly these messages that already failed (a batch of one
  // partition), so it is not made twice.
  void apply_partition(const PartitionKey& key, const std::vector<RawMessage>& messages,
                       std::optional<StoreError> refused) {
    if (!refused) {
      auto tried = try_apply(messages);
      if (tried) {
        settle(messages, *tried);
        return;
      }
      refused = tried.error();
    }
    if (refused->is_retryable() || messages.size() == 1) {
      isolate_one(key, messages.front(), *refused);
      return;
    }
    for (const auto& raw : messages) {
      if (holds.contains(key)) return;  // the rest waits behind the held message
      auto alone = try_apply({raw});
      if (alone) {
        settle({raw}, *alone);
      } else {
        isolate_one(key, raw, alone.error());
      }
    }
  }

  // A single message refused: held when retrying may help (the database away), parked
  // alone otherwise.
  void isolate_one(const PartitionKey& key, const RawMessage& raw, const StoreError& error) {
    if (error.is_retryable()) {
      hold(key,
           Stop{"database refused the batch: " + std::string(eventstore::to_string(error.code))});
      return;
    }
    auto parked = park_unstorable(raw, error);
    if (!parked)
      hold(key, Stop{"parking an unstorable message failed: " +
                     std::string(eventstore::to_string(parked.error().code))});
  }

  // The batch in one transaction; when that is refused, each partition on its own, so
  // one partition's trouble never holds another's flow.
  int apply_batch(std::vector<RawMessage> batch) {
    std::erase_if(batch, [&](const RawMessage& raw) {
      const auto it = holds.find(PartitionKey{raw.topic, raw.partition});
      return it != holds.end() && it->second.paused;
    });
    if (batch.empty()) return 0;
    auto tried = try_apply(batch);
    if (tried) {
      settle(batch, *tried);
    } else {
      {
        std::lock_guard lock(stats_mutex);
        ++stats.isolations;
        stats.last_error = eventstore::to_string(tried.error().code);
      }
      log->warn("inbound batch refused, trying each partition alone error_class={} messages={}",
                eventstore::to_string(tried.error().code), batch.size());
      std::map<PartitionKey, std::vector<RawMessage>> by_partition;
      for (auto& raw : batch)
        by_partition[PartitionKey{raw.topic, raw.partition}].push_back(std::move(raw));
      const bool one_partition = by_partition.size() == 1;
      for (const auto& [key, messages] : by_partition)
        apply_partition(key, messages, one_partition ? std::optional(tried.error()) : std::nullopt);
    }
    publish_holds();
    return static_cast<int>(batch.size());
  }

  // --- the tail ---------------------------------------------------------------------------

  // Fetches what the producer has beyond this partition's last applied seq, up to `head`,
  // in one transaction. A failure is logged and left to the next check.
  void repair_tail(const PartitionKey& key, std::int64_t head) {
    Counts counts;
    bool repaired = false;
    auto done =
        in_batch({key}, [&](Transaction& tx, auto& locked) -> eventstore::StoreResult<bool> {
          counts = Counts{};
          repaired = false;
          auto& p = locked.at(key);
          if (p.last_seq >= head) return false;  // Kafka brought it meanwhile
          auto outcome = repair_gap(tx, key.first, key.second, head + 1, p, counts);
          if (!outcome) return tl::unexpected(outcome.error());
          if (outcome->outcome == Repair::stopped)
            log->log(outcome->stop.needs_operator ? spdlog::level::err : spdlog::level::warn,
                     "inbound tail repair stopped stream={} partition={} reason=\"{}\"", key.first,
                     key.second, base::escape_text(outcome->stop.reason, kReasonBytesMax));
          repaired = counts.gap_fetched > 0;
          return true;
        });
    if (!done) {
      log->warn("inbound tail repair failed stream={} partition={} error_class={}", key.first,
                key.second, eventstore::to_string(done.error().code));
      return;
    }
    if (!repaired) return;
    log->info("inbound tail repaired stream={} partition={} messages={}", key.first, key.second,
              counts.gap_fetched);
    record(counts);
    {
      std::lock_guard lock(stats_mutex);
      stats.tail_repaired += counts.gap_fetched;
    }
    if (options.on_applied) options.on_applied();
  }

  // Whether this consumer has read everything Kafka holds of the partition: its position
  // has reached the high watermark of its last fetch. Unknown (no fetch yet) is not caught up.
  bool kafka_caught_up(const PartitionKey& key) {
    std::int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(consumer, key.first.c_str(), key.second, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0)
      return false;
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, key.first.c_str(), key.second);
    const bool known = rd_kafka_position(consumer, list) == RD_KAFKA_RESP_ERR_NO_ERROR;
    const std::int64_t position = list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
    // Before its first message the position is logical (negative): then nothing was there.
    return known && (position >= high || (position < 0 && low == high));
  }

  // Every tail_check_interval: each assigned partition's applied seq against the producer's
  // head (a partition paused by a hold is left to the hold's own retries). A partition
  // behind and not moved since the last check is fetched up to the head from the catch-up
  // API, whatever stops it:
  //  - nothing more on Kafka: its last messages were lost (nothing later will reveal them);
  //  - Kafka has them and does not deliver them (its leader down, or a fetch that did not
  //    start again after a seek or a broker's return; the chaos run once saw a partition
  //    never fetched again): its fetch is also restarted from the stored offset, and the
  //    catch-up API feeds it meanwhile. A stall then lasts at most two intervals, never for good.
  void check_tails() {
    if (options.tail_check_interval.count() <= 0 || !fetcher || assigned.empty()) return;
    const auto now = Clock::now();
    if (now < next_tail_check) return;
    next_tail_check = now + options.tail_check_interval;
    for (const auto& key : assigned) {
      if (const auto held = holds.find(key); held != holds.end() && held->second.paused) continue;
      if (const auto slow = tail_check_not_before.find(key);
          slow != tail_check_not_before.end() && now < slow->second)
        continue;
      const auto what = "tail check of " + describe(key.first, key.second);
      auto stored =
          pool.transact([&](Transaction& tx) { return read_progress(tx, key.first, key.second); });
      if (!stored) {
        note_round(what,
                   "reading progress: " + std::string(eventstore::to_string(stored.error().code)));
        continue;
      }
      const std::int64_t applied = *stored ? (**stored).last_seq : 0;
      auto page = fetcher(key.first, key.second, applied + 1, 1);
      if (!page) {
        note_fetch_failure(key, what, page.error());
        continue;
      }
      note_round(what, "");
      tail_check_not_before.erase(key);
      const auto previous = seq_at_last_check.find(key);
      const bool still = previous != seq_at_last_check.end() && previous->second == applied;
      {
        std::lock_guard lock(stats_mutex);
        auto& shown = stats.progress[key];
        const auto checked_at = std::chrono::system_clock::now();
        if (page->head <= applied) {
          shown.behind_still_since = {};
        } else if (!still || shown.behind_still_since == std::chrono::system_clock::time_point{}) {
          shown.behind_still_since = checked_at;
        }
        shown.applied_seq = applied;
        shown.producer_head = page->head;
        shown.checked_at = checked_at;
      }
      seq_at_last_check[key] = applied;
      const bool stopped = page->head > applied && still;
      note_undelivered(key, stopped && !kafka_caught_up(key), applied, page->head);
      if (stopped) repair_tail(key, page->head);
    }
  }

  // A tail check the catch-up API could not answer: retried at the next check when another
  // try can help; otherwise logged as an error saying what to fix and not asked again before
  // operator_fix_retry_interval (Kafka's messages still flow meanwhile: nothing is held).
  void note_fetch_failure(const PartitionKey& key, const std::string& what,
                          const FetchError& error) {
    const auto stop = fetch_stop("catch-up API", error);
    if (error.is_retryable()) {
      note_round(what, stop.reason);
      return;
    }
    tail_check_not_before[key] = Clock::now() + options.operator_fix_retry_interval;
    auto& last = round_failures[what];
    if (last != stop.reason)
      log->error(
          "inbound {} refused reason=\"{}\" retry_every_s={}: retrying cannot help, fix what the "
          "reason names",
          what, base::escape_text(stop.reason, kReasonBytesMax),
          std::chrono::duration_cast<std::chrono::seconds>(options.operator_fix_retry_interval)
              .count());
    last = stop.reason;
  }

  // A partition whose messages Kafka has and does not deliver: logged once when it starts
  // and once when it ends, its fetch restarted at each check while it lasts.
  void note_undelivered(const PartitionKey& key, bool now_undelivered, std::int64_t applied,
                        std::int64_t head) {
    if (!now_undelivered) {
      if (undelivered.erase(key) > 0)
        log->info("inbound partition delivered by Kafka again stream={} partition={}", key.first,
                  key.second);
      return;
    }
    const bool restarted = seek_to_stored(key);
    {
      std::lock_guard lock(stats_mutex);
      ++stats.fetch_restarts;
    }
    if (!undelivered.insert(key).second) return;
    log->warn(
        "inbound partition not delivered by Kafka stream={} partition={} applied_seq={} "
        "producer_head={}"
        " fetch_restarted={}: fed from the catch-up API meanwhile",
        key.first, key.second, applied, head, restarted);
  }

  // --- database assignment ---------------------------------------------------------------

  // Kafka's assignment made equal to the partitions this instance owns, each from the offset
  // after its last stored one. Runs between batches, so a partition given away has no batch
  // in hand; what was fetched for it is dropped by the new assignment.
  void assign_owned() {
    const auto owned = ownership->partitions();
    std::map<PartitionKey, std::int64_t> next_offset;
    auto read = pool.transact([&](Transaction& tx) -> eventstore::StoreResult<void> {
      for (const auto& key : owned) {
        auto progress = read_progress(tx, key.first, key.second);
        if (!progress) return tl::unexpected(progress.error());
        next_offset[key] = *progress && (*progress)->kafka_offset >= 0
                               ? (*progress)->kafka_offset + 1
                               : RD_KAFKA_OFFSET_BEGINNING;
      }
      return {};
    });
    if (!read) {  // tried again at the next run_once (assignment_due stays set)
      note_round("assignment", "reading stored offsets: " +
                                   std::string(eventstore::to_string(read.error().code)));
      return;
    }
    auto* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(std::max<std::size_t>(owned.size(), 1)));
    for (const auto& key : owned)
      rd_kafka_topic_partition_list_add(list, key.first.c_str(), key.second)->offset =
          next_offset.at(key);
    const auto err = rd_kafka_assign(consumer, owned.empty() ? nullptr : list);
    // The application's pause of a partition (a hold) outlives its assignment in librdkafka:
    // a partition held, given up (a lost session, a PostgreSQL restart) and taken back would
    // never be fetched again (the chaos run: two partitions stopped for good). Each assigned
    // partition starts afresh from its stored offset, so its hold ends here, as on a rebalance.
    if (!err && !owned.empty()) rd_kafka_resume_partitions(consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err) {
      note_round("assignment", std::string("kafka assign: ") + rd_kafka_err2name(err));
      return;
    }
    note_round("assignment", "");
    assignment_due = false;
    const std::set<PartitionKey> owned_set(owned.begin(), owned.end());
    holds.clear();
    std::erase_if(seq_at_last_check,
                  [&](const auto& entry) { return !owned_set.contains(entry.first); });
    std::erase_if(tail_check_not_before,
                  [&](const auto& entry) { return !owned_set.contains(entry.first); });
    std::erase_if(undelivered, [&](const PartitionKey& key) { return !owned_set.contains(key); });
    assigned = owned;
    std::lock_guard lock(stats_mutex);
    stats.joined = true;
    stats.partitions_assigned = static_cast<std::int64_t>(owned.size());
    stats.assignment = owned;
    stats.members_seen = ownership->members_seen();
    std::erase_if(stats.progress,
                  [&](const auto& entry) { return !owned_set.contains(entry.first); });
  }

  void refresh_ownership() {
    if (!ownership) return;
    auto changed = ownership->refresh_if_due();
    if (!changed) {
      // The session is gone and its locks with it: read nothing until it is back.
      if (ownership_error != changed.error().message)
        log->error("inbound ownership lost cause={} error=\"{}\"", to_string(changed.error().code),
                   changed.error().message);
      ownership_error = changed.error().message;
      assignment_due = assignment_due || !assigned.empty();
    } else {
      if (!ownership_error.empty()) log->info("inbound ownership session back");
      ownership_error.clear();
      if (changed->taken > 0 || changed->given > 0) assignment_due = true;
    }
    // After a lost session this assigns nothing (it owns nothing) until the session is back.
    if (assignment_due) assign_owned();
    std::lock_guard lock(stats_mutex);
    stats.members_seen = ownership->members_seen();
  }

  int run_once() {
    refresh_ownership();
    retry_due_holds();
    check_tails();
    auto batch = poll_batch();
    const int handled = apply_batch(std::move(batch));
    publish_holds();
    return handled;
  }

  void run() {
    while (!worker.stopping()) run_once();
  }
};

tl::expected<std::unique_ptr<StreamConsumer>, SetupError> StreamConsumer::create(
    eventstore::ConnectionPool& pool, ConsumerOptions options,
    std::unique_ptr<InboundHandler> handler, CatchUpFetcher fetcher) {
  if (options.topics.empty())
    return tl::unexpected(OptionsError{"topics", "consumer needs at least one topic"});
  if (options.group_id.empty())
    return tl::unexpected(OptionsError{"group_id", "consumer needs a group id"});
  if (options.batch_max < 1)
    return tl::unexpected(OptionsError{"batch_max", "consumer batch_max must be >= 1"});
  if (options.assignment == PartitionAssignment::database) {
    if (options.partitions < 1 || options.partitions > kPartitionsMax)
      return tl::unexpected(OptionsError{"partitions", "consumer partitions must be in [1, " +
                                                           std::to_string(kPartitionsMax) +
                                                           "] with database assignment"});
    if (auto valid = validate_ownership_options(Impl::ownership_options(options)); !valid)
      return tl::unexpected(valid.error());
  }
  CLEARING_ASSERT(handler != nullptr);
  auto impl =
      std::make_unique<Impl>(pool, std::move(options), std::move(handler), std::move(fetcher));
  auto opened = impl->open();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<StreamConsumer>(new StreamConsumer(std::move(impl)));
}

StreamConsumer::StreamConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamConsumer::~StreamConsumer() { stop(); }

void StreamConsumer::start() {
  impl_->worker.start([this] { impl_->run(); });
}

void StreamConsumer::stop() {
  impl_->worker.stop();
  // Graceful: the others take this instance's partitions at their next refresh.
  if (impl_->ownership) {
    impl_->ownership->release();
    impl_->assignment_due = true;
    std::lock_guard lock(impl_->stats_mutex);
    impl_->stats.partitions_assigned = 0;
    impl_->stats.assignment.clear();
    impl_->stats.members_seen = 0;
  }
}

int StreamConsumer::run_once() { return impl_->run_once(); }

int StreamConsumer::apply(std::vector<RawMessage> batch) {
  // Messages handed over by the caller are a try of their partitions' holds.
  for (const auto& raw : batch)
    if (auto it = impl_->holds.find(PartitionKey{raw.topic, raw.partition});
        it != impl_->holds.end())
      it->second.paused = false;
  const int handled = impl_->apply_batch(std::move(batch));
  impl_->publish_holds();
  return handled;
}

ConsumerStats StreamConsumer::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::external_streams
