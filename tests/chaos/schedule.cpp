#include "schedule.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>

#include "clearing/base/name_table.hpp"

namespace clearing::chaos {

namespace {

// Printed in the schedule and the report; checked against the enumerations below.
constexpr base::NameTable<BadInput, kBadInputClasses> kBadInputNames{{
    {BadInput::not_json, "not_json"},
    {BadInput::missing_field, "missing_field"},
    {BadInput::bad_seq, "bad_seq"},
    {BadInput::wrong_stream, "wrong_stream"},
    {BadInput::unknown_type, "unknown_type"},
    {BadInput::invalid_data, "invalid_data"},
}};
static_assert(base::lists_every_enumerator(kBadInputNames, BadInput::invalid_data));

constexpr base::NameTable<HostileInput, kHostileInputClasses> kHostileInputNames{{
    {HostileInput::invalid_utf8, "invalid_utf8"},
    {HostileInput::nul_in_field, "nul_in_field"},
    {HostileInput::long_transfer_id, "long_transfer_id"},
    {HostileInput::control_transfer_id, "control_transfer_id"},
    {HostileInput::oversize_field, "oversize_field"},
    {HostileInput::seq_jump, "seq_jump"},
    {HostileInput::envelope_core_seq, "envelope_core_seq"},
}};
static_assert(base::lists_every_enumerator(kHostileInputNames, HostileInput::envelope_core_seq));

constexpr base::NameTable<ActionKind, 5> kActionNames{{
    {ActionKind::kill_adapter, "kill"},
    {ActionKind::broker_outage, "broker-outage"},
    {ActionKind::pg_restart, "pg-restart"},
    {ActionKind::inject, "inject"},
    {ActionKind::hostile_input, "hostile-input"},
}};
static_assert(base::lists_every_enumerator(kActionNames, ActionKind::hostile_input));

// The tables' names are string literals, so data() is null-terminated.
template <class Enum, std::size_t N>
const char* name_of(const base::NameTable<Enum, N>& names, Enum value) noexcept {
  return base::name_in(names, value).value_or("?").data();
}

}  // namespace

const char* to_string(BadInput kind) noexcept { return name_of(kBadInputNames, kind); }
const char* to_string(HostileInput kind) noexcept { return name_of(kHostileInputNames, kind); }
const char* to_string(ActionKind kind) noexcept { return name_of(kActionNames, kind); }

std::vector<Action> make_schedule(const Plan& plan) {
  // Draws in a fixed order from one engine whose output the standard fixes (mt19937_64),
  // with our own scaling: std::uniform_*_distribution may differ between libraries.
  std::mt19937_64 engine(plan.seed);
  auto unit = [&] { return static_cast<double>(engine() >> 11) * 0x1.0p-53; };
  auto between = [&](double lo, double hi) { return lo + (hi - lo) * unit(); };
  auto pick = [&](int n) { return static_cast<int>(engine() % static_cast<std::uint64_t>(n)); };

  const double duration = plan.transfers / std::max(plan.rate_per_s, 0.001);
  const double from = 0.05 * duration, to = 0.90 * duration;
  std::vector<Action> out;
  for (int i = 0; i < plan.kills; ++i)
    out.push_back({between(from, to), ActionKind::kill_adapter, pick(std::max(plan.adapters, 1)),
                   between(0.1, 1.5)});
  for (int i = 0; i < plan.broker_outages; ++i)
    out.push_back({between(from, to), ActionKind::broker_outage,
                   1 + pick(std::max(plan.brokers, 1)), between(1.0, 4.0)});
  for (int i = 0; i < plan.pg_restarts; ++i)
    out.push_back(
        {between(0.3 * duration, 0.6 * duration), ActionKind::pg_restart, 0, between(0.5, 2.0)});
  for (int c = 0; c < kBadInputClasses; ++c)
    for (int i = 0; i < plan.bad_per_class; ++i)
      out.push_back({between(from, to), ActionKind::inject, c, 0});
  const int partitions = std::max(plan.inbound_partitions, 1);
  for (int c = 0; c < kHostileInputClasses; ++c)
    for (int i = 0; i < plan.hostile_per_class; ++i)
      out.push_back({between(from, to), ActionKind::hostile_input, c, 0, (c + i) % partitions});
  std::stable_sort(out.begin(), out.end(),
                   [](const Action& a, const Action& b) { return a.at_s < b.at_s; });
  return out;
}

std::string describe(const Action& a) {
  char line[160];
  switch (a.kind) {
    case ActionKind::kill_adapter:
      std::snprintf(line, sizeof line, "%8.2f s  SIGKILL adapter %d, restart after %.2f s", a.at_s,
                    a.target, a.hold_s);
      break;
    case ActionKind::broker_outage:
      std::snprintf(line, sizeof line, "%8.2f s  broker %d down for %.2f s", a.at_s, a.target,
                    a.hold_s);
      break;
    case ActionKind::pg_restart:
      std::snprintf(line, sizeof line,
                    "%8.2f s  PostgreSQL fast shutdown, start again after %.2f s", a.at_s,
                    a.hold_s);
      break;
    case ActionKind::inject:
      std::snprintf(line, sizeof line, "%8.2f s  bad input on the inbound stream: %s", a.at_s,
                    to_string(static_cast<BadInput>(a.target)));
      break;
    case ActionKind::hostile_input:
      std::snprintf(line, sizeof line,
                    "%8.2f s  hostile input on the inbound stream, partition %d: %s", a.at_s,
                    a.partition, to_string(static_cast<HostileInput>(a.target)));
      break;
  }
  return line;
}

}  // namespace clearing::chaos
