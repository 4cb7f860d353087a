// The report's two forms: text for people, JSON for tools (field names are stable).

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "clearing/core_sim/core_sim.hpp"

namespace clearing::core_sim {
namespace {

std::string breakdown(const std::map<std::string, std::int64_t>& counts) {
  if (counts.empty()) return "";
  std::string out = "  (";
  bool first = true;
  for (const auto& [name, n] : counts) {
    out += fmt::format("{}{} {}", first ? "" : ", ", name.empty() ? "?" : name, n);
    first = false;
  }
  return out + ")";
}

}  // namespace

std::string to_text(const Report& r) {
  const auto& v = r.violations;
  std::string out = fmt::format("core-sim report ({})\n", r.country);
  const auto line = [&out](std::string_view label, const std::string& value) {
    out += fmt::format("  {:<28}{}\n", label, value);
  };
  line("planned", std::to_string(r.planned));
  line("requested", std::to_string(r.requested));
  line("refused by the core", std::to_string(r.refused) + breakdown(r.refused_by_reason));
  line("succeeded", std::to_string(r.succeeded));
  line("rejected", std::to_string(r.rejected) + breakdown(r.rejected_by_reason));
  line("pending seen", std::to_string(r.pending_seen));
  line("under investigation seen", std::to_string(r.under_investigation_seen));
  line("still open", std::to_string(r.still_open));
  line("DUPL reported", std::to_string(r.duplicate_requests_reported));
  line("incoming payments", std::to_string(r.incoming_payments));
  line("parked messages", std::to_string(r.parked_messages));
  line("source lines skipped", std::to_string(r.source_lines_skipped));
  line("violations",
       fmt::format(
           "{}  (double completion {}, completion after release {}, release after completion {},"
           " double release {}, unknown transfer {})",
           v.total(), v.double_completion, v.completion_after_release, v.release_after_completion,
           v.double_release, v.unknown_transfer));
  line("resolved twice in ledger", std::to_string(r.resolved_twice_in_ledger));
  line("expectation mismatches", std::to_string(r.expectation_mismatches));
  line("resolved exactly once", r.resolved_exactly_once ? "yes" : "NO");
  line("latency ms",
       fmt::format("p50 {:.1f}  p95 {:.1f}  p99 {:.1f}  max {:.1f}  (n={})", r.latency.p50_ms,
                   r.latency.p95_ms, r.latency.p99_ms, r.latency.max_ms, r.latency.count));
  line("throughput", fmt::format("requested {:.1f}/s, resolved {:.1f}/s over {:.1f} s",
                                 r.requested_per_s, r.resolved_per_s, r.elapsed_s));
  return out;
}

nlohmann::json to_json(const Report& r) {
  const auto& v = r.violations;
  return {
      {"country", r.country},
      {"planned", r.planned},
      {"requested", r.requested},
      {"refused", r.refused},
      {"refused_by_reason", r.refused_by_reason},
      {"succeeded", r.succeeded},
      {"rejected", r.rejected},
      {"rejected_by_reason", r.rejected_by_reason},
      {"pending_seen", r.pending_seen},
      {"under_investigation_seen", r.under_investigation_seen},
      {"still_open", r.still_open},
      {"duplicate_requests_reported", r.duplicate_requests_reported},
      {"incoming_payments", r.incoming_payments},
      {"parked_messages", r.parked_messages},
      {"source_lines_skipped", r.source_lines_skipped},
      {"violations",
       {{"total", v.total()},
        {"double_completion", v.double_completion},
        {"completion_after_release", v.completion_after_release},
        {"release_after_completion", v.release_after_completion},
        {"double_release", v.double_release},
        {"unknown_transfer", v.unknown_transfer}}},
      {"resolved_twice_in_ledger", r.resolved_twice_in_ledger},
      {"expectation_mismatches", r.expectation_mismatches},
      {"resolved_exactly_once", r.resolved_exactly_once},
      {"latency_ms",
       {{"count", r.latency.count},
        {"p50", r.latency.p50_ms},
        {"p95", r.latency.p95_ms},
        {"p99", r.latency.p99_ms},
        {"max", r.latency.max_ms}}},
      {"elapsed_s", r.elapsed_s},
      {"requested_per_s", r.requested_per_s},
      {"resolved_per_s", r.resolved_per_s},
  };
}

}  // namespace clearing::core_sim
