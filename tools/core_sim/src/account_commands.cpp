// Account commands set-wise: see account_commands.hpp for the contract.

#include "clearing/core_sim/account_commands.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>

#include "clearing/base/assert.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/prepared.hpp"

namespace clearing::core_sim {
namespace {

using eventstore::StoreErrc;
using eventstore::StoreError;
using eventstore::StoreResult;
using eventstore::Transaction;

constexpr const char* kAccountEventIdNamespace = "9b2e6c1a-4f7d-4a3b-8e5c-1d0f2a7b6c94";
constexpr std::size_t kTailPagesMax = 1000;

// The events of each listed stream after its version, one statement per page. Ordered
// by stream and version so each stream folds in order. LATERAL keeps it to an index
// probe per stream: a plain join lets the planner, which expects 100 input rows, hash
// the input and scan all of events. Prepared, and prepared again as events grows
// (prepared.hpp).
constexpr eventstore::PreparedSql kReadTails{
    "core_sim_read_tails",
    "select t.stream_id, e.version, e.type, e.data::text"
    " from jsonb_to_recordset($1::jsonb) as t(stream_id text, after bigint)"
    " cross join lateral (select version, type, data from events"
    "   where events.stream_id = t.stream_id and events.version > t.after order by version limit "
    "$2) e"
    " order by t.stream_id, e.version limit $2"};

// The account rows of a batch, from their last states: an insert from the batch, whose
// plan does not depend on it, prepared once per connection.
constexpr eventstore::PreparedSql kWriteAccounts{
    "core_sim_write_accounts",
    "insert into core_accounts (account_id, currency, balance_minor, reserved_minor)"
    " select account_id, currency, balance_minor, reserved_minor from jsonb_to_recordset($1::jsonb)"
    " as x(account_id text, currency text, balance_minor bigint, reserved_minor bigint)"
    " on conflict (account_id) do update set balance_minor = excluded.balance_minor,"
    " reserved_minor = excluded.reserved_minor, updated_at = clock_timestamp()"};

// The commands of one account in a batch, in batch order, and where they start.
struct AccountGroup {
  std::string stream;
  LoadedAccount start;
  std::vector<std::size_t> commands;
  AccountState end;  // after the current round's decisions
};

eventstore::ExpectedVersion expected_for(eventstore::StreamVersion version) {
  return version.value() == 0 ? eventstore::ExpectedVersion::no_stream()
                              : eventstore::ExpectedVersion::exactly(version);
}

// Folds every group's tail (the events after its start version) into its start.
StoreResult<void> read_tails(Transaction& tx, std::span<AccountGroup* const> groups) {
  std::map<std::string, AccountGroup*> by_stream;
  for (auto* group : groups) by_stream.emplace(group->stream, group);
  for (std::size_t page = 0; page < kTailPagesMax; ++page) {
    nlohmann::json after = nlohmann::json::array();
    for (const auto* group : groups)
      after.push_back({{"stream_id", group->stream}, {"after", group->start.version.value()}});
    const auto rows =
        eventstore::exec_prepared_here(tx, kReadTails, after.dump(), eventstore::kReadBatchMax);
    for (const auto& row : rows) {
      auto& start = by_stream.at(row[0].as<std::string>())->start;
      const auto version = row[1].as<std::int64_t>();
      const auto type = row[2].as<std::string>();
      CLEARING_ASSERT(version == start.version.value() + 1);
      tl::expected<AccountEvent, std::string> event = tl::unexpected(std::string("not JSON"));
      try {
        event = AccountCodec::decode(type, nlohmann::json::parse(row[3].c_str()))
                    .map_error([](const eventstore::DecodeError& e) { return e.message; });
      } catch (const nlohmann::json::exception& e) {
        event = tl::unexpected(std::string(e.what()));
      }
      if (!event)
        return tl::unexpected(StoreError{
            StoreErrc::corrupt_data,
            "cannot decode " + type + " in " + row[0].as<std::string>() + ": " + event.error()});
      start.state = AccountDecider::evolve(start.state, *event);
      start.version = eventstore::StreamVersion{version};
    }
    if (rows.size() < eventstore::kReadBatchMax) return {};
  }
  return tl::unexpected(
      StoreError{StoreErrc::internal, "account tails longer than the page limit"});
}

// Decides the group's commands in order on its start state: their results, their
// events (events_of, by command), and the group's end state.
void decide_group(AccountGroup& group, std::span<const AccountCommandRequest> commands,
                  std::vector<AccountCommandResult>& results,
                  std::vector<std::vector<eventstore::EventData>>& events_of) {
  group.end = group.start.state;
  for (const auto i : group.commands) {
    const auto& c = commands[i];
    events_of[i].clear();
    auto decided = AccountDecider::decide(c.command, group.end);
    if (!decided) {
      results[i] = tl::unexpected(std::move(decided.error()));
      continue;
    }
    CLEARING_ASSERT(decided->size() <= 1);  // kAccountCommandsPerAppendMax bounds the events so
    AccountCommandDone done;
    for (std::size_t k = 0; k < decided->size(); ++k) {  // k: the index among this command's events
      const auto& event = (*decided)[k];
      eventstore::EventId id{c.context.idempotency_seed.empty()
                                 ? base::new_uuid()
                                 : base::derived_uuid(kAccountEventIdNamespace,
                                                      c.context.idempotency_seed + "|" +
                                                          group.stream + "|" + std::to_string(k))};
      done.event_ids.push_back(id);
      events_of[i].push_back({std::move(id), std::string(AccountCodec::event_type(event)),
                              AccountCodec::encode(event),
                              eventstore::Metadata{c.context.correlation_id, c.context.causation_id,
                                                   c.context.source, c.context.extra}});
      group.end = AccountDecider::evolve(group.end, event);
    }
    done.state = group.end;
    results[i] = std::move(done);
  }
}

// One account's events in one append_batch.
struct AppendPart {
  AccountGroup* group = nullptr;
  std::vector<std::size_t> commands;
  std::vector<eventstore::EventData> events;
  std::set<std::string> order_keys;  // of its commands
};
using Segment = std::vector<AppendPart>;  // one append_batch, written in part order

// Splits the decided events, in command order, into segments: append_batch writes an
// account's events together, so a command joins its account's part of the current
// segment unless a later part holds a command with the same order key (which must
// stay before it); then a new segment starts. Without order keys: one segment.
std::vector<Segment> segments_of(std::span<const AccountCommandRequest> commands,
                                 std::span<AccountGroup* const> group_of_command,
                                 std::vector<std::vector<eventstore::EventData>>& events_of) {
  std::vector<Segment> segments(1);
  std::map<const AccountGroup*, std::size_t> part_of;  // in the current segment
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (group_of_command[i] == nullptr || events_of[i].empty()) continue;
    const auto& key = commands[i].order_key;
    auto found = part_of.find(group_of_command[i]);
    if (found != part_of.end() && !key.empty()) {
      auto& segment = segments.back();
      for (auto k = found->second + 1; k < segment.size(); ++k)
        if (segment[k].order_keys.count(key) > 0) {
          segments.emplace_back();
          part_of.clear();
          found = part_of.end();
          break;
        }
    }
    if (found == part_of.end()) {
      found = part_of.emplace(group_of_command[i], segments.back().size()).first;
      segments.back().push_back(AppendPart{group_of_command[i], {}, {}, {}});
    }
    auto& part = segments.back()[found->second];
    part.commands.push_back(i);
    for (auto& event : events_of[i]) part.events.push_back(std::move(event));
    if (!key.empty()) part.order_keys.insert(key);
  }
  if (segments.back().empty()) segments.pop_back();
  return segments;
}

// One chunk (at most kAccountCommandsPerAppendMax commands): read, decide, append,
// and again for the accounts that moved meanwhile (when no command has an order key:
// a part written again later would break the order of the others).
StoreResult<int> handle_chunk(eventstore::EventStore& store, Transaction& tx,
                              std::span<const AccountCommandRequest> commands,
                              const AccountCache& cache, AccountStates& local,
                              const BeforeAccountAppend& before_append,
                              std::vector<AccountCommandResult>& results) {
  std::vector<AccountGroup> groups;
  std::map<std::string, std::size_t> group_index;
  std::vector<std::size_t> index_of_command(commands.size());
  bool ordered = false;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    ordered = ordered || !commands[i].order_key.empty();
    auto stream = account_stream_name(commands[i].account_id);
    auto [it, inserted] = group_index.try_emplace(stream, groups.size());
    if (inserted) {
      const auto known = local.find(stream);
      auto start = known != local.end() ? known->second : cache.get(stream);
      groups.push_back({std::move(stream), std::move(start), {}, {}});
    }
    groups[it->second].commands.push_back(i);
    index_of_command[i] = it->second;
  }
  // A keyed batch cannot redo a moved account in place: it keeps them from moving.
  if (ordered) {
    std::vector<eventstore::StreamId> streams;
    for (const auto& group : groups) streams.emplace_back(group.stream);
    if (auto locked = store.lock_streams(tx, streams); !locked)
      return tl::unexpected(locked.error());
  }
  std::vector<AccountGroup*> pending;
  for (auto& group : groups) pending.push_back(&group);
  std::vector<std::vector<eventstore::EventData>> events_of(commands.size());

  StoreError conflict{StoreErrc::internal, "no round"};
  for (int round = 1; round <= kAccountConflictRoundsMax; ++round) {
    if (auto read = read_tails(tx, pending); !read) return tl::unexpected(read.error());
    std::vector<AccountGroup*> group_of_command(commands.size(), nullptr);
    std::map<const AccountGroup*, std::int64_t> version;  // as the appends move it
    for (auto* group : pending) {
      decide_group(*group, commands, results, events_of);
      for (const auto i : group->commands) group_of_command[i] = group;
      version[group] = group->start.version.value();
    }
    const auto segments = segments_of(commands, group_of_command, events_of);
    if (before_append && !segments.empty()) before_append(round);
    std::set<const AccountGroup*> redo, forget;
    for (const auto& segment : segments) {
      std::vector<eventstore::StreamAppend> appends;
      for (const auto& part : segment)
        appends.push_back({eventstore::StreamId{part.group->stream},
                           expected_for(eventstore::StreamVersion{version[part.group]}),
                           part.events});
      auto appended = store.append_batch(tx, appends);
      if (!appended) return tl::unexpected(appended.error());
      CLEARING_ASSERT(appended->size() == appends.size());
      for (std::size_t k = 0; k < segment.size(); ++k) {
        const auto& part = segment[k];
        const auto& answer = (*appended)[k];
        if (!answer) {
          if (answer.error().code != StoreErrc::wrong_expected_version || ordered)
            return tl::unexpected(answer.error());
          CLEARING_ASSERT(segments.size() == 1);
          conflict = answer.error();
          redo.insert(part.group);  // decided again on its tail, next round
          continue;
        }
        if (answer->already_appended) {
          // Every id is stored already, yet the tail did not show them: what the
          // commands decided was not written now. Report no new events and forget the
          // state, so a later use starts from the cache again.
          if (segments.size() > 1)
            return tl::unexpected(
                StoreError{StoreErrc::internal, "ids stored already in " + part.group->stream});
          for (const auto i : part.commands)
            if (results[i]) results[i]->event_ids.clear();
          forget.insert(part.group);
          continue;
        }
        const auto count = static_cast<std::int64_t>(part.events.size());
        CLEARING_ASSERT(answer->next_expected_version.value() == version[part.group] + count);
        version[part.group] = answer->next_expected_version.value();
      }
    }
    std::vector<AccountGroup*> again;
    for (auto* group : pending) {
      if (redo.count(group) > 0) {
        again.push_back(group);
        continue;
      }
      if (forget.count(group) > 0) {
        local.erase(group->stream);
        continue;
      }
      local[group->stream] = LoadedAccount{group->end, eventstore::StreamVersion{version[group]}};
    }
    if (again.empty()) return round - 1;
    pending = std::move(again);
  }
  return tl::unexpected(conflict);
}

}  // namespace

LoadedAccount AccountCache::get(const std::string& stream) const {
  std::lock_guard lock(mutex_);
  const auto it = states_.find(stream);
  if (it == states_.end())
    return LoadedAccount{AccountDecider::initial_state(), eventstore::StreamVersion{0}};
  return it->second;
}

void AccountCache::merge(const AccountStates& committed) {
  std::lock_guard lock(mutex_);
  for (const auto& [stream, loaded] : committed) {
    auto [it, inserted] = states_.try_emplace(stream, loaded);
    if (!inserted && it->second.version < loaded.version) it->second = loaded;
  }
}

void AccountProjection::add(const AccountState& state) {
  if (!state.opened) return;
  rows_[state.account_id] =
      Row{std::string(state.currency.code()), state.balance_minor, state.reserved_minor};
}

void AccountProjection::write(Transaction& tx) const {
  if (rows_.empty()) return;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [id, row] : rows_)
    rows.push_back({{"account_id", id},
                    {"currency", row.currency},
                    {"balance_minor", row.balance_minor},
                    {"reserved_minor", row.reserved_minor}});
  eventstore::exec_prepared_here(tx, kWriteAccounts, rows.dump());
}

StoreResult<AccountBatchResult> handle_account_commands(
    eventstore::EventStore& store, Transaction& tx, std::span<const AccountCommandRequest> commands,
    const AccountCache& cache, AccountStates& local, const BeforeAccountAppend& before_append) {
  AccountBatchResult out;
  out.results.assign(commands.size(), tl::unexpected(AccountRejection{
                                          AccountRejectionCode::account_not_open, "not decided"}));
  for (std::size_t from = 0; from < commands.size(); from += kAccountCommandsPerAppendMax) {
    const auto count = std::min(kAccountCommandsPerAppendMax, commands.size() - from);
    std::vector<AccountCommandResult> chunk_results(count, out.results.front());
    auto rounds = handle_chunk(store, tx, commands.subspan(from, count), cache, local,
                               before_append, chunk_results);
    if (!rounds) return tl::unexpected(rounds.error());
    out.conflict_rounds += *rounds;
    std::move(chunk_results.begin(), chunk_results.end(),
              out.results.begin() + static_cast<std::ptrdiff_t>(from));
  }
  return out;
}

}  // namespace clearing::core_sim
