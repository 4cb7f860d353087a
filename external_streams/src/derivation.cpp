#include "clearing/external_streams/derivation.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <unordered_map>

#include "clearing/external_streams/stream_registry.hpp"
#include "clearing/external_streams/trace_metadata.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::external_streams {
namespace {

using Json = nlohmann::json;

// The first events of the last `capacity` streams seen, oldest dropped first.
class Openings {
 public:
  explicit Openings(std::size_t capacity) : capacity_(capacity) {}

  void remember(const eventstore::RecordedEvent& e) {
    if (capacity_ == 0 || e.version.value() != 1) return;
    if (!by_stream_.emplace(e.stream_id.value(), e).second) return;  // a batch handled again
    order_.push_back(e.stream_id.value());
    if (order_.size() > capacity_) {
      by_stream_.erase(order_.front());
      order_.pop_front();
    }
  }

  // The stream's first event of `type`, when the stream's first event is of that type.
  const eventstore::RecordedEvent* first_of_type(const std::string& stream,
                                                 const std::string& type) const {
    const auto it = by_stream_.find(stream);
    return it != by_stream_.end() && it->second.type == type ? &it->second : nullptr;
  }

 private:
  std::size_t capacity_;
  std::unordered_map<std::string, eventstore::RecordedEvent> by_stream_;
  std::deque<std::string> order_;
};

struct HandlerState {
  explicit HandlerState(std::size_t openings_kept) : openings(openings_kept) {}
  std::mutex mutex;  // one subscription calls the handler; copies of it share this state
  Openings openings;
};

using Drafts = std::vector<std::vector<Draft>>;  // per (event, active stream), in that order
using StreamReads = std::map<std::string, std::vector<eventstore::RecordedEvent>>;

// Every stream the first pass asked for, with one statement. Only whole streams are kept:
// when the read was cut short, the last stream read is dropped (looked up on its own).
eventstore::StoreResult<StreamReads> read_wanted(eventstore::Transaction& tx,
                                                 eventstore::EventStore& store,
                                                 const std::set<std::string>& wanted,
                                                 DerivationLookups* lookups) {
  StreamReads read;
  if (wanted.empty()) return read;
  const std::vector<eventstore::StreamId> ids(wanted.begin(), wanted.end());
  if (lookups) lookups->streams_read += ids.size();
  auto found = store.read_streams(tx, ids);
  if (!found) return tl::unexpected(found.error());
  const bool cut = found->size() >= eventstore::kReadBatchMax;  // the last may be partial
  for (auto& e : *found) read[e.stream_id.value()].push_back(std::move(e));
  if (cut && !found->empty()) read.erase(std::prev(read.end()));
  for (const auto& id : wanted)
    if (!cut && !read.count(id)) read[id];  // read in full: the stream has no events
  return read;
}

// Derivations are pure. The first pass derives every event; a derivation that looks up
// what the kept opening events cannot answer is told "nothing" and noted. One statement
// then reads every stream they asked for, and only those derivations run again with the
// answers. A failed look-up fails the batch: never a message without its data.
eventstore::StoreResult<Drafts> derive_drafts(eventstore::Transaction& tx,
                                              eventstore::EventStore& store, HandlerState& state,
                                              DerivationLookups* lookups,
                                              const std::vector<const DerivedStream*>& active,
                                              std::span<const eventstore::RecordedEvent> events) {
  std::size_t remembered = 0;
  std::set<std::string> wanted;
  bool asked = false;
  const DerivationContext probe{[&](const std::string& stream, const std::string& type) {
    if (const auto* opening = state.openings.first_of_type(stream, type)) {
      ++remembered;
      return std::optional<eventstore::RecordedEvent>{*opening};
    }
    wanted.insert(stream);
    asked = true;
    return std::optional<eventstore::RecordedEvent>{};
  }};
  Drafts drafts;
  std::vector<std::size_t> again;  // indexes into drafts that looked something up
  drafts.reserve(events.size() * active.size());
  for (const auto& event : events)
    for (const auto* stream : active) {
      asked = false;
      drafts.push_back(stream->derive(event, probe));
      if (asked) again.push_back(drafts.size() - 1);
    }
  if (lookups) lookups->remembered += remembered;
  if (again.empty()) return drafts;

  auto read = read_wanted(tx, store, wanted, lookups);
  if (!read) return tl::unexpected(read.error());
  std::optional<eventstore::StoreError> read_error;
  const DerivationContext context{
      [&](const std::string& stream,
          const std::string& type) -> std::optional<eventstore::RecordedEvent> {
        if (const auto* opening = state.openings.first_of_type(stream, type)) return *opening;
        auto it = read->find(stream);
        if (it == read->end()) {  // not in the batch read (it was cut short): on its own
          if (lookups) ++lookups->streams_read;
          auto events = store.read_stream(tx, eventstore::StreamId{stream});
          if (!events) {
            if (!read_error)
              read_error = eventstore::StoreError{
                  events.error().code, "reading " + stream + ": " + events.error().message};
            return std::nullopt;
          }
          it = read->emplace(stream, std::move(*events)).first;
        }
        for (const auto& candidate : it->second)
          if (candidate.type == type) return candidate;
        return std::nullopt;
      }};
  for (const auto index : again)
    drafts[index] = active[index % active.size()]->derive(events[index / active.size()], context);
  if (read_error) return tl::unexpected(*read_error);
  return drafts;
}

// The drafts of streams that keep running totals, folded in event order into the state of
// their entity keys: read with one statement, written back with one.
eventstore::HandlerResult fold_drafts(eventstore::Transaction& tx,
                                      const std::vector<const DerivedStream*>& active,
                                      Drafts& drafts) {
  std::map<std::pair<std::string, std::string>, nlohmann::json> states;
  for (std::size_t index = 0; index < drafts.size(); ++index)
    if (const auto* stream = active[index % active.size()]; stream->fold != nullptr)
      for (const auto& draft : drafts[index])
        states.emplace(std::pair{stream->spec.name, draft.key}, nlohmann::json::object());
  if (states.empty()) return {};
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& [key, _] : states) keys.push_back({{"stream", key.first}, {"key", key.second}});
  for (const auto& row :
       tx.exec_params("select s.stream, s.key, s.state::text from derived_stream_state s"
                      " join jsonb_to_recordset($1::jsonb) as w(stream text, key text)"
                      " on s.stream = w.stream and s.key = w.key",
                      keys.dump()))
    states[{row[0].as<std::string>(), row[1].as<std::string>()}] =
        nlohmann::json::parse(row[2].c_str());
  for (std::size_t index = 0; index < drafts.size(); ++index) {
    const auto* stream = active[index % active.size()];
    if (stream->fold == nullptr) continue;
    for (auto& draft : drafts[index]) {
      auto folded = stream->fold(draft, states[{stream->spec.name, draft.key}]);
      if (!folded)
        return tl::unexpected(eventstore::HandlerError(stream->spec.name + ": " + folded.error()));
      draft = std::move(*folded);
    }
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [key, state] : states)
    rows.push_back({{"stream", key.first}, {"key", key.second}, {"state", state}});
  tx.exec_params(
      "insert into derived_stream_state (stream, key, state)"
      " select stream, key, state from jsonb_to_recordset($1::jsonb)"
      " as x(stream text, key text, state jsonb)"
      " on conflict (stream, key) do update set state = excluded.state",
      rows.dump());
  return {};
}

// Derives `events` for the `active` streams and appends what they publish, in the
// batch's transaction.
eventstore::HandlerResult derive_batch(eventstore::Transaction& tx, eventstore::EventStore& store,
                                       HandlerState& state, DerivationLookups* lookups,
                                       const std::vector<const DerivedStream*>& active,
                                       std::span<const eventstore::RecordedEvent> events) {
  if (active.empty() || events.empty()) return {};
  auto drafts = derive_drafts(tx, store, state, lookups, active, events);
  if (!drafts) return tl::unexpected(drafts.error());
  if (auto folded = fold_drafts(tx, active, *drafts); !folded) return folded;
  std::vector<PendingAppend> appends;
  for (std::size_t index = 0; index < drafts->size(); ++index) {
    const auto& event = events[index / active.size()];
    for (auto& draft : (*drafts)[index]) {
      if (draft.key.empty())
        return tl::unexpected(eventstore::HandlerError("derived " + draft.type + " from " +
                                                       event.type + " " + event.event_id.value() +
                                                       " has no entity id"));
      appends.push_back(
          PendingAppend{&active[index % active.size()]->spec, std::move(draft), &event});
    }
  }
  // A span for each source event that carries a trace and derived messages: under its span.
  // The messages are published under the same event's context (the relay reads it there).
  std::vector<tracing::Span> spans;
  const auto tracer = tracing::global_tracer();
  const eventstore::RecordedEvent* last = nullptr;
  bool traced = false;
  std::int64_t messages = 0;
  for (const auto& append : appends) {
    if (append.source != last) {
      last = append.source;
      messages = 0;
      const auto trace = trace_from_extra(append.source->metadata.extra);
      traced = trace.has_value();
      if (traced) {
        spans.push_back(tracer->start("derive", trace));
        spans.back().set("clearing.event.type", append.source->type);
      }
    }
    if (traced) spans.back().set("clearing.messages", ++messages);
  }
  auto appended = append_external_batch(tx, appends, store.pool().protector());
  if (!appended) {
    for (auto& span : spans) span.set_error("append failed");
    return tl::unexpected(appended.error());
  }
  return {};
}

}  // namespace

eventstore::BatchHandler make_derivation_handler(eventstore::EventStore& store,
                                                 std::vector<DerivedStream> streams,
                                                 DerivationOptions options) {
  auto state = std::make_shared<HandlerState>(options.openings_kept);
  return [&store, streams = std::move(streams), state, lookups = std::move(options.lookups),
          live_only = options.live_streams_only](
             eventstore::Transaction& tx,
             std::span<const eventstore::RecordedEvent> events) -> eventstore::HandlerResult {
    std::lock_guard lock(state->mutex);
    std::vector<const DerivedStream*> active;
    if (live_only) {
      auto live = live_stream_names(tx);
      if (!live) return tl::unexpected(live.error());
      for (const auto& stream : streams)
        if (std::find(live->begin(), live->end(), stream.spec.name) != live->end())
          active.push_back(&stream);
    } else {
      for (const auto& stream : streams) active.push_back(&stream);
    }
    // The batch's own opening events first: a transfer opened and settled in one batch
    // needs no read either. Kept even if this batch's transaction fails: they are
    // committed events, whatever becomes of the messages derived from them.
    for (const auto& event : events) state->openings.remember(event);
    return derive_batch(tx, store, *state, lookups.get(), active, events);
  };
}

eventstore::BatchHandler make_backfill_handler(eventstore::EventStore& store, DerivedStream stream,
                                               DerivationOptions options,
                                               std::shared_ptr<std::atomic<bool>> handed_over) {
  auto state = std::make_shared<HandlerState>(options.openings_kept);
  if (!handed_over) handed_over = std::make_shared<std::atomic<bool>>(false);
  return [&store, stream = std::move(stream), state, lookups = std::move(options.lookups),
          handed_over](
             eventstore::Transaction& tx,
             std::span<const eventstore::RecordedEvent> events) -> eventstore::HandlerResult {
    std::lock_guard lock(state->mutex);
    auto live = lock_live_checkpoint(tx);
    if (!live) return tl::unexpected(live.error());
    const auto phase =
        tx.exec_params("select phase from derived_streams where stream = $1", stream.spec.name);
    if (phase.empty() || phase[0][0].as<std::string>() != "backfilling") {
      handed_over->store(true);  // by another instance: nothing is left to derive here
      return {};
    }
    std::size_t due = 0;  // the events up to the live derivation's checkpoint
    while (due < events.size() && eventstore::Checkpoint::after(events[due]) <= *live) ++due;
    const auto batch = events.first(due);
    for (const auto& event : batch) state->openings.remember(event);
    const std::vector<const DerivedStream*> active{&stream};
    if (auto derived = derive_batch(tx, store, *state, lookups.get(), active, batch); !derived)
      return derived;
    if (due == events.size()) return {};
    if (auto over = hand_over(tx, stream.spec.name); !over) return tl::unexpected(over.error());
    handed_over->store(true);
    return {};
  };
}

}  // namespace clearing::external_streams
