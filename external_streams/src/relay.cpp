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
#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/tracing/tracer.hpp"
#include "kafka_internal.hpp"

namespace clearing::external_streams {
namespace {

// Where a produced message is, as its delivery report says.
enum class Delivery { waiting, delivered, failed };

// One produced message awaiting its delivery report.
struct Pending {
  std::int64_t seq = 0;
  std::atomic<Delivery> state{Delivery::waiting};  // written by the report, on poll
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* pending = static_cast<Pending*>(message->_private);
  if (pending == nullptr) return;
  pending->error = message->err;
  pending->state = message->err ? Delivery::failed : Delivery::delivered;
}

RelayError database_error(const char* what, const eventstore::StoreError& error) {
  // The error's class only: a PostgreSQL error's DETAIL and CONTEXT quote rows' values.
  return RelayError{RelayErrc::database,
                    std::string(what) + ": " + std::string(eventstore::to_string(error.code))};
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

  // Wakes the worker from the pool's outbox hook (a commit appended messages): an idle wait
  // (wait_woken) ends at once when one came since the round before it began, or while it
  // waits; a pause (sleep_for) keeps its length.
  std::uint64_t outbox_hook = 0;

  mutable std::mutex stats_mutex;
  RelayStats stats;

  Impl(eventstore::ConnectionPool& p, RelayOptions o) : pool(p), options(std::move(o)) {
    outbox_hook = pool.add_outbox_hook([this] { worker.wake(); });
  }
  ~Impl() {
    pool.remove_outbox_hook(outbox_hook);
    if (producer) {
      rd_kafka_flush(producer, static_cast<int>(options.flush_timeout.count()));
      rd_kafka_destroy(producer);
    }
  }

  tl::expected<void, KafkaError> open_producer() {
    auto conf = make_conf(producer_settings(options.kafka));
    if (!conf) return tl::unexpected(conf.error());
    rd_kafka_conf_set_dr_msg_cb(*conf, on_delivery);
    char error[512];
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof error);
    if (!producer) {
      rd_kafka_conf_destroy(*conf);
      return tl::unexpected(
          KafkaError{KafkaErrc::client_failed, std::string("kafka producer: ") + error});
    }
    return {};
  }

  // A fatal idempotence error (the producer's sequence state is broken) ends the
  // producer's life; a new one continues from the published marks.
  tl::expected<void, RelayError> recover_if_fatal() {
    char reason[512];
    const auto fatal = rd_kafka_fatal_error(producer, reason, sizeof reason);
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    log->error("kafka producer fatal error={} reason={}: recreating it", rd_kafka_err2name(fatal),
               reason);
    rd_kafka_destroy(producer);
    producer = nullptr;
    // No report can come any more: what was in flight is read and produced again.
    in_flight.clear();
    if (auto opened = open_producer(); !opened)
      return tl::unexpected(RelayError{RelayErrc::producer_failed, opened.error().message});
    return {};
  }

  // The `deprecation` header's value of each deprecated stream, as last read.
  //
  // Read from the stream registry, the source of truth for everything else about streams,
  // rather than given in the options from this instance's config: another instance started
  // with a newer config may have deprecated a stream, and relays made without a config
  // (core-sim's, the tests') read the same table. A stream's deprecation changes only when
  // an instance starts with another config (register_streams), so a round reads it at most
  // every deprecation_refresh (one statement over a handful of rows) instead of every round
  // or joined into read_unpublished's statement, which every round runs. A message produced
  // within that time after a change may lack the header or still carry it: headers repeat
  // what the registry says and consumers must not require them (docs/streams.md), and the
  // catch-up API reads the registry on every page. A failed read fails the round, so no
  // message goes out without the header for want of a read.
  std::map<std::string, std::string> deprecations;
  std::optional<Clock::time_point> deprecations_read_at;

  std::optional<RelayError> refresh_deprecations() {
    const auto now = Clock::now();
    if (deprecations_read_at && now - *deprecations_read_at < options.deprecation_refresh)
      return std::nullopt;
    auto streams = pool.autocommit([](eventstore::Transaction& tx) { return read_streams(tx); });
    if (!streams) return database_error("reading the streams' deprecations", streams.error());
    deprecations.clear();
    for (const auto& stream : *streams)
      if (stream.sunset) deprecations[stream.name] = deprecation_header_value(*stream.sunset);
    deprecations_read_at = now;
    return std::nullopt;
  }

  tl::expected<void, std::string> produce(const ExternalMessage& m, Pending& pending) {
    const auto value = m.to_json().dump();
    const auto seq = std::to_string(m.seq);
    // Owned by the producer once produced; ours to destroy if producing fails.
    rd_kafka_headers_t* headers = rd_kafka_headers_new(8);
    const auto add = [headers](std::string_view name, const std::string& text) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), text.data(),
                          static_cast<ssize_t>(text.size()));
    };
    add("seq", seq);
    add("type", m.type);
    add("event_id", m.event_id);
    add("source_event_id", m.source_event_id);
    add("correlation_id", m.correlation_id);
    if (const auto it = deprecations.find(m.stream); it != deprecations.end())
      add(kDeprecationHeader, it->second);
    // Under the source event's trace (a new one when it has none); the consumer's span
    // follows from this one through the traceparent header.
    auto span = tracing::global_tracer()->start(
        "publish " + m.stream, base::parse_traceparent(m.traceparent, m.tracestate),
        tracing::SpanKind::producer);
    span.set("messaging.system", std::string("kafka"))
        .set("messaging.destination.name", m.stream)
        .set("messaging.destination.partition.id", std::int64_t{m.partition})
        .set("messaging.kafka.message.key", m.key)
        .set("clearing.stream.seq", m.seq)
        .set("clearing.message.type", m.type);
    add("traceparent", span.context().traceparent());
    if (!span.context().tracestate.empty()) add("tracestate", span.context().tracestate);
    const auto err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(m.stream.c_str()), RD_KAFKA_V_PARTITION(m.partition),
        RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(&pending), RD_KAFKA_V_END);
    if (err) {
      span.set_error(rd_kafka_err2name(err));
      rd_kafka_headers_destroy(headers);
      return tl::unexpected(std::string("produce: ") + rd_kafka_err2str(err));
    }
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
      if (f.pending[i].state == Delivery::waiting) return false;
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
  tl::expected<void, RelayError> purge_if_overdue() {
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
    if (missing)
      return tl::unexpected(
          RelayError{RelayErrc::delivery_failed, "delivery reports missing after purge"});
    return {};
  }

  // --- a round ----------------------------------------------------------------------------

  // The ownership refresh of a round, and what it changed counted in the stats.
  tl::expected<PartitionOwnership::Change, OwnershipError> refresh_ownership() {
    auto changed = ownership.refresh_if_due();
    std::lock_guard lock(stats_mutex);
    stats.partitions_owned = static_cast<std::int64_t>(ownership.partitions().size());
    stats.relays_seen = ownership.members_seen();
    if (changed) {
      stats.partitions_taken += changed->taken;
      stats.partitions_given += changed->given;
    }
    return changed;
  }

  // The owned partitions with nothing in flight: those a round reads.
  std::vector<PartitionKey> readable_partitions() const {
    std::vector<PartitionKey> readable;
    for (const auto& key : ownership.partitions())
      if (!in_flight.contains(key)) readable.push_back(key);
    return readable;
  }

  // What a round handed to the producer: the partitions, and the first produce error (queue
  // full or similar: the rest of that partition is published next round).
  struct Produced {
    std::vector<PartitionKey> partitions;
    std::string error;
  };

  // Reads the partitions' unpublished messages (one statement) and produces them.
  tl::expected<Produced, RelayError> produce_unpublished(
      const std::vector<PartitionKey>& readable) {
    Produced out;
    if (readable.empty()) return out;
    if (auto failed = refresh_deprecations()) return tl::unexpected(std::move(*failed));
    // The read is one statement: no transaction block around it (ConnectionPool::autocommit).
    auto read = pool.autocommit(
        [&](eventstore::Transaction& tx) -> eventstore::StoreResult<std::vector<Unpublished>> {
          return read_unpublished(
              tx,
              std::min<std::int64_t>(static_cast<std::int64_t>(options.batch_max),
                                     kCatchUpLimitMax),
              std::span<const PartitionKey>(readable), pool.protector());
        });
    if (!read) return tl::unexpected(database_error("reading unpublished messages", read.error()));
    for (auto& partition : *read) {
      if (partition.events.empty() || !out.error.empty()) continue;
      const PartitionKey key{partition.mark.stream, partition.mark.partition};
      out.error = produce_partition(in_flight[key], partition);
      out.partitions.push_back(key);
    }
    return out;
  }

  // One partition's messages into the producer, in seq order, tracked in `f`: the first
  // produce error, or "".
  std::string produce_partition(InFlight& f, const Unpublished& partition) {
    f.mark = partition.mark;
    f.pending = std::vector<Pending>(partition.events.size());
    f.since = Clock::now();
    for (std::size_t i = 0; i < partition.events.size(); ++i) {
      auto& p = f.pending[i];
      p.seq = partition.events[i].seq;
      CLEARING_ASSERT(p.seq == f.mark.published + 1 + static_cast<std::int64_t>(i));
      auto ok = produce(partition.events[i], p);
      if (!ok) return ok.error();
      ++f.produced;
    }
    return "";
  }

  // The partitions whose reports are all in, taken out of flight: each mark moves across its
  // contiguous delivered prefix only; what failed is read and produced again next round.
  struct Settled {
    std::vector<PartitionMark> moves;
    int acknowledged = 0, failed = 0, moved = 0;
    std::int64_t produced = 0, lag = 0;
    std::string failure;  // the first failed delivery, or ""
  };

  Settled settle_reported() {
    Settled out;
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      auto& f = it->second;
      if (!reported(f)) {
        out.lag += f.mark.head - f.mark.published;
        ++it;
        continue;
      }
      std::int64_t delivered_to = f.mark.published;
      out.produced += static_cast<std::int64_t>(f.produced);
      for (std::size_t i = 0; i < f.produced; ++i) {
        const auto& p = f.pending[i];
        if (p.state == Delivery::delivered) {
          ++out.acknowledged;
          if (delivered_to == p.seq - 1) delivered_to = p.seq;
        } else {
          ++out.failed;
          if (out.failure.empty())
            out.failure = f.mark.stream + "/" + std::to_string(f.mark.partition) + ": " +
                          rd_kafka_err2str(p.error);
        }
      }
      if (delivered_to != f.mark.published)
        out.moves.push_back({f.mark.stream, f.mark.partition, f.mark.head, delivered_to});
      out.moved += static_cast<int>(delivered_to - f.mark.published);
      out.lag += f.mark.head - delivered_to;
      it = in_flight.erase(it);
    }
    return out;
  }

  // Stores the settled marks (one statement). On failure the marks stay where they were:
  // the messages are republished next round, and consumers skip seqs they have.
  std::optional<RelayError> store_marks(Settled& settled) {
    if (settled.moves.empty()) return std::nullopt;
    auto marked =
        pool.autocommit([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
          return mark_published(tx, settled.moves);
        });
    if (marked) return std::nullopt;
    settled.lag += settled.moved;
    settled.moved = 0;
    return database_error("marking published", marked.error());
  }

  void record_round(const Settled& settled, const std::string& last_error) {
    std::lock_guard lock(stats_mutex);
    ++stats.rounds;
    stats.produced += settled.produced;
    stats.acknowledged += settled.acknowledged;
    stats.failed += settled.failed;
    stats.lag = settled.lag;
    stats.in_flight_partitions = static_cast<std::int64_t>(in_flight.size());
    stats.last_error = last_error;
  }

  // A round: refreshes ownership, reads every owned partition with nothing in flight (one
  // statement), produces what it read, serves delivery reports (await_reports), and moves
  // the marks of the partitions whose reports are all in (one statement).
  // Returns the number of messages the marks moved over.
  tl::expected<int, RelayError> run_once() {
    auto changed = refresh_ownership();
    tl::expected<Produced, RelayError> produced = Produced{};
    if (changed) produced = produce_unpublished(readable_partitions());
    if (!produced) return tl::unexpected(produced.error());
    if (!produced->partitions.empty() || !in_flight.empty()) await_reports(produced->partitions);
    if (auto purged = purge_if_overdue(); !purged) return tl::unexpected(purged.error());

    auto settled = settle_reported();
    const auto mark_error = store_marks(settled);
    std::optional<RelayError> delivery_error;
    if (const auto& first = !produced->error.empty() ? produced->error : settled.failure;
        !first.empty())
      delivery_error = RelayError{RelayErrc::delivery_failed, first};
    const std::optional<RelayError> round_error =
        !changed     ? std::optional(RelayError{RelayErrc::ownership, changed.error().message})
        : mark_error ? mark_error
                     : delivery_error;
    record_round(settled, round_error ? round_error->message : "");
    if (!changed || mark_error) return tl::unexpected(*round_error);
    if (delivery_error) {
      if (auto recovered = recover_if_fatal(); !recovered) return tl::unexpected(recovered.error());
      if (settled.moved == 0) return tl::unexpected(*delivery_error);
    }
    return settled.moved;
  }

  void run() {
    int failures = 0;
    std::string logged_error;  // a failing relay logs once per change of error, not every round
    for (;;) {
      const auto round_started = std::chrono::steady_clock::now();
      // What is committed from here on is either read by this round or wakes the next.
      worker.clear_woken();
      auto relayed = run_once();
      std::optional<std::chrono::milliseconds> wait;  // none: idle, wait to be woken
      if (!relayed) {
        ++failures;
        if (relayed.error().message != logged_error)
          log->warn("relay round failed cause={} error=\"{}\" failures={}",
                    to_string(relayed.error().code),
                    base::escape_text(relayed.error().message, 500), failures);
        logged_error = relayed.error().message;
        wait =
            std::min(options.retry_backoff_max, options.idle_poll * (1 << std::min(failures, 10)));
      } else {
        if (!logged_error.empty())
          log->info("relay rounds succeed again after failures={}", failures);
        logged_error.clear();
        failures = 0;
        if (*relayed > 0)
          wait = round_pause(static_cast<std::size_t>(*relayed),
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - round_started),
                             options);
      }
      if (!(wait ? worker.sleep_for(*wait) : worker.wait_woken(options.idle_poll))) return;
    }
  }
};

std::chrono::milliseconds round_pause(std::size_t moved, std::chrono::milliseconds elapsed,
                                      const RelayOptions& options) noexcept {
  const auto full = std::max<std::size_t>(options.round_full_messages, 1);
  const auto share = std::min(moved, full);
  const auto scaled =
      std::chrono::milliseconds(options.round_interval_min.count() *
                                static_cast<std::int64_t>(share) / static_cast<std::int64_t>(full));
  return std::max(std::chrono::milliseconds(0), scaled - elapsed);
}

tl::expected<std::unique_ptr<Relay>, SetupError> Relay::create(eventstore::ConnectionPool& pool,
                                                               RelayOptions options) {
  if (options.batch_max < 1)
    return tl::unexpected(OptionsError{"batch_max", "relay batch_max must be >= 1"});
  if (options.deprecation_refresh < std::chrono::milliseconds(1))
    return tl::unexpected(
        OptionsError{"deprecation_refresh", "relay deprecation_refresh must be >= 1 ms"});
  if (auto valid = validate_ownership_options(ownership_options(options)); !valid)
    return tl::unexpected(valid.error());
  auto impl = std::make_unique<Impl>(pool, std::move(options));
  auto opened = impl->open_producer();
  if (!opened) return tl::unexpected(opened.error());
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

std::string deprecation_header_value(std::string_view sunset) {
  return "sunset=" + std::string(sunset);
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

tl::expected<int, RelayError> Relay::run_once() { return impl_->run_once(); }

RelayStats Relay::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::external_streams
