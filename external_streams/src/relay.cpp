#include "clearing/external_streams/relay.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/text.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "kafka_internal.hpp"
#include "clearing/external_streams/ownership.hpp"

namespace clearing::external_streams {
namespace {

// One produced message awaiting its delivery report.
struct Pending {
  std::int64_t seq = 0;
  std::atomic<int> state{0};  // 0 waiting, 1 delivered, 2 failed
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* pending = static_cast<Pending*>(message->_private);
  if (pending == nullptr) return;
  pending->error = message->err;
  pending->state = message->err ? 2 : 1;
}

using Clock = std::chrono::steady_clock;

OwnershipOptions ownership_options(const RelayOptions& options) {
  OwnershipOptions o;
  o.partition_lock_class = kRelayPartitionLockClass;
  o.member_lock_class = kRelayMemberLockClass;
  o.role = "relay";
  o.refresh = options.ownership_refresh;
  o.owner_loss_timeout = options.owner_loss_timeout;
  o.handover_grace = options.handover_grace;
  return o;  // partitions: every outbound partition registered in this database
}

}  // namespace

struct Relay::Impl {
  eventstore::ConnectionPool& pool;
  RelayOptions options;
  rd_kafka_t* producer = nullptr;
  std::vector<std::vector<Pending>> graveyard;
  std::shared_ptr<spdlog::logger> log = base::module_logger("relay");
  PartitionOwnership ownership{pool.options(), ownership_options(options), log};

  std::thread thread;
  std::mutex wait_mutex;
  std::condition_variable wait_cv;
  bool stopping = false;

  mutable std::mutex stats_mutex;
  RelayStats stats;

  Impl(eventstore::ConnectionPool& p, RelayOptions o) : pool(p), options(std::move(o)) {}
  ~Impl() {
    if (producer) {
      rd_kafka_flush(producer, static_cast<int>(options.flush_timeout.count()));
      rd_kafka_destroy(producer);
    }
  }

  tl::expected<void, std::string> open_producer() {
    auto conf = make_conf(producer_settings(options.kafka));
    if (!conf) return tl::unexpected(conf.error());
    rd_kafka_conf_set_dr_msg_cb(*conf, on_delivery);
    char error[512];
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof error);
    if (!producer) {
      rd_kafka_conf_destroy(*conf);
      return tl::unexpected(std::string("kafka producer: ") + error);
    }
    return {};
  }

  // A fatal idempotence error (the producer's sequence state is broken) ends the
  // producer's life; a new one continues from the published marks.
  tl::expected<void, std::string> recover_if_fatal() {
    char reason[512];
    const auto fatal = rd_kafka_fatal_error(producer, reason, sizeof reason);
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    log->error("kafka producer fatal error={} reason={}: recreating it", rd_kafka_err2name(fatal), reason);
    rd_kafka_destroy(producer);
    producer = nullptr;
    return open_producer();
  }

  tl::expected<void, std::string> produce(const ExternalMessage& m, Pending& pending) {
    const auto value = m.to_json().dump();
    const auto seq = std::to_string(m.seq);
    const auto err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(m.stream.c_str()), RD_KAFKA_V_PARTITION(m.partition),
        RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("seq", seq.data(), static_cast<ssize_t>(seq.size())),
        RD_KAFKA_V_HEADER("type", m.type.data(), static_cast<ssize_t>(m.type.size())),
        RD_KAFKA_V_HEADER("event_id", m.event_id.data(), static_cast<ssize_t>(m.event_id.size())),
        RD_KAFKA_V_HEADER("source_event_id", m.source_event_id.data(), static_cast<ssize_t>(m.source_event_id.size())),
        RD_KAFKA_V_HEADER("correlation_id", m.correlation_id.data(), static_cast<ssize_t>(m.correlation_id.size())),
        RD_KAFKA_V_OPAQUE(&pending), RD_KAFKA_V_END);
    if (err) return tl::unexpected(std::string("produce: ") + rd_kafka_err2str(err));
    return {};
  }

  // One partition's share of a round.
  struct Batch {
    PartitionMark mark;
    std::vector<ExternalMessage> events;
    std::size_t first = 0;     // index of its first message in the round's pending records
    std::size_t produced = 0;  // how many of them were handed to the producer
  };

  // A round: one statement reads every partition's mark and unpublished messages; they
  // are produced, one flush waits for every delivery report, and one statement moves the
  // marks, each across its partition's contiguous delivered prefix only.
  // Returns the number of messages the marks moved over.
  tl::expected<int, std::string> run_once() {
    auto changed = ownership.refresh_if_due();
    const auto owned = ownership.partitions();
    {
      std::lock_guard lock(stats_mutex);
      stats.partitions_owned = static_cast<std::int64_t>(owned.size());
      stats.relays_seen = ownership.members_seen();
      if (changed) {
        stats.partitions_taken += changed->taken;
        stats.partitions_given += changed->given;
      }
      if (!changed || owned.empty()) {  // a round without a read
        ++stats.rounds;
        stats.lag = 0;
        stats.last_error = changed ? std::string() : changed.error();
      }
    }
    if (!changed) return tl::unexpected(changed.error());
    if (owned.empty()) return 0;
    // The read and the marks are one statement each: no transaction block around them
    // (ConnectionPool::autocommit), one round trip each.
    auto read = pool.autocommit([&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::vector<Batch>> {
      auto unpublished =
          read_unpublished(tx, std::min<std::int64_t>(static_cast<std::int64_t>(options.batch_max), kCatchUpLimitMax),
                           std::span<const PartitionKey>(owned));
      if (!unpublished) return tl::unexpected(unpublished.error());
      std::vector<Batch> batches;
      for (auto& partition : *unpublished)
        batches.push_back(Batch{std::move(partition.mark), std::move(partition.events)});
      return batches;
    });
    // The error's class only: a PostgreSQL error's DETAIL and CONTEXT quote rows' values.
    if (!read) return tl::unexpected("reading unpublished messages: " + std::string(eventstore::to_string(read.error().code)));
    auto& batches = *read;

    std::size_t total = 0;
    for (auto& b : batches) {
      b.first = total;
      total += b.events.size();
    }
    std::vector<Pending> pending(total);
    std::string produce_error;
    for (auto& b : batches) {
      for (std::size_t i = 0; i < b.events.size() && produce_error.empty(); ++i) {
        auto& p = pending[b.first + i];
        p.seq = b.events[i].seq;
        CLEARING_ASSERT(p.seq == b.mark.published + 1 + static_cast<std::int64_t>(i));
        auto ok = produce(b.events[i], p);
        if (!ok) {
          produce_error = ok.error();  // queue full or similar: publish the rest next round
          break;
        }
        ++b.produced;
      }
    }
    if (total > 0 &&
        rd_kafka_flush(producer, static_cast<int>(options.flush_timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Reports still owed point into `pending`: purge what is left so every message
      // reports (as failed) before `pending` goes away; they are republished next round.
      rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(producer, 5'000);
    }
    for (const auto& b : batches)
      for (std::size_t i = 0; i < b.produced; ++i)
        if (pending[b.first + i].state == 0) {
          // A report may still arrive: keep the records alive for it rather than risk it
          // writing into freed memory. Bounded: it takes a broken librdkafka to get here.
          graveyard.push_back(std::move(pending));
          return tl::unexpected(std::string("delivery reports missing after purge"));
        }

    // Everything produced has a report now: each mark moves across its contiguous
    // delivered prefix only.
    std::vector<std::int64_t> delivered_to(batches.size());
    int acknowledged = 0, failed = 0, moved = 0;
    std::int64_t produced = 0;
    for (std::size_t k = 0; k < batches.size(); ++k) {
      const auto& b = batches[k];
      delivered_to[k] = b.mark.published;
      produced += static_cast<std::int64_t>(b.produced);
      for (std::size_t i = 0; i < b.produced; ++i) {
        const auto& p = pending[b.first + i];
        if (p.state == 1) {
          ++acknowledged;
          if (delivered_to[k] == p.seq - 1) delivered_to[k] = p.seq;
        } else {
          ++failed;
          if (produce_error.empty())
            produce_error = b.mark.stream + "/" + std::to_string(b.mark.partition) + ": " +
                            (p.state == 2 ? std::string(rd_kafka_err2str(p.error))
                                          : std::string("no delivery report within the flush timeout"));
        }
      }
      moved += static_cast<int>(delivered_to[k] - b.mark.published);
    }
    std::string mark_error;
    if (moved > 0) {
      std::vector<PartitionMark> moves;
      for (std::size_t k = 0; k < batches.size(); ++k)
        if (delivered_to[k] != batches[k].mark.published)
          moves.push_back({batches[k].mark.stream, batches[k].mark.partition, batches[k].mark.head, delivered_to[k]});
      auto marked = pool.autocommit(
          [&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> { return mark_published(tx, moves); });
      if (!marked) {
        // Republished next round; consumers skip seqs they have.
        mark_error = "marking published: " + std::string(eventstore::to_string(marked.error().code));
        moved = 0;
      }
    }
    std::int64_t lag = 0;
    for (std::size_t k = 0; k < batches.size(); ++k)
      lag += batches[k].mark.head - (mark_error.empty() ? delivered_to[k] : batches[k].mark.published);
    {
      std::lock_guard lock(stats_mutex);
      ++stats.rounds;
      stats.produced += produced;
      stats.acknowledged += acknowledged;
      stats.failed += failed;
      stats.lag = lag;
      stats.last_error = !mark_error.empty() ? mark_error : produce_error;
    }
    if (!mark_error.empty()) return tl::unexpected(mark_error);
    if (!produce_error.empty()) {
      auto recovered = recover_if_fatal();
      if (!recovered) return tl::unexpected(recovered.error());
      if (moved == 0) return tl::unexpected(produce_error);
    }
    return moved;
  }

  void run() {
    int failures = 0;
    std::string logged_error;  // a failing relay logs once per change of error, not every round
    for (;;) {
      const auto round_started = std::chrono::steady_clock::now();
      auto relayed = run_once();
      std::chrono::milliseconds wait = options.idle_poll;
      if (!relayed) {
        ++failures;
        if (relayed.error() != logged_error)
          log->warn("relay round failed error=\"{}\" failures={}", base::escape_text(relayed.error(), 500), failures);
        logged_error = relayed.error();
        wait = std::min(options.retry_backoff_max, options.idle_poll * (1 << std::min(failures, 10)));
      } else {
        if (!logged_error.empty()) log->info("relay rounds succeed again after failures={}", failures);
        logged_error.clear();
        failures = 0;
        if (*relayed > 0)
          wait = std::max(std::chrono::milliseconds(0),
                          options.round_interval_min - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                           std::chrono::steady_clock::now() - round_started));
      }
      std::unique_lock lock(wait_mutex);
      if (wait.count() > 0) wait_cv.wait_for(lock, wait, [&] { return stopping; });
      if (stopping) return;
    }
  }
};

tl::expected<std::unique_ptr<Relay>, std::string> Relay::create(eventstore::ConnectionPool& pool,
                                                                RelayOptions options) {
  if (options.batch_max < 1) return tl::unexpected(std::string("relay batch_max must be >= 1"));
  if (auto valid = validate_ownership_options(ownership_options(options)); !valid) return tl::unexpected(valid.error());
  auto impl = std::make_unique<Impl>(pool, std::move(options));
  auto opened = impl->open_producer();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  CLEARING_ASSERT(!impl_->thread.joinable());
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void Relay::stop() {
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  const auto given = impl_->ownership.release();
  std::lock_guard lock(impl_->stats_mutex);
  impl_->stats.partitions_given += given;
  impl_->stats.partitions_owned = 0;
  impl_->stats.relays_seen = 0;
}

tl::expected<int, std::string> Relay::run_once() { return impl_->run_once(); }

RelayStats Relay::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::external_streams
