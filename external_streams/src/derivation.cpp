#include "clearing/external_streams/derivation.hpp"

#include <deque>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <unordered_map>

#include "clearing/external_streams/payments_codec.hpp"

namespace clearing::external_streams {
namespace {

using Json = nlohmann::json;

std::string text(const Json& data, const char* field) {
  const auto it = data.find(field);
  return it != data.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

std::string transfer_stream_of(const std::string& transfer_id) { return "transfer-" + transfer_id; }

Draft transfer_draft(std::string type, const Json& data, Json body) {
  return Draft{std::move(type), text(data, "transfer_id"), std::move(body), false, ""};
}

// The amount and parties of the internal events (the saga's codec wrote them in the
// contract's shape), read with the contract's codec; nullopt (null on the wire) when absent.
std::optional<payments::Amount> amount_of(const Json& data, const char* field) {
  const auto it = data.find(field);
  if (it == data.end()) return std::nullopt;
  auto amount = payments::decode_amount(*it, "", field);
  return amount ? std::optional<payments::Amount>(std::move(*amount)) : std::nullopt;
}

std::optional<payments::Party> party_of(const Json& data, const char* field) {
  const auto it = data.find(field);
  if (it == data.end()) return std::nullopt;
  auto party = payments::decode_party(*it, "", field);
  return party ? std::optional<payments::Party>(std::move(*party)) : std::nullopt;
}

// The amount of a transfer, from its TransferInitiated.
std::optional<payments::Amount> transfer_amount(const std::string& transfer_id,
                                                const DerivationContext& context) {
  if (!context.first_of_type) return std::nullopt;
  const auto initiated =
      context.first_of_type(transfer_stream_of(transfer_id), "TransferInitiated");
  return initiated ? amount_of(initiated->data, "amount") : std::nullopt;
}

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

}  // namespace

std::vector<Draft> derive_payments_v1(const eventstore::RecordedEvent& e,
                                      const DerivationContext&) {
  const auto& d = e.data;
  const auto transfer_id = text(d, "transfer_id");
  if (e.type == "TransferAcceptedPending") {
    auto draft =
        transfer_draft("TransferPending", d,
                       payments::encode(payments::TransferPending{
                           .transfer_id = transfer_id,
                           .clearing_reference = text(d, "clearing_reference"),
                           .expected_settlement_date = text(d, "expected_settlement_date")}));
    draft.once_per_key = true;  // the saga records every pending answer; the core hears it once
    return {draft};
  }
  if (e.type == "TransferUnderInvestigation")
    return {transfer_draft("TransferUnderInvestigation", d,
                           payments::encode(payments::TransferUnderInvestigation{
                               .transfer_id = transfer_id,
                               .since = text(d, "since"),
                               .attempts = d.value("attempts", 0),
                               .last_error = text(d, "last_error")}))};
  if (e.type == "DuplicateTransferRequestRefused") {
    // The outcome of the second, refused request: it carries that request's correlation.
    auto draft = transfer_draft(
        "TransferRejected", d,
        payments::encode(payments::TransferRejected{
            .transfer_id = transfer_id, .reason_code = "DUPL", .reason = text(d, "reason")}));
    draft.correlation_id = text(d, "correlation_id");
    return {draft};
  }
  // An outcome the clearing gave, or one an operator resolved by hand: the same message,
  // marked resolved_manually.
  const bool manual = e.type == "TransferResolvedManually";
  if (e.type == "TransferSettled" || (manual && text(d, "outcome") == "succeeded"))
    return {transfer_draft("TransferSucceeded", d,
                           payments::encode(payments::TransferSucceeded{
                               .transfer_id = transfer_id,
                               .clearing_reference = text(d, "clearing_reference"),
                               .settlement_date = text(d, "settlement_date"),
                               .resolved_manually = manual}))};
  if (e.type == "TransferRejected" || manual)
    return {transfer_draft(
        "TransferRejected", d,
        payments::encode(payments::TransferRejected{.transfer_id = transfer_id,
                                                    .reason_code = text(d, "reason_code"),
                                                    .reason = text(d, "reason"),
                                                    .resolved_manually = manual}))};
  if (e.type == "IncomingPaymentRecorded")
    return {Draft{"IncomingPaymentReceived", text(d, "payment_id"),
                  payments::encode(payments::IncomingPaymentReceived{
                      .payment_id = text(d, "payment_id"),
                      .clearing_reference = text(d, "clearing_reference"),
                      .amount = amount_of(d, "amount"),
                      .debtor = party_of(d, "debtor"),
                      .creditor = party_of(d, "creditor"),
                      .remittance_info = text(d, "remittance_info"),
                      .received_at = text(d, "received_at")}),
                  false, ""}};
  return {};
}

std::vector<Draft> derive_settlements_v1(const eventstore::RecordedEvent& e,
                                         const DerivationContext& context) {
  const auto& d = e.data;
  const auto transfer_id = text(d, "transfer_id");
  const bool settled = e.type == "TransferSettled" ||
                       (e.type == "TransferResolvedManually" && text(d, "outcome") == "succeeded");
  if (settled)
    return {transfer_draft("OutgoingTransferSettled", d,
                           payments::encode(payments::OutgoingTransferSettled{
                               .transfer_id = transfer_id,
                               .clearing_reference = text(d, "clearing_reference"),
                               .amount = transfer_amount(transfer_id, context),
                               .settlement_date = text(d, "settlement_date")}))};
  if (e.type == "IncomingPaymentRecorded")
    return {Draft{"IncomingPaymentSettled", text(d, "payment_id"),
                  payments::encode(payments::IncomingPaymentSettled{
                      .payment_id = text(d, "payment_id"),
                      .clearing_reference = text(d, "clearing_reference"),
                      .amount = amount_of(d, "amount"),
                      .settlement_date = text(d, "received_at").substr(0, 10)}),
                  false, ""}};
  return {};
}

const std::vector<Derivation>& derivations() {
  static const std::vector<Derivation> registry{
      {"payments.v1", &derive_payments_v1},
      {"settlements.v1", &derive_settlements_v1},
  };
  return registry;
}

std::optional<DerivationFn> find_derivation(const std::string& name) {
  for (const auto& d : derivations())
    if (d.name == name) return d.derive;
  return std::nullopt;
}

eventstore::BatchHandler make_derivation_handler(eventstore::EventStore& store,
                                                 std::vector<DerivedStream> streams,
                                                 DerivationOptions options) {
  auto state = std::make_shared<HandlerState>(options.openings_kept);
  return [&store, streams = std::move(streams), state, lookups = std::move(options.lookups)](
             eventstore::Transaction& tx,
             std::span<const eventstore::RecordedEvent> events) -> eventstore::HandlerResult {
    std::lock_guard lock(state->mutex);
    // The batch's own opening events first: a transfer opened and settled in one batch
    // needs no read either. Kept even if this batch's transaction fails: they are
    // committed events, whatever becomes of the messages derived from them.
    for (const auto& event : events) state->openings.remember(event);
    std::size_t remembered = 0;
    // Derivations are pure. The first pass derives every event; a derivation that looks
    // up what the kept opening events cannot answer is told "nothing" and noted. One
    // statement then reads every stream they asked for, and only those derivations run
    // again with the answers.
    std::set<std::string> wanted;
    bool asked = false;
    const DerivationContext probe{[&](const std::string& stream, const std::string& type) {
      if (const auto* opening = state->openings.first_of_type(stream, type)) {
        ++remembered;
        return std::optional<eventstore::RecordedEvent>{*opening};
      }
      wanted.insert(stream);
      asked = true;
      return std::optional<eventstore::RecordedEvent>{};
    }};
    std::vector<std::vector<Draft>> drafts;  // per (event, stream), in that order
    std::vector<std::size_t> again;          // indexes into drafts that looked something up
    drafts.reserve(events.size() * streams.size());
    for (const auto& event : events)
      for (const auto& stream : streams) {
        asked = false;
        drafts.push_back(stream.derive(event, probe));
        if (asked) again.push_back(drafts.size() - 1);
      }

    std::map<std::string, std::vector<eventstore::RecordedEvent>> read;  // whole streams only
    // A failed look-up fails the batch: never a message without its data.
    std::optional<eventstore::StoreError> read_error;
    if (!wanted.empty()) {
      const std::vector<eventstore::StreamId> ids(wanted.begin(), wanted.end());
      if (lookups) lookups->streams_read += ids.size();
      auto found = store.read_streams(tx, ids);
      if (!found) return tl::unexpected(found.error());
      const bool cut =
          found->size() >= eventstore::kReadBatchMax;  // the last stream may be partial
      for (auto& e : *found) read[e.stream_id.value()].push_back(std::move(e));
      if (cut && !found->empty()) read.erase(std::prev(read.end()));
      for (const auto& id : wanted)
        if (!cut && !read.count(id)) read[id];  // read in full: the stream has no events
    }
    const DerivationContext context{
        [&](const std::string& stream,
            const std::string& type) -> std::optional<eventstore::RecordedEvent> {
          if (const auto* opening = state->openings.first_of_type(stream, type)) return *opening;
          auto it = read.find(stream);
          if (it == read.end()) {  // not in the batch read (it was cut short): on its own
            if (lookups) ++lookups->streams_read;
            auto events = store.read_stream(tx, eventstore::StreamId{stream});
            if (!events) {
              if (!read_error)
                read_error = eventstore::StoreError{
                    events.error().code, "reading " + stream + ": " + events.error().message};
              return std::nullopt;
            }
            it = read.emplace(stream, std::move(*events)).first;
          }
          for (const auto& candidate : it->second)
            if (candidate.type == type) return candidate;
          return std::nullopt;
        }};
    if (lookups) lookups->remembered += remembered;
    for (const auto index : again)
      drafts[index] =
          streams[index % streams.size()].derive(events[index / streams.size()], context);
    if (read_error) return tl::unexpected(*read_error);

    std::vector<PendingAppend> appends;
    for (std::size_t index = 0; index < drafts.size(); ++index) {
      const auto& event = events[index / streams.size()];
      for (auto& draft : drafts[index]) {
        if (draft.key.empty())
          return tl::unexpected(eventstore::HandlerError("derived " + draft.type + " from " +
                                                         event.type + " " + event.event_id.value() +
                                                         " has no entity id"));
        appends.push_back(
            PendingAppend{&streams[index % streams.size()].spec, std::move(draft), &event});
      }
    }
    auto appended = append_external_batch(tx, appends);
    if (!appended) return tl::unexpected(appended.error());
    return {};
  };
}

}  // namespace clearing::external_streams
