// The incoming feed against a hostile clearing (issue 16): the poller and the clearing client
// over a real PostgreSQL, pointed at a scripted raw-TCP server. One payment that breaks the
// contract costs only itself: the good payments of its page are recorded, it is parked once
// with its reason and its raw bytes, the cursor moves past it and the next page is read.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>

#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/adapter/testing/saga_fixture.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/sagas/incoming_payment_decider.hpp"
#include "hostile_clearing_client.hpp"
#include "hostile_http_server.hpp"

using namespace clearing;
using namespace clearing::testing;

namespace {

constexpr int kPageLimit = 10;

std::unique_ptr<clearing_client::ClearingClient> make_client(const HostileHttpServer& server) {
  return start_hostile_client(server, HostileConnections::own_per_call);
}

std::string cursor_text(int number) {
  char text[16];
  std::snprintf(text, sizeof text, "%012d", number);
  return text;
}

// One payment's JSON text, built by hand so that it can carry bytes no JSON library writes.
std::string payment(int number, std::string_view debtor_name_json = R"("Ada Lovelace")",
                    std::string_view reference_json = "") {
  const std::string reference = reference_json.empty() ? "\"CR-" + std::to_string(number) + "\""
                                                       : std::string(reference_json);
  return R"({"cursor":")" + cursor_text(number) + R"(","clearing_reference":)" + reference +
         R"(,"amount_minor":)" + std::to_string(1000 + number) +
         R"(,"currency":"DKK","debtor_account":"DE89370400440532013000","debtor_name":)" +
         std::string(debtor_name_json) +
         R"(,"creditor_account":"5301-0001234567","creditor_name":"Charles Babbage",)"
         R"("remittance_info":"Invoice 42","received_at":"2026-11-26T09:00:00Z"})";
}

std::string page(const std::vector<std::string>& payments, std::optional<int> next_cursor) {
  std::string body = R"({"payments":[)";
  for (std::size_t i = 0; i < payments.size(); ++i) body += (i ? "," : "") + payments[i];
  return body + R"(],"next_cursor":)" +
         (next_cursor ? "\"" + cursor_text(*next_cursor) + "\"" : std::string("null")) + "}";
}

// The `after` of a feed request ("" when it had none).
std::string after_of(const std::string& target) {
  const auto at = target.find("after=");
  if (at == std::string::npos) return "";
  return target.substr(at + 6, target.find('&', at) == std::string::npos
                                   ? std::string::npos
                                   : target.find('&', at) - at - 6);
}

// A feed that answers each `after` with a scripted page; any other `after`: an empty page.
class ScriptedFeed {
 public:
  explicit ScriptedFeed(std::map<std::string, std::string> pages)
      : pages_(std::move(pages)), server_([this](const ScriptedRequest& request) {
          const auto after = after_of(request.target);
          std::lock_guard lock(mutex_);
          afters_.push_back(after);
          const auto it = pages_.find(after);
          const auto body = it == pages_.end() ? std::string(R"({"payments":[]})") : it->second;
          return ScriptedReply{http_response(200, body, "Content-Type: application/json\r\n")};
        }) {}

  const HostileHttpServer& server() const { return server_; }
  std::vector<std::string> afters() const {
    std::lock_guard lock(mutex_);
    return afters_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> pages_;
  std::vector<std::string> afters_;
  HostileHttpServer server_;
};

std::string hex(std::string_view bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out += kDigits[static_cast<unsigned char>(c) >> 4];
    out += kDigits[static_cast<unsigned char>(c) & 0xF];
  }
  return out;
}

std::string count(SagaDatabase& db, const std::string& sql) {
  return db.database.query_value("select count(*) " + sql);
}

}  // namespace

TEST_CASE(
    "one payment that breaks the contract is parked once with its reason, the good ones of "
    "its page are recorded, the cursor moves past it and the next page is read") {
  SagaDatabase db;
  const auto bad = payment(2, R"("Ada\u0000Lovelace")");  // jsonb refuses \u0000
  ScriptedFeed feed({{"", page({payment(1), bad, payment(3)}, 3)},
                     {cursor_text(3), page({payment(4)}, 4)},
                     {cursor_text(4), page({}, 4)}});
  auto client = make_client(feed.server());
  base::SystemClock clock;
  adapter::IncomingPoller poller(*db.store, *client, clock,
                                 {std::chrono::milliseconds(10), kPageLimit, dk_rules()});

  // Before: the bad payment failed its page, and every poll asked for the same page again.
  auto polled = poller.poll_once();
  REQUIRE_MESSAGE(polled, (polled ? "" : polled.error().message));
  CHECK(*polled == 3);
  polled = poller.poll_once();
  REQUIRE(polled);
  CHECK(*polled == 1);
  polled = poller.poll_once();
  REQUIRE(polled);
  CHECK(*polled == 0);

  // The flow went on: past the bad payment's page, then past the next.
  CHECK(feed.afters() == std::vector<std::string>{"", cursor_text(3), cursor_text(4)});
  const auto stats = poller.stats();
  CHECK(stats.feed_failures == 0);
  CHECK(stats.payments_recorded == 3);
  CHECK(stats.payments_parked == 1);
  CHECK(stats.payments_resent == 0);
  CHECK(count(db, "from events where type = 'IncomingPaymentRecorded'") == "3");
  for (int number : {1, 3, 4}) {
    CAPTURE(number);
    CHECK(count(db, "from events where stream_id = 'incoming-payment-CR-" + std::to_string(number) +
                        "'") == "1");
  }
  CHECK(count(db, "from events where stream_id = 'incoming-payment-CR-2'") == "0");
  CHECK(db.database.query_value("select data->>'next_cursor' from events where type = "
                                "'IncomingFeedAdvanced' order by position desc limit 1") ==
        cursor_text(4));

  // Parked once, with the field and the rule (never the name), and the bytes as received.
  CHECK(count(db, "from parked_messages") == "1");
  CHECK(db.database.query_value(
            "select source || '|' || reason_code || '|' || reason from parked_messages") ==
        "clearing-feed|invalid_payment|payment field debtor_name contains a control character "
        "(cursor " +
            cursor_text(2) + ")");
  CHECK(db.database.query_value("select encode(raw, 'hex') from parked_messages") == hex(bad));
  CHECK(db.database.query_value("select correlation_id from parked_messages") ==
        sagas::incoming_payment_id("CR-2"));
  CHECK(db.database.query_value(
            "select data->>'clearing_reference' || '|' || (data->>'cursor') from events "
            "where type = 'IncomingFeedPaymentParked'") == "CR-2|" + cursor_text(2));
}

TEST_CASE(
    "the same page seen again parks nothing twice: re-sent by the mainframe, or read by a "
    "poller started afresh") {
  SagaDatabase db;
  // One bad payment named by its clearing reference, one with no readable reference (invalid
  // UTF-8 in it): that one is known by its bytes.
  const std::vector<std::string> first = {payment(1), payment(2, R"("Ada\u0000Lovelace")"),
                                          payment(5, R"("Ada")", "\"CR-\xff\""), payment(3)};
  // After its restart the mainframe re-sends the whole page; the bad reference-less payment
  // comes byte for byte the same, the other with a new name but the same reference.
  const std::vector<std::string> again = {payment(1),
                                          payment(2, "\"" + std::string(2'000, 'x') + "\""),
                                          payment(5, R"("Ada")", "\"CR-\xff\""), payment(3)};
  ScriptedFeed feed({{"", page(first, 3)}, {cursor_text(3), page(again, 3)}});
  auto client = make_client(feed.server());
  base::SystemClock clock;
  adapter::IncomingPoller poller(*db.store, *client, clock,
                                 {std::chrono::milliseconds(10), kPageLimit, dk_rules()});

  for (int poll = 0; poll < 3; ++poll) {
    CAPTURE(poll);
    auto polled = poller.poll_once();
    REQUIRE_MESSAGE(polled, (polled ? "" : polled.error().message));
    CHECK(*polled == 4);
  }
  auto stats = poller.stats();
  CHECK(stats.payments_recorded == 2);
  CHECK(stats.payments_parked == 2);
  CHECK(stats.payments_resent == 2 * 4);
  CHECK(count(db, "from parked_messages") == "2");
  CHECK(count(db, "from parked_messages where reason_code = 'invalid_payment'") == "2");
  CHECK(count(db, "from events where type = 'IncomingFeedPaymentParked'") == "2");
  CHECK(db.database.query_value(
            "select encode(raw, 'hex') from parked_messages where reason like '%" + cursor_text(5) +
            "%'") == hex(first[2]));

  // A poller started afresh (a restart) resumes at the recorded cursor and sees the page again.
  adapter::IncomingPoller restarted(*db.store, *client, clock,
                                    {std::chrono::milliseconds(10), kPageLimit, dk_rules()});
  auto polled = restarted.poll_once();
  REQUIRE(polled);
  CHECK(*polled == 4);
  CHECK(restarted.stats().payments_parked == 0);
  CHECK(restarted.stats().payments_recorded == 0);
  CHECK(count(db, "from parked_messages") == "2");
  CHECK(count(db, "from events where type = 'IncomingPaymentRecorded'") == "2");
}

TEST_CASE("a page whose transaction is lost parks nothing; read again, it parks once") {
  SagaDatabase db;
  const auto bad = payment(2, R"("Ada\u0000Lovelace")");
  const auto first_page = page({payment(1), bad, payment(3)}, 3);
  std::atomic<bool> raced{false};
  // The first answer is served while another poller takes the feed's cursor back to the
  // start: this poller's page transaction then fails on the feed stream's version, as it
  // would have failed had the process died before its commit.
  HostileHttpServer server([&](const ScriptedRequest& request) {
    const auto after = after_of(request.target);
    if (after.empty() && !raced.exchange(true)) {
      const eventstore::EventData other{eventstore::EventId{base::new_uuid()},
                                        adapter::kIncomingFeedAdvanced,
                                        {{"from_cursor", ""}, {"next_cursor", cursor_text(0)}},
                                        {"other-poller", "", nullptr, nullptr}};
      auto appended =
          db.store->append(eventstore::StreamId{adapter::kIncomingFeedStream},
                           eventstore::ExpectedVersion::no_stream(), std::vector{other});
      CHECK_MESSAGE(appended, (appended ? "" : appended.error().message));
    }
    const bool first = after.empty() || after == cursor_text(0);
    return ScriptedReply{http_response(200, first ? first_page : page({}, std::nullopt),
                                       "Content-Type: application/json\r\n")};
  });
  auto client = make_client(server);
  base::SystemClock clock;
  adapter::IncomingPoller poller(*db.store, *client, clock,
                                 {std::chrono::milliseconds(10), kPageLimit, dk_rules()});

  auto lost = poller.poll_once();
  REQUIRE_FALSE(lost);
  CHECK(lost.error().code == eventstore::StoreErrc::wrong_expected_version);
  CHECK(count(db, "from parked_messages") == "0");
  CHECK(count(db, "from events where type = 'IncomingFeedPaymentParked'") == "0");
  CHECK(poller.stats().payments_parked == 0);

  auto taken = poller.poll_once();
  REQUIRE_MESSAGE(taken, (taken ? "" : taken.error().message));
  CHECK(*taken == 3);
  CHECK(count(db, "from parked_messages") == "1");
  CHECK(count(db, "from events where type = 'IncomingPaymentRecorded'") == "2");
  CHECK(poller.stats().payments_parked == 1);
  CHECK(poller.stats().payments_recorded == 2);
}
