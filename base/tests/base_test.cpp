#include <doctest/doctest.h>

#include <set>

#include "clearing/base/clock.hpp"
#include "clearing/base/strong.hpp"
#include "clearing/base/uuid.hpp"

using namespace clearing::base;

TEST_CASE("new_uuid gives distinct canonical version-4 ids") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto id = new_uuid();
    CHECK(is_uuid(id));
    CHECK(id[14] == '4');
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("derived_uuid is stable for the same inputs and differs otherwise") {
  const std::string ns = "6f1c0f0e-2d9b-4c55-9a5e-0c1d2e3f4a5b";
  CHECK(derived_uuid(ns, "a") == derived_uuid(ns, "a"));
  CHECK(derived_uuid(ns, "a") != derived_uuid(ns, "b"));
  CHECK(derived_uuid(ns, "a") != derived_uuid("00000000-0000-4000-8000-000000000000", "a"));
  CHECK(is_uuid(derived_uuid(ns, "a")));
}

TEST_CASE("is_uuid rejects malformed text") {
  for (const char* text :
       {"", "0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a1", "0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a1g",
        "0b8e4f4e05d0c-4a53-9c43-2f7f5d0c9a11"}) {
    CAPTURE(text);
    CHECK_FALSE(is_uuid(text));
  }
  CHECK(is_uuid("0B8E4F4E-5D0C-4A53-9C43-2F7F5D0C9A11"));
}

TEST_CASE("timestamps round-trip through RFC 3339 text") {
  Timestamp t;
  REQUIRE(parse_timestamp("2026-11-26T09:00:00.123Z", t));
  CHECK(format_timestamp(t) == "2026-11-26T09:00:00.123Z");
  REQUIRE(parse_timestamp("2026-11-26T09:00:00Z", t));
  CHECK(format_timestamp(t) == "2026-11-26T09:00:00.000Z");
  CHECK_FALSE(parse_timestamp("2026-11-26 09:00:00Z", t));
  CHECK_FALSE(parse_timestamp("2026-02-30T09:00:00Z", t));
  CHECK_FALSE(parse_timestamp("2026-11-26T09:00:00", t));
}

TEST_CASE("strong types compare by value and do not mix") {
  struct VersionTag {};
  using Version = Strong<VersionTag, long>;
  CHECK(Version{3} < Version{4});
  CHECK(Version{3} == Version{3});
  static_assert(!std::is_convertible_v<long, Version>);
}

TEST_CASE("manual clock moves only when told") {
  ManualClock clock{Timestamp{std::chrono::milliseconds{1000}}};
  CHECK(clock.now().time_since_epoch().count() == 1000);
  clock.advance(std::chrono::milliseconds{250});
  CHECK(clock.now().time_since_epoch().count() == 1250);
}
