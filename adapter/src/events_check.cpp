#include "clearing/adapter/events_check.hpp"

#include <fmt/format.h>

#include <string_view>

#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/personal_data.hpp"
#include "clearing/adapter/transfer_service.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/transfer_codec.hpp"

namespace clearing::adapter {
namespace {

using eventstore::RecordedEvent;
using Failure = std::optional<std::string>;

template <class Codec>
Failure read_with(const RecordedEvent& e) {
  auto decoded = Codec::decode(e.type, e.schema_version, e.data);
  if (decoded) return std::nullopt;
  return std::move(decoded.error().message);
}

// The incoming feed's streams have no codec: their events are written and read by the
// poller alone, at schema version 1. What is checked is what it reads.
Failure read_feed_event(const RecordedEvent& e, std::string_view type, const char* field) {
  if (e.type != type) return "unknown event type " + e.type;
  if (e.schema_version != eventstore::kFirstSchemaVersion)
    return e.type + ": unknown schema version " + std::to_string(e.schema_version.value()) +
           ", this build reads 1 to 1";
  if (field == nullptr) return std::nullopt;
  const auto found = e.data.find(field);
  if (found == e.data.end()) return e.type + ": missing field " + field;
  if (!found->is_string()) return e.type + ": invalid field " + field;
  return std::nullopt;
}

// The cursor is the one field the poller reads back (load_cursor).
Failure read_feed_advanced(const RecordedEvent& e) {
  return read_feed_event(e, kIncomingFeedAdvanced, "next_cursor");
}

// A parking mark is kept for its id (the parked payment's identity); its data is not read.
Failure read_feed_parked(const RecordedEvent& e) {
  return read_feed_event(e, kIncomingFeedPaymentParked, nullptr);
}

struct StreamKind {
  const char* name;
  std::string id;  // the stream id, or its prefix
  bool prefix;
  Failure (*read)(const RecordedEvent&);
};

// Every stream the adapter appends to (transfer_service, incoming_poller).
const std::vector<StreamKind>& stream_kinds() {
  static const std::vector<StreamKind> kinds{
      {"transfer", transfer_stream("").value(), true, &read_with<sagas::TransferCodec>},
      {"incoming-payment", incoming_payment_stream("").value(), true,
       &read_with<sagas::IncomingPaymentCodec>},
      {"incoming-feed", kIncomingFeedStream, false, &read_feed_advanced},
      {"incoming-feed-parked", kIncomingFeedParkedStream, false, &read_feed_parked},
      {"privacy", std::string(kPrivacyStreamPrefix), true, &privacy_event_failure},
  };
  return kinds;
}

const StreamKind* kind_of(const eventstore::StreamId& stream) {
  const auto& id = stream.value();
  for (const auto& kind : stream_kinds())
    if (kind.prefix ? id.size() > kind.id.size() && id.starts_with(kind.id) : id == kind.id)
      return &kind;
  return nullptr;
}

void count(EventsCheckReport& report, const RecordedEvent& e) {
  std::pair<std::string, std::int32_t> key{e.type, e.schema_version.value()};
  if (report.per_type.size() >= kEventsCheckTypesCountedMax && !report.per_type.count(key))
    key = {kOtherTypes, 0};
  ++report.per_type[key];
}

}  // namespace

std::optional<std::string> stream_kind_of(const eventstore::StreamId& stream) {
  const auto* kind = kind_of(stream);
  if (kind == nullptr) return std::nullopt;
  return kind->name;
}

std::optional<std::string> read_failure(const RecordedEvent& event) {
  const auto* kind = kind_of(event.stream_id);
  if (kind == nullptr) return "no reader for the stream of this event (unknown stream kind)";
  return kind->read(event);
}

eventstore::StoreResult<EventsCheckReport> check_events(eventstore::EventStore& store,
                                                        const EventsCheckOptions& options) {
  CLEARING_ASSERT(options.page_size > 0 && options.page_size <= eventstore::kReadBatchMax);
  CLEARING_ASSERT(options.progress_every > 0);
  CLEARING_ASSERT(options.failures_listed_max <= kEventsCheckFailuresListedMax);
  EventsCheckReport report;
  eventstore::Checkpoint after;
  std::int64_t next_progress = options.progress_every;
  for (;;) {
    auto page = store.read_all_after(after, options.page_size);
    if (!page) return tl::unexpected(page.error());
    for (const auto& e : *page) {
      ++report.events_read;
      count(report, e);
      if (auto failure = read_failure(e)) {
        ++report.failures;
        if (report.failures_listed.size() < options.failures_listed_max) {
          const auto kind = stream_kind_of(e.stream_id);
          report.failures_listed.push_back(
              EventCheckFailure{e.event_id.value(), kind.value_or("unknown"), e.type,
                                e.schema_version, std::move(*failure)});
        }
      }
      if (report.events_read == next_progress) {
        if (options.progress) options.progress(report.events_read, report.failures);
        next_progress += options.progress_every;
      }
    }
    if (page->empty()) break;
    after = eventstore::Checkpoint::after(page->back());
  }
  if (options.progress) options.progress(report.events_read, report.failures);
  CLEARING_ASSERT(report.failures <= report.events_read);
  return report;
}

std::string render_events_check(const EventsCheckReport& report) {
  std::string out = fmt::format("events read: {}\n", report.events_read);
  if (!report.per_type.empty()) out += "by type and schema version:\n";
  for (const auto& [key, n] : report.per_type)
    out += key.first == kOtherTypes
               ? fmt::format("  {:<44} {:>10}\n", key.first, n)
               : fmt::format("  {:<40} v{:<3} {:>10}\n", key.first, key.second, n);
  if (report.failures == 0) {
    out += "every event reads with this build\n";
    return out;
  }
  out += fmt::format("events this build cannot read: {}\n", report.failures);
  for (const auto& f : report.failures_listed)
    out += fmt::format("  event_id={} stream_kind={} type={} schema_version={} error=\"{}\"\n",
                       f.event_id, f.stream_kind, f.type, f.schema_version.value(), f.error);
  if (static_cast<std::int64_t>(report.failures_listed.size()) < report.failures)
    out += fmt::format("  ({} more not listed)\n",
                       report.failures - static_cast<std::int64_t>(report.failures_listed.size()));
  return out;
}

}  // namespace clearing::adapter
