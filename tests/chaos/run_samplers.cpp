// The chaos run's samplers (run.hpp): every inbound partition about once a second for the
// flow, Kafka's high watermarks on a thread of their own, and the continuity sampler.

#include "run.hpp"

namespace clearing::chaos {

// One sample of every inbound partition for flow_: the core's head, the adapter's progress,
// Kafka's high watermark. No sample while the adapter's database does not answer.
void Run::sample_flow() {
  const std::string stream = inbound_;
  const auto progress =
      query(adapter_db_,
            "select partition, last_seq, kafka_offset from inbound_stream_progress "
            "where stream = '" +
                stream + "'");
  if (!progress) return;
  std::vector<PartitionSample> samples(kInboundPartitions);
  for (auto& s : samples) s.applied_seq = 0, s.kafka_offset = -1;  // no row yet: nothing handled
  for (const auto& row : *progress) {
    const auto p = row[0].as<int>();
    if (p < 0 || p >= kInboundPartitions) continue;
    samples[p].applied_seq = row[1].as<std::int64_t>();
    samples[p].kafka_offset = row[2].as<std::int64_t>();
  }
  if (const auto heads =
          query(core_db_, "select partition, head from external_stream_heads where stream = '" +
                              stream + "'"))
    for (const auto& row : *heads) {
      const auto p = row[0].as<int>();
      if (p >= 0 && p < kInboundPartitions) samples[p].core_head = row[1].as<std::int64_t>();
    }
  {
    std::lock_guard lock(watermark_mutex_);
    for (int p = 0; p < kInboundPartitions && p < static_cast<int>(watermarks_.size()); ++p)
      if (seconds_since(watermarks_[p].second) < 3)
        samples[p].kafka_end = watermarks_[p].first;  // else unknown
  }
  flow_.sample(elapsed_s(), samples);
}

void Run::start_watermarks() {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), error, sizeof error);
  rd_kafka_conf_set(conf, "socket.timeout.ms", "2000", error, sizeof error);
  rd_kafka_conf_set(conf, "log_level", "0", error,
                    sizeof error);  // its failures are planned outages
  watcher_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (!watcher_) throw std::runtime_error(std::string("watermark reader: ") + error);
  watermarks_.assign(kInboundPartitions, {-1, Clock::time_point{}});
  watermark_thread_ = std::thread([this] { read_watermarks(); });
}

void Run::read_watermarks() {
  for (;;) {
    for (int p = 0; p < kInboundPartitions; ++p) {
      std::int64_t low = -1, high = -1;
      if (rd_kafka_query_watermark_offsets(watcher_, inbound_.c_str(), p, &low, &high, 500) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::lock_guard lock(watermark_mutex_);
        watermarks_[p] = {high, Clock::now()};
      }
    }
    std::unique_lock lock(watermark_mutex_);
    if (watermark_wake_.wait_for(lock, std::chrono::milliseconds(500),
                                 [&] { return watermark_stopping_; }))
      return;
  }
}

void Run::stop_watermarks() {
  {
    std::lock_guard lock(watermark_mutex_);
    watermark_stopping_ = true;
  }
  watermark_wake_.notify_all();
  if (watermark_thread_.joinable()) watermark_thread_.join();
  if (watcher_) rd_kafka_destroy(watcher_);
  watcher_ = nullptr;
}

void Run::start_sampler() {
  sampler_thread_ = std::thread([this] { run_sampler(); });
}

// Connections of its own, opened again after a failure (PostgreSQL restarts): a sample
// that fails is missing, which the windows span (recovery.hpp).
void Run::run_sampler() {
  std::unique_ptr<pqxx::connection> adapter, core;
  std::vector<CallWatch> watches;
  auto next_resolution = Clock::now();
  for (;;) {
    {
      std::unique_lock lock(sampler_mutex_);
      if (sampler_wake_.wait_for(lock, kCallSamplePeriod, [&] { return sampler_stopping_; })) break;
      for (auto& w : call_watches_new_) watches.push_back(std::move(w));
      call_watches_new_.clear();
    }
    if (!watches.empty()) sample_call_watches(adapter, watches);
    if (Clock::now() < next_resolution) continue;
    next_resolution = std::max(next_resolution + kResolutionSamplePeriod, Clock::now());
    sample_resolution(core);
  }
  for (auto& w : watches) call_watches_done_.push_back(std::move(w));  // pending as they are
}

// One look at every watch; a watch with nothing pending, or watched for kCallWatchMaxMs, is done.
void Run::sample_call_watches(std::unique_ptr<pqxx::connection>& adapter,
                              std::vector<CallWatch>& watches) {
  try {
    if (!adapter) adapter = std::make_unique<pqxx::connection>(adapter_db_);
    for (auto& w : watches) sample_calls(*adapter, w);
  } catch (const std::exception&) {
    adapter.reset();
  }
  const auto now_us = epoch_us();
  for (auto it = watches.begin(); it != watches.end();) {
    const bool pending =
        std::any_of(it->verdicts.begin(), it->verdicts.end(),
                    [](const CallVerdict& v) { return v.fate == CallFate::pending; });
    if (pending && (now_us - it->killed_us) / 1000 < kCallWatchMaxMs) {
      ++it;
      continue;
    }
    call_watches_done_.push_back(std::move(*it));
    it = watches.erase(it);
  }
}

void Run::sample_resolution(std::unique_ptr<pqxx::connection>& core) {
  try {
    if (!core) core = std::make_unique<pqxx::connection>(core_db_);
    pqxx::nontransaction tx(*core);
    const double at_s = elapsed_s();
    const auto r = tx.exec(
        "select count(*) filter (where status <> 'open'), count(*) filter (where status = "
        "'open') from core_transfers");
    resolution_samples_.push_back({at_s, r[0][0].as<std::int64_t>(), r[0][1].as<std::int64_t>()});
  } catch (const std::exception&) {
    core.reset();
  }
}

void Run::stop_sampler() {
  {
    std::lock_guard lock(sampler_mutex_);
    sampler_stopping_ = true;
  }
  sampler_wake_.notify_all();
  if (sampler_thread_.joinable()) sampler_thread_.join();
  std::lock_guard lock(sampler_mutex_);
  for (auto& w : call_watches_new_)
    call_watches_done_.push_back(std::move(w));  // never sampled: pending
  call_watches_new_.clear();
}

// One look at the calls of a kill still pending: their work rows, and for a row that changed
// without a lease that dates the claim, the transfer's first event after the kill.
void Run::sample_calls(pqxx::connection& adapter, CallWatch& watch) {
  pqxx::nontransaction tx(adapter);
  std::string ids;
  for (std::size_t k = 0; k < watch.calls.size(); ++k)
    if (watch.verdicts[k].fate == CallFate::pending)
      ids += (ids.empty() ? "" : ",") + tx.quote(watch.calls[k].transfer_id);
  if (ids.empty()) return;
  const auto rows = tx.exec(
      "select transfer_id, attempt, claims, coalesce(lease_owner, ''), coalesce(lease_until_ms, 0) "
      "from transfer_work where transfer_id in (" +
      ids + ")");
  const auto observed_ms = epoch_us() / 1000;  // after the read: a bound on what it saw
  std::map<std::string, CallObservation> seen;
  for (const auto& row : rows)
    seen[row[0].as<std::string>()] = {true,
                                      row[1].as<std::int32_t>(),
                                      row[2].as<std::int64_t>(),
                                      row[3].as<std::string>(),
                                      row[4].as<std::int64_t>(),
                                      observed_ms,
                                      std::nullopt};
  const auto killed_ms = watch.killed_us / 1000;
  for (std::size_t k = 0; k < watch.calls.size(); ++k) {
    if (watch.verdicts[k].fate != CallFate::pending) continue;
    const auto& call = watch.calls[k];
    const auto found = seen.find(call.transfer_id);
    auto observation = found != seen.end()
                           ? found->second
                           : CallObservation{false, 0, 0, "", 0, observed_ms, std::nullopt};
    auto verdict = judge_call(call, observation, watch.owner, killed_ms, kLeaseMs);
    if (verdict.fate != CallFate::pending && !verdict.exact) {
      const auto first = tx.exec_params(
          "select ceil(extract(epoch from min(recorded_at)) * 1000)::bigint from events "
          "where stream_id = $1 and recorded_at > to_timestamp($2::double precision / 1e6)",
          "transfer-" + call.transfer_id, watch.killed_us);
      if (!first.empty() && !first[0][0].is_null())
        observation.first_event_after_kill_ms = first[0][0].as<std::int64_t>();
      verdict = judge_call(call, observation, watch.owner, killed_ms, kLeaseMs);
    }
    watch.verdicts[k] = verdict;
  }
}

}  // namespace clearing::chaos
