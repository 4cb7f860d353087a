// The relay's pause between rounds (round_pause): in proportion to how full the last round
// was, less the time it took; a full round waits the whole interval, a round of a few
// messages almost none.

#include <doctest/doctest.h>

#include "clearing/external_streams/relay.hpp"

using namespace clearing::external_streams;
using std::chrono::milliseconds;

TEST_CASE("round_pause scales the interval by the round's share of a full round") {
  RelayOptions options;
  options.round_interval_min = milliseconds(50);
  options.round_full_messages = 200;
  struct Case {
    std::size_t moved;
    milliseconds elapsed;
    milliseconds pause;
  };
  const Case cases[] = {
      {1, milliseconds(0), milliseconds(0)},      // 50 * 1/200 rounds down to 0
      {5, milliseconds(0), milliseconds(1)},      // ordinary load: 1.25 ms
      {100, milliseconds(0), milliseconds(25)},   // half full: half the interval
      {200, milliseconds(0), milliseconds(50)},   // full: all of it
      {5000, milliseconds(0), milliseconds(50)},  // more than full: still the interval
      {200, milliseconds(20), milliseconds(30)},  // the round's own time counts
      {200, milliseconds(80), milliseconds(0)},   // never negative
      {100, milliseconds(25), milliseconds(0)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.moved);
    CAPTURE(c.elapsed.count());
    CHECK(round_pause(c.moved, c.elapsed, options) == c.pause);
  }
}

TEST_CASE("round_pause with no pacing or a degenerate full size") {
  RelayOptions options;
  options.round_interval_min = milliseconds(0);
  CHECK(round_pause(500, milliseconds(0), options) == milliseconds(0));
  options.round_interval_min = milliseconds(40);
  options.round_full_messages = 0;  // read as 1: any round is full
  CHECK(round_pause(1, milliseconds(0), options) == milliseconds(40));
}
