#include "clearing/adapter/incoming_poller.hpp"

#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>

#include "clearing/adapter/parking.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/base/background_thread.hpp"
#include "clearing/base/logging.hpp"
#include "clearing/base/uuid.hpp"
#include "clearing/clearing_client/answer_codec.hpp"
#include "clearing/eventstore/aggregate.hpp"
#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"

namespace clearing::adapter {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;
using IncomingAggregate =
    eventstore::Aggregate<sagas::IncomingPaymentDecider, sagas::IncomingPaymentCodec>;

// The clearing's account text as an Account; the decider validates it (and parks the
// payment when it is not valid), so no judgement here.
sagas::Account account_of(const std::string& text) {
  return sagas::Account{sagas::account_scheme_of_text(text), text};
}

// The namespace of IncomingFeedPaymentParked event ids: the id is derived from the
// payment's identity, so the same bad payment seen again derives the same id and the store's
// idempotent append says it is marked already.
constexpr std::string_view kFeedParkedNamespace = "8d2e4c71-5a3f-4b9e-8c06-1f7a2d3e4b5c";

// What identifies a payment that breaks the contract: its clearing reference, the contract's
// identity, when it is readable and valid; else its bytes (a re-sent copy has the same ones;
// the length too, as the raw may be cut).
std::string parked_identity(const clearing_client::RejectedPayment& rejected) {
  if (rejected.clearing_reference) return "reference:" + *rejected.clearing_reference;
  return "raw:" + std::to_string(rejected.raw_bytes) + ":" + rejected.raw;
}

// For people: the rule broken (never a value), where it was on the feed, and whether the
// raw kept is the whole payment.
std::string parked_reason(const clearing_client::RejectedPayment& rejected) {
  std::string reason = rejected.reason;
  if (rejected.cursor) reason += " (cursor " + *rejected.cursor + ")";
  if (rejected.raw.size() < rejected.raw_bytes) {
    reason += " (raw cut to its first " + std::to_string(rejected.raw.size()) + " of " +
              std::to_string(rejected.raw_bytes) + " bytes)";
  }
  return reason;
}

// The mark's event id, and the correlation id of the mark and the parked row: the payment's
// id when its clearing reference is known (as for the payments recorded), else the mark's.
struct ParkedIds {
  eventstore::EventId mark_id;
  std::string correlation_id;
};

ParkedIds parked_ids(const clearing_client::RejectedPayment& rejected) {
  eventstore::EventId mark_id{base::derived_uuid(kFeedParkedNamespace, parked_identity(rejected))};
  auto correlation_id = rejected.clearing_reference
                            ? sagas::incoming_payment_id(*rejected.clearing_reference)
                            : mark_id.value();
  return {std::move(mark_id), std::move(correlation_id)};
}

nlohmann::json optional_json(const std::optional<std::string>& text) {
  return text ? nlohmann::json(*text) : nlohmann::json(nullptr);
}

// What became of one payment of a page (IncomingPollerStats counts each in one of them).
enum class Outcome { recorded, resent, parked };

// The outcomes of one page's transaction, counted into the stats once it commits.
struct PageTally {
  std::int64_t recorded = 0;
  std::int64_t resent = 0;
  std::int64_t parked = 0;
  void add(Outcome outcome) {
    ++(outcome == Outcome::recorded ? recorded : outcome == Outcome::resent ? resent : parked);
  }
};

}  // namespace

eventstore::StoreResult<void> park_incoming_payment(eventstore::Transaction& tx,
                                                    const sagas::IncomingPaymentParked& parked,
                                                    const eventstore::DataProtector* protector) {
  // Its clearing reference beside the sealed raw, in the one insert. A row that another
  // instance listed at the same moment stays as it is (park(): one row a payment).
  return park(
      tx,
      ParkedMessage{std::string(kParkedPaymentSource), parked.reason_code, parked.reason,
                    sagas::IncomingPaymentCodec::encode(parked).dump(), std::nullopt, std::nullopt,
                    std::nullopt, parked.payment_id, parked.payment_id, parked.clearing_reference},
      protector);
}

eventstore::StreamId incoming_payment_stream(const std::string& clearing_reference) {
  return eventstore::StreamId{"incoming-payment-" + clearing_reference};
}

struct IncomingPoller::Impl {
  eventstore::EventStore& store;
  clearing_client::ClearingClient& client;
  const base::Clock& clock;
  IncomingPollerOptions options;
  IncomingAggregate payments{store};
  std::shared_ptr<spdlog::logger> log = base::module_logger("incoming");

  base::BackgroundThread worker;

  mutable std::mutex stats_mutex;
  IncomingPollerStats stats;
  std::string feed_failure_logged;  // under stats_mutex: the failure last logged ("" none)

  Impl(eventstore::EventStore& s, clearing_client::ClearingClient& c, const base::Clock& k,
       IncomingPollerOptions o)
      : store(s), client(c), clock(k), options(std::move(o)) {
    CLEARING_ASSERT(options.page_limit > 0);
  }

  struct Cursor {
    std::optional<std::string> value;
    eventstore::StreamVersion version{0};
  };

  StoreResult<Cursor> load_cursor() {
    return store.pool().transact([&](Transaction& tx) -> StoreResult<Cursor> {
      const eventstore::StreamId feed{kIncomingFeedStream};
      auto version = store.stream_version(tx, feed);
      if (!version) return tl::unexpected(version.error());
      Cursor cursor{std::nullopt, *version};
      if (version->value() == 0) return cursor;
      auto last = store.read_stream(tx, feed, *version, 1);
      if (!last) return tl::unexpected(last.error());
      CLEARING_ASSERT(last->size() == 1);
      cursor.value = last->front().data.at("next_cursor").get<std::string>();
      return cursor;
    });
  }

  // Records one payment in the page's transaction.
  StoreResult<Outcome> apply(Transaction& tx, const clearing_client::IncomingPayment& p,
                             const std::string& feed_event_id) {
    if (p.clearing_reference.empty()) {
      if (auto parked = park(
              tx,
              ParkedMessage{"clearing-feed", "missing_clearing_reference",
                            "an incoming payment without a clearing reference cannot be recorded",
                            clearing_client::encode_incoming_payment(p), std::nullopt, std::nullopt,
                            std::nullopt, std::nullopt},
              store.pool().protector());
          !parked)
        return tl::unexpected(parked.error());
      return Outcome::parked;
    }
    sagas::RecordIncomingPayment command;
    command.clearing_reference = p.clearing_reference;
    command.cursor = p.cursor;
    command.amount.minor_units = p.amount_minor;
    command.amount.currency = sagas::Currency::parse(p.currency).value_or(sagas::Currency{});
    command.debtor = sagas::Party{p.debtor_name, account_of(p.debtor_account)};
    command.creditor = sagas::Party{p.creditor_name, account_of(p.creditor_account)};
    command.remittance_info = p.remittance_info;
    base::Timestamp received{};
    base::parse_timestamp(p.received_at,
                          received);  // an unparsable time stays epoch; the decider parks it
    command.received_at = received;
    command.rules = options.rules;
    const auto payment_id = sagas::incoming_payment_id(p.clearing_reference);
    eventstore::CommandContext context{payment_id,
                                       feed_event_id,
                                       {{"feed", "clearing"}, {"cursor", p.cursor}},
                                       "incoming|" + p.clearing_reference + "|" + p.cursor};
    auto result =
        payments.handle(tx, incoming_payment_stream(p.clearing_reference), command, context);
    if (!result) {
      if (auto* error = std::get_if<eventstore::StoreError>(&result.error()))
        return tl::unexpected(*error);
      const auto& refusal = std::get<sagas::IncomingPaymentRefusal>(result.error());
      if (auto parked = park(tx,
                             ParkedMessage{"clearing-feed", "refused", refusal.message,
                                           clearing_client::encode_incoming_payment(p),
                                           std::nullopt, std::nullopt, std::nullopt, payment_id},
                             store.pool().protector());
          !parked)
        return tl::unexpected(parked.error());
      return Outcome::parked;
    }
    for (const auto& event : result->events)
      if (const auto* parked = std::get_if<sagas::IncomingPaymentParked>(&event))
        if (auto listed = park_incoming_payment(tx, *parked, store.pool().protector()); !listed)
          return tl::unexpected(listed.error());
    return result->events.empty() ? Outcome::resent : Outcome::recorded;
  }

  // Parks one payment that breaks the contract in the page's transaction, unless its mark
  // (an IncomingFeedPaymentParked event with an id derived from its identity) is stored
  // already: then it was parked before, from this page or from a copy the mainframe re-sent.
  StoreResult<Outcome> park_rejected(Transaction& tx,
                                     const clearing_client::RejectedPayment& rejected,
                                     const std::string& feed_event_id,
                                     const std::string& from_cursor) {
    const auto [mark_id, correlation_id] = parked_ids(rejected);
    const auto reason = parked_reason(rejected);
    eventstore::EventData mark{mark_id,
                               kIncomingFeedPaymentParked,
                               {{"index", rejected.index},
                                {"cursor", optional_json(rejected.cursor)},
                                {"clearing_reference", optional_json(rejected.clearing_reference)},
                                {"reason_code", kInvalidPaymentReasonCode},
                                {"cause", clearing_client::to_string(rejected.cause)},
                                {"reason", reason},
                                {"raw_bytes", rejected.raw_bytes},
                                {"from_cursor", from_cursor}},
                               {correlation_id,
                                feed_event_id,
                                {{"feed", "clearing"}, {"cursor", optional_json(rejected.cursor)}},
                                nullptr}};
    auto marked = store.append(tx, eventstore::StreamId{kIncomingFeedParkedStream},
                               eventstore::ExpectedVersion::any(), std::vector{mark});
    if (!marked) return tl::unexpected(marked.error());
    if (marked->already_appended) return Outcome::resent;
    if (auto parked =
            park(tx,
                 ParkedMessage{"clearing-feed", kInvalidPaymentReasonCode, reason, rejected.raw,
                               std::nullopt, std::nullopt, std::nullopt, correlation_id},
                 store.pool().protector());
        !parked)
      return tl::unexpected(parked.error());
    return Outcome::parked;
  }

  StoreResult<int> poll_once() {
    auto cursor = load_cursor();
    if (!cursor) return tl::unexpected(cursor.error());
    auto page = client.incoming(cursor->value, options.page_limit).get();
    note_feed(page);
    if (!page.ok) return 0;
    const auto from = cursor->value.value_or("");
    const auto next = page.next_cursor.value_or(from);
    const auto on_page = page.payments.size() + page.rejected.size();
    if (on_page == 0 && next == from) return 0;

    PageTally tally;
    std::vector<Outcome> rejected_outcomes;  // one per page.rejected, for the log
    auto applied = store.pool().transact([&](Transaction& tx) -> StoreResult<int> {
      tally = PageTally{};  // a retried transaction counts afresh
      rejected_outcomes.clear();
      const eventstore::EventId feed_event{base::new_uuid()};
      for (const auto& payment : page.payments) {
        auto one = apply(tx, payment, feed_event.value());
        if (!one) return tl::unexpected(one.error());
        tally.add(*one);
      }
      for (const auto& rejected : page.rejected) {
        auto one = park_rejected(tx, rejected, feed_event.value(), from);
        if (!one) return tl::unexpected(one.error());
        tally.add(*one);
        rejected_outcomes.push_back(*one);
      }
      eventstore::EventData advanced{
          feed_event,
          kIncomingFeedAdvanced,
          {{"from_cursor", from},
           {"next_cursor", next},
           {"payments", on_page},
           {"new_payments", tally.recorded},
           {"rejected_payments", page.rejected.size()},
           {"parked_payments", tally.parked},
           {"fetched_at", base::format_timestamp(clock.now())}},
          {feed_event.value(), "", {{"feed", "clearing"}, {"cursor", from}}, nullptr}};
      auto appended = store.append(tx, eventstore::StreamId{kIncomingFeedStream},
                                   cursor->version.value() == 0
                                       ? eventstore::ExpectedVersion::no_stream()
                                       : eventstore::ExpectedVersion::exactly(cursor->version),
                                   std::vector{advanced});
      if (!appended) return tl::unexpected(appended.error());
      return static_cast<int>(on_page);
    });
    if (!applied) return applied;
    CLEARING_ASSERT(rejected_outcomes.size() == page.rejected.size());
    for (std::size_t i = 0; i < page.rejected.size(); ++i) {
      const auto& rejected = page.rejected[i];
      log->warn(
          "incoming payment breaks the contract correlation_id={} outcome={} cause={} reason={} "
          "cursor={} "
          "index={} from_cursor={}",
          parked_ids(rejected).correlation_id,
          rejected_outcomes[i] == Outcome::parked ? "parked" : "parked_before",
          clearing_client::to_string(rejected.cause), rejected.reason,
          rejected.cursor.value_or("-"), rejected.index, from);
    }
    std::lock_guard lock(stats_mutex);
    ++stats.pages;
    stats.payments_recorded += tally.recorded;
    stats.payments_resent += tally.resent;
    stats.payments_parked += tally.parked;
    return applied;
  }

  // Counts a feed request. A failing feed (a maintenance window lasts hours, polled every
  // second) is logged when it starts failing, when the way it fails changes, and when it
  // answers again; the alert is clearing_incoming_feed_failures_total.
  void note_feed(const clearing_client::IncomingPage& page) {
    std::lock_guard lock(stats_mutex);
    ++stats.feed_requests;
    const auto failure =
        page.ok ? std::string()
                : std::string(clearing_client::to_string(page.failure.answer_class)) + "/" +
                      std::string(clearing_client::to_string(page.failure.cause));
    if (!page.ok) ++stats.feed_failures;
    const bool changed = page.ok ? stats.feed_failing : failure != feed_failure_logged;
    stats.feed_failing = !page.ok;
    if (!changed) return;
    feed_failure_logged = failure;
    if (!page.ok)
      log->warn("incoming feed failing class={} cause={} detail={} failures={}",
                clearing_client::to_string(page.failure.answer_class),
                clearing_client::to_string(page.failure.cause), page.failure.detail,
                stats.feed_failures);
    else
      log->info("incoming feed answers again failures={}", stats.feed_failures);
  }

  // The same for a page's transaction (the store), logged once per change.
  void note_applied(const StoreResult<int>& polled) {
    std::lock_guard lock(stats_mutex);
    if (!polled) ++stats.pages_not_applied;
    if (polled.has_value() != stats.store_failing) return;
    stats.store_failing = !polled;
    if (!polled)
      // The class only: a PostgreSQL error's DETAIL quotes a row's values (a name, an account).
      log->warn("incoming pages not applied cause={}", eventstore::to_string(polled.error().code));
    else
      log->info("incoming pages applied again not_applied={}", stats.pages_not_applied);
  }

  void set_running(bool running) {
    std::lock_guard lock(stats_mutex);
    stats.running = running;
  }

  // Payments parked before parked_messages listed them (adapter/0008): listed now, open. Each is
  // still parked: an operator books or returns a payment through its row (parked_actions.cpp),
  // and the rows came with 0008, so a payment without one was never booked or returned. In
  // batches; the anti-join finds none once done, so every start may run it.
  StoreResult<int> list_parked_payments() {
    constexpr int kBatch = 200;
    int listed = 0;
    for (;;) {
      auto batch = store.pool().transact([&](Transaction& tx) -> StoreResult<int> {
        const auto streams = tx.exec_params(
            "select e.stream_id from events e where e.type = 'IncomingPaymentParked'"
            // events_alarms' predicate, so that its index serves this
            " and e.type in ('ContradictingClearingAnswerReceived',"
            " 'ConflictingIncomingPaymentReceived', 'IncomingPaymentParked')"
            " and not exists (select 1 from parked_messages p"
            " where p.payment_id = e.data->>'payment_id') order by e.position limit $1",
            kBatch);
        for (const auto& row : streams) {
          auto loaded = payments.load(tx, eventstore::StreamId{row[0].as<std::string>()});
          if (!loaded) return tl::unexpected(loaded.error());
          const auto& st = loaded->state;
          const sagas::IncomingPaymentParked parked{st.payment_id,       st.clearing_reference,
                                                    st.cursor,           st.content,
                                                    st.park_reason_code, st.park_reason};
          if (auto done = park_incoming_payment(tx, parked, store.pool().protector()); !done)
            return tl::unexpected(done.error());
        }
        return static_cast<int>(streams.size());
      });
      if (!batch) return batch;
      listed += *batch;
      if (*batch < kBatch) break;
    }
    if (listed > 0) log->info("parked incoming payments listed count={}", listed);
    return listed;
  }

  void run() {
    bool listed = false;
    for (;;) {
      if (!listed) {
        // A failure is a store failure like a page's: counted and logged, tried again next round.
        const auto listing = list_parked_payments();
        listed = listing.has_value();
        if (!listing) note_applied(listing);
      }
      int on_page = 0;
      auto polled = poll_once();
      note_applied(polled);
      if (polled) on_page = *polled;
      // A full page means more is waiting: go on at once.
      if (!worker.sleep_for(on_page < options.page_limit ? options.interval
                                                         : std::chrono::milliseconds(0)))
        break;
    }
    set_running(false);
  }
};

IncomingPoller::IncomingPoller(eventstore::EventStore& store,
                               clearing_client::ClearingClient& client, const base::Clock& clock,
                               IncomingPollerOptions options)
    : impl_(std::make_unique<Impl>(store, client, clock, std::move(options))) {}

IncomingPoller::~IncomingPoller() { stop(); }

void IncomingPoller::start() {
  impl_->set_running(true);  // before the thread, so /readyz never sees it started and not running
  impl_->worker.start([this] { impl_->run(); });
}

void IncomingPoller::stop() { impl_->worker.stop(); }

eventstore::StoreResult<int> IncomingPoller::poll_once() { return impl_->poll_once(); }

eventstore::StoreResult<int> IncomingPoller::list_parked_payments() {
  return impl_->list_parked_payments();
}

IncomingPollerStats IncomingPoller::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::adapter
