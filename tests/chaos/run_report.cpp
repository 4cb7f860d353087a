// The chaos run's report (run.hpp): the figures of the run, and the figures of continuity
// (recovery.hpp says exactly what each is). Figures only: no invariant depends on them.

#include <cstdio>

#include "run.hpp"

namespace clearing::chaos {
namespace {

std::string ms_text(double ms) { return fixed(ms, 0) + " ms"; }

std::string summary_text(const Summary& s) {
  return "p50 " + ms_text(s.p50) + ", p99 " + ms_text(s.p99) + ", max " + ms_text(s.max);
}

std::string reasons_text(const std::map<std::string, int>& reasons) {
  std::string out;
  for (const auto& [why, n] : reasons)
    out += (out.empty() ? "" : "; ") + why + " " + std::to_string(n);
  return out.empty() ? "none" : out;
}

using AppliedByPartition = std::map<int, std::vector<std::int64_t>>;

// The recovery after every kill, measured or with the reason it is not, and one line per kill.
struct RecoveryTally {
  std::vector<double> inbound_ms, calls_first_ms, calls_last_ms;
  std::map<std::string, int> inbound_unmeasured, calls_unmeasured;
  std::vector<std::string> lines;
};

// Every inbound application, from the events the adapter appends for each message it applies
// (TransferInitiated and what follows it carry the message's stream, partition and seq):
// their recorded_at, the database's clock at the insert, in µs. nullopt: unreadable.
std::optional<AppliedByPartition> inbound_applications(const std::string& adapter_db,
                                                       const std::string& inbound) {
  const auto applied = query(adapter_db,
                             "select (metadata->'source'->>'partition')::int, "
                             "(extract(epoch from recorded_at) * 1000000)::bigint from events "
                             "where metadata->'source'->>'stream' = '" +
                                 inbound + "' order by 2");
  if (!applied) return std::nullopt;
  AppliedByPartition applied_us;
  for (const auto& row : *applied)
    applied_us[row[0].as<int>()].push_back(row[1].as<std::int64_t>());
  return applied_us;
}

// The kill's inbound figure: its slowest partition, from the SIGKILL to a message applied.
std::string tally_inbound(const KillRecord& kill, const std::optional<AppliedByPartition>& applied,
                          RecoveryTally& tally) {
  if (!kill.metrics_read) {
    ++tally.inbound_unmeasured["its /metrics did not answer before the kill"];
    return " unknown";
  }
  if (kill.partitions.empty()) {
    ++tally.inbound_unmeasured["it read no inbound partition"];
    return " no partition";
  }
  if (!applied) {
    ++tally.inbound_unmeasured["the events were unreadable"];
    return " unreadable";
  }
  const auto r = inbound_recovery(kill.at_us, kill.restarted_us, kill.partitions, *applied);
  if (r.recovery_ms)
    tally.inbound_ms.push_back(*r.recovery_ms);
  else
    ++tally.inbound_unmeasured["a partition it read applied nothing after the kill"];
  std::string line;
  for (const auto& p : r.partitions)
    line +=
        " p" + std::to_string(p.partition) + " " +
        (p.recovery_ms ? ms_text(*p.recovery_ms) + (p.after_restart ? " (after its restart)" : "")
                       : std::string("nothing after"));
  return line;
}

// The kill's calls figure: from the SIGKILL to its claimed calls made again.
std::string tally_calls(const KillRecord& kill, const CallWatch* watch, RecoveryTally& tally) {
  if (!kill.leased) {
    ++tally.calls_unmeasured["transfer_work unreadable before the kill"];
    return " unknown";
  }
  if (kill.leased->empty()) {
    ++tally.calls_unmeasured["it had no call claimed"];
    return " none claimed";
  }
  const auto r = watch ? calls_recovery(kill.at_us / 1000, watch->verdicts) : CallsRecovery{};
  if (r.first_ms) {
    tally.calls_first_ms.push_back(*r.first_ms);
    if (r.last_ms) tally.calls_last_ms.push_back(*r.last_ms);
  } else if (r.made_again == 0 && r.pending > 0) {
    ++tally.calls_unmeasured["none of its calls was claimed again while watched (" +
                             std::to_string(kCallWatchMaxMs / 1000) + " s)"];
  } else {
    ++tally.calls_unmeasured["every call it had claimed was answered or let go before the kill"];
  }
  std::string line = " " + std::to_string(kill.leased->size()) + " claimed, " +
                     std::to_string(r.made_again) + " made again";
  if (r.first_ms) line += " (first " + ms_text(*r.first_ms);
  if (r.last_ms) line += ", last " + ms_text(*r.last_ms);
  if (r.first_ms) line += ", " + std::to_string(r.exact) + " timed by their lease)";
  if (r.released_before_kill > 0)
    line += ", " + std::to_string(r.released_before_kill) + " done before the kill";
  if (r.pending > 0)
    line += ", " + std::to_string(r.pending) + " never claimed again while watched";
  return line;
}

RecoveryTally tally_recovery(const std::vector<KillRecord>& kills,
                             const std::vector<CallWatch>& watches,
                             const std::optional<AppliedByPartition>& applied) {
  std::map<std::size_t, const CallWatch*> watch_of;
  for (const auto& w : watches) watch_of[w.kill] = &w;
  RecoveryTally tally;
  for (std::size_t k = 0; k < kills.size(); ++k) {
    const auto& kill = kills[k];
    const auto found = watch_of.find(k);
    tally.lines.push_back(
        "    " + fixed(kill.at_s, 1) + " s  adapter " + std::to_string(kill.target) +
        (kill.restarted_s >= 0 ? " (restarted at " + fixed(kill.restarted_s, 1) + " s)" : "") +
        "; inbound:" + tally_inbound(kill, applied, tally) +
        "; calls:" + tally_calls(kill, found == watch_of.end() ? nullptr : found->second, tally));
  }
  return tally;
}

void explain_recovery_figures(double rate_per_s) {
  say("  recovery after a kill: from the SIGKILL (this machine's clock) to the work done again, as "
      "the database "
      "recorded it");
  say("    inbound: every partition the killed adapter read (its /metrics just before the kill) "
      "has applied a message "
      "after the kill (events.recorded_at), by the other adapter or the killed one restarted; the "
      "kill's figure is "
      "its slowest partition, and includes the wait for that partition's next message (at --rate " +
      fixed(rate_per_s, 0) + ", about " + ms_text(1000.0 * kInboundPartitions / rate_per_s) +
      " apart on each of " + std::to_string(kInboundPartitions) + " partitions)");
  say("    clearing calls: the first of the calls leased to the killed adapter just before the "
      "kill claimed again "
      "(and made at once) by a live dispatcher: exact from the new lease, else bounded above by "
      "the transfer's next "
      "event or the 50 ms sample; 'all' waits for its last call");
}

void say_recovery(const RecoveryTally& tally, std::size_t kills) {
  const auto inbound = summarize(tally.inbound_ms);
  const auto first = summarize(tally.calls_first_ms);
  const auto all = summarize(tally.calls_last_ms);
  const auto of_kills = " of " + std::to_string(kills) + " kills";
  say("  inbound partitions: measured " + std::to_string(inbound.count) + of_kills +
      (inbound.count > 0 ? ": " + summary_text(inbound) : std::string()) +
      "; not measured: " + reasons_text(tally.inbound_unmeasured));
  say("  clearing calls, first made again: measured " + std::to_string(first.count) + of_kills +
      (first.count > 0 ? ": " + summary_text(first) : std::string()) +
      "; not measured: " + reasons_text(tally.calls_unmeasured));
  if (first.count > 0)
    say("  clearing calls, all made again: measured " + std::to_string(all.count) + of_kills +
        (all.count > 0 ? ": " + summary_text(all) : std::string()));
  say("  relay (outbound) partitions: not measured");
  if (kills > 0 && kills <= static_cast<std::size_t>(kKillLinesMax)) {
    say("  each kill (run seconds):");
    for (const auto& line : tally.lines) say(line);
  }
}

// A window and what the schedule did in it or in the kRecoverySlackS before it.
// resolved_label: what the window's `resolved` is (the rise that ended a window of nothing
// resolved; all that was resolved in one of almost nothing).
std::string describe_window(const QuietWindow& w, const std::string& resolved_label,
                            const std::vector<Window>& actions) {
  std::string text = fixed(w.length_s(), 1) + " s (" + fixed(w.from_s, 1) + "-" + fixed(w.to_s, 1) +
                     " s" + (w.open_at_end ? ", still so at the last sample" : "") + "), " +
                     resolved_label + " " + std::to_string(w.resolved) + ", open " +
                     std::to_string(w.open_from) + " at its start and " +
                     std::to_string(w.open_to) + " at its end; the schedule in it or in the " +
                     fixed(kRecoverySlackS, 0) + " s before:";
  const auto near = overlapping(actions, w.from_s - kRecoverySlackS, w.to_s);
  for (const auto& a : near)
    text += " " + a.why + " " + fixed(a.from_s, 1) + "-" + fixed(a.to_s, 1) + " s" +
            (a.to_s < w.from_s ? " (before it)" : "") + ";";
  if (near.empty()) text += " nothing";
  return text;
}

}  // namespace

void Run::report_figures(const nlohmann::json& stats) {
  say("");
  say("figures");
  report_transfers();
  report_clearing(stats);
  std::string injected;
  for (const auto& [name, n] : figures_.injected) injected += " " + name + "=" + std::to_string(n);
  say("  bad input injected:" + (injected.empty() ? std::string(" none") : injected));
  for (const auto& e : figures_.injection_errors) say("  injection error: " + e);
  report_kills_and_restarts();
}

void Run::report_transfers() {
  const auto counts =
      query(core_db_,
            "select count(*), count(*) filter (where status = 'succeeded'), count(*) filter (where "
            "status = "
            "'rejected'), (select count(*) from core_refused) from core_transfers");
  const auto investigated = scalar(adapter_db_,
                                   "select count(distinct stream_id) from events where type = "
                                   "'TransferUnderInvestigation'",
                                   0);
  if (!counts || counts->empty()) return;
  const auto& r = (*counts)[0];
  say("  transfers: planned " + std::to_string(o_.plan.transfers) + ", requested " +
      r[0].as<std::string>() + ", succeeded " + r[1].as<std::string>() + ", rejected " +
      r[2].as<std::string>() + ", refused by the core " + r[3].as<std::string>() +
      ", were under investigation " + std::to_string(investigated));
}

void Run::report_clearing(const nlohmann::json& stats) {
  const auto answers_unknown =
      scalar(adapter_db_, "select count(*) from events where type = 'ClearingOutcomeUnknown'", 0);
  say("  requests the clearing received on a connection before it had answered the last one "
      "there " +
      std::to_string(stats.value("requests_before_answer", std::int64_t{-1})));
  say("  unknown outcomes recorded " + std::to_string(answers_unknown) + "; clearing calls " +
      std::to_string(stats["requests"].value("submit", 0)) + " submits, " +
      std::to_string(stats["requests"].value("inquire", 0)) + " inquiries; executions " +
      std::to_string(stats.value("executions_total", 0)) + ", idempotent replays " +
      std::to_string(stats.value("replays", 0)));
  std::string faults;
  for (const auto& [name, n] : stats["faults"].items())
    faults += " " + name + "=" + std::to_string(n.get<long>());
  say("  faults injected by the clearing:" + faults);
}

void Run::report_kills_and_restarts() {
  say("  at the kills, the killed adapter had: clearing calls in flight " +
      std::to_string(figures_.kills_with_calls_in_flight) +
      ", messages not yet acknowledged by Kafka " + std::to_string(figures_.kills_with_relay_lag) +
      ", applied inbound messages since its start " +
      std::to_string(figures_.kills_with_inbound_work) + ", metrics unreadable " +
      std::to_string(figures_.kills_unobserved) + " (of " + std::to_string(figures_.kills) + ")");
  if (!figures_.kafka_mock_died.empty())
    say("  kafka-mock died during the run: the run proves nothing about the adapter");
  say("  kills " + std::to_string(figures_.kills) + ", adapter restarts " +
      std::to_string(figures_.adapter_restarts) + ", adapter exits on their own " +
      std::to_string(figures_.adapter_exits_on_their_own) + ", core-sim restarts " +
      std::to_string(figures_.core_restarts) + ", broker outages " +
      std::to_string(figures_.broker_outages) + ", PostgreSQL restarts " +
      std::to_string(figures_.pg_restarts));
  char times[128];
  std::snprintf(times, sizeof times, "  time: %.1f s under faults, %.1f s to drain", figures_.run_s,
                figures_.drain_s);
  say(times);
}

// The figures of continuity (recovery.hpp): recovery after each kill, and the longest
// windows in which work was open and nothing, or almost nothing, was resolved.
void Run::report_continuity() {
  const auto tally =
      tally_recovery(kills_, call_watches_done_, inbound_applications(adapter_db_, inbound_));
  say("");
  say("continuity (figures only: no invariant depends on them)");
  explain_recovery_figures(o_.plan.rate_per_s);
  say_recovery(tally, kills_.size());
  report_windows();
}

// The windows, and what the schedule did in or just before them.
void Run::report_windows() {
  std::vector<Window> actions = actions_;
  for (const auto& kill : kills_)
    actions.push_back({kill.at_s, kill.restarted_s >= 0 ? kill.restarted_s : kill.at_s,
                       "SIGKILL adapter " + std::to_string(kill.target)});
  std::sort(actions.begin(), actions.end(),
            [](const Window& a, const Window& b) { return a.from_s < b.from_s; });
  const auto& samples = resolution_samples_;
  say("  windows: the core's resolved (succeeded + rejected) and open transfers, read every " +
      std::to_string(kResolutionSamplePeriod.count()) + " ms (" + std::to_string(samples.size()) +
      " samples; a window runs from a sample to a sample, within one period of the truth)");
  const auto quiet = longest_unresolved(samples);
  say("  longest window with work open and nothing resolved: " +
      (quiet.found ? describe_window(quiet, "resolved at the sample that ended it", actions)
                   : std::string("none (no sample with work open)")));
  const double mean_rate = mean_resolution_rate(samples);
  const auto slow = longest_below_rate(samples, kAlmostNothingShare * mean_rate);
  say("  longest window with almost nothing resolved (fewer than " +
      fixed(kAlmostNothingShare * 100, 0) + "% of the run's mean " + fixed(mean_rate, 1) +
      "/s, i.e. " + fixed(kAlmostNothingShare * mean_rate, 2) + "/s): " +
      (slow.found ? describe_window(slow, "resolved in it", actions) : std::string("none")));
}

}  // namespace clearing::chaos
