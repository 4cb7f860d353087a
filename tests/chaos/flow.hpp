#pragma once
// "The other partitions kept flowing" (issue 16): the chaos run samples every inbound
// partition about once a second and measures how long a partition had messages waiting for
// the adapter without its progress moving. A stall the schedule explains (an adapter killed
// until the group has moved its partitions, a broker down, PostgreSQL restarting, each with
// a slack to recover) is excused; the longest stretch of a stall outside every excused window
// is the figure the run fails on when it exceeds its bound. Pure: the run feeds it samples
// and windows, in seconds since the run started (unit-tested).

#include <cstdint>
#include <string>
#include <vector>

namespace clearing::chaos {

// One partition at one instant; -1 where the sample could not read it.
struct PartitionSample {
  std::int64_t core_head = -1;     // the core's highest seq on its stream
  std::int64_t applied_seq = -1;   // the adapter's last applied seq
  std::int64_t kafka_offset = -1;  // the offset of the last message the adapter handled
  std::int64_t kafka_end = -1;     // Kafka's high watermark: the next offset to be written
};

// Messages are waiting for the adapter: the core's stream is ahead of it, or Kafka holds
// messages after the last one it handled (bad input the core never wrote among them).
bool waiting(const PartitionSample& s) noexcept;

struct Stall {
  int partition = -1;
  double from_s = 0;  // the last sample before it that saw the partition idle or moving
  double to_s = 0;    // the first sample that saw it move again (or the last sample)
  bool open = false;  // not moving yet at the last sample
  double length_s() const noexcept { return to_s - from_s; }
};

struct Window {
  double from_s = 0;
  double to_s = 0;
  std::string why;
};

// The longest stretch of [from, to] that no window covers; 0 when they cover it all.
double longest_outside(double from_s, double to_s, std::vector<Window> windows);

class FlowWatch {
 public:
  explicit FlowWatch(int partitions);

  // One sample of every partition (index = partition), taken at `at_s`.
  void sample(double at_s, const std::vector<PartitionSample>& partitions);
  // A window in which the schedule explains a stop (may come before or after the stall).
  void excuse(double from_s, double to_s, std::string why);

  int samples() const noexcept { return samples_; }
  // Every stall of at least two samples, the open ones up to the last sample.
  std::vector<Stall> stalls() const;
  // The longest stall, and the stall with the longest stretch outside every window (and
  // that stretch); partition -1 when there was none.
  Stall longest() const;
  std::pair<Stall, double> longest_unexplained() const;
  const std::vector<Window>& windows() const noexcept { return windows_; }
  // The last readable sample of a partition (all -1 before one).
  PartitionSample last(int partition) const;

 private:
  struct Track {
    bool seen = false;
    PartitionSample last;
    double last_flowing_s = 0;  // the last sample at which it was idle or had moved
    bool stalled = false;
  };
  std::vector<Track> tracks_;
  std::vector<Stall> closed_;
  std::vector<Window> windows_;
  double last_sample_s_ = 0;
  int samples_ = 0;
};

}  // namespace clearing::chaos
