#include "clearing/adapter/inbound.hpp"

#include "clearing/adapter/parking.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/external_streams/payments_codec.hpp"
#include "clearing/external_streams/trace_metadata.hpp"
#include "clearing/tracing/tracer.hpp"

namespace clearing::adapter {
namespace {

using external_streams::ExternalMessage;
using external_streams::MessageErrc;
using external_streams::MessageError;
using Json = nlohmann::json;

const Json* member(const Json& j, const char* name) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

// The wire's party as the domain's: the codec has checked the scheme.
sagas::Party party_of(const external_streams::payments::Party& p) {
  const auto scheme = sagas::parse_scheme(p.account.scheme);
  CLEARING_ASSERT(scheme.has_value());
  return sagas::Party{p.name, sagas::Account{*scheme, p.account.id}};
}

std::string readable_transfer_id(const std::optional<ExternalMessage>& parsed,
                                 const std::string& raw) {
  const Json* data = nullptr;
  Json whole;
  if (parsed) {
    data = &parsed->data;
  } else {
    whole = Json::parse(raw, nullptr, false);
    data = member(whole, "data");
  }
  if (data == nullptr) return "";
  const auto* id = member(*data, "transfer_id");
  if (id == nullptr || !id->is_string() ||
      !external_streams::payments::is_transfer_id(id->get_ref<const std::string&>()))
    return "";
  return id->get<std::string>();
}

}  // namespace

tl::expected<sagas::InitiateTransfer, MessageError> parse_transfer_requested(
    const ExternalMessage& m, const InboundRules& rules, base::Timestamp now) {
  auto wire = external_streams::payments::decode_transfer_requested(m.data);
  if (!wire) return tl::unexpected(wire.error());
  const auto currency = sagas::Currency::parse(wire->amount.currency);
  CLEARING_ASSERT(currency.has_value());  // the codec has checked it
  sagas::InitiateTransfer c;
  c.request.transfer_id = std::move(wire->transfer_id);
  c.request.account_id = std::move(wire->account_id);
  c.request.amount = sagas::Money{wire->amount.minor_units, *currency};
  c.request.debtor = party_of(wire->debtor);
  c.request.creditor = party_of(wire->creditor);
  c.request.remittance_info = std::move(wire->remittance_info);
  c.request.requested_at = wire->requested_at;
  c.correlation_id = m.correlation_id;
  c.now = now;
  c.rules = rules.rules;
  c.policy = rules.policy;
  return c;
}

tl::expected<Initiation, MessageError> initiation_of(const ExternalMessage& m,
                                                     const InboundRules& rules,
                                                     base::Timestamp now) {
  if (m.type != "TransferRequested")
    return tl::unexpected(MessageError{MessageErrc::unknown_type, "unknown event type " + m.type});
  auto command = parse_transfer_requested(m, rules, now);
  if (!command) return tl::unexpected(command.error());
  // The event ids derive from the message's place in the stream, not from its event_id
  // alone: a second, different request that reuses an event_id is another message and
  // must get its own events (DUPL), while a redelivery of the same seq writes the same ids.
  eventstore::CommandContext context{
      m.correlation_id,
      m.event_id,
      {{"stream", m.stream}, {"partition", m.partition}, {"seq", m.seq}},
      m.event_id + "|" + m.stream + "|" + std::to_string(m.partition) + "|" +
          std::to_string(m.seq)};
  return Initiation{std::move(*command), std::move(context)};
}

tl::expected<TransferResult, MessageError> replay_inbound(
    eventstore::Transaction& tx, TransferService& transfers, const InboundRules& rules,
    base::Timestamp now, const ReplayedMessage& replayed, const nlohmann::json& extra) {
  auto m = external_streams::parse_message(std::string_view(replayed.raw));
  if (!m) return tl::unexpected(m.error());
  // As the consumer checks it against the topic and partition it came on.
  if ((replayed.topic && m->stream != *replayed.topic) ||
      (replayed.partition && m->partition != *replayed.partition))
    return tl::unexpected(MessageError{
        MessageErrc::wrong_stream, "the envelope names stream " + m->stream + " partition " +
                                       std::to_string(m->partition) + ", not the one it came on"});
  auto initiation = initiation_of(*m, rules, now);
  if (!initiation) return tl::unexpected(initiation.error());
  initiation->context.extra = extra;
  return transfers.execute(tx, initiation->command, initiation->context);
}

namespace {

// The consumer batch's initiations, queued by apply and executed together
// (TransferService::execute_batch) when the batch ends, or before park acts, so that the
// batch's messages still take effect in their order.
class TransferInbound final : public external_streams::InboundHandler {
 public:
  TransferInbound(TransferService& transfers, const base::Clock& clock, InboundRules rules)
      : transfers_(transfers), clock_(clock), rules_(std::move(rules)) {}

  void begin_batch(eventstore::Transaction&) override {
    queued_.clear();
    deciding_.clear();
  }

  tl::expected<void, external_streams::ApplyError> apply(eventstore::Transaction&,
                                                         const ExternalMessage& m) override {
    using external_streams::ApplyError;
    // The core's trace when its message carries a valid one, else a new trace.
    const auto tracer = tracing::global_tracer();
    auto consume =
        tracer->start("consume " + m.stream, base::parse_traceparent(m.traceparent, m.tracestate),
                      tracing::SpanKind::consumer);
    consume.set("messaging.system", std::string("kafka"))
        .set("messaging.destination.name", m.stream)
        .set("messaging.destination.partition.id", std::int64_t{m.partition})
        .set("clearing.stream.seq", m.seq)
        .set("clearing.message.type", m.type);
    auto initiation = initiation_of(m, rules_, clock_.now());
    if (!initiation) {
      consume.set_error(std::string(external_streams::to_string(initiation.error().code)));
      return tl::unexpected(ApplyError::unusable(initiation.error()));
    }
    consume.set("transfer.id", initiation->command.request.transfer_id);
    // The decision and its append, under the consume span; its context is kept in the
    // events' metadata, where the transfer's later work picks the trace up again.
    auto decide = tracer->start("decide", consume.context());
    decide.set("transfer.id", initiation->command.request.transfer_id);
    initiation->context.extra =
        external_streams::with_trace(std::move(initiation->context.extra), decide.context());
    queued_.push_back({std::move(initiation->command), std::move(initiation->context), nullptr});
    deciding_.push_back(std::move(decide));
    return {};
  }

  eventstore::StoreResult<void> park(eventstore::Transaction& tx,
                                     const external_streams::RawMessage& raw,
                                     const MessageError& error,
                                     const std::optional<ExternalMessage>& parsed) override;

  eventstore::StoreResult<void> end_batch(eventstore::Transaction& tx) override {
    return flush(tx);
  }

 private:
  // Runs what is queued. Almost every request starts a new transfer: each is decided on
  // the empty stream and appended as new, all in one batch; a known transfer (a
  // redelivery, a duplicate id) is then loaded and decided again, idempotently. A store
  // error is returned: the consumer rolls its batch back.
  eventstore::StoreResult<void> flush(eventstore::Transaction& tx) {
    if (queued_.empty()) return {};
    static const TransferLoaded kNewTransfer{sagas::TransferDecider::initial_state(),
                                             eventstore::StreamVersion{0}};
    for (auto& q : queued_) q.assumed = &kNewTransfer;
    auto results = transfers_.execute_batch(tx, queued_);
    for (std::size_t i = 0; i < results.size() && i < deciding_.size(); ++i) {
      if (results[i])
        deciding_[i].set("clearing.events", static_cast<std::int64_t>(results[i]->events.size()));
      else
        deciding_[i].set_error(std::holds_alternative<eventstore::StoreError>(results[i].error())
                                   ? "store_error"
                                   : "refused");
      deciding_[i].end();
    }
    deciding_.clear();
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i]) continue;
      if (auto* error = std::get_if<eventstore::StoreError>(&results[i].error()))
        return tl::unexpected(*error);
      // The saga refuses an initiation only for a command that names another transfer
      // than its stream: kept with its reason like any unusable input.
      const auto& refusal = std::get<sagas::TransferRefusal>(results[i].error());
      const auto& context = queued_[i].context;
      auto parked = adapter::park(
          tx,
          ParkedMessage{"kafka", external_streams::to_string(MessageErrc::invalid_data),
                        refusal.message,
                        nlohmann::json{{"event_id", context.causation_id},
                                       {"source", context.source},
                                       {"transfer_id", transfer_id_of(queued_[i].command)}}
                            .dump(),
                        context.source["stream"].get<std::string>(),
                        context.source["partition"].get<std::int32_t>(), std::nullopt,
                        context.correlation_id},
          transfers_.store().pool().protector());
      if (!parked) return parked;
      base::module_logger("inbound")->warn(
          "initiation refused, parked transfer_id={} reason={} correlation_id={}",
          transfer_id_of(queued_[i].command), refusal.message, context.correlation_id);
    }
    queued_.clear();
    return {};
  }

  TransferService& transfers_;
  const base::Clock& clock_;
  InboundRules rules_;
  std::vector<TransferService::BatchCommand> queued_;
  std::vector<tracing::Span> deciding_;  // one per queued_ command: ended after the batch runs
};

// Parks unusable input; a readable transfer id the saga does not know yet is rejected
// (FF01) through the saga. The batch's queued initiations run first: they came earlier.
eventstore::StoreResult<void> TransferInbound::park(eventstore::Transaction& tx,
                                                    const external_streams::RawMessage& raw,
                                                    const MessageError& error,
                                                    const std::optional<ExternalMessage>& parsed) {
  if (auto flushed = flush(tx); !flushed) return flushed;
  const auto transfer_id = readable_transfer_id(parsed, raw.value);
  const auto correlation = parsed ? parsed->correlation_id : std::string{};
  auto parked = adapter::park(
      tx,
      ParkedMessage{"kafka", external_streams::to_string(error.code), error.message, raw.value,
                    raw.topic, raw.partition,
                    raw.offset >= 0 ? std::optional<std::int64_t>(raw.offset) : std::nullopt,
                    correlation.empty() ? std::nullopt : std::optional<std::string>(correlation)},
      transfers_.store().pool().protector());
  if (!parked) return parked;
  base::module_logger("inbound")->warn(
      "parked message topic={} partition={} offset={} reason={} transfer_id={} correlation_id={}",
      raw.topic, raw.partition, raw.offset, external_streams::to_string(error.code), transfer_id,
      correlation);
  if (transfer_id.empty()) return {};
  // A message that is not in this stream (another stream named, or a seq the producer
  // never issued) is not a request of the core's: parked only, nothing decided on it.
  if (error.code == MessageErrc::wrong_stream || error.code == MessageErrc::seq_beyond_head)
    return {};
  // The core waits for an outcome of this transfer: if we know nothing of it yet, it
  // is rejected (FF01: invalid format) through the saga, like any outcome, with the
  // reason the message could not be used.
  auto loaded = transfers_.load(tx, transfer_id);
  if (!loaded || loaded->state.status != sagas::TransferStatus::empty) return {};
  sagas::InitiateTransfer reject_me;
  reject_me.request.transfer_id = transfer_id;
  reject_me.correlation_id = correlation.empty() ? transfer_id : correlation;
  reject_me.now = clock_.now();
  reject_me.rules = rules_.rules;
  reject_me.policy = rules_.policy;
  reject_me.format_problem = error.message;
  const auto cause = parsed ? parsed->event_id : transfer_id;
  auto decide = tracing::global_tracer()->start(
      "decide", base::parse_traceparent(raw.traceparent, raw.tracestate));
  decide.set("transfer.id", transfer_id)
      .set("clearing.parked_reason", std::string(external_streams::to_string(error.code)));
  auto result = transfers_.execute(tx, reject_me,
                                   {reject_me.correlation_id,
                                    cause,
                                    {{"stream", raw.topic}, {"partition", raw.partition}},
                                    "parked|" + raw.topic + "|" + std::to_string(raw.offset),
                                    external_streams::with_trace(nullptr, decide.context())});
  if (!result && std::holds_alternative<eventstore::StoreError>(result.error()))
    return tl::unexpected(std::get<eventstore::StoreError>(result.error()));
  return {};
}

}  // namespace

std::unique_ptr<external_streams::InboundHandler> make_transfer_inbound(TransferService& transfers,
                                                                        const base::Clock& clock,
                                                                        InboundRules rules) {
  return std::make_unique<TransferInbound>(transfers, clock, std::move(rules));
}

}  // namespace clearing::adapter
