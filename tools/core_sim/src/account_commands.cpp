// Account commands set-wise: see account_commands.hpp for the contract.

#include "clearing/core_sim/account_commands.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/assert.hpp"
#include "clearing/base/uuid.hpp"

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
// the input and scan all of events.
constexpr const char* kReadTails =
    "select t.stream_id, e.version, e.type, e.data::text"
    " from jsonb_to_recordset($1::jsonb) as t(stream_id text, after bigint)"
    " cross join lateral (select version, type, data from events"
    "   where events.stream_id = t.stream_id and events.version > t.after order by version limit "
    "$2) e"
    " order by t.stream_id, e.version limit $2";

// The commands of one account in a batch, in batch order, and where they start.
struct AccountGroup {
  std::string stream;
  LoadedAccount start;
  std::vector<std::size_t> commands;
  // The current round's decision: the events to append and the state after them.
  std::vector<eventstore::EventData> events;
  AccountState end;
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
    const auto rows = tx.exec_params(kReadTails, after.dump(), eventstore::kReadBatchMax);
    for (const auto& row : rows) {
      auto& start = by_stream.at(row[0].as<std::string>())->start;
      const auto version = row[1].as<std::int64_t>();
      const auto type = row[2].as<std::string>();
      CLEARING_ASSERT(version == start.version.value() + 1);
      tl::expected<AccountEvent, std::string> event = tl::unexpected(std::string("not JSON"));
      try {
        event = AccountCodec::decode(type, nlohmann::json::parse(row[3].c_str()));
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

// Decides the group's commands in order on its start state: their results, and the
// group's events and end state.
void decide_group(AccountGroup& group, std::span<const AccountCommandRequest> commands,
                  std::vector<AccountCommandResult>& results) {
  group.events.clear();
  group.end = group.start.state;
  for (const auto i : group.commands) {
    const auto& c = commands[i];
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
      group.events.push_back({std::move(id), std::string(AccountCodec::event_type(event)),
                              AccountCodec::encode(event),
                              eventstore::Metadata{c.context.correlation_id, c.context.causation_id,
                                                   c.context.source, nullptr}});
      group.end = AccountDecider::evolve(group.end, event);
    }
    done.state = group.end;
    results[i] = std::move(done);
  }
}

// One chunk (at most kAccountCommandsPerAppendMax commands): read, decide, append,
// and again for the accounts that moved meanwhile.
StoreResult<int> handle_chunk(eventstore::EventStore& store, Transaction& tx,
                              std::span<const AccountCommandRequest> commands,
                              const AccountCache& cache, AccountStates& local,
                              const BeforeAccountAppend& before_append,
                              std::vector<AccountCommandResult>& results) {
  std::vector<AccountGroup> groups;
  std::map<std::string, std::size_t> group_of;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    auto stream = account_stream_name(commands[i].account_id);
    auto [it, inserted] = group_of.try_emplace(stream, groups.size());
    if (inserted) {
      const auto known = local.find(stream);
      auto start = known != local.end() ? known->second : cache.get(stream);
      groups.push_back({std::move(stream), std::move(start), {}, {}, {}});
    }
    groups[it->second].commands.push_back(i);
  }
  std::vector<AccountGroup*> pending;
  for (auto& group : groups) pending.push_back(&group);

  StoreError conflict{StoreErrc::internal, "no round"};
  for (int round = 1; round <= kAccountConflictRoundsMax; ++round) {
    if (auto read = read_tails(tx, pending); !read) return tl::unexpected(read.error());
    std::vector<eventstore::StreamAppend> appends;
    std::vector<AccountGroup*> appending;
    for (auto* group : pending) {
      decide_group(*group, commands, results);
      if (group->events.empty()) {
        local[group->stream] = group->start;  // nothing new: the state read is the state
        continue;
      }
      appends.push_back({eventstore::StreamId{group->stream}, expected_for(group->start.version),
                         std::move(group->events)});
      appending.push_back(group);
    }
    pending.clear();
    if (appends.empty()) return round - 1;
    if (before_append) before_append(round);
    auto appended = store.append_batch(tx, appends);
    if (!appended) return tl::unexpected(appended.error());
    CLEARING_ASSERT(appended->size() == appends.size());
    for (std::size_t k = 0; k < appends.size(); ++k) {
      auto* group = appending[k];
      const auto& answer = (*appended)[k];
      if (!answer) {
        if (answer.error().code != StoreErrc::wrong_expected_version)
          return tl::unexpected(answer.error());
        conflict = answer.error();
        pending.push_back(group);  // decided again on its tail, next round
        continue;
      }
      const auto count = static_cast<std::int64_t>(appends[k].events.size());
      if (answer->already_appended) {
        // Every id is stored already, yet the tail did not show them: what the
        // commands decided was not written now. Report no new events and forget the
        // state, so a later use starts from the cache again.
        for (const auto i : group->commands)
          if (results[i]) results[i]->event_ids.clear();
        local.erase(group->stream);
        continue;
      }
      CLEARING_ASSERT(answer->next_expected_version.value() ==
                      group->start.version.value() + count);
      local[group->stream] = LoadedAccount{group->end, answer->next_expected_version};
    }
    if (pending.empty()) return round - 1;
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
  tx.exec_params(
      "insert into core_accounts (account_id, currency, balance_minor, reserved_minor)"
      " select account_id, currency, balance_minor, reserved_minor from "
      "jsonb_to_recordset($1::jsonb)"
      " as x(account_id text, currency text, balance_minor bigint, reserved_minor bigint)"
      " on conflict (account_id) do update set balance_minor = excluded.balance_minor,"
      " reserved_minor = excluded.reserved_minor, updated_at = clock_timestamp()",
      rows.dump());
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
