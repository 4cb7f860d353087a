#include "clearing/adapter/incoming_poller.hpp"

#include <condition_variable>
#include <mutex>

#include <pqxx/pqxx>

#include "clearing/base/logging.hpp"
#include "clearing/adapter/parking.hpp"
#include "clearing/base/assert.hpp"
#include "clearing/eventstore/aggregate.hpp"
#include "clearing/sagas/incoming_payment_codec.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"

namespace clearing::adapter {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;
using IncomingAggregate = eventstore::Aggregate<sagas::IncomingPaymentDecider, sagas::IncomingPaymentCodec>;

// The clearing's account text as an Account; the decider validates it (and parks the
// payment when it is not valid), so no judgement here.
sagas::Account account_of(const std::string& text) {
  const bool iban = text.size() >= 2 && std::isalpha(static_cast<unsigned char>(text[0])) &&
                    std::isalpha(static_cast<unsigned char>(text[1]));
  return sagas::Account{iban ? sagas::AccountScheme::iban : sagas::AccountScheme::bban, text};
}

nlohmann::json raw_payment(const clearing_client::IncomingPayment& p) {
  return {{"cursor", p.cursor}, {"clearing_reference", p.clearing_reference},
          {"amount_minor", p.amount_minor}, {"currency", p.currency},
          {"debtor_account", p.debtor_account}, {"debtor_name", p.debtor_name},
          {"creditor_account", p.creditor_account}, {"creditor_name", p.creditor_name},
          {"remittance_info", p.remittance_info}, {"received_at", p.received_at}};
}

}  // namespace

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

  std::thread thread;
  std::mutex wait_mutex;
  std::condition_variable wait_cv;
  bool stopping = false;

  mutable std::mutex stats_mutex;
  IncomingPollerStats stats;

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

  // Records one payment; returns 1 when it was new, 0 when it was known.
  StoreResult<int> apply(Transaction& tx, const clearing_client::IncomingPayment& p,
                         const std::string& feed_event_id) {
    if (p.clearing_reference.empty()) {
      park(tx, ParkedMessage{"clearing-feed", "missing_clearing_reference",
                             "an incoming payment without a clearing reference cannot be recorded",
                             raw_payment(p).dump(), std::nullopt, std::nullopt, std::nullopt, std::nullopt});
      std::lock_guard lock(stats_mutex);
      ++stats.payments_parked;
      return 0;
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
    base::parse_timestamp(p.received_at, received);  // an unparsable time stays epoch; the decider parks it
    command.received_at = received;
    command.rules = options.rules;
    const auto payment_id = sagas::incoming_payment_id(p.clearing_reference);
    eventstore::CommandContext context{payment_id, feed_event_id, {{"feed", "clearing"}, {"cursor", p.cursor}},
                                       "incoming|" + p.clearing_reference + "|" + p.cursor};
    auto result = payments.handle(tx, incoming_payment_stream(p.clearing_reference), command, context);
    if (!result) {
      if (auto* error = std::get_if<eventstore::StoreError>(&result.error())) return tl::unexpected(*error);
      const auto& refusal = std::get<sagas::IncomingPaymentRefusal>(result.error());
      park(tx, ParkedMessage{"clearing-feed", "refused", refusal.message, raw_payment(p).dump(),
                             std::nullopt, std::nullopt, std::nullopt, payment_id});
      std::lock_guard lock(stats_mutex);
      ++stats.payments_parked;
      return 0;
    }
    return result->events.empty() ? 0 : 1;
  }

  StoreResult<int> poll_once() {
    auto cursor = load_cursor();
    if (!cursor) return tl::unexpected(cursor.error());
    auto page = client.incoming(cursor->value, options.page_limit).get();
    if (!page.ok) {
      log->warn("incoming feed failed class={} cause={} detail={}",
                clearing_client::to_string(page.failure.answer_class),
                clearing_client::to_string(page.failure.cause), page.failure.detail);
      std::lock_guard lock(stats_mutex);
      ++stats.feed_failures;
      return 0;
    }
    const auto next = page.next_cursor.value_or(cursor->value.value_or(""));
    if (page.payments.empty() && next == cursor->value.value_or("")) return 0;

    int fresh = 0;
    auto applied = store.pool().transact([&](Transaction& tx) -> StoreResult<int> {
      fresh = 0;
      const eventstore::EventId feed_event{base::new_uuid()};
      for (const auto& payment : page.payments) {
        auto one = apply(tx, payment, feed_event.value());
        if (!one) return tl::unexpected(one.error());
        fresh += *one;
      }
      eventstore::EventData advanced{
          feed_event, kIncomingFeedAdvanced,
          {{"from_cursor", cursor->value.value_or("")}, {"next_cursor", next},
           {"payments", page.payments.size()}, {"new_payments", fresh},
           {"fetched_at", base::format_timestamp(clock.now())}},
          {feed_event.value(), "", {{"feed", "clearing"}, {"cursor", cursor->value.value_or("")}}, nullptr}};
      auto appended = store.append(tx, eventstore::StreamId{kIncomingFeedStream},
                                   cursor->version.value() == 0
                                       ? eventstore::ExpectedVersion::no_stream()
                                       : eventstore::ExpectedVersion::exactly(cursor->version),
                                   std::vector{advanced});
      if (!appended) return tl::unexpected(appended.error());
      return static_cast<int>(page.payments.size());
    });
    if (applied) {
      std::lock_guard lock(stats_mutex);
      ++stats.pages;
      stats.payments_recorded += fresh;
      stats.payments_resent += *applied - fresh;
    }
    return applied;
  }

  void run() {
    for (;;) {
      int on_page = 0;
      auto polled = poll_once();
      if (!polled) {
        log->warn("incoming page not applied error={}", polled.error().message);
      } else {
        on_page = *polled;
      }
      std::unique_lock lock(wait_mutex);
      // A full page means more is waiting: go on at once.
      if (on_page < options.page_limit)
        wait_cv.wait_for(lock, options.interval, [&] { return stopping; });
      if (stopping) return;
    }
  }
};

IncomingPoller::IncomingPoller(eventstore::EventStore& store, clearing_client::ClearingClient& client,
                               const base::Clock& clock, IncomingPollerOptions options)
    : impl_(std::make_unique<Impl>(store, client, clock, std::move(options))) {}

IncomingPoller::~IncomingPoller() { stop(); }

void IncomingPoller::start() {
  CLEARING_ASSERT(!impl_->thread.joinable());
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void IncomingPoller::stop() {
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

eventstore::StoreResult<int> IncomingPoller::poll_once() { return impl_->poll_once(); }

IncomingPollerStats IncomingPoller::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace clearing::adapter
