#pragma once
// "Measure it" (issue 17, item 5): the chaos run's figures of continuity, besides its
// invariants (which stay correctness only: no figure here passes or fails a run).
//
// Recovery after a kill. The run SIGKILLs one of the adapters that share the country's work
// and notes the wall-clock time of the kill (system_clock, on the machine the database runs
// on). What the killed adapter held at that moment is recovered when
//   - inbound: every inbound partition it was reading (its /metrics,
//     clearing_inbound_partition_assigned, scraped just before the kill) has had one message
//     applied after the kill, by anyone: the survivor, or the killed adapter once restarted
//     (each application appends events that carry the message's stream and partition, and
//     `events.recorded_at` is the database clock at the insert: no sampling, no resolution
//     limit, and the killed process cannot insert after it died). A partition is measured by
//     its first application after the kill, so its recovery includes the wait for the next
//     message when none was pending: at --rate 50 each of 4 partitions gets one about every
//     80 ms, which bounds that error; at the end of the run (no more messages) a partition
//     may have nothing to apply, and the kill is then not measured, with that reason.
//   - clearing calls: the first of the calls it had claimed (transfer_work rows leased to it,
//     read just before the kill) is claimed again by a live dispatcher, which makes the call at
//     once. The claim time is exact where the row still carries the new lease
//     (lease_until_ms less the run's dispatcher.lease_ms); where the call was answered before
//     the sample saw it, the first event recorded on the transfer after the kill (or the
//     sample itself) bounds it from above. A call the killed adapter answered or let go of
//     between that read and the kill needed no recovery and is left out.
// A kill's inbound recovery is its slowest partition; its calls' recovery is its first call
// made again (and, printed beside it, its last).
//
// Windows without resolution. About every 250 ms the run reads the core's resolved
// (succeeded + rejected) and open transfers. The longest window with work open and nothing
// resolved runs from the first sample of a run of samples that all have open > 0 and the same
// resolved count, to the first sample after it (resolved rose, or open fell to 0), or to the
// last sample if it never ended; its length is within one sample period of the truth. "Almost
// nothing": the longest interval between two samples, work open at every sample before its
// end, in which fewer transfers were resolved than 5% of the run's mean rate (resolved over
// the whole sampled span) times its length.
//
// Pure (unit-tested in chaos_schedule_test); the run feeds it what it read.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow.hpp"  // Window: a schedule action's span, in run seconds

namespace clearing::chaos {

// ---- percentiles ------------------------------------------------------------------------

struct Summary {
  int count = 0;
  double p50 = 0, p99 = 0, max = 0;  // 0 when count is 0
};

// Nearest-rank percentiles (the smallest value with at least p% of the values at or below
// it): every figure is a value that was measured; with fewer than 100 values p99 is the max.
Summary summarize(std::vector<double> values);

// ---- inbound ----------------------------------------------------------------------------

// The partitions of `stream` that a /metrics text says its instance reads:
// `clearing_inbound_partition_assigned{stream="...",partition="N"} 1` lines, ascending.
std::vector<int> assigned_partitions(std::string_view metrics_text, std::string_view stream);

// The first of the ascending times strictly after `after`; nullopt when none is.
std::optional<std::int64_t> first_after(const std::vector<std::int64_t>& ascending,
                                        std::int64_t after);

struct PartitionRecovery {
  int partition = -1;
  std::optional<double> recovery_ms;  // nullopt: nothing applied after the kill
  bool after_restart = false;  // the first application came after the killed adapter restarted
};

struct InboundRecovery {
  std::vector<PartitionRecovery> partitions;
  // The slowest partition; nullopt when it had no partition or one applied nothing after.
  std::optional<double> recovery_ms;
};

// Applications per partition: the recorded times (µs since the epoch), ascending.
InboundRecovery inbound_recovery(std::int64_t killed_us, std::optional<std::int64_t> restarted_us,
                                 const std::vector<int>& partitions,
                                 const std::map<int, std::vector<std::int64_t>>& applied_us);

// ---- clearing calls ---------------------------------------------------------------------

// A transfer_work row leased to the killed adapter, read just before the kill.
struct LeasedCall {
  std::string transfer_id;
  std::int32_t attempt = 0;
  std::int64_t claims = 0;
};

// The same row read again after the kill.
struct CallObservation {
  bool present = false;  // the row still exists (deleted: the transfer has its outcome)
  std::int32_t attempt = 0;
  std::int64_t claims = 0;
  std::string lease_owner;          // "" when not leased
  std::int64_t lease_until_ms = 0;  // epoch ms, when leased
  std::int64_t observed_ms = 0;     // when it was read (epoch ms)
  // The first event recorded on the transfer's stream after the kill (epoch ms); only read
  // for a row that changed, to tell an answer after the kill from one before it.
  std::optional<std::int64_t> first_event_after_kill_ms;
};

enum class CallFate {
  pending,               // still leased to the dead adapter, not claimed again
  made_again,            // claimed again after the kill (the call made again)
  released_before_kill,  // no longer the dead one's before it died (its answer recorded, its
                         // lease released or run out and taken): nothing to recover
};

struct CallVerdict {
  CallFate fate = CallFate::pending;
  std::int64_t made_again_ms = 0;  // made_again: when (epoch ms)
  bool exact = false;              // made_again: from the new lease (else an upper bound)
};

// killed_owner: the dead dispatcher's lease_owner; killed_ms: the kill (epoch ms);
// lease_ms: dispatcher.lease_ms of the run, so that a lease's claim time is its end less it.
CallVerdict judge_call(const LeasedCall& at_kill, const CallObservation& now,
                       std::string_view killed_owner, std::int64_t killed_ms,
                       std::int64_t lease_ms);

struct CallsRecovery {
  int claimed = 0, made_again = 0, released_before_kill = 0, pending = 0, exact = 0;
  std::optional<double> first_ms, last_ms;  // from the kill to the first / last call made again
};

// The kill's calls from their verdicts; the last is set only when none is pending.
CallsRecovery calls_recovery(std::int64_t killed_ms, const std::vector<CallVerdict>& verdicts);

// ---- windows without resolution -----------------------------------------------------------

struct ResolutionSample {
  double at_s = 0;            // run seconds
  std::int64_t resolved = 0;  // the core's succeeded + rejected transfers
  std::int64_t open = 0;      // the core's open transfers
};

struct QuietWindow {
  bool found = false;
  double from_s = 0, to_s = 0;
  std::int64_t resolved = 0;  // resolved between from and to
  std::int64_t open_from = 0, open_to = 0;
  bool open_at_end = false;  // the window had not ended at the last sample
  double length_s() const noexcept { return to_s - from_s; }
};

// The longest window with work open and nothing resolved (see the top of this file); the
// earliest of equally long ones. Samples in time order.
QuietWindow longest_unresolved(const std::vector<ResolutionSample>& samples);

// Resolved per second over the whole sampled span; 0 with fewer than two samples or no span.
double mean_resolution_rate(const std::vector<ResolutionSample>& samples);

// The longest interval between two samples, with work open at every sample before its end,
// in which fewer than rate_per_s × its length were resolved; the earliest of equally long
// ones. Not found when rate_per_s <= 0 (then nothing is "fewer than nothing").
QuietWindow longest_below_rate(const std::vector<ResolutionSample>& samples, double rate_per_s);

// The actions whose span meets [from_s, to_s] (touching counts), in their order.
std::vector<Window> overlapping(const std::vector<Window>& actions, double from_s, double to_s);

}  // namespace clearing::chaos
