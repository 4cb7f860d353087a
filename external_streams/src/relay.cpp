#include "clearing/external_streams/relay.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <vector>

#include "clearing/base/assert.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/text.hpp"
#include "clearing/external_streams/ownership.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "kafka_internal.hpp"

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

  base::BackgroundThread worker;

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
    log->error("kafka producer fatal error={} reason={}: recreating it", rd_kafka_err2name(fatal),
               reason);
    rd_kafka_destroy(producer);
    producer = nullptr;
    // No report can come any more: what was in flight is read and produced again.
    in_flight.clear();
    return open_producer();
  }

  tl::expected<void, std::string> produce(const ExternalMessage& m, Pending& pending) {
    const auto value = m.to_json().dump();
    const auto seq = std::to_string(m.seq);
    const auto err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(m.stream.c_str()), RD_KAFKA_V_PARTITION(m.partition),
        RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("seq", seq.data(), static_cast<ssize_t>(seq.size())),
        RD_KAFKA_V_HEADER("type", m.type.data(), static_cast<ssize_t>(m.type.size())),
        RD_KAFKA_V_HEADER("event_id", m.event_id.data(), static_cast<ssize_t>(m.event_id.size())),
        RD_KAFKA_V_HEADER("source_event_id", m.source_event_id.data(),
                          static_cast<ssize_t>(m.source_event_id.size())),
        RD_KAFKA_V_HEADER("correlation_id", m.correlation_id.data(),
                          static_cast<ssize_t>(m.correlation_id.size())),
        RD_KAFKA_V_OPAQUE(&pending), RD_KAFKA_V_END);
    if (err) return tl::unexpected(std::string("produce: ") + rd_kafka_err2str(err));
    return {};
  }

  // A partition's messages handed to the producer and not all reported yet. While a
  // partition has messages in flight it is not read again: its mark moves when every report
  // has come, across the contiguous delivered prefix only. Partitions are independent: one
  // whose leader is down waits alone (up to the producer's message timeout, then its failed
  // messages are republished), while the relay's other partitions go on round after round.
  struct InFlight {
    PartitionMark mark;
    std::vector<Pending>
        pending;               // seqs mark.published + 1 .., addresses stable (reports point here)
    std::size_t produced = 0;  // how many of them were handed to the producer
    Clock::time_point since;
  };
  std::map<PartitionKey, InFlight> in_flight;

  static bool reported(const InFlight& f) {
    for (std::size_t i = 0; i < f.produced; ++i)
      if (f.pending[i].state == 0) return false;
    return true;
  }

  // Serves delivery reports until every partition produced this round has all of its own,
  // or, once one has, kStragglerWait more (a partition whose broker is down does not hold
  // the others' marks), or kFirstReportWait if none has (a producer still connecting).
  static constexpr std::chrono::milliseconds kStragglerWait{1000};
  static constexpr std::chrono::milliseconds kFirstReportWait{2'000};

  void await_reports(const std::vector<PartitionKey>& produced_now) {
    const auto started = Clock::now();
    std::optional<Clock::time_point> first_done;
    for (;;) {
      rd_kafka_poll(producer, 2);
      std::size_t done = 0;
      for (const auto& key : produced_now) done += reported(in_flight.at(key)) ? 1 : 0;
      const auto now = Clock::now();
      if (done == produced_now.size()) return;
      if (done > 0 && !first_done) first_done = now;
      if (first_done ? now - *first_done >= kStragglerWait : now - started >= kFirstReportWait)
        return;
    }
  }

  // A partition in flight longer than flush_timeout (the producer's own message timeout
  // should have reported it failed long before): everything queued is purged, so that
  // every message reports, and republished later.
  tl::expected<void, std::string> purge_if_overdue() {
    const auto now = Clock::now();
    bool overdue = false;
    for (const auto& [key, f] : in_flight)
      overdue = overdue || (!reported(f) && now - f.since > options.flush_timeout);
    if (!overdue) return {};
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(producer, 5'000);
    bool missing = false;
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (reported(it->second)) {
        ++it;
        continue;
      }
      // A report may still arrive: keep the records alive for it rather than risk it
      // writing into freed memory. Bounded: it takes a broken librdkafka to get here.
      graveyard.push_back(std::move(it->second.pending));
      it = in_flight.erase(it);
      missing = true;
    }
    if (missing) return tl::unexpected(std::string("delivery reports missing after purge"));
    return {};
  }

  // A round: refreshes ownership, reads every owned partition with nothing in flight (one
  // statement), produces what it read, serves delivery reports (await_reports), and moves
  // the marks of the partitions whose reports are all in (one statement).
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
    }
    std::vector<PartitionKey> readable;
    if (changed)
      for (const auto& key : owned)
        if (!in_flight.contains(key)) readable.push_back(key);

    std::string produce_error;
    std::vector<PartitionKey> produced_now;
    if (!readable.empty()) {
      // The read is one statement: no transaction block around it (ConnectionPool::autocommit).
      auto read = pool.autocommit(
          [&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::vector<Unpublished>> {
            return read_unpublished(
                tx,
                std::min<std::int64_t>(static_cast<std::int64_t>(options.batch_max),
                                       kCatchUpLimitMax),
                std::span<const PartitionKey>(readable));
          });
      // The error's class only: a PostgreSQL error's DETAIL and CONTEXT quote rows' values.
      if (!read)
        return tl::unexpected("reading unpublished messages: " +
                              std::string(eventstore::to_string(read.error().code)));
      for (auto& partition : *read) {
        if (partition.events.empty() || !produce_error.empty()) continue;
        const PartitionKey key{partition.mark.stream, partition.mark.partition};
        auto& f = in_flight[key];
        f.mark = partition.mark;
        f.pending = std::vector<Pending>(partition.events.size());
        f.since = Clock::now();
        for (std::size_t i = 0; i < partition.events.size(); ++i) {
          auto& p = f.pending[i];
          p.seq = partition.events[i].seq;
          CLEARING_ASSERT(p.seq == f.mark.published + 1 + static_cast<std::int64_t>(i));
          auto ok = produce(partition.events[i], p);
          if (!ok) {
            produce_error = ok.error();  // queue full or similar: publish the rest next round
            break;
          }
          ++f.produced;
        }
        produced_now.push_back(key);
      }
    }
    if (!produced_now.empty() || !in_flight.empty()) await_reports(produced_now);
    auto purged = purge_if_overdue();
    if (!purged) return tl::unexpected(purged.error());

    // The partitions whose reports are all in: each mark moves across its contiguous
    // delivered prefix only; what failed is read and produced again next round.
    std::vector<PartitionMark> moves;
    int acknowledged = 0, failed = 0, moved = 0;
    std::int64_t produced = 0, lag = 0;
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      auto& f = it->second;
      if (!reported(f)) {
        lag += f.mark.head - f.mark.published;
        ++it;
        continue;
      }
      std::int64_t delivered_to = f.mark.published;
      produced += static_cast<std::int64_t>(f.produced);
      for (std::size_t i = 0; i < f.produced; ++i) {
        const auto& p = f.pending[i];
        if (p.state == 1) {
          ++acknowledged;
          if (delivered_to == p.seq - 1) delivered_to = p.seq;
        } else {
          ++failed;
          if (produce_error.empty())
            produce_error = f.mark.stream + "/" + std::to_string(f.mark.partition) + ": " +
                            rd_kafka_err2str(p.error);
        }
      }
      if (delivered_to != f.mark.published)
        moves.push_back({f.mark.stream, f.mark.partition, f.mark.head, delivered_to});
      moved += static_cast<int>(delivered_to - f.mark.published);
      lag += f.mark.head - delivered_to;
      it = in_flight.erase(it);
    }
    std::string mark_error;
    if (!moves.empty()) {
      auto marked =
          pool.autocommit([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
            return mark_published(tx, moves);
          });
      if (!marked) {
        // Republished next round; consumers skip seqs they have.
        mark_error =
            "marking published: " + std::string(eventstore::to_string(marked.error().code));
        lag += moved;  // the marks stay where they were
        moved = 0;
      }
    }
    {
      std::lock_guard lock(stats_mutex);
      ++stats.rounds;
      stats.produced += produced;
      stats.acknowledged += acknowledged;
      stats.failed += failed;
      stats.lag = lag;
      stats.in_flight_partitions = static_cast<std::int64_t>(in_flight.size());
      stats.last_error = !changed              ? changed.error()
                         : !mark_error.empty() ? mark_error
                                               : produce_error;
    }
    if (!changed) return tl::unexpected(changed.error());
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
          log->warn("relay round failed error=\"{}\" failures={}",
                    base::escape_text(relayed.error(), 500), failures);
        logged_error = relayed.error();
        wait =
            std::min(options.retry_backoff_max, options.idle_poll * (1 << std::min(failures, 10)));
      } else {
        if (!logged_error.empty())
          log->info("relay rounds succeed again after failures={}", failures);
        logged_error.clear();
        failures = 0;
        if (*relayed > 0)
          wait = std::max(
              std::chrono::milliseconds(0),
              options.round_interval_min - std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - round_started));
      }
      if (!worker.sleep_for(wait)) return;
    }
  }
};

tl::expected<std::unique_ptr<Relay>, std::string> Relay::create(eventstore::ConnectionPool& pool,
                                                                RelayOptions options) {
  if (options.batch_max < 1) return tl::unexpected(std::string("relay batch_max must be >= 1"));
  if (auto valid = validate_ownership_options(ownership_options(options)); !valid)
    return tl::unexpected(valid.error());
  auto impl = std::make_unique<Impl>(pool, std::move(options));
  auto opened = impl->open_producer();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  impl_->worker.start([this] { impl_->run(); });
}

void Relay::stop() {
  impl_->worker.stop();
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
