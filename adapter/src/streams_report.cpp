#include "clearing/adapter/streams_report.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "clearing/base/clock.hpp"

namespace clearing::adapter {
namespace {

using external_streams::StreamPhase;
using external_streams::StreamProgress;

nlohmann::json timestamp_or_null(const std::optional<base::Timestamp>& at) {
  return at ? nlohmann::json(base::format_timestamp(*at)) : nlohmann::json(nullptr);
}

std::string state_name(const StreamProgress& p) {
  return std::string(external_streams::to_string(external_streams::state_of(p.record)));
}

std::string percent_text(double percent) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", percent);
  return text;
}

// The table's columns; the numeric ones are aligned right.
constexpr std::size_t kColumns = 9;
using Row = std::array<std::string, kColumns>;
constexpr Row kHeader{"stream",    "derivation",  "partitions", "state",     "head",
                      "published", "unpublished", "position",   "live since"};
constexpr std::array<bool, kColumns> kRightAligned{false, false, true, false, true,
                                                   true,  true,  true, false};

Row row_of(const StreamProgress& p) {
  return {p.record.name,
          p.record.derivation,
          std::to_string(p.record.partitions),
          state_name(p),
          std::to_string(p.head),
          std::to_string(p.published),
          std::to_string(unpublished(p)),
          p.record.phase == StreamPhase::retired ? "-" : std::to_string(p.position),
          p.record.live_since ? base::format_timestamp(*p.record.live_since) : "-"};
}

std::string render_table(const std::vector<Row>& rows) {
  std::array<std::size_t, kColumns> width{};
  for (const auto& row : rows)
    for (std::size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < kColumns; ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      line += c == 0 ? "" : "  ";
      line += kRightAligned[c] ? pad + row[c] : row[c] + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::int64_t unpublished(const StreamProgress& progress) noexcept {
  return std::max<std::int64_t>(0, progress.head - progress.published);
}

std::optional<double> backfill_percent(const StreamProgress& progress) noexcept {
  if (progress.record.phase != StreamPhase::backfilling) return std::nullopt;
  if (progress.position >= progress.live_position) return 100.0;
  const double share = static_cast<double>(std::max<std::int64_t>(0, progress.position)) /
                       static_cast<double>(progress.live_position);
  // Rounded down: 99.96% is not yet 100.0%.
  return std::floor(share * 1000.0) / 10.0;
}

nlohmann::json stream_progress_json(const StreamProgress& p) {
  const auto percent = backfill_percent(p);
  return {
      {"stream", p.record.name},
      {"derivation", p.record.derivation},
      {"partitions", p.record.partitions},
      {"state", state_name(p)},
      {"head", p.head},
      {"published", p.published},
      {"unpublished", unpublished(p)},
      {"position", p.record.phase == StreamPhase::retired ? nlohmann::json(nullptr)
                                                          : nlohmann::json(p.position)},
      {"live_position", p.live_position},
      {"backfill_percent", percent ? nlohmann::json(*percent) : nlohmann::json(nullptr)},
      {"sunset", p.record.sunset ? nlohmann::json(*p.record.sunset) : nlohmann::json(nullptr)},
      {"live_since", timestamp_or_null(p.record.live_since)},
      {"registered_at", base::format_timestamp(p.record.registered_at)},
  };
}

nlohmann::json streams_json(std::span<const StreamProgress> streams) {
  auto list = nlohmann::json::array();
  for (const auto& p : streams) list.push_back(stream_progress_json(p));
  return {{"streams", std::move(list)}};
}

std::string render_streams(std::span<const StreamProgress> streams) {
  if (streams.empty())
    return "no outbound stream is registered yet (`clearing-adapter run` registers the "
           "configured streams at start)\n";
  std::vector<Row> rows{kHeader};
  for (const auto& p : streams) rows.push_back(row_of(p));
  std::string out = render_table(rows);
  std::string notes;
  for (const auto& p : streams) {
    if (const auto percent = backfill_percent(p))
      notes += p.record.name + ": backfilling, at position " + std::to_string(p.position) +
               " of the live derivation's " + std::to_string(p.live_position) + " (" +
               percent_text(*percent) + ")\n";
    if (p.record.sunset)
      notes += p.record.name + ": " + state_name(p) + ", sunset " + *p.record.sunset + "\n";
  }
  return notes.empty() ? out : out + "\n" + notes;
}

std::string stream_progress_fields(const StreamProgress& p) {
  std::ostringstream out;
  out << "stream=" << p.record.name << " derivation=" << p.record.derivation
      << " partitions=" << p.record.partitions << " state=" << state_name(p) << " head=" << p.head
      << " published=" << p.published;
  if (p.record.phase != StreamPhase::retired) out << " position=" << p.position;
  out << " live_position=" << p.live_position;
  if (const auto percent = backfill_percent(p)) out << " backfill=" << percent_text(*percent);
  if (p.record.sunset) out << " sunset=" << *p.record.sunset;
  return out.str();
}

tl::expected<std::vector<StreamProgress>, std::string> read_streams_report(
    eventstore::ConnectionPool& pool) {
  auto progress = pool.transact(
      [](eventstore::Transaction& tx) { return external_streams::read_stream_progress(tx); });
  if (!progress) return tl::unexpected("reading the stream registry: " + progress.error().message);
  return std::move(*progress);
}

}  // namespace clearing::adapter
