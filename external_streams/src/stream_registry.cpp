#include "clearing/external_streams/stream_registry.hpp"

#include <map>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"

namespace clearing::external_streams {
namespace {

using eventstore::Checkpoint;
using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;

std::optional<base::Timestamp> timestamp_from(const pqxx::field& epoch_ms) {
  if (epoch_ms.is_null()) return std::nullopt;
  return base::Timestamp{std::chrono::milliseconds{epoch_ms.as<std::int64_t>()}};
}

constexpr const char* kRecordColumns =
    "stream, derivation, partitions, phase, sunset::text,"
    " (extract(epoch from deprecated_at) * 1000)::bigint,"
    " (extract(epoch from registered_at) * 1000)::bigint,"
    " (extract(epoch from live_since) * 1000)::bigint";

StreamRecord record_from(const pqxx::row& row) {
  StreamRecord r;
  r.name = row[0].as<std::string>();
  r.derivation = row[1].as<std::string>();
  r.partitions = row[2].as<std::int32_t>();
  r.phase = base::value_in(kStreamPhaseNames, row[3].as<std::string>()).value_or(StreamPhase::live);
  if (!row[4].is_null()) r.sunset = row[4].as<std::string>();
  r.deprecated_at = timestamp_from(row[5]);
  r.registered_at = timestamp_from(row[6]).value_or(base::Timestamp{});
  r.live_since = timestamp_from(row[7]);
  return r;
}

Checkpoint checkpoint_from(const pqxx::row& row) {
  return {row[0].as<std::uint64_t>(), eventstore::GlobalPosition{row[1].as<std::int64_t>()}};
}

// The checkpoint a backfill starting at `from` begins after: the last event recorded
// before it, in commit order (zero: from the beginning).
Checkpoint backfill_start(Transaction& tx, const std::optional<base::Timestamp>& from) {
  if (!from) return {};
  const auto rows = tx.exec_params(
      "select transaction_id::text, position from events where recorded_at < $1::timestamptz"
      " order by transaction_id desc, position desc limit 1",
      base::format_timestamp(*from));
  return rows.empty() ? Checkpoint{} : checkpoint_from(rows[0]);
}

// A stream written before the registry existed: the live derivation derived it.
std::optional<std::int32_t> partitions_written(Transaction& tx, const std::string& stream) {
  const auto rows = tx.exec_params(
      "select count(*) from external_stream_seqs where stream = $1 having count(*) > 0", stream);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::int32_t>();
}

// A registered stream checked against its setting, and its deprecation and retirement
// applied. A refusal names the stream and what to do.
std::optional<RegistryError> apply_setting(Transaction& tx, const StreamRecord& known,
                                           const StreamSetting& setting) {
  const auto& name = setting.spec.name;
  if (known.partitions != setting.spec.partitions)
    return RegistryError{
        RegistryErrc::partitions_changed,
        "stream " + name + " was registered with " + std::to_string(known.partitions) +
            " partitions and is configured with " + std::to_string(setting.spec.partitions) +
            ": a stream's partition count is fixed (its entities would move to other "
            "partitions); publish a new version of the stream with the new count instead"};
  if (known.derivation != setting.derivation)
    return RegistryError{RegistryErrc::derivation_changed,
                         "stream " + name + " was registered with derivation " + known.derivation +
                             " and is configured with " + setting.derivation +
                             ": what a stream carries is fixed; publish a new version instead"};
  if (known.phase == StreamPhase::retired && !setting.retired)
    return RegistryError{RegistryErrc::unretired,
                         "stream " + name +
                             " is retired and cannot derive again (its history would have a "
                             "gap): keep \"retired\": true, or publish a new version"};
  tx.exec_params(
      "update derived_streams set sunset = $2::date,"
      " deprecated_at = case when $2::date is null then null"
      "   else coalesce(deprecated_at, now()) end,"
      " phase = case when $3 then 'retired' else phase end,"
      " retired_at = case when $3 then coalesce(retired_at, now()) else retired_at end"
      " where stream = $1",
      name, setting.sunset, setting.retired);
  return std::nullopt;
}

}  // namespace

std::string backfill_subscription_name(std::string_view stream) {
  return "derive-backfill/" + std::string(stream);
}

std::string_view to_string(StreamState state) noexcept {
  return base::name_in(kStreamStateNames, state).value_or("unknown");
}

StreamState state_of(const StreamRecord& record) noexcept {
  switch (record.phase) {
    case StreamPhase::backfilling:
      return StreamState::backfilling;
    case StreamPhase::retired:
      return StreamState::retired;
    case StreamPhase::live:
      break;
  }
  return record.sunset ? StreamState::deprecated : StreamState::live;
}

StoreResult<Checkpoint> lock_live_checkpoint(Transaction& tx) {
  const std::string name(kLiveDerivation);
  tx.exec_params(
      "insert into subscription_checkpoints (name, transaction_id, position)"
      " values ($1, '0', 0) on conflict (name) do nothing",
      name);
  const auto rows = tx.exec_params(
      "select transaction_id::text, position from subscription_checkpoints where name = $1"
      " for update",
      name);
  return checkpoint_from(rows[0]);
}

StoreResult<std::vector<StreamRecord>> read_streams(Transaction& tx) {
  std::vector<StreamRecord> out;
  for (const auto& row :
       tx.exec(std::string("select ") + kRecordColumns + " from derived_streams order by stream"))
    out.push_back(record_from(row));
  return out;
}

StoreResult<std::optional<StreamRecord>> read_stream(Transaction& tx, const std::string& name) {
  const auto rows = tx.exec_params(
      std::string("select ") + kRecordColumns + " from derived_streams where stream = $1", name);
  if (rows.empty()) return std::optional<StreamRecord>();
  return std::optional<StreamRecord>(record_from(rows[0]));
}

StoreResult<std::vector<std::string>> live_stream_names(Transaction& tx) {
  std::vector<std::string> out;
  for (const auto& row : tx.exec("select stream from derived_streams where phase = 'live'"))
    out.push_back(row[0].as<std::string>());
  return out;
}

StoreResult<void> hand_over(Transaction& tx, const std::string& stream) {
  tx.exec_params(
      "update derived_streams set phase = 'live', live_since = now()"
      " where stream = $1 and phase = 'backfilling'",
      stream);
  return {};
}

StoreResult<bool> hand_over_if_caught_up(eventstore::ConnectionPool& pool,
                                         const std::string& stream) {
  return pool.transact([&](Transaction& tx) -> StoreResult<bool> {
    // The backfill's row first, then the live one: the order a backfill batch takes them.
    const auto own = tx.exec_params(
        "select transaction_id::text, position from subscription_checkpoints where name = $1"
        " for update",
        backfill_subscription_name(stream));
    auto live = lock_live_checkpoint(tx);
    if (!live) return tl::unexpected(live.error());
    const auto phase =
        tx.exec_params("select phase from derived_streams where stream = $1 for update", stream);
    if (phase.empty()) return false;
    if (phase[0][0].as<std::string>() != "backfilling")
      return phase[0][0].as<std::string>() == "live";
    if (own.empty() || checkpoint_from(own[0]) < *live) return false;
    if (auto done = hand_over(tx, stream); !done) return tl::unexpected(done.error());
    return true;
  });
}

tl::expected<std::vector<StreamRecord>, RegistryError> register_streams(
    eventstore::ConnectionPool& pool, std::span<const StreamSetting> settings) {
  std::optional<RegistryError> refused;
  auto registered = pool.transact([&](Transaction& tx) -> StoreResult<std::vector<StreamRecord>> {
    auto live = lock_live_checkpoint(tx);
    if (!live) return tl::unexpected(live.error());
    const bool live_has_moved = *live != Checkpoint{};
    auto records = read_streams(tx);
    if (!records) return tl::unexpected(records.error());
    std::map<std::string, StreamRecord> known;
    for (auto& r : *records) known.emplace(r.name, std::move(r));

    for (const auto& setting : settings) {
      const auto& name = setting.spec.name;
      if (!known.count(name)) {
        if (setting.retired) {
          refused = RegistryError{RegistryErrc::born_retired,
                                  "stream " + name +
                                      " is new and configured as retired: a stream is retired "
                                      "only after it was published"};
          return tl::unexpected(StoreError{StoreErrc::invalid_argument, refused->message});
        }
        const auto written = partitions_written(tx, name);
        const bool backfill = live_has_moved && !written;
        tx.exec_params(
            "insert into derived_streams (stream, derivation, partitions, phase, live_since)"
            " values ($1, $2, $3, $4, case when $4 = 'live' then now() end)",
            name, setting.derivation, written.value_or(setting.spec.partitions),
            backfill ? "backfilling" : "live");
        if (backfill) {
          const auto start = backfill_start(tx, setting.backfill_from);
          tx.exec_params(
              "insert into subscription_checkpoints (name, transaction_id, position)"
              " values ($1, $2::text::xid8, $3) on conflict (name) do update"
              " set transaction_id = excluded.transaction_id, position = excluded.position",
              backfill_subscription_name(name), std::to_string(start.transaction_id),
              start.position.value());
        }
        auto inserted = read_stream(tx, name);
        if (!inserted) return tl::unexpected(inserted.error());
        CLEARING_ASSERT(inserted->has_value());  // inserted above, in this transaction
        known.emplace(name, std::move(**inserted));
      }
      if (auto problem = apply_setting(tx, known.at(name), setting)) {
        refused = std::move(problem);
        return tl::unexpected(StoreError{StoreErrc::invalid_argument, refused->message});
      }
      if (auto ensured = ensure_stream_partitions(tx, setting.spec); !ensured)
        return tl::unexpected(ensured.error());
    }
    return read_streams(tx);
  });
  if (refused) return tl::unexpected(std::move(*refused));
  if (!registered)
    return tl::unexpected(RegistryError{RegistryErrc::database, registered.error().message});
  return std::move(*registered);
}

StoreResult<std::vector<StreamProgress>> read_stream_progress(Transaction& tx) {
  const auto live_rows = tx.exec_params(
      "select coalesce(max(position), 0) from subscription_checkpoints where name = $1",
      std::string(kLiveDerivation));
  const auto live_position = live_rows[0][0].as<std::int64_t>();
  std::vector<StreamProgress> out;
  for (const auto& row :
       tx.exec_params(std::string("select ") + kRecordColumns +
                          ", coalesce((select sum(s.head) from external_stream_seqs s"
                          "   where s.stream = d.stream), 0)::bigint,"
                          " coalesce((select sum(p.published) from external_stream_published p"
                          "   where p.stream = d.stream), 0)::bigint,"
                          " coalesce((select c.position from subscription_checkpoints c"
                          "   where c.name = $1 || d.stream), 0)"
                          " from derived_streams d order by d.stream",
                      backfill_subscription_name(""))) {
    StreamProgress p;
    p.record = record_from(row);
    p.head = row[8].as<std::int64_t>();
    p.published = row[9].as<std::int64_t>();
    p.live_position = live_position;
    p.position = p.record.phase == StreamPhase::backfilling ? row[10].as<std::int64_t>()
                 : p.record.phase == StreamPhase::live      ? live_position
                                                            : 0;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace clearing::external_streams
