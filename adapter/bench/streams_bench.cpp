// bench_streams: external streams measured end to end, PostgreSQL -> Relay -> Kafka ->
// StreamConsumer -> PostgreSQL, on librdkafka's mock cluster (EmbeddedKafka: a real
// Kafka-protocol broker on loopback, in this process).
//
// Prints figures, never a verdict: there are no thresholds here. In one run, on a fresh
// database of the server named by CLEARING_TEST_DATABASE_URL (or --database-url):
//   1. relay throughput: --messages external messages appended up front (append_external,
//      --append-batch per transaction), then Relay::run_once on the caller's thread until
//      Kafka acknowledged them all: messages/s from the table to acknowledged;
//   2. consumer throughput: a StreamConsumer reads them back and applies each with a
//      trivial applier (one INSERT); messages/s, counted from the end of the first
//      non-empty batch so that the consumer group's join is not in the figure;
//   3. the same with the adapter's real applier (adapter::make_transfer_inbound:
//      TransferRequested -> InitiateTransfer on the Transfer aggregate and its projections)
//      over --transfer-messages requests relayed the same way;
//   4. live latency: one writer appends one message per transaction at --live-rate for
//      --live-seconds while a started Relay and a StreamConsumer (run_once in a loop on a
//      thread of this program) run; from the writer's steady_clock after its commit to
//      the consumer's: the applier notes each message, and the instant run_once returns
//      (after the batch's commit) is that batch's commit instant. The relay's share is
//      estimated from its acknowledged count (sampled every 0.2 ms). The run is made
//      twice: with the consumer's librdkafka defaults, and with fetch.wait.max.ms set to
//      --fetch-wait-max-ms (on the mock cluster a fetch with nothing to return waits
//      that long, which dominated the first run).
// Run it through bench/streams, which starts a throwaway server beside it.

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clearing/adapter/inbound.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/external_streams/relay.hpp"
#include "clearing/external_streams/stream_store.hpp"
#include "clearing/support/bench.hpp"
#include "clearing/support/bench_program.hpp"

namespace clearing::bench {
namespace {

using external_streams::Draft;
using external_streams::ExternalMessage;
using external_streams::StreamSpec;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Named limits (TIGER_STYLE): every input and loop of the benchmark is bounded.
constexpr int kMessagesMax = 1'000'000;
constexpr int kAppendBatchMax = 1'000;
constexpr int kLiveRateMax = 5'000;
constexpr double kLiveSecondsMax = 600;
constexpr std::chrono::seconds kPhaseTimeout{120};
constexpr std::chrono::seconds kLiveDrainTimeout{30};
constexpr std::size_t kPoolConnections = 8;

struct Options {
  std::string database_url;
  int messages = 10'000;
  int transfer_messages = 5'000;
  int partitions = 4;
  int append_batch = 100;
  int live_rate_per_second = 200;
  double live_seconds = 5;
  int consumer_batch_max = 500;
  // A second latency run with the consumer's fetch.wait.max.ms set to this (0: none).
  int fetch_wait_max_ms = 10;
  bool quick = false;
  bool keep_database = false;
  // One info line per clearing call or batch would be measured too: quiet by default.
  std::string log_level = "warn";
};

// ---- Wiring -----------------------------------------------------------------------------

// The country's rules, the retry policy and the schema are the tests'
// (adapter/testing/saga_fixture.hpp).
using testing::dk_rules;
using testing::fast_policy;

struct Bench {
  const Options& options;
  ScratchDatabase database;
  std::unique_ptr<eventstore::ConnectionPool> pool;
  std::unique_ptr<eventstore::EventStore> store;
  std::unique_ptr<adapter::TransferService> transfers;
  std::unique_ptr<external_streams::EmbeddedKafka> kafka;
  base::SystemClock clock;
  StreamSpec bulk{"adapter.dk.payments.v1", 4};  // relay and trivial-consumer throughput
  StreamSpec core{"core.dk.payments.v1", 4};     // requests for the real transfer applier
  StreamSpec live{"adapter.dk.live.v1", 4};      // live latency
  StreamSpec live_short_wait{"adapter.dk.live-short-wait.v1", 4};

  explicit Bench(const Options& o) : options(o), database(o.database_url, o.keep_database) {
    bulk.partitions = core.partitions = live.partitions = live_short_wait.partitions = o.partitions;
    eventstore::DatabaseOptions database_options;
    database_options.url = database.url();
    database_options.connections_max = kPoolConnections;
    database_options.application_name = "bench-streams";
    pool = std::make_unique<eventstore::ConnectionPool>(database_options);
    testing::migrate(*pool);
    store = std::make_unique<eventstore::EventStore>(*pool);
    transfers = std::make_unique<adapter::TransferService>(*store);
    const std::vector<StreamSpec> specs{bulk, core, live, live_short_wait};
    if (auto ensured = external_streams::ensure_streams(*pool, specs); !ensured)
      throw std::runtime_error("ensure_streams: " + ensured.error().message);
    query_value(
        database.url(),
        "create table applied (stream text not null, partition int not null, seq bigint not null,"
        " event_id text not null, type text not null)");
    auto started = external_streams::EmbeddedKafka::start(1);
    if (!started) throw std::runtime_error("embedded kafka: " + started.error().message);
    kafka = std::move(*started);
    for (const auto& spec : specs)
      if (auto created = kafka->create_topic(spec.name, spec.partitions); !created)
        throw std::runtime_error("create topic: " + created.error().message);
  }

  external_streams::KafkaClientOptions client(const std::string& id) const {
    external_streams::KafkaClientOptions o;
    o.bootstrap_servers = kafka->bootstrap_servers();
    o.client_id = id;
    o.message_timeout_ms = 20'000;
    return o;
  }

  std::unique_ptr<external_streams::Relay> relay() {
    external_streams::RelayOptions o;
    o.kafka = client("bench-relay");
    o.flush_timeout = std::chrono::milliseconds(20'000);
    auto created = external_streams::Relay::create(*pool, o);
    if (!created)
      throw std::runtime_error("relay: " + external_streams::message_of(created.error()));
    return std::move(*created);
  }

  std::unique_ptr<external_streams::StreamConsumer> consumer(
      const StreamSpec& spec, const std::string& group,
      std::unique_ptr<external_streams::InboundHandler> handler, int fetch_wait_max_ms = 0) {
    external_streams::ConsumerOptions o;
    o.kafka = client(group);
    if (fetch_wait_max_ms > 0)
      o.kafka.extra["fetch.wait.max.ms"] = std::to_string(fetch_wait_max_ms);
    o.group_id = group;
    o.topics = {spec.name};
    o.batch_max = options.consumer_batch_max;
    auto created = external_streams::StreamConsumer::create(*pool, o, std::move(handler));
    if (!created)
      throw std::runtime_error("consumer: " + external_streams::message_of(created.error()));
    return std::move(*created);
  }

  std::string count(const std::string& sql) const { return query_value(database.url(), sql); }
};

// A source event as a derivation would hand it over (append_external derives the
// message id from it; it need not be stored).
eventstore::RecordedEvent source_event() {
  eventstore::RecordedEvent source;
  source.event_id = eventstore::EventId{base::new_uuid()};
  source.metadata.correlation_id = base::new_uuid();
  return source;
}

// What payments.v1 carries for a settled transfer, about 150 bytes of data.
Draft succeeded_draft(std::int64_t index) {
  const auto id = base::new_uuid();
  return Draft{"TransferSucceeded",
               id,
               {{"transfer_id", id},
                {"clearing_reference", fmt::format("CR{:012}", index)},
                {"settlement_date", "2026-11-26"},
                {"amount", {{"minor_units", 125'000 + index % 1000}, {"currency", "DKK"}}}},
               false,
               ""};
}

// A core TransferRequested as adapter/tests/streams/inbound_pgtest.cpp writes it.
Draft requested_draft(int index) {
  const auto id = base::new_uuid();
  return Draft{
      "TransferRequested",
      id,
      {{"transfer_id", id},
       {"account_id", "acct-" + std::to_string(index % 50)},
       {"amount", {{"minor_units", 1000 + index}, {"currency", "DKK"}}},
       {"debtor", {{"name", "Ada"}, {"account", {{"scheme", "BBAN"}, {"id", "5301-0001234567"}}}}},
       {"creditor",
        {{"name", "Charles"}, {"account", {{"scheme", "IBAN"}, {"id", "DK5000400440116243"}}}}},
       {"remittance_info", "Invoice"},
       {"requested_at", "2026-11-26T09:00:00Z"}},
      false,
      ""};
}

// Appends `total` messages, `batch` per transaction; returns the seconds it took.
template <class MakeDraft>
double append_messages(Bench& bench, const StreamSpec& spec, int total, MakeDraft make_draft) {
  const auto start = Clock::now();
  for (int first = 0; first < total; first += bench.options.append_batch) {
    const int count = std::min(bench.options.append_batch, total - first);
    auto appended =
        bench.pool->transact([&](eventstore::Transaction& tx) -> eventstore::StoreResult<void> {
          for (int i = 0; i < count; ++i) {
            auto one =
                external_streams::append_external(tx, spec, make_draft(first + i), source_event());
            if (!one) return tl::unexpected(one.error());
            CLEARING_ASSERT(one->has_value());
          }
          return {};
        });
    if (!appended) throw std::runtime_error("append_external: " + appended.error().message);
  }
  return Seconds(Clock::now() - start).count();
}

// Relays until Kafka acknowledged `total` more messages; returns the seconds it took.
double relay_all(external_streams::Relay& relay, std::int64_t total) {
  const auto before = relay.stats().acknowledged;
  const auto start = Clock::now();
  while (relay.stats().acknowledged - before < total) {
    if (Clock::now() - start > kPhaseTimeout) throw std::runtime_error("relay: timed out");
    auto relayed = relay.run_once();
    if (!relayed) fmt::print("  relay round failed: {}\n", relayed.error().message);
  }
  return Seconds(Clock::now() - start).count();
}

struct ConsumeFigures {
  double join_seconds = 0;    // create -> the end of the first non-empty batch
  double steady_seconds = 0;  // the end of the first non-empty batch -> the last
  std::int64_t first_batch = 0, applied = 0, batches = 0;
  double rate() const {
    return steady_seconds > 0 ? static_cast<double>(applied - first_batch) / steady_seconds : 0;
  }
};

ConsumeFigures consume_all(external_streams::StreamConsumer& consumer, std::int64_t total) {
  ConsumeFigures figures;
  const auto start = Clock::now();
  Clock::time_point first_at{};
  while (consumer.stats().applied < total) {
    if (Clock::now() - start > kPhaseTimeout) throw std::runtime_error("consumer: timed out");
    const int handled = consumer.run_once();
    if (const auto held = consumer.stats().held; !held.empty()) {
      fmt::print("  consumer: {} partition(s) held: {}\n", held.size(),
                 held.begin()->second.reason);
      continue;
    }
    if (handled > 0 && first_at == Clock::time_point{}) {
      first_at = Clock::now();
      figures.first_batch = consumer.stats().applied;
    }
  }
  const auto end = Clock::now();
  const auto stats = consumer.stats();
  figures.applied = stats.applied;
  figures.batches = stats.batches;
  figures.join_seconds = Seconds(first_at - start).count();
  figures.steady_seconds = Seconds(end - first_at).count();
  return figures;
}

// Counts what it parks; keeps nothing of it.
class CountingParker : public external_streams::InboundHandler {
 public:
  explicit CountingParker(std::atomic<std::int64_t>& parked) : parked_(parked) {}

  eventstore::StoreResult<void> park(eventstore::Transaction&, const external_streams::RawMessage&,
                                     const external_streams::MessageError&,
                                     const std::optional<ExternalMessage>&) override {
    parked_.fetch_add(1);
    return {};
  }

 private:
  std::atomic<std::int64_t>& parked_;
};

// Applies a message as one row of `applied`.
class OneRowHandler final : public CountingParker {
 public:
  using CountingParker::CountingParker;

  tl::expected<void, external_streams::ApplyError> apply(eventstore::Transaction& tx,
                                                         const ExternalMessage& m) override {
    tx.exec_params(
        "insert into applied (stream, partition, seq, event_id, type) values ($1, $2, $3, $4, $5)",
        m.stream, m.partition, m.seq, m.event_id, m.type);
    return {};
  }
};

// Notes when each message was applied, and which the batch in hand holds.
class TimingHandler final : public CountingParker {
 public:
  TimingHandler(std::atomic<std::int64_t>& parked, std::vector<std::string>& in_batch,
                std::unordered_map<std::string, Clock::time_point>& applied_at)
      : CountingParker(parked), in_batch_(in_batch), applied_at_(applied_at) {}

  tl::expected<void, external_streams::ApplyError> apply(eventstore::Transaction&,
                                                         const ExternalMessage& m) override {
    in_batch_.push_back(m.event_id);
    applied_at_.emplace(m.event_id, Clock::now());
    return {};
  }

 private:
  std::vector<std::string>& in_batch_;
  std::unordered_map<std::string, Clock::time_point>& applied_at_;
};

void print_consume(const char* label, const ConsumeFigures& f) {
  fmt::print(
      "  {}: {:>8.0f} messages/s  ({} applied in {} batches; {:.2f} s after the first batch of {}, "
      "which came {:.2f} s after create: group join)\n",
      label, f.rate(), f.applied, f.batches, f.steady_seconds, f.first_batch, f.join_seconds);
}

// ---- 1-3. Throughput --------------------------------------------------------------------

void run_throughput(Bench& bench) {
  const auto& o = bench.options;
  fmt::print("\nthroughput, {} partitions, topic = stream:\n", o.partitions);
  const double append_seconds =
      append_messages(bench, bench.bulk, o.messages, [](int i) { return succeeded_draft(i); });
  fmt::print(
      "  append_external ({} per tx):   {:>8.0f} messages/s  ({} in {:.2f} s; written up front)\n",
      o.append_batch, o.messages / append_seconds, o.messages, append_seconds);

  auto relay = bench.relay();
  const double relay_seconds = relay_all(*relay, o.messages);
  const auto relay_stats = relay->stats();
  fmt::print(
      "  relay table -> Kafka acked:    {:>8.0f} messages/s  ({} in {:.2f} s, {} rounds, {} "
      "failed)\n",
      o.messages / relay_seconds, o.messages, relay_seconds, relay_stats.rounds,
      relay_stats.failed);
  CLEARING_ASSERT(bench.count("select sum(head - published) from external_stream_heads") == "0");

  std::atomic<std::int64_t> parked{0};
  auto trivial =
      bench.consumer(bench.bulk, "bench-trivial", std::make_unique<OneRowHandler>(parked));
  print_consume("consumer, one-row applier     ", consume_all(*trivial, o.messages));
  trivial->stop();
  CLEARING_ASSERT(bench.count("select count(*) from applied") == std::to_string(o.messages));

  // The adapter's own inbound path: TransferRequested -> InitiateTransfer.
  append_messages(bench, bench.core, o.transfer_messages, [](int i) { return requested_draft(i); });
  relay_all(*relay, o.transfer_messages);
  const adapter::InboundRules rules{dk_rules(), fast_policy()};
  auto real = bench.consumer(bench.core, "bench-transfers",
                             adapter::make_transfer_inbound(*bench.transfers, bench.clock, rules));
  print_consume("consumer, make_transfer_inbound", consume_all(*real, o.transfer_messages));
  real->stop();
  fmt::print("    ({} TransferInitiated events, {} transfer_work rows, {} parked)\n",
             bench.count("select count(*) from events where type = 'TransferInitiated'"),
             bench.count("select count(*) from transfer_work"),
             bench.count("select count(*) from parked_messages"));
  relay->stop();
}

// ---- 4. Live latency --------------------------------------------------------------------

using TimePoints = std::unordered_map<std::string, Clock::time_point>;
using AckSamples = std::vector<std::pair<Clock::time_point, std::int64_t>>;

// The consumer's side of a latency run: a StreamConsumer with run_once in a loop on a thread
// of its own. The applier notes each message; the instant run_once returns (after the
// batch's commit) is the commit instant of the batch's messages. Construct in place (the
// handler and the thread refer to the members); the maps and `error` are the thread's until
// stop_loop() joined it.
struct LiveConsumer {
  std::vector<std::string> in_batch;
  TimePoints applied_at, committed_at;
  std::atomic<std::int64_t> seen{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> parked{0};
  std::string error;  // the reason of the first held partition
  std::unique_ptr<external_streams::StreamConsumer> consumer;
  std::thread thread;

  // fetch_wait_max_ms 0: the consumer's librdkafka default (fetch.wait.max.ms 500).
  LiveConsumer(Bench& bench, const StreamSpec& stream, int fetch_wait_max_ms)
      : consumer(bench.consumer(stream, "bench-live-" + stream.name,
                                std::make_unique<TimingHandler>(parked, in_batch, applied_at),
                                fetch_wait_max_ms)),
        thread([this] { loop(); }) {}

  void stop_loop() {
    stopping = true;
    thread.join();
  }

 private:
  void loop() {
    while (!stopping.load()) {
      in_batch.clear();
      consumer->run_once();
      const auto now = Clock::now();
      if (const auto held = consumer->stats().held; !held.empty()) {
        if (error.empty()) error = held.begin()->second.reason;
        continue;
      }
      for (const auto& id : in_batch) committed_at.emplace(id, now);
      seen.fetch_add(static_cast<std::int64_t>(in_batch.size()));
    }
  }
};

// The relay's acknowledged count, sampled every 0.2 ms on a thread of its own: the k-th live
// message counts as acknowledged when the count first reached k. Approximate (partitions
// are flushed one after another), but it splits the latency into the relay's part and the
// consumer's.
class AckSampler {
 public:
  explicit AckSampler(const external_streams::Relay& relay)
      : relay_(relay), thread_([this] { loop(); }) {}

  // Stops the sampling; returns the samples: (instant, acknowledged count) at each change.
  AckSamples stop() {
    sampling_ = false;
    thread_.join();
    return std::move(acks_);
  }

 private:
  void loop() {
    std::int64_t last = -1;
    while (sampling_.load()) {
      const auto acknowledged = relay_.stats().acknowledged;
      if (acknowledged != last) acks_.emplace_back(Clock::now(), acknowledged);
      last = acknowledged;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  const external_streams::Relay& relay_;
  AckSamples acks_;
  std::atomic<bool> sampling_{true};
  std::thread thread_;
};

// One unmeasured message first: the group has joined once it has been applied. Returns the
// seconds it took.
double warm_up(Bench& bench, const StreamSpec& stream, const LiveConsumer& live) {
  const auto warmup_start = Clock::now();
  append_messages(bench, stream, 1, [](int i) { return succeeded_draft(i); });
  while (live.seen.load() < 1 && Clock::now() - warmup_start < kPhaseTimeout)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return Seconds(Clock::now() - warmup_start).count();
}

struct LiveWrites {
  // event id -> (before the writer's transaction, after its commit)
  std::unordered_map<std::string, std::pair<Clock::time_point, Clock::time_point>> written;
  std::vector<Clock::time_point> written_in_order;  // after each commit
  int appends = 0;
  Clock::time_point start, end;
  double rate() const { return appends / Seconds(end - start).count(); }
};

// One writer, one append_external per transaction, paced at --live-rate for --live-seconds.
LiveWrites write_paced(Bench& bench, const StreamSpec& stream) {
  const auto& o = bench.options;
  LiveWrites writes;
  const auto period =
      std::chrono::duration_cast<Clock::duration>(Seconds(1.0 / o.live_rate_per_second));
  writes.appends = static_cast<int>(o.live_seconds * o.live_rate_per_second);
  writes.start = Clock::now();
  for (int i = 0; i < writes.appends; ++i) {
    std::this_thread::sleep_until(writes.start + period * i);
    const auto before = Clock::now();
    auto appended = bench.pool->transact([&](eventstore::Transaction& tx) {
      return external_streams::append_external(tx, stream, succeeded_draft(i), source_event());
    });
    if (!appended || !appended->has_value()) throw std::runtime_error("live append failed");
    const auto after = Clock::now();
    writes.written.emplace((*appended)->event_id, std::make_pair(before, after));
    writes.written_in_order.push_back(after);
  }
  writes.end = Clock::now();
  return writes;
}

// Waits until the consumer has seen `total` messages, kLiveDrainTimeout at most.
void wait_for_drain(const LiveConsumer& live, std::int64_t total, Clock::time_point write_end) {
  while (live.seen.load() < total && Clock::now() - write_end < kLiveDrainTimeout)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

struct LiveLatencies {
  std::vector<double> append_ms, to_ack_ms, to_applier_ms, to_commit_ms;
  std::size_t missing = 0;  // written messages the consumer did not apply and commit
};

// From the writer's commit to the k-th acknowledgement after `acknowledged_before`.
std::vector<double> to_ack_ms(const LiveWrites& writes, const AckSamples& acks,
                              std::int64_t acknowledged_before) {
  std::vector<double> figures;
  std::size_t sample = 0;
  for (std::size_t k = 0; k < writes.written_in_order.size(); ++k) {
    const auto wanted = acknowledged_before + static_cast<std::int64_t>(k) + 1;
    while (sample < acks.size() && acks[sample].second < wanted) ++sample;
    if (sample == acks.size()) break;
    figures.push_back(ms(acks[sample].first - writes.written_in_order[k]));
  }
  return figures;
}

LiveLatencies latencies_of(const LiveWrites& writes, const LiveConsumer& live,
                           const AckSamples& acks, std::int64_t acknowledged_before) {
  LiveLatencies l;
  for (const auto& [id, w] : writes.written) {
    l.append_ms.push_back(ms(w.second - w.first));
    const auto applied = live.applied_at.find(id);
    const auto committed = live.committed_at.find(id);
    if (applied == live.applied_at.end() || committed == live.committed_at.end()) {
      ++l.missing;
      continue;
    }
    l.to_applier_ms.push_back(ms(applied->second - w.second));
    l.to_commit_ms.push_back(ms(committed->second - w.second));
  }
  l.to_ack_ms = to_ack_ms(writes, acks, acknowledged_before);
  return l;
}

void print_live_header(const Options& o, int fetch_wait_max_ms, const LiveWrites& writes,
                       double warmup_seconds) {
  fmt::print(
      "\nlive latency: one writer, one append_external per transaction, paced at {}/s for {:.1f} s "
      "(achieved {:.0f}/s);\n"
      "a started Relay (idle_poll 10 ms, linger.ms 2) and a StreamConsumer (poll_timeout 50 ms, "
      "batch_max {}, "
      "fetch.wait.max.ms {}) in a run_once loop;\n"
      "group joined and first message through after {:.2f} s (not measured). Clock: steady_clock, "
      "from after "
      "the writer's commit.\n",
      o.live_rate_per_second, o.live_seconds, writes.rate(), o.consumer_batch_max,
      fetch_wait_max_ms > 0 ? fmt::format("{}", fetch_wait_max_ms)
                            : std::string("500 (librdkafka default)"),
      warmup_seconds);
}

void print_live_figures(const LiveLatencies& l, const LiveConsumer& live) {
  print_distribution("append_external transaction       ", l.append_ms);
  print_distribution("derivation commit -> Kafka acked (by count)", l.to_ack_ms);
  print_distribution("derivation commit -> applier call ", l.to_applier_ms);
  print_distribution("derivation commit -> consumer commit", l.to_commit_ms);
  const auto consumer_stats = live.consumer->stats();
  fmt::print("  consumer: {} applied in {} batches ({:.1f} per batch), {} duplicates, {} parked\n",
             consumer_stats.applied, consumer_stats.batches,
             consumer_stats.batches > 0
                 ? static_cast<double>(consumer_stats.applied) / consumer_stats.batches
                 : 0,
             consumer_stats.duplicates, live.parked.load());
  if (l.missing > 0 || !live.error.empty())
    fmt::print(
        "  {} written messages not committed by the consumer within {} s; first consumer error: "
        "{}\n",
        l.missing, kLiveDrainTimeout.count(), live.error.empty() ? "none" : live.error);
}

// fetch_wait_max_ms 0: the consumer's librdkafka default (fetch.wait.max.ms 500).
void run_live_latency(Bench& bench, const StreamSpec& stream, int fetch_wait_max_ms) {
  LiveConsumer live(bench, stream, fetch_wait_max_ms);
  auto relay = bench.relay();
  relay->start();
  AckSampler sampler(*relay);
  const double warmup_seconds = warm_up(bench, stream, live);
  const auto acknowledged_before = relay->stats().acknowledged;
  const LiveWrites writes = write_paced(bench, stream);
  wait_for_drain(live, writes.appends + 1, writes.end);
  live.stop_loop();
  const AckSamples acks = sampler.stop();
  relay->stop();
  live.consumer->stop();
  const auto latencies = latencies_of(writes, live, acks, acknowledged_before);
  print_live_header(bench.options, fetch_wait_max_ms, writes, warmup_seconds);
  print_live_figures(latencies, live);
}

void print_environment(const Bench& bench) {
  const auto& o = bench.options;
  support::print_server(bench.database.url(), {"fsync", "synchronous_commit"});
  support::print_machine("server, Kafka mock cluster and benchmark");
  fmt::print(
      "config: messages={} transfer_messages={} partitions={} append_batch={} consumer "
      "batch_max={} "
      "relay batch_max=2000 (capped at 1000 by the catch-up read)\n"
      "        Kafka: EmbeddedKafka (librdkafka mock cluster, 1 broker), idempotent producer "
      "acks=all, "
      "consumer isolation.level=read_committed{}\n",
      o.messages, o.transfer_messages, o.partitions, o.append_batch, o.consumer_batch_max,
      o.quick ? " (--quick)" : "");
}

int run(const Options& options) {
  Bench bench(options);
  print_environment(bench);
  run_throughput(bench);
  run_live_latency(bench, bench.live, 0);
  if (options.fetch_wait_max_ms > 0)
    run_live_latency(bench, bench.live_short_wait, options.fetch_wait_max_ms);
  return 0;
}

}  // namespace
}  // namespace clearing::bench

int main(int argc, char** argv) {
  using namespace clearing::bench;
  Options options;
  CLI::App app{
      "Relay and consumer throughput of the external streams, and the latency from derivation "
      "commit to "
      "the consumer's commit. Prints figures; no thresholds."};
  clearing::support::add_database_url_option(
      app, options.database_url, "libpq URI of the server (a fresh database is made on it)");
  app.add_option("--messages", options.messages, "messages for the relay and the one-row consumer")
      ->check(CLI::Range(1, kMessagesMax));
  app.add_option("--transfer-messages", options.transfer_messages,
                 "TransferRequested messages for the real applier")
      ->check(CLI::Range(1, kMessagesMax));
  app.add_option("--partitions", options.partitions, "partitions of each stream")
      ->check(CLI::Range(1, clearing::external_streams::kPartitionsMax));
  app.add_option("--append-batch", options.append_batch,
                 "messages per append transaction (throughput part)")
      ->check(CLI::Range(1, kAppendBatchMax));
  app.add_option("--consumer-batch-max", options.consumer_batch_max,
                 "the consumer's messages per transaction")
      ->check(CLI::Range(1, 10'000));
  app.add_option("--live-rate", options.live_rate_per_second,
                 "appends per second in the latency run")
      ->check(CLI::Range(1, kLiveRateMax));
  app.add_option("--live-seconds", options.live_seconds, "length of the latency run")
      ->check(CLI::Range(0.1, kLiveSecondsMax));
  app.add_option("--fetch-wait-max-ms", options.fetch_wait_max_ms,
                 "second latency run with the consumer's fetch.wait.max.ms at this (0: skip it)")
      ->check(CLI::Range(0, 10'000));
  app.add_flag("--quick", options.quick,
               "smoke run: 2,000 messages, 500 transfer messages, 2 s of latency");
  app.add_flag("--keep-database", options.keep_database, "do not drop the scratch database");
  clearing::support::add_log_level_option(app, options.log_level);
  CLI11_PARSE(app, argc, argv);
  clearing::base::set_log_level(options.log_level);
  if (options.quick) {
    if (app.count("--messages") == 0) options.messages = 2'000;
    if (app.count("--transfer-messages") == 0) options.transfer_messages = 500;
    if (app.count("--live-seconds") == 0) options.live_seconds = 2;
  }
  return clearing::support::run_benchmark("bench_streams", [&] { return run(options); });
}
