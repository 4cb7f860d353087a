// "The other partitions kept flowing": the stall measure of the chaos run (flow.hpp).
#include "flow.hpp"

#include <doctest/doctest.h>

using namespace clearing::chaos;

namespace {

PartitionSample at(std::int64_t head, std::int64_t applied, std::int64_t offset = -1,
                   std::int64_t end = -1) {
  return PartitionSample{head, applied, offset, end};
}

}  // namespace

TEST_CASE("waiting: the core's stream or Kafka is ahead of what the adapter handled") {
  CHECK_FALSE(waiting(at(10, 10)));
  CHECK(waiting(at(11, 10)));
  CHECK(waiting(at(10, 10, 41, 43)));  // a message the core never wrote, on Kafka
  CHECK_FALSE(waiting(at(10, 10, 42, 43)));
  CHECK_FALSE(waiting(at(-1, 10, 42, -1)));  // nothing readable says so
}

TEST_CASE("the stretch of a stall outside the windows") {
  CHECK(longest_outside(0, 10, {}) == doctest::Approx(10));
  CHECK(longest_outside(0, 10, {{2, 4, "kill"}}) == doctest::Approx(6));
  CHECK(longest_outside(0, 10, {{-5, 3, "kill"}, {2, 8, "outage"}}) == doctest::Approx(2));
  CHECK(longest_outside(0, 10, {{-5, 30, "pg"}}) == doctest::Approx(0));
  CHECK(longest_outside(0, 10, {{6, 7, "b"}, {1, 2, "a"}}) == doctest::Approx(4));  // any order
  CHECK(longest_outside(0, 10, {{20, 30, "later"}}) == doctest::Approx(10));
}

TEST_CASE(
    "a partition with messages waiting and no progress stalls; one that moves or has nothing to do "
    "does not") {
  FlowWatch watch(3);
  for (int t = 0; t <= 20; ++t) {
    const auto s = static_cast<std::int64_t>(t);
    watch.sample(t, {at(100 + s, 50),      // stuck behind one message: a stall from 0 on
                     at(100 + s, 99 + s),  // always a little behind, always moving
                     at(7, 7, 3, 4)});     // nothing to do
  }
  const auto longest = watch.longest();
  CHECK(longest.partition == 0);
  CHECK(longest.from_s == doctest::Approx(0));
  CHECK(longest.to_s == doctest::Approx(20));  // still open: up to the last sample
  CHECK(longest.open);
  CHECK(watch.stalls().size() == 1);
  CHECK(watch.samples() == 21);
  CHECK(watch.last(0).core_head == 120);
  CHECK(watch.last(0).applied_seq == 50);
  CHECK(watch.last(7).applied_seq == -1);  // no such partition
}

TEST_CASE("a stall ends at the first sample that sees progress; windows explain what they cover") {
  FlowWatch watch(2);
  std::int64_t applied = 10;
  for (int t = 0; t <= 30; ++t) {
    if (t <= 5 || t >= 18) ++applied;  // stuck from 5 to 18 on partition 0
    watch.sample(t, {at(40, applied), at(40, 10 + t)});
  }
  const auto stalls = watch.stalls();
  REQUIRE(stalls.size() == 1);
  CHECK(stalls[0].partition == 0);
  CHECK(stalls[0].from_s == doctest::Approx(5));
  CHECK(stalls[0].to_s == doctest::Approx(18));
  CHECK_FALSE(stalls[0].open);
  CHECK(watch.longest_unexplained().second == doctest::Approx(13));
  watch.excuse(4, 12, "adapter 0 killed");
  CHECK(watch.longest_unexplained().second == doctest::Approx(6));
  watch.excuse(11, 19, "broker 2 down");
  CHECK(watch.longest_unexplained().second == doctest::Approx(0));
  CHECK(watch.longest().length_s() == doctest::Approx(13));  // the raw figure stays
}

TEST_CASE("an unreadable sample is no evidence: it neither starts nor ends a stall") {
  FlowWatch watch(1);
  watch.sample(0, {at(5, 2)});
  watch.sample(1, {at(-1, -1)});
  watch.sample(2, {at(6, 2)});
  watch.sample(3, {at(6, 6)});
  const auto stalls = watch.stalls();
  REQUIRE(stalls.size() == 1);
  CHECK(stalls[0].from_s == doctest::Approx(0));
  CHECK(stalls[0].to_s == doctest::Approx(3));
}
