#include "recovery.hpp"

#include <algorithm>
#include <cstdlib>

#include "clearing/support/figures.hpp"

namespace clearing::chaos {

Summary summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto p = clearing::support::percentiles(values);
  return Summary{static_cast<int>(p.count), p.p50, p.p99, p.max};
}

namespace {

// The value of label `name` in a `{a="x",b="y"}` block; nullopt when absent.
std::optional<std::string> label(std::string_view labels, std::string_view name) {
  std::size_t at = 0;
  while (at < labels.size()) {
    const auto eq = labels.find("=\"", at);
    if (eq == std::string_view::npos) return std::nullopt;
    const auto key = labels.substr(at, eq - at);
    std::string value;
    auto i = eq + 2;
    for (; i < labels.size() && labels[i] != '"'; ++i) {
      if (labels[i] == '\\' && i + 1 < labels.size()) ++i;
      value.push_back(labels[i]);
    }
    if (key == name) return value;
    at = i + 1;
    if (at < labels.size() && labels[at] == ',') ++at;
  }
  return std::nullopt;
}

}  // namespace

std::vector<int> assigned_partitions(std::string_view text, std::string_view stream) {
  constexpr std::string_view kFamily = "clearing_inbound_partition_assigned{";
  std::vector<int> out;
  std::size_t line_start = 0;
  while (line_start < text.size()) {
    auto line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    const auto line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line.substr(0, kFamily.size()) != kFamily) continue;
    const auto close = line.find('}');
    if (close == std::string_view::npos) continue;
    const auto labels = line.substr(kFamily.size(), close - kFamily.size());
    const auto value = std::strtod(std::string(line.substr(close + 1)).c_str(), nullptr);
    const auto named = label(labels, "stream");
    const auto partition = label(labels, "partition");
    if (!named || *named != stream || !partition || partition->empty() || value < 0.5) continue;
    out.push_back(std::atoi(partition->c_str()));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<std::int64_t> first_after(const std::vector<std::int64_t>& ascending,
                                        std::int64_t after) {
  const auto it = std::upper_bound(ascending.begin(), ascending.end(), after);
  if (it == ascending.end()) return std::nullopt;
  return *it;
}

InboundRecovery inbound_recovery(std::int64_t killed_us, std::optional<std::int64_t> restarted_us,
                                 const std::vector<int>& partitions,
                                 const std::map<int, std::vector<std::int64_t>>& applied_us) {
  static const std::vector<std::int64_t> kNone;
  InboundRecovery out;
  bool all = !partitions.empty();
  double slowest = 0;
  for (const int p : partitions) {
    const auto found = applied_us.find(p);
    const auto first = first_after(found == applied_us.end() ? kNone : found->second, killed_us);
    PartitionRecovery r{p, std::nullopt, false};
    if (first) {
      r.recovery_ms = static_cast<double>(*first - killed_us) / 1000.0;
      r.after_restart = restarted_us && *first >= *restarted_us;
      slowest = std::max(slowest, *r.recovery_ms);
    } else {
      all = false;
    }
    out.partitions.push_back(r);
  }
  if (all) out.recovery_ms = slowest;
  return out;
}

CallVerdict judge_call(const LeasedCall& at_kill, const CallObservation& now,
                       std::string_view killed_owner, std::int64_t killed_ms,
                       std::int64_t lease_ms) {
  if (!now.present) {
    // The transfer has its outcome: an answer after the kill means the call was made again
    // (the dead process records nothing after it died), at the latest when it was recorded.
    if (now.first_event_after_kill_ms)
      return {CallFate::made_again, *now.first_event_after_kill_ms, false};
    return {CallFate::released_before_kill, 0, false};
  }
  if (now.lease_owner == killed_owner) return {};  // still the dead one's: pending
  if (now.claims > at_kill.claims) {
    std::int64_t upper = now.observed_ms;
    if (now.first_event_after_kill_ms) upper = std::min(upper, *now.first_event_after_kill_ms);
    if (!now.lease_owner.empty()) {
      const auto claimed_ms = now.lease_until_ms - lease_ms;
      // Another instance held it before the kill (the dead one's lease had run out): no
      // recovery of the kill's doing.
      if (now.claims == at_kill.claims + 1 && claimed_ms < killed_ms)
        return {CallFate::released_before_kill, 0, false};
      if (now.claims == at_kill.claims + 1) return {CallFate::made_again, claimed_ms, true};
      upper =
          std::min(upper, claimed_ms);  // claimed again since: the latest claim bounds the first
    }
    return {CallFate::made_again, std::max(upper, killed_ms), false};
  }
  // Not claimed again, and no longer the dead one's lease: its answer was recorded, or the
  // lease released, before it died.
  return {CallFate::released_before_kill, 0, false};
}

CallsRecovery calls_recovery(std::int64_t killed_ms, const std::vector<CallVerdict>& verdicts) {
  CallsRecovery out;
  out.claimed = static_cast<int>(verdicts.size());
  for (const auto& v : verdicts) {
    switch (v.fate) {
      case CallFate::pending:
        ++out.pending;
        break;
      case CallFate::released_before_kill:
        ++out.released_before_kill;
        break;
      case CallFate::made_again: {
        ++out.made_again;
        out.exact += v.exact;
        const auto ms = static_cast<double>(v.made_again_ms - killed_ms);
        out.first_ms = out.first_ms ? std::min(*out.first_ms, ms) : ms;
        out.last_ms = out.last_ms ? std::max(*out.last_ms, ms) : ms;
        break;
      }
    }
  }
  if (out.pending > 0) out.last_ms.reset();
  return out;
}

QuietWindow longest_unresolved(const std::vector<ResolutionSample>& samples) {
  QuietWindow best;
  const auto n = samples.size();
  std::size_t i = 0;
  while (i < n) {
    if (samples[i].open <= 0) {
      ++i;
      continue;
    }
    auto j = i;
    while (j + 1 < n && samples[j + 1].open > 0 && samples[j + 1].resolved == samples[i].resolved)
      ++j;
    const bool ended = j + 1 < n;
    const auto& from = samples[i];
    const auto& to = samples[ended ? j + 1 : j];
    QuietWindow w{true,      from.at_s, to.at_s, to.resolved - from.resolved,
                  from.open, to.open,   !ended};
    if (!best.found || w.length_s() > best.length_s()) best = w;
    i = j + 1;
  }
  return best;
}

double mean_resolution_rate(const std::vector<ResolutionSample>& samples) {
  if (samples.size() < 2) return 0;
  const double span_s = samples.back().at_s - samples.front().at_s;
  if (span_s <= 0) return 0;
  return static_cast<double>(samples.back().resolved - samples.front().resolved) / span_s;
}

QuietWindow longest_below_rate(const std::vector<ResolutionSample>& samples, double rate_per_s) {
  QuietWindow best;
  if (rate_per_s <= 0) return best;
  const auto n = samples.size();
  // resolved_j - resolved_i < rate × (t_j - t_i)  <=>  g(j) < g(i), with g = resolved - rate × t.
  // For each end j the earliest start is the first prefix maximum of g (a "record") above
  // g(j): records rise, so a binary search finds it. O(n log n) over any run length.
  const auto g = [&](std::size_t k) {
    return static_cast<double>(samples[k].resolved) - rate_per_s * samples[k].at_s;
  };
  std::size_t a = 0;
  while (a < n) {
    if (samples[a].open <= 0) {
      ++a;
      continue;
    }
    auto b = a;  // [a, b]: the run of samples with work open; b + 1 may end an interval too
    while (b + 1 < n && samples[b + 1].open > 0) ++b;
    const auto last_end = std::min(b + 1, n - 1);
    std::vector<std::size_t> records;
    for (auto j = a + 1; j <= last_end; ++j) {
      const auto start = j - 1;
      if (records.empty() || g(start) > g(records.back())) records.push_back(start);
      const auto it = std::upper_bound(records.begin(), records.end(), g(j),
                                       [&](double value, std::size_t k) { return value < g(k); });
      if (it == records.end()) continue;
      const auto i = *it;
      const double length_s = samples[j].at_s - samples[i].at_s;
      const auto resolved = samples[j].resolved - samples[i].resolved;
      if (static_cast<double>(resolved) >= rate_per_s * length_s)
        continue;  // rounding: the exact test
      if (!best.found || length_s > best.length_s())
        best = {true,
                samples[i].at_s,
                samples[j].at_s,
                resolved,
                samples[i].open,
                samples[j].open,
                j == n - 1 && samples[j].open > 0};
    }
    a = b + 1;
  }
  return best;
}

std::vector<Window> overlapping(const std::vector<Window>& actions, double from_s, double to_s) {
  std::vector<Window> out;
  for (const auto& a : actions)
    if (a.from_s <= to_s && a.to_s >= from_s) out.push_back(a);
  return out;
}

}  // namespace clearing::chaos
