#include "clearing/external_streams/message.hpp"

#include <doctest/doctest.h>

#include <limits>

using namespace clearing::external_streams;

namespace {
// A message written by hand exactly as docs/streams.md shows it: the contract, not our
// serializer, is what these tests hold us to.
constexpr const char* kContractExample = R"({
  "stream": "core.dk.payments.v1",
  "partition": 0,
  "seq": 41,
  "event_id": "0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a11",
  "type": "TransferRequested",
  "occurred_at": "2026-11-26T09:00:00.123Z",
  "correlation_id": "5b7d6a52-4c2e-4bb0-8a1b-0c0d9e1f2a3b",
  "source_event_id": "a3c9f1d2-7e4b-4f1a-9d2c-6b5e4f3a2b1c",
  "data": { "transfer_id": "t-1" }
})";
}  // namespace

TEST_CASE("the contract's example message parses field by field") {
  auto m = parse_message(std::string_view(kContractExample));
  REQUIRE(m);
  CHECK(m->stream == "core.dk.payments.v1");
  CHECK(m->partition == 0);
  CHECK(m->seq == 41);
  CHECK(m->event_id == "0b8e4f4e-5d0c-4a53-9c43-2f7f5d0c9a11");
  CHECK(m->type == "TransferRequested");
  CHECK(m->occurred_at == "2026-11-26T09:00:00.123Z");
  CHECK(m->correlation_id == "5b7d6a52-4c2e-4bb0-8a1b-0c0d9e1f2a3b");
  CHECK(m->source_event_id == "a3c9f1d2-7e4b-4f1a-9d2c-6b5e4f3a2b1c");
  CHECK(m->data["transfer_id"] == "t-1");
}

TEST_CASE("to_json writes exactly the contract's fields and parses back") {
  auto m = parse_message(std::string_view(kContractExample));
  REQUIRE(m);
  const auto j = m->to_json();
  CHECK(j == nlohmann::json::parse(kContractExample));
  auto again = parse_message(j);
  REQUIRE(again);
  CHECK(again->seq == 41);
}

TEST_CASE("bad input gets a typed reason, never an exception") {
  auto error_of = [](std::string_view text) {
    auto m = parse_message(text);
    REQUIRE_FALSE(m);
    return m.error().code;
  };
  CHECK(error_of("not json at all") == MessageErrc::not_json);
  CHECK(error_of("[1,2]") == MessageErrc::not_json);
  CHECK(error_of("") == MessageErrc::not_json);
  auto j = nlohmann::json::parse(kContractExample);
  auto without = [&](const char* field) {
    auto copy = j;
    copy.erase(field);
    return error_of(copy.dump());
  };
  CHECK(without("seq") == MessageErrc::missing_field);
  CHECK(without("type") == MessageErrc::missing_field);
  CHECK(without("event_id") == MessageErrc::missing_field);
  CHECK(without("data") == MessageErrc::missing_field);
  CHECK(without("partition") == MessageErrc::missing_field);
  for (auto bad :
       {nlohmann::json(0), nlohmann::json(-3), nlohmann::json("41"), nlohmann::json(4.5)}) {
    auto copy = j;
    copy["seq"] = bad;
    CHECK(error_of(copy.dump()) == MessageErrc::bad_seq);
  }
}

TEST_CASE("partition_for is stable (fixed for ever) and spreads entities") {
  // Pinned values: if these change, entities move partitions and order breaks.
  CHECK(partition_for("t-1", 4) == partition_for("t-1", 4));
  CHECK(partition_for("", 4) == static_cast<std::int32_t>(2166136261u % 4));
  std::vector<int> counts(8, 0);
  for (int i = 0; i < 8000; ++i) ++counts[partition_for("transfer-" + std::to_string(i), 8)];
  for (int c : counts) CHECK(c > 700);
  for (int i = 0; i < 100; ++i) CHECK(partition_for(std::to_string(i), 1) == 0);
}

TEST_CASE("the envelope is checked against its limits before anything is written") {
  const auto example = nlohmann::json::parse(kContractExample);
  auto with = [&](const char* field, nlohmann::json value) {
    auto copy = example;
    copy[field] = std::move(value);
    return parse_message(std::string_view(copy.dump()));
  };
  SUBCASE("a partition of 2^32 is not partition 0, and 2^63 is not a negative seq") {
    auto partition = with("partition", std::uint64_t{1} << 32);
    REQUIRE_FALSE(partition);
    CHECK(partition.error().code == MessageErrc::missing_field);
    CHECK_FALSE(partition.error().seq.has_value());
    CHECK_FALSE(with("partition", 256));
    CHECK(with("partition", 255));
    auto seq = with("seq", std::uint64_t{1} << 63);
    REQUIRE_FALSE(seq);
    CHECK(seq.error().code == MessageErrc::bad_seq);
    CHECK(with("seq", std::numeric_limits<std::int64_t>::max()));
  }
  SUBCASE("identifiers with control characters, NUL or beyond 200 bytes are bad fields") {
    for (const auto& bad : {std::string("corr\nforged level=error"), std::string("a\0b", 3),
                            std::string(201, 'c'), std::string("with space")}) {
      auto m = with("correlation_id", bad);
      REQUIRE_FALSE(m);
      CHECK(m.error().code == MessageErrc::bad_field);
      // The message says which field and what rule, never the value.
      CHECK(m.error().message.find("correlation_id") != std::string::npos);
      CHECK(m.error().message.find("forged") == std::string::npos);
    }
    CHECK_FALSE(with("occurred_at", std::string("2026\0", 5)));
    CHECK_FALSE(with("type", "Transfer\nRequested"));
  }
  SUBCASE("a message whose position is readable keeps it in the error, so its seq can be counted") {
    auto copy = example;
    copy.erase("correlation_id");
    auto m = parse_message(copy);
    REQUIRE_FALSE(m);
    CHECK(m.error().code == MessageErrc::missing_field);
    REQUIRE(m.error().seq.has_value());
    CHECK(*m.error().seq == 41);
    CHECK(m.error().stream == "core.dk.payments.v1");
    CHECK(m.error().partition == 0);
  }
  SUBCASE("without a readable stream the position is not trusted") {
    auto m = with("stream", "core dk");
    REQUIRE_FALSE(m);
    CHECK_FALSE(m.error().seq.has_value());
  }
  SUBCASE("a value over the size limit is refused unread, and invalid UTF-8 is not JSON") {
    auto big = example;
    big["data"]["pad"] = std::string(kMessageBytesMax, 'x');
    auto m = parse_message(std::string_view(big.dump()));
    REQUIRE_FALSE(m);
    CHECK(m.error().code == MessageErrc::too_large);
    auto bad_utf8 = parse_message(std::string_view("{\"stream\": \"\xFF\"}"));
    REQUIRE_FALSE(bad_utf8);
    CHECK(bad_utf8.error().code == MessageErrc::not_json);
  }
}
