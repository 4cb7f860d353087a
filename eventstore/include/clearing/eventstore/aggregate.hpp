#pragma once
// Command handling for a Decider: load (fold), decide, append with the expected
// version, and on a concurrency conflict load again and decide again, a bounded number
// of times. A rejection is a value, not an exception.
//
// Event ids: when the context carries an idempotency seed (for example the id of the
// external message or event that caused the command), the new events' ids are derived
// from it, so the same command retried after an unknown commit writes the same ids and
// the store's idempotent append absorbs it.

#include <map>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/decider.hpp"
#include "clearing/eventstore/event_store.hpp"

namespace clearing::eventstore {

inline constexpr int kConflictRetriesMax = 5;

struct CommandContext {
  std::string correlation_id;
  std::string causation_id;
  nlohmann::json source;           // null or {"stream", "partition", "seq"}
  std::string idempotency_seed;    // empty: random event ids
  nlohmann::json extra = nullptr;  // further metadata (e.g. what a correction corrects)
};

template <class D>
struct Loaded {
  typename D::State state;
  StreamVersion version{0};
};

template <class D>
struct Decision {
  std::vector<typename D::Event> events;  // empty: the command was already done
  std::vector<EventId> event_ids;         // ids of the events written, same order
  typename D::State state;                // after the events
  StreamVersion version{0};               // after the events
};

template <class D>
using CommandFailure = std::variant<typename D::Rejection, StoreError>;

template <class D>
using CommandResult = tl::expected<Decision<D>, CommandFailure<D>>;

// One command of a batch (Aggregate::handle_batch).
template <class D>
struct BatchCommand {
  StreamId stream;
  typename D::Command command;
  CommandContext context;
  const Loaded<D>* assumed = nullptr;  // as in handle(..., assumed); null: load the stream
};

template <Decider D, class Codec>
class Aggregate {
 public:
  explicit Aggregate(EventStore& store) : store_(store) {}

  StoreResult<Loaded<D>> load(Transaction& tx, const StreamId& stream) {
    Loaded<D> loaded{D::initial_state(), StreamVersion{0}};
    StreamVersion from{1};
    for (;;) {
      auto page = store_.read_stream(tx, stream, from, kReadBatchMax);
      if (!page) return tl::unexpected(page.error());
      for (const auto& recorded : *page) {
        auto event = Codec::decode(recorded.type, recorded.schema_version, recorded.data);
        if (!event)
          return tl::unexpected(StoreError{
              StoreErrc::corrupt_data, "cannot decode " + recorded.type + " at " + stream.value() +
                                           "@" + std::to_string(recorded.version.value()) + ": " +
                                           event.error().message});
        loaded.state = D::evolve(loaded.state, *event);
        loaded.version = recorded.version;
      }
      if (page->size() < kReadBatchMax) return loaded;
      from = StreamVersion{loaded.version.value() + 1};
    }
  }

  // Loads several streams with one read (EventStore::read_streams). A stream that did
  // not fit in the read, or that does not decode, is left out of the result: the caller
  // loads it on its own (and meets its error there, with its own command).
  StoreResult<std::map<StreamId, Loaded<D>>> load_many(Transaction& tx,
                                                       std::span<const StreamId> streams) {
    std::map<StreamId, Loaded<D>> out;
    auto page = store_.read_streams(tx, streams, kReadBatchMax);
    if (!page) return tl::unexpected(page.error());
    std::set<StreamId> left_out;
    for (const auto& recorded : *page) {
      if (left_out.count(recorded.stream_id)) continue;
      auto& loaded =
          out.try_emplace(recorded.stream_id, Loaded<D>{D::initial_state(), StreamVersion{0}})
              .first->second;
      auto event = Codec::decode(recorded.type, recorded.schema_version, recorded.data);
      if (!event || recorded.version.value() != loaded.version.value() + 1) {
        left_out.insert(recorded.stream_id);
        out.erase(recorded.stream_id);
        continue;
      }
      loaded.state = D::evolve(loaded.state, *event);
      loaded.version = recorded.version;
    }
    // Cut short: the last stream read may miss events, and the ones after it were not read.
    const bool cut = page->size() >= kReadBatchMax;
    const std::string* last = page->empty() ? nullptr : &page->back().stream_id.value();
    if (cut) out.erase(page->back().stream_id);
    for (const auto& stream : streams) {
      if (out.count(stream) || left_out.count(stream)) continue;
      if (cut && last != nullptr && !(stream.value() < *last)) continue;
      out.emplace(stream, Loaded<D>{D::initial_state(), StreamVersion{0}});  // no events yet
    }
    return out;
  }

  // Inside the caller's transaction. Conflicts are retried here: the append does not
  // poison the transaction, and in read-committed mode the reload sees the winner.
  CommandResult<D> handle(Transaction& tx, const StreamId& stream,
                          const typename D::Command& command, const CommandContext& context) {
    return handle_from(tx, stream, command, context, nullptr);
  }

  // The same, deciding first on `assumed` instead of loading the stream: its state at its
  // version as the caller read it in this transaction (load_many) or knows it (a new
  // stream: initial_state at version 0). The assumption is checked, never trusted: the
  // append's expected version fails if the stream moved, and a decision that appends
  // nothing (no events, a rejection, or events stored already) is compared with the
  // stream's version; either way the stream is then loaded and the command decided again.
  CommandResult<D> handle(Transaction& tx, const StreamId& stream,
                          const typename D::Command& command, const CommandContext& context,
                          const Loaded<D>& assumed) {
    return handle_from(tx, stream, command, context, &assumed);
  }

  // Many commands in the caller's transaction, each answered as `handle` would answer it,
  // in order. The first command of each stream that comes with an assumption and
  // decides events on it is appended with the others in one EventStore::append_batch;
  // every other command (no assumption, a later command of a stream already in the
  // batch, a decision that appends nothing, an append the batch did not write) is then
  // handled one by one in batch order, on a load, after the batch's appends. The same
  // commands therefore reach the same states and event ids as handled one at a time.
  std::vector<CommandResult<D>> handle_batch(Transaction& tx,
                                             std::span<const BatchCommand<D>> commands) {
    std::vector<CommandResult<D>> results(
        commands.size(),
        tl::unexpected(CommandFailure<D>{StoreError{StoreErrc::internal, "not handled"}}));
    std::vector<bool> one_by_one(commands.size(), false);
    std::vector<std::size_t> batched;  // indexes, one per stream
    std::vector<StreamAppend> appends;
    std::set<StreamId> seen;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const auto& c = commands[i];
      const bool first = seen.insert(c.stream).second;
      if (!first || c.assumed == nullptr) {
        one_by_one[i] = true;
        continue;
      }
      auto decided = D::decide(c.command, c.assumed->state);
      if (!decided || decided->empty()) {
        one_by_one[i] = true;  // the assumption must be checked: the single path does it
        continue;
      }
      Decision<D> decision{std::move(*decided), {}, c.assumed->state, c.assumed->version};
      appends.push_back(StreamAppend{c.stream, expected_for(c.assumed->version),
                                     event_data(c.stream, decision, c.context)});
      results[i] = std::move(decision);
      batched.push_back(i);
    }
    if (!appends.empty()) {
      auto appended = store_.append_batch(tx, appends);
      for (std::size_t k = 0; k < batched.size(); ++k) {
        const auto i = batched[k];
        const auto* one = appended ? &(*appended)[k] : nullptr;
        // Not written (a conflict, ids stored already, or a batch the store refused as a
        // whole): the single path loads the stream and decides again, or meets the error.
        if (one == nullptr || !*one || (*one)->already_appended) {
          one_by_one[i] = true;
          continue;
        }
        auto& decision = *results[i];
        for (const auto& event : decision.events) decision.state = D::evolve(decision.state, event);
        decision.version = (*one)->next_expected_version;
      }
    }
    for (std::size_t i = 0; i < commands.size(); ++i)
      if (one_by_one[i])
        results[i] = handle(tx, commands[i].stream, commands[i].command, commands[i].context);
    return results;
  }

  // In a transaction of its own, retried on retryable store errors.
  CommandResult<D> handle(const StreamId& stream, const typename D::Command& command,
                          const CommandContext& context) {
    CommandResult<D> out =
        tl::unexpected(CommandFailure<D>{StoreError{StoreErrc::internal, "not run"}});
    auto status = store_.pool().transact_with_retry([&](Transaction& tx) -> StoreResult<void> {
      out = handle(tx, stream, command, context);
      if (!out && std::holds_alternative<StoreError>(out.error()))
        return tl::unexpected(std::get<StoreError>(out.error()));
      return {};  // a rejection commits nothing, but is not a database failure
    });
    if (!status && out) return tl::unexpected(CommandFailure<D>{status.error()});
    return out;
  }

 private:
  CommandResult<D> handle_from(Transaction& tx, const StreamId& stream,
                               const typename D::Command& command, const CommandContext& context,
                               const Loaded<D>* assumed) {
    for (int attempt = 1;; ++attempt) {
      const bool assuming = attempt == 1 && assumed != nullptr;
      auto loaded = assuming ? StoreResult<Loaded<D>>(*assumed) : load(tx, stream);
      if (!loaded) return tl::unexpected(CommandFailure<D>{loaded.error()});
      // Only an assumption can be stale here; a load is as fresh as this transaction sees.
      auto assumption_holds = [&]() -> StoreResult<bool> {
        if (!assuming) return true;
        auto version = store_.stream_version(tx, stream);
        if (!version) return tl::unexpected(version.error());
        return *version == loaded->version;
      };
      auto decided = D::decide(command, loaded->state);
      if (!decided || decided->empty()) {
        auto holds = assumption_holds();
        if (!holds) return tl::unexpected(CommandFailure<D>{holds.error()});
        if (!*holds) continue;
        if (!decided) return tl::unexpected(CommandFailure<D>{decided.error()});
        return Decision<D>{{}, {}, loaded->state, loaded->version};
      }
      Decision<D> decision{std::move(*decided), {}, loaded->state, loaded->version};
      const auto data = event_data(stream, decision, context);
      auto appended = store_.append(tx, stream, expected_for(loaded->version), data);
      // An assumption that did not append cleanly (a conflict, or ids stored already in
      // full or in part) says the stream holds more than assumed: decide on a load.
      if (assuming && (!appended || appended->already_appended)) {
        const auto code = appended ? StoreErrc::wrong_expected_version : appended.error().code;
        if (code == StoreErrc::wrong_expected_version || code == StoreErrc::partially_appended)
          continue;
      }
      if (appended) {
        for (const auto& event : decision.events) decision.state = D::evolve(decision.state, event);
        decision.version = appended->next_expected_version;
        if (appended->already_appended) decision.events.clear();
        return decision;
      }
      if (appended.error().code != StoreErrc::wrong_expected_version ||
          attempt >= kConflictRetriesMax)
        return tl::unexpected(CommandFailure<D>{appended.error()});
    }
  }

  // The decision's events as the store takes them; their ids go into decision.event_ids.
  static std::vector<EventData> event_data(const StreamId& stream, Decision<D>& decision,
                                           const CommandContext& context) {
    std::vector<EventData> data;
    data.reserve(decision.events.size());
    for (std::size_t i = 0; i < decision.events.size(); ++i) {
      const auto& event = decision.events[i];
      EventId id{context.idempotency_seed.empty()
                     ? base::new_uuid()
                     : base::derived_uuid(kEventIdNamespace, context.idempotency_seed + "|" +
                                                                 stream.value() + "|" +
                                                                 std::to_string(i))};
      decision.event_ids.push_back(id);
      data.push_back(EventData{
          std::move(id), std::string(Codec::event_type(event)), Codec::encode(event),
          Metadata{context.correlation_id, context.causation_id, context.source, context.extra},
          Codec::schema_version(event)});
    }
    return data;
  }

  static constexpr const char* kEventIdNamespace = "5f0c2a7e-3b1d-4e8a-9c6f-2d4b8a1e7c30";
  static ExpectedVersion expected_for(StreamVersion v) {
    return v.value() == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(v);
  }
  EventStore& store_;
};

}  // namespace clearing::eventstore
