// `clearing-adapter streams` without a database: what a person and a tool read of each
// stream's progress, from figures given here (streams_report_pgtest reads real ones).

#include "clearing/adapter/streams_report.hpp"

#include <doctest/doctest.h>

using namespace clearing;
using external_streams::StreamPhase;
using external_streams::StreamProgress;

namespace {

base::Timestamp at_ms(std::int64_t ms) { return base::Timestamp{std::chrono::milliseconds{ms}}; }

StreamProgress progress(std::string name, std::string derivation, StreamPhase phase,
                        std::int64_t head, std::int64_t published, std::int64_t position,
                        std::int64_t live_position) {
  StreamProgress p;
  p.record.name = std::move(name);
  p.record.derivation = std::move(derivation);
  p.record.partitions = 4;
  p.record.phase = phase;
  p.record.registered_at = at_ms(1'800'000'000'000);
  if (phase == StreamPhase::live) p.record.live_since = at_ms(1'800'000'000'000);
  p.head = head;
  p.published = published;
  p.position = position;
  p.live_position = live_position;
  return p;
}

}  // namespace

TEST_CASE("backfill_percent: the share of the live position a backfill has reached") {
  const auto backfilling = [](std::int64_t position, std::int64_t live) {
    return adapter::backfill_percent(
        progress("s", "payments.v2", StreamPhase::backfilling, 0, 0, position, live));
  };
  CHECK(backfilling(0, 5000) == 0.0);
  CHECK(backfilling(2100, 5021) == 41.8);
  CHECK(backfilling(4999, 5000) == 99.9);  // rounded down: not yet done
  CHECK(backfilling(5000, 5000) == 100.0);
  CHECK(backfilling(5100, 5000) == 100.0);  // commit order may pass the live position
  CHECK(backfilling(0, 0) == 100.0);
  CHECK_FALSE(
      adapter::backfill_percent(progress("s", "payments.v1", StreamPhase::live, 0, 0, 5000, 5000)));
  CHECK_FALSE(
      adapter::backfill_percent(progress("s", "payments.v1", StreamPhase::retired, 0, 0, 0, 5000)));
}

TEST_CASE("streams: one row per stream, its state, progress, backfill and sunset") {
  auto v1 =
      progress("adapter.dk.payments.v1", "payments.v1", StreamPhase::live, 120, 118, 5021, 5021);
  v1.record.sunset = "2099-12-31";
  const auto v2 = progress("adapter.dk.payments.v2", "payments.v2", StreamPhase::backfilling, 40,
                           40, 2100, 5021);
  auto old =
      progress("adapter.dk.settlements.v0", "settlements.v1", StreamPhase::retired, 7, 7, 0, 5021);
  old.record.sunset = "2026-01-31";
  const std::vector<StreamProgress> streams{v1, v2, old};

  CHECK(adapter::render_streams(streams) ==
        "stream                     derivation      partitions  state        head  published  "
        "unpublished  position  live since\n"
        "adapter.dk.payments.v1     payments.v1              4  deprecated    120        118  "
        "          2      5021  2027-01-15T08:00:00.000Z\n"
        "adapter.dk.payments.v2     payments.v2              4  backfilling    40         40  "
        "          0      2100  -\n"
        "adapter.dk.settlements.v0  settlements.v1           4  retired         7          7  "
        "          0         -  -\n"
        "\n"
        "adapter.dk.payments.v1: deprecated, sunset 2099-12-31\n"
        "adapter.dk.payments.v2: backfilling, at position 2100 of the live derivation's 5021 "
        "(41.8%)\n"
        "adapter.dk.settlements.v0: retired, sunset 2026-01-31\n");

  const auto json = adapter::streams_json(streams);
  REQUIRE(json["streams"].size() == 3);
  CHECK(json["streams"][0] == nlohmann::json{{"stream", "adapter.dk.payments.v1"},
                                             {"derivation", "payments.v1"},
                                             {"partitions", 4},
                                             {"state", "deprecated"},
                                             {"head", 120},
                                             {"published", 118},
                                             {"unpublished", 2},
                                             {"position", 5021},
                                             {"live_position", 5021},
                                             {"backfill_percent", nullptr},
                                             {"sunset", "2099-12-31"},
                                             {"live_since", "2027-01-15T08:00:00.000Z"},
                                             {"registered_at", "2027-01-15T08:00:00.000Z"}});
  CHECK(json["streams"][1]["state"] == "backfilling");
  CHECK(json["streams"][1]["backfill_percent"] == 41.8);
  CHECK(json["streams"][1]["live_since"].is_null());
  CHECK(json["streams"][2]["state"] == "retired");
  CHECK(json["streams"][2]["position"].is_null());

  CHECK(adapter::stream_progress_fields(v2) ==
        "stream=adapter.dk.payments.v2 derivation=payments.v2 partitions=4 state=backfilling "
        "head=40 published=40 position=2100 live_position=5021 backfill=41.8%");
  CHECK(adapter::stream_progress_fields(old) ==
        "stream=adapter.dk.settlements.v0 derivation=settlements.v1 partitions=4 state=retired "
        "head=7 published=7 live_position=5021 sunset=2026-01-31");
}

TEST_CASE(
    "streams: a published mark ahead of the head (a reading between two statements) is "
    "not negative") {
  const auto p = progress("s", "payments.v1", StreamPhase::live, 5, 7, 10, 10);
  CHECK(adapter::unpublished(p) == 0);
}

TEST_CASE("streams: none registered says so") {
  CHECK(adapter::render_streams({}).find("no outbound stream is registered") == 0);
  CHECK(adapter::streams_json({}) == nlohmann::json{{"streams", nlohmann::json::array()}});
}
