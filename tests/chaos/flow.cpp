#include "flow.hpp"

#include <algorithm>

namespace clearing::chaos {

bool waiting(const PartitionSample& s) noexcept {
  const bool core_ahead = s.core_head >= 0 && s.applied_seq >= 0 && s.core_head > s.applied_seq;
  const bool kafka_ahead = s.kafka_end >= 0 && s.kafka_end - 1 > s.kafka_offset;
  return core_ahead || kafka_ahead;
}

double longest_outside(double from_s, double to_s, std::vector<Window> windows) {
  std::sort(windows.begin(), windows.end(),
            [](const Window& a, const Window& b) { return a.from_s < b.from_s; });
  double longest = 0;
  double at = from_s;  // the start of the stretch not yet covered
  for (const auto& w : windows) {
    if (w.to_s <= at) continue;
    if (w.from_s >= to_s) break;
    longest = std::max(longest, std::max(w.from_s, at) - at);
    at = std::max(at, w.to_s);
    if (at >= to_s) return longest;
  }
  return std::max(longest, to_s - at);
}

FlowWatch::FlowWatch(int partitions) : tracks_(static_cast<std::size_t>(std::max(partitions, 0))) {}

void FlowWatch::sample(double at_s, const std::vector<PartitionSample>& partitions) {
  ++samples_;
  last_sample_s_ = at_s;
  const auto n = std::min(partitions.size(), tracks_.size());
  for (std::size_t p = 0; p < n; ++p) {
    const auto& now = partitions[p];
    auto& track = tracks_[p];
    if (now.applied_seq < 0) continue;  // unreadable: no evidence either way
    const bool moved = !track.seen || now.applied_seq != track.last.applied_seq ||
                       now.kafka_offset != track.last.kafka_offset;
    if (!waiting(now) || moved) {
      if (track.stalled)
        closed_.push_back({static_cast<int>(p), track.last_flowing_s, at_s, false});
      track.stalled = false;
      track.last_flowing_s = at_s;
    } else {
      track.stalled = true;
    }
    track.seen = true;
    track.last = now;
  }
}

void FlowWatch::excuse(double from_s, double to_s, std::string why) {
  windows_.push_back({from_s, to_s, std::move(why)});
}

PartitionSample FlowWatch::last(int partition) const {
  if (partition < 0 || partition >= static_cast<int>(tracks_.size())) return {};
  return tracks_[static_cast<std::size_t>(partition)].last;
}

std::vector<Stall> FlowWatch::stalls() const {
  auto out = closed_;
  for (std::size_t p = 0; p < tracks_.size(); ++p)
    if (tracks_[p].stalled)
      out.push_back({static_cast<int>(p), tracks_[p].last_flowing_s, last_sample_s_, true});
  return out;
}

Stall FlowWatch::longest() const {
  Stall best;
  for (const auto& s : stalls())
    if (best.partition < 0 || s.length_s() > best.length_s()) best = s;
  return best;
}

std::pair<Stall, double> FlowWatch::longest_unexplained() const {
  std::pair<Stall, double> best{Stall{}, 0};
  for (const auto& s : stalls()) {
    const double outside = longest_outside(s.from_s, s.to_s, windows_);
    if (best.first.partition < 0 || outside > best.second) best = {s, outside};
  }
  return best;
}

}  // namespace clearing::chaos
