#include "clearing/external_streams/consumer.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "kafka_internal.hpp"

namespace clearing::external_streams {
namespace {

using eventstore::Transaction;

// A gap larger than this is not fetched in one go: a bound on one transaction's work.
constexpr std::int64_t kGapFetchMax = 100'000;

}  // namespace

struct StreamConsumer::Impl {
  eventstore::ConnectionPool& pool;
  ConsumerOptions options;
  MessageApplier applier;
  MessageParker parker;
  CatchUpFetcher fetcher;
  BatchScope scope;
  rd_kafka_t* consumer = nullptr;
  std::shared_ptr<spdlog::logger> log = base::module_logger("consumer");

  std::vector<RawMessage> held;  // a batch that failed to commit: retried before polling more
  int failures = 0;

  std::thread thread;
  std::mutex wait_mutex;
  std::condition_variable wait_cv;
  bool stopping = false;

  mutable std::mutex stats_mutex;
  ConsumerStats stats;

  Impl(eventstore::ConnectionPool& p, ConsumerOptions o, MessageApplier a, MessageParker k, CatchUpFetcher f,
       BatchScope s)
      : pool(p),
        options(std::move(o)),
        applier(std::move(a)),
        parker(std::move(k)),
        fetcher(std::move(f)),
        scope(std::move(s)) {}

  ~Impl() {
    if (consumer) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }

  // On assignment, every partition starts after the offset stored with its last applied
  // message (or at the beginning): the database, not Kafka, says where we are.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
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
        // which is safe (duplicates are skipped by seq), only slower.
        self->log->error("reading stored offsets failed error={}: assigning from the beginning",
                         positioned.error().message);
        for (int i = 0; i < partitions->cnt; ++i) partitions->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
      }
      rd_kafka_assign(rk, partitions);
      self->log->info("partitions assigned count={}", partitions->cnt);
      std::lock_guard lock(self->stats_mutex);
      self->stats.joined = true;
      self->stats.partitions_assigned = partitions->cnt;
    } else {
      rd_kafka_assign(rk, nullptr);
      self->log->info("partitions revoked");
      std::lock_guard lock(self->stats_mutex);
      self->stats.partitions_assigned = 0;
    }
  }

  tl::expected<void, std::string> open() {
    auto conf = make_conf(consumer_settings(options.kafka, options.group_id));
    if (!conf) return tl::unexpected(conf.error());
    rd_kafka_conf_set_rebalance_cb(*conf, &Impl::on_rebalance);
    rd_kafka_conf_set_opaque(*conf, this);
    char error[512];
    consumer = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, error, sizeof error);
    if (!consumer) {
      rd_kafka_conf_destroy(*conf);
      return tl::unexpected(std::string("kafka consumer: ") + error);
    }
    rd_kafka_poll_set_consumer(consumer);
    auto* topics = rd_kafka_topic_partition_list_new(static_cast<int>(options.topics.size()));
    for (const auto& topic : options.topics) rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
    const auto err = rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) return tl::unexpected(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
    return {};
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
          log->warn("kafka consume error={} detail={}", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        continue;
      }
      RawMessage raw;
      raw.topic = rd_kafka_topic_name(m->rkt);
      raw.partition = m->partition;
      raw.offset = m->offset;
      if (m->key) raw.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) raw.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_message_destroy(m);
      batch.push_back(std::move(raw));
    }
    return batch;
  }

  struct Counts {
    std::int64_t applied = 0, duplicates = 0, gap_fetched = 0;
    std::map<std::string, std::int64_t> parked;
  };

  // Applies one well-formed message whose seq is exactly last + 1.
  void apply_next(Transaction& tx, const RawMessage& raw, const ExternalMessage& m, InboundProgress& progress,
                  Counts& counts) {
    CLEARING_ASSERT(m.seq == progress.last_seq + 1);
    auto applied = applier(tx, m);
    if (!applied) {
      parker(tx, raw, applied.error(), m);
      ++counts.parked[to_string(applied.error().code)];
    } else {
      ++counts.applied;
    }
    progress.last_seq = m.seq;
  }

  // Fetches and applies the seqs missing before `seq`; throws nothing, returns an error
  // when the producer cannot serve them (the batch then rolls back and is retried).
  tl::expected<void, std::string> repair_gap(Transaction& tx, const std::string& stream, std::int32_t partition,
                                             std::int64_t seq, InboundProgress& progress, Counts& counts) {
    if (!fetcher) return tl::unexpected("gap before seq " + std::to_string(seq) + " and no catch-up API configured");
    if (seq - progress.last_seq > kGapFetchMax)
      return tl::unexpected("gap of " + std::to_string(seq - progress.last_seq) + " seqs is beyond the limit");
    while (progress.last_seq + 1 < seq) {
      const auto from = progress.last_seq + 1;
      const auto limit = std::min(options.catch_up_page, seq - from);
      auto fetched = fetcher(stream, partition, from, limit);
      if (!fetched) return tl::unexpected("catch-up of " + stream + "/" + std::to_string(partition) + " from " +
                                          std::to_string(from) + ": " + fetched.error());
      if (fetched->empty())
        return tl::unexpected("catch-up of " + stream + "/" + std::to_string(partition) + " from " +
                              std::to_string(from) + " returned nothing");
      for (const auto& m : *fetched) {
        if (m.seq < progress.last_seq + 1) continue;
        if (m.seq != progress.last_seq + 1 || m.stream != stream || m.partition != partition)
          return tl::unexpected("catch-up answered seq " + std::to_string(m.seq) + " of " + m.stream + " where " +
                                std::to_string(progress.last_seq + 1) + " was asked");
        if (m.seq >= seq) break;
        RawMessage raw{stream, partition, -1, m.key, m.to_json().dump()};
        apply_next(tx, raw, m, progress, counts);
        ++counts.gap_fetched;
      }
    }
    return {};
  }

  tl::expected<int, std::string> apply_batch(const std::vector<RawMessage>& batch) {
    // An applier or parker that throws (anything) rolls the batch back like a database
    // error: the batch is kept and retried, the consumer never dies of bad luck.
    try {
      return apply_batch_or_throw(batch);
    } catch (const std::exception& e) {
      std::lock_guard lock(stats_mutex);
      stats.stalled = true;
      stats.last_error = std::string("batch failed: ") + e.what();
      return tl::unexpected(stats.last_error);
    }
  }

  tl::expected<int, std::string> apply_batch_or_throw(const std::vector<RawMessage>& batch) {
    Counts counts;
    auto done = pool.transact([&](Transaction& tx) -> eventstore::StoreResult<int> {
      counts = Counts{};
      if (scope.begin) scope.begin(tx);
      // Every partition of the batch locked with one statement, stored with one at the end.
      std::set<PartitionKey> partitions;
      for (const auto& raw : batch) partitions.emplace(raw.topic, raw.partition);
      auto locked = lock_progress(tx, partitions);
      if (!locked) return tl::unexpected(locked.error());
      auto& progress = *locked;
      for (const auto& raw : batch) {
        auto& p = progress.at(PartitionKey{raw.topic, raw.partition});
        // A Kafka position at or below the stored one was handled (applied, skipped or parked)
        // by a committed transaction: read again after a rebalance raced a batch, or a commit
        // whose answer was lost. The seq would catch a message that has one; this also
        // keeps a message without a usable seq from being parked twice.
        if (raw.offset >= 0 && raw.offset <= p.kafka_offset) {
          ++counts.duplicates;
          continue;
        }
        if (raw.offset >= 0) p.kafka_offset = raw.offset;
        auto parsed = parse_message(std::string_view(raw.value));
        if (parsed && (parsed->stream != raw.topic || parsed->partition != raw.partition))
          parsed = tl::unexpected(MessageError{MessageErrc::wrong_stream,
                                               "envelope names " + parsed->stream + "/" +
                                                   std::to_string(parsed->partition) + " but came on " + raw.topic +
                                                   "/" + std::to_string(raw.partition)});
        if (!parsed) {
          parker(tx, raw, parsed.error(), std::nullopt);
          ++counts.parked[to_string(parsed.error().code)];
          continue;
        }
        parsed->key = raw.key;
        if (parsed->seq <= p.last_seq) {
          ++counts.duplicates;
          continue;
        }
        if (parsed->seq > p.last_seq + 1) {
          auto repaired = repair_gap(tx, raw.topic, raw.partition, parsed->seq, p, counts);
          if (!repaired) return tl::unexpected(eventstore::StoreError{eventstore::StoreErrc::transient, repaired.error()});
        }
        apply_next(tx, raw, *parsed, p, counts);
      }
      if (scope.end) {
        auto ended = scope.end(tx);
        if (!ended)
          return tl::unexpected(eventstore::StoreError{eventstore::StoreErrc::transient,
                                                       "end of batch: " + ended.error()});
      }
      auto stored = store_progress(tx, progress);
      if (!stored) return tl::unexpected(stored.error());
      return static_cast<int>(batch.size());
    });
    {
      std::lock_guard lock(stats_mutex);
      if (!done) {
        stats.stalled = true;
        stats.last_error = done.error().message;
        return tl::unexpected(done.error().message);
      }
      stats.stalled = false;
      stats.last_error.clear();
      stats.applied += counts.applied;
      stats.duplicates += counts.duplicates;
      stats.gap_fetched += counts.gap_fetched;
      ++stats.batches;
      for (const auto& [reason, n] : counts.parked) stats.parked[reason] += n;
    }
    if ((counts.applied > 0 || counts.gap_fetched > 0) && options.on_applied) options.on_applied();
    return *done;
  }

  tl::expected<int, std::string> run_once() {
    if (held.empty()) held = poll_batch();
    if (held.empty()) return 0;
    auto applied = apply_batch(held);
    if (applied) held.clear();
    return applied;
  }

  void run() {
    for (;;) {
      {
        std::lock_guard lock(wait_mutex);
        if (stopping) return;
      }
      auto done = run_once();
      if (done) {
        failures = 0;
        continue;
      }
      ++failures;
      log->warn("inbound batch not applied error={} failures={}", done.error(), failures);
      // Keep polling so the group does not think we died, but hold the batch: nothing
      // later may be applied before it.
      const auto backoff = std::min(options.retry_backoff_max, std::chrono::milliseconds(20) * (1 << std::min(failures, 8)));
      std::unique_lock lock(wait_mutex);
      wait_cv.wait_for(lock, backoff, [&] { return stopping; });
    }
  }
};

tl::expected<std::unique_ptr<StreamConsumer>, std::string> StreamConsumer::create(
    eventstore::ConnectionPool& pool, ConsumerOptions options, MessageApplier applier, MessageParker parker,
    CatchUpFetcher fetcher, BatchScope scope) {
  if (options.topics.empty()) return tl::unexpected(std::string("consumer needs at least one topic"));
  if (options.group_id.empty()) return tl::unexpected(std::string("consumer needs a group id"));
  if (options.batch_max < 1) return tl::unexpected(std::string("consumer batch_max must be >= 1"));
  CLEARING_ASSERT(applier && parker);
  auto impl = std::make_unique<Impl>(pool, std::move(options), std::move(applier), std::move(parker), std::move(fetcher),
                                     std::move(scope));
  auto opened = impl->open();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<StreamConsumer>(new StreamConsumer(std::move(impl)));
}

StreamConsumer::StreamConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamConsumer::~StreamConsumer() { stop(); }

void StreamConsumer::start() {
  CLEARING_ASSERT(!impl_->thread.joinable());
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void StreamConsumer::stop() {
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

tl::expected<int, std::string> StreamConsumer::run_once() { return impl_->run_once(); }

tl::expected<int, std::string> StreamConsumer::apply(std::vector<RawMessage> batch) {
  return impl_->apply_batch(batch);
}

ConsumerStats StreamConsumer::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::external_streams
