// The end of the chaos run (run.hpp): the clearing's books, a graceful stop of everyone, then
// the invariants: reconcile.hpp's, and those only a run under faults can check (7 to 14).

#include <cstdio>

#include "clearing/http/client.hpp"
#include "clearing/privacy/vault.hpp"
#include "clearing/support/command_lines.hpp"
#include "run.hpp"

namespace clearing::chaos {
namespace {

// Reason codes the adapter gives itself, without asking the clearing (sagas'
// transfer_decider.hpp): any other rejection must be the clearing's, in its ledger.
const std::set<std::string> kAdapterOwnReasons{"AC01", "AM02", "AM03", "FF01", "DUPL", "MS03"};

// A parked message's raw bytes as stored: text, or bytea in its hex form.
std::string raw_bytes(const pqxx::field& f) {
  std::string text = f.is_null() ? std::string() : f.as<std::string>();
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) return text;
  std::string bytes;
  bytes.reserve(text.size() / 2);
  for (std::size_t i = 2; i + 1 < text.size(); i += 2) {
    const auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    bytes.push_back(static_cast<char>(digit(text[i]) * 16 + digit(text[i + 1])));
  }
  return bytes;
}

// Events of a database that came from a stream, in commit order: how many, and how many of
// them did not rise above the last seq of their partition (one_per_seq: a repeated seq is
// out of order too). {0, -1} when unreadable.
std::pair<std::int64_t, std::int64_t> applied_and_disordered(const std::string& url,
                                                             const std::string& where,
                                                             bool one_per_seq) {
  std::pair<std::int64_t, std::int64_t> applied_disordered{0, 0};
  const auto r = query(url,
                       "select metadata->'source'->>'stream', "
                       "(metadata->'source'->>'partition')::int, "
                       "(metadata->'source'->>'seq')::bigint from events where " +
                           where +
                           " and metadata->'source'->>'seq' is not null order by "
                           "transaction_id::text::bigint, position");
  if (!r) return {0, -1};
  std::map<std::pair<std::string, int>, std::int64_t> last;
  for (const auto& row : *r) {
    ++applied_disordered.first;
    auto& l = last[{row[0].as<std::string>(), row[1].as<int>()}];
    const auto seq = row[2].as<std::int64_t>();
    applied_disordered.second += one_per_seq ? seq <= l : seq < l;
    l = seq;
  }
  return applied_disordered;
}

// What one class of hostile input came to (invariant 14).
struct HostileClassFigures {
  int injected = 0, accounted = 0, parked_copies = 0, errors = 0;
  std::set<std::string> reasons;
  std::vector<std::string> unaccounted;
};

// One hostile input, found by its marker among the parked rows, or, for a transfer the core
// requested, by that transfer's outcome at the core.
void account_hostile(const HostileRecord& record, int index,
                     const std::vector<ParkedMessage>& parked, const std::string& core_db,
                     HostileClassFigures& f) {
  ++f.injected;
  int copies = 0;
  bool reasonless = false;
  for (const auto& row : parked)
    if (row.hostile == index) {
      ++copies;
      reasonless = reasonless || row.reason_code.empty();
      f.reasons.insert(row.reason_code.empty() ? "(no reason)" : row.reason_code);
    }
  f.parked_copies += copies;
  const auto where = "partition " + std::to_string(record.partition) + " (" + record.detail + ")";
  if (record.core_requested()) {
    const auto outcome = query(core_db,
                               "select status || ' ' || coalesce(reason_code, '') from "
                               "core_transfers where transfer_id = '" +
                                   record.transfer_id + "'");
    const auto text = outcome && !outcome->empty() ? (*outcome)[0][0].as<std::string>() : "missing";
    if (text == "rejected FF01")
      ++f.accounted;
    else
      f.unaccounted.push_back(where + ": the transfer is " + text + ", not rejected FF01");
  } else if (copies > 0 && !reasonless) {
    ++f.accounted;
  } else {
    f.unaccounted.push_back(where + (copies == 0 ? ": not parked" : ": parked without a reason"));
  }
}

// "accounted/injected" per class, with up to eight of the inputs not accounted for.
std::string hostile_text(const std::map<std::string, HostileClassFigures>& by_class) {
  std::string text;
  std::vector<std::string> missing;
  for (const auto& [name, f] : by_class) {
    text += " " + name + " " + std::to_string(f.accounted) + "/" + std::to_string(f.injected);
    std::string reasons;
    for (const auto& reason : f.reasons) reasons += (reasons.empty() ? "" : ",") + reason;
    if (f.parked_copies > 0)
      text += " (parked " + std::to_string(f.parked_copies) + ": " + reasons + ")";
    if (f.errors > 0) text += " (injection errors " + std::to_string(f.errors) + ")";
    for (const auto& u : f.unaccounted) missing.push_back(name + " on " + u);
  }
  for (std::size_t i = 0; i < missing.size() && i < 8; ++i)
    text += "\n           unaccounted: " + missing[i];
  if (missing.size() > 8)
    text += "\n           ... and " + std::to_string(missing.size() - 8) + " more";
  return text;
}

// Why a resolved transfer's outcome is not one the clearing gave ("" when it is), counted
// into the figure it breaks.
struct OutcomeFigures {
  std::int64_t checked = 0, other_reference = 0, other_reason = 0, never_given = 0, own = 0;
};

std::string judge_outcome(const std::string& status, const std::string& reason,
                          const std::string& reference, const clearing_mock::LedgerEntry* entry,
                          const std::map<std::string, std::string>& whose, OutcomeFigures& n) {
  if (status == "succeeded") {
    if (!entry || entry->execution_count == 0) {
      ++n.never_given;
      return "succeeded, never executed";
    }
    if (reference == entry->clearing_reference) return "";
    ++n.other_reference;
    return "succeeded with reference " + reference.substr(0, 40) + " (" +
           (whose.count(reference) ? "the ledger's for " + whose.at(reference)
                                   : "not in the ledger") +
           "), its own " + entry->clearing_reference;
  }
  if (entry && entry->status == "RJCT") {
    if (reason == entry->reason_code) return "";
    ++n.other_reason;
    return "rejected " + reason + ", the clearing said " + entry->reason_code;
  }
  if (entry && entry->execution_count > 0) {
    ++n.never_given;
    return "rejected " + reason + ", executed by the clearing";
  }
  if (kAdapterOwnReasons.count(reason)) {
    ++n.own;
    return "";
  }
  ++n.never_given;
  return "rejected " + reason + ", which the clearing never said";
}

}  // namespace

int Run::finish() {
  // The clearing's books first, then a graceful stop of everyone.
  demo::Books books{adapter_db_, core_db_, {}, {}};
  auto ledger = http::get("http://" + mock_address_ + "/admin/ledger", kClearingToken, 10'000);
  auto stats = http::get("http://" + mock_address_ + "/admin/stats", kClearingToken, 10'000);
  if (!ledger || !stats) throw std::runtime_error("clearing-mock's books cannot be read");
  books.ledger = clearing_mock::ledger_from_json(ledger->body);
  const auto stats_json = nlohmann::json::parse(stats->body);
  stop_everyone();

  auto checks = demo::reconcile(books);
  check_calls_caused(checks, books, stats_json);
  check_order(checks);
  check_bad_input_parked(checks, read_parked());
  auto hostile_accounted = check_hostile_accounted();
  check_incoming(checks, stats_json);
  check_stopped_well(checks);
  check_clearing_outcomes(checks, books.ledger);
  check_flow(checks);
  checks.checks.push_back(std::move(hostile_accounted));

  report_figures(stats_json);
  report_continuity();
  say("");
  say("invariants");
  std::fputs(demo::render(checks).c_str(), stdout);
  const bool ok = checks.all_hold();
  say(ok ? "chaos: every invariant holds (seed " + std::to_string(o_.plan.seed) + ")"
         : "chaos: INVARIANT VIOLATED (seed " + std::to_string(o_.plan.seed) +
               " replays this schedule)");
  return ok ? 0 : 1;
}

void Run::stop_everyone() {
  for (auto& a : adapters_) a->signal(SIGTERM);
  for (auto& a : adapters_) figures_.adapter_exit_codes_at_stop.push_back(a->wait(60'000));
  core_->signal(SIGTERM);
  figures_.core_exit_at_stop = core_->wait(60'000);
  if (kafka_->running()) kafka_->write_line("quit");
  kafka_->wait(30'000);
  mock_->signal(SIGTERM);
  mock_->wait(30'000);
}

// 7. Every clearing call has a cause: each reference in the ledger is a transfer the
//    adapter initiated from a core event. One transfer, one idempotency key (the contract
//    makes it the reference), one body: the clearing counts a key that came back with
//    another body.
void Run::check_calls_caused(demo::Checks& checks, const demo::Books& books,
                             const nlohmann::json& stats) {
  std::int64_t uncaused_calls = 0;
  std::set<std::string> initiated;
  if (auto r = query(adapter_db_,
                     "select substr(stream_id, 10) from events where type = 'TransferInitiated'"))
    for (const auto& row : *r) initiated.insert(row[0].as<std::string>());
  for (const auto& e : books.ledger) uncaused_calls += !initiated.count(e.reference);
  const auto key_reused = stats.value("key_reused_answers", std::int64_t{-1});
  checks.checks.push_back(
      {"7. every clearing call has a cause and one transfer uses one key with one body",
       uncaused_calls == 0 && key_reused == 0,
       "ledger references without a transfer " + std::to_string(uncaused_calls) + " of " +
           std::to_string(books.ledger.size()) + "; a key reused with another body " +
           std::to_string(key_reused)});
}

// 8. Messages applied in seq order, per partition, in commit order: the adapter's
//    TransferInitiated (one per core message) and the core's account events (caused by the
//    adapter's messages) carry the stream, partition and seq they came from.
void Run::check_order(demo::Checks& checks) {
  const auto at_adapter = applied_and_disordered(adapter_db_, "type = 'TransferInitiated'", true);
  const auto at_core =
      applied_and_disordered(core_db_, "metadata->'source'->>'stream' like 'adapter.%'", false);
  checks.checks.push_back(
      {"8. messages applied in order: seqs rise in commit order on every partition, both sides",
       at_adapter.second == 0 && at_core.second == 0 && at_adapter.first > 0 && at_core.first > 0,
       "adapter applied " + std::to_string(at_adapter.first) + ", out of order " +
           std::to_string(at_adapter.second) + "; core events from the adapter's stream " +
           std::to_string(at_core.first) + ", out of order " + std::to_string(at_core.second)});
}

// 10. Incoming payments: every payment of the clearing's feed reached the core once.
void Run::check_incoming(demo::Checks& checks, const nlohmann::json& stats) {
  const auto incoming = scalar(core_db_, "select count(*) from core_incoming_payments", 0);
  checks.checks.push_back(
      {"10. incoming payments: each of the feed's payments reached the core exactly once",
       incoming == kIncomingPayments,
       "feed " + std::to_string(kIncomingPayments) + ", at the core " + std::to_string(incoming) +
           ", re-sent by the feed " + std::to_string(stats.value("incoming_resends", 0))});
}

// 11. The processes: drained, stopped gracefully, and nothing died on its own.
void Run::check_stopped_well(demo::Checks& checks) {
  bool stopped_well = figures_.core_exit_at_stop == 0;
  std::string exits;
  for (const int code : figures_.adapter_exit_codes_at_stop) {
    stopped_well = stopped_well && code == 0;
    exits += std::to_string(code) + " ";
  }
  checks.checks.push_back({"11. the run drained, and every process stopped gracefully on SIGTERM",
                           figures_.drained && stopped_well,
                           std::string(figures_.drained ? "drained" : "NOT drained") +
                               "; adapter exits " + exits + "; core-sim exit " +
                               std::to_string(figures_.core_exit_at_stop)});
}

// 12. No outcome the clearing never gave: a succeeded transfer carries the clearing
//     reference of its execution in the ledger; a rejection is the ledger's RJCT with its
//     code, or one the adapter gives itself without the clearing.
void Run::check_clearing_outcomes(demo::Checks& checks,
                                  const std::vector<clearing_mock::LedgerEntry>& ledger) {
  std::map<std::string, const clearing_mock::LedgerEntry*> by_reference;
  std::map<std::string, std::string> whose;  // clearing reference -> the transfer it executed
  for (const auto& e : ledger) {
    by_reference[e.reference] = &e;
    if (!e.clearing_reference.empty()) whose[e.clearing_reference] = e.reference;
  }
  OutcomeFigures n;
  std::vector<std::string> examples;
  const auto outcomes =
      query(core_db_,
            "select transfer_id, status, coalesce(reason_code, ''), "
            "coalesce(clearing_reference, '') from core_transfers where status <> 'open'");
  if (outcomes)
    for (const auto& row : *outcomes) {
      ++n.checked;
      const auto id = row[0].as<std::string>();
      const auto it = by_reference.find(id);
      const auto wrong = judge_outcome(row[1].as<std::string>(), row[2].as<std::string>(),
                                       row[3].as<std::string>(),
                                       it == by_reference.end() ? nullptr : it->second, whose, n);
      if (!wrong.empty() && examples.size() < 5) examples.push_back(id + ": " + wrong);
    }
  std::string figures =
      "outcomes " + std::to_string(n.checked) +
      "; succeeded with another clearing reference than the ledger's " +
      std::to_string(n.other_reference) + "; rejected with another code than the ledger's " +
      std::to_string(n.other_reason) + "; outcomes the clearing never gave " +
      std::to_string(n.never_given) + "; the adapter's own rejections " + std::to_string(n.own);
  for (const auto& e : examples) figures += "\n           e.g. " + e;
  checks.checks.push_back(
      {"12. no outcome the clearing never gave: references and reason codes are the ledger's",
       outcomes.has_value() && n.other_reference == 0 && n.other_reason == 0 && n.never_given == 0,
       figures});
}

// 13. The other partitions kept flowing: no inbound partition had messages waiting without
//     progress for longer than --stall-max-s outside the windows the schedule explains.
void Run::check_flow(demo::Checks& checks) {
  const auto longest = flow_.longest();
  const auto [worst, outside] = flow_.longest_unexplained();
  checks.checks.push_back(
      {"13. the other partitions kept flowing: no inbound partition stalled for a reason the "
       "schedule does not give",
       flow_.samples() > 0 && outside <= o_.stall_max_s, flow_figures(longest, worst, outside)});
}

std::string Run::flow_figures(const Stall& longest, const Stall& worst, double outside) const {
  char text[512];
  if (longest.partition < 0) {
    std::snprintf(text, sizeof text,
                  "samples %d, no partition had messages waiting without progress for a second",
                  flow_.samples());
  } else {
    std::snprintf(text, sizeof text,
                  "samples %d; longest stall %.1f s (partition %d, %.1f-%.1f s%s); longest outside "
                  "the %zu explained "
                  "windows %.1f s (partition %d, %.1f-%.1f s%s), bound %.0f s",
                  flow_.samples(), longest.length_s(), longest.partition, longest.from_s,
                  longest.to_s, longest.open ? ", never moved again" : "", flow_.windows().size(),
                  outside, worst.partition, worst.from_s, worst.to_s,
                  worst.open ? ", never moved again" : "", o_.stall_max_s);
  }
  std::string figures = text;
  figures += "\n           at the end:";
  for (int p = 0; p < kInboundPartitions; ++p) {
    const auto last = flow_.last(p);
    std::snprintf(text, sizeof text, " p%d applied %lld/%lld, Kafka %lld/%lld;", p,
                  static_cast<long long>(last.applied_seq), static_cast<long long>(last.core_head),
                  static_cast<long long>(last.kafka_offset + 1),
                  static_cast<long long>(last.kafka_end));
    figures += text;
  }
  int listed = 0;
  for (const auto& stall : flow_.stalls()) {
    const double out = longest_outside(stall.from_s, stall.to_s, flow_.windows());
    if (out <= o_.stall_max_s || listed >= 8) continue;
    ++listed;
    std::snprintf(text, sizeof text,
                  "\n           stalled: partition %d %.1f-%.1f s (%.1f s outside the windows)%s",
                  stall.partition, stall.from_s, stall.to_s, out,
                  stall.open ? ", never moved again" : "");
    figures += text;
  }
  return figures;
}

// 9. The envelope and content faults: exactly the injected ones parked, each with its
//    reason, and nothing else parked.
void Run::check_bad_input_parked(demo::Checks& checks, bool readable) {
  const auto parked = bad_input_parked();
  bool parked_match = figures_.injection_errors.empty() && readable;
  std::string parked_text;
  std::set<std::string> reasons;
  for (const auto& [k, v] : parked) reasons.insert(k);
  for (const auto& [k, v] : figures_.injected) reasons.insert(k);
  for (const auto& reason : reasons) {
    const auto injected = figures_.injected.count(reason) ? figures_.injected.at(reason) : 0;
    const auto got = parked.count(reason) ? parked.at(reason) : 0;
    parked_match = parked_match && injected == got;
    parked_text += " " + reason + " " + std::to_string(got) + "/" + std::to_string(injected);
  }
  checks.checks.push_back(
      {"9. bad input: every injected message parked with its reason, no other parked",
       parked_match && (!reasons.empty() || o_.plan.bad_per_class == 0),
       "parked/injected:" + (parked_text.empty() ? std::string(" none") : parked_text) +
           (figures_.injection_errors.empty()
                ? ""
                : "; injection errors " + std::to_string(figures_.injection_errors.size())) +
           (readable ? "" : "; parked_messages unreadable")});
}

// 14. The hostile core's input, each found by its marker: parked with a reason, or, for a
//     transfer the core requested, rejected FF01.
demo::Check Run::check_hostile_accounted() {
  std::vector<ParkedMessage> rows;
  for (const auto& [id, row] : parked_) rows.push_back(row);
  std::map<std::string, HostileClassFigures> by_class;
  for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
    const auto& record = figures_.hostile[h];
    auto& f = by_class[to_string(record.kind)];
    if (record.error.empty())
      account_hostile(record, static_cast<int>(h), rows, core_db_, f);
    else
      ++f.errors;
  }
  // Answers to the core about transfers it never requested (the unreadable ids among them).
  const auto unknown_answers =
      scalar(core_db_, "select count(*) from core_violations where kind = 'unknown_transfer'", 0);
  const bool all_accounted = std::all_of(by_class.begin(), by_class.end(), [](const auto& named) {
    return named.second.accounted == named.second.injected && named.second.errors == 0;
  });
  const auto text = hostile_text(by_class);
  return {
      "14. hostile input from the core: each parked with its reason, or its requested transfer "
      "rejected FF01",
      all_accounted && unknown_answers == 0,
      "accounted/injected:" + (text.empty() ? std::string(" none injected") : text) +
          "; answers to the core about transfers it never requested " +
          std::to_string(unknown_answers)};
}

std::int64_t Run::hostile_count(bool core_requested) const {
  return std::count_if(figures_.hostile.begin(), figures_.hostile.end(),
                       [&](const HostileRecord& r) {
                         return r.error.empty() && r.core_requested() == core_requested;
                       });
}

bool Run::read_parked() {
  const auto ids = query(adapter_db_, "select id from parked_messages");
  if (!ids) return false;
  if (!vault_) {
    eventstore::DatabaseOptions options;
    options.url = adapter_db_;
    auto made = privacy::Vault::create(
        {.database = options, .keys = *privacy::KeyRing::parse(support::kTestDataKek, "")});
    if (!made) return false;  // the database restarting: the next poll tries again
    vault_ = std::move(*made);
  }
  std::string wanted;
  for (const auto& row : *ids) {
    const auto id = row[0].as<std::int64_t>();
    if (!parked_.count(id)) wanted += (wanted.empty() ? "" : ",") + std::to_string(id);
  }
  if (wanted.empty()) return true;
  const auto rows =
      query(adapter_db_, "select * from parked_messages where id in (" + wanted + ")");
  if (!rows) return false;
  for (const auto& row : *rows) {
    auto raw = raw_bytes(row["raw"]);
    if (row["raw_sealed"].as<bool>(false)) {
      try {
        pqxx::connection c(adapter_db_);
        pqxx::work tx(c);
        auto opened = vault_->open_bytes(tx, raw);
        if (!opened) return false;
        raw = std::move(*opened);
      } catch (const std::exception&) {
        return false;  // the database restarting
      }
    }
    ParkedMessage p{row["reason_code"].as<std::string>(""),
                    row["correlation_id"].as<std::string>(""), std::move(raw)};
    for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
      const auto& marker = figures_.hostile[h].marker;
      if (!marker.empty() &&
          (p.correlation_id == marker || p.raw.find(marker) != std::string::npos))
        p.hostile = static_cast<int>(h);
    }
    parked_.emplace(row["id"].as<std::int64_t>(), std::move(p));
  }
  return true;
}

bool Run::parked_complete() const {
  std::set<int> hostile_parked;
  for (const auto& [id, row] : parked_)
    if (row.hostile >= 0) hostile_parked.insert(row.hostile);
  const auto parked = bad_input_parked();
  for (const auto& [reason, injected] : figures_.injected)
    if ((parked.count(reason) ? parked.at(reason) : 0) < injected) return false;
  for (std::size_t h = 0; h < figures_.hostile.size(); ++h) {
    const auto& r = figures_.hostile[h];
    if (r.error.empty() && !r.core_requested() && !hostile_parked.count(static_cast<int>(h)))
      return false;
  }
  return true;
}

// The parked messages that are no hostile input's copy, by reason code.
std::map<std::string, std::int64_t> Run::bad_input_parked() const {
  std::map<std::string, std::int64_t> parked;
  for (const auto& [id, row] : parked_)
    if (row.hostile < 0) ++parked[row.reason_code];
  return parked;
}

}  // namespace clearing::chaos
