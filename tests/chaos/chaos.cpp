// clearing-chaos: the proof under faults (DESIGN.md section 7). Separate processes on this
// machine: PostgreSQL (the caller's, see scripts/with-postgres), a Kafka mock cluster
// process (kafka-mock, 3 brokers), clearing-mock with every fault class on, core-sim, and
// two `clearing-adapter run` processes for the same country sharing the work. One seed
// draws everything: the transfers, the clearing's faults and the schedule of what goes
// wrong (schedule.hpp); the seed is printed first and the same seed replays the schedule.
// During the run it SIGKILLs adapters and restarts them, takes brokers down and up, restarts
// PostgreSQL (fast shutdown) once, and puts bad input of every class on the adapter's
// inbound stream, hostile input from the core's side on several partitions (hostile_core.hpp),
// while the clearing sends hostile answers (stray and duplicate responses, NUL and 1 MB
// fields). About once a second it samples every inbound partition (flow.hpp). When the work
// has drained, the checker (reconcile.hpp, plus the checks below) reads the ledger, the
// core's database and the adapter's and prints each invariant with figures. Exit 0: every
// invariant holds; 1: one does not; 2: the run could not start.
// Besides them it prints figures of continuity (recovery.hpp says exactly what each is), never
// a reason to fail: the recovery after each kill, from the SIGKILL to the first message applied
// on each inbound partition the killed adapter read and to the first of its claimed clearing
// calls made again; and the longest windows with work open and nothing, or almost nothing,
// resolved, with the schedule's actions in them. A thread of its own samples what those need.
//
//   clearing-chaos [--seed S] [--transfers N] [--rate R] [--kills K] [--broker-outages B]
//                  [--pg-restarts 0|1] [--bad-per-class M] [--hostile-per-class H]
//                  [--hostile-clearing P] [--stall-max-s S] [--log-dir DIR] [--timeout-s T]
// The PostgreSQL server comes from CLEARING_TEST_DATABASE_URL; restarting it needs
// CLEARING_PG_BIN, CLEARING_PG_DATA, CLEARING_PG_OPTIONS, CLEARING_PG_LOG (scripts/with-postgres
// exports them; as root the server is run as `postgres`).

#include <CLI/CLI.hpp>
#include <cstdio>
#include <random>

#include "clearing/base/country.hpp"
#include "clearing/base/logging.hpp"
#include "run.hpp"

namespace {

using clearing::chaos::Options;

// What goes wrong, and how much of it: the plan the schedule is drawn from.
void add_plan_options(CLI::App& app, Options& o) {
  app.add_option("--seed", o.plan.seed,
                 "seed of everything (default: a random one, printed first)");
  app.add_option("--transfers", o.plan.transfers, "transfers the core requests")
      ->capture_default_str()
      ->check(CLI::Range(10, 1'000'000));
  app.add_option("--rate", o.plan.rate_per_s, "transfers per second the core requests")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 10'000.0));
  app.add_option("--kills", o.plan.kills, "SIGKILLs of an adapter process")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000));
  app.add_option("--broker-outages", o.plan.broker_outages, "Kafka brokers taken down and up")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--pg-restarts", o.plan.pg_restarts, "PostgreSQL restarts (fast shutdown)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10));
  app.add_option("--bad-per-class", o.plan.bad_per_class, "bad inbound messages of each class")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
}

// The hostile core and the hostile clearing (issue 16).
void add_hostile_options(CLI::App& app, Options& o) {
  app.add_option("--hostile-per-class", o.plan.hostile_per_class,
                 "hostile inbound messages of each class (issue 16: invalid UTF-8, NUL, long and "
                 "control transfer "
                 "ids, 300 KB fields, a seq jump of 10^12, an envelope fault at the core's seq)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--hostile-clearing", o.plan.hostile_clearing,
                 "probability of each hostile clearing answer (stray and duplicate responses, NUL "
                 "and 1 MB fields)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--hostile-clearing-classes", o.hostile_clearing_classes,
                 "which hostile answers --hostile-clearing turns on (default: all)")
      ->check(
          CLI::IsMember({"stray-response", "duplicate-response", "nul-field", "oversize-field"}))
      ->delimiter(',');
}

// How the run is judged, and what it runs where.
void add_run_options(CLI::App& app, Options& o) {
  app.add_option("--stall-max-s", o.stall_max_s,
                 "longest an inbound partition may stall outside the windows the schedule explains")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--adapters", o.plan.adapters, "adapter processes sharing the work")
      ->capture_default_str()
      ->check(CLI::Range(1, 4));
  app.add_option("--timeout-s", o.timeout_s,
                 "give up waiting for the work to drain after this long")
      ->capture_default_str()
      ->check(CLI::Range(30, 86'400));
  app.add_option(
         "--assignment", o.assignment,
         "kafka.partition_assignment of the adapters (default: the one config/<cc>.json gives)")
      ->check(CLI::IsMember({"group", "database"}));
  app.add_option("--country", o.country,
                 "the country (" + clearing::base::country_codes_lower_text() +
                     "): config/<cc>.json, its streams, clearing and core")
      ->capture_default_str()
      ->check(CLI::IsMember(clearing::base::country_codes_lower()));
  app.add_option("--log-dir", o.log_dir, "keep every process's log (stderr) in this folder");
  app.add_option("--database-url", o.server_url,
                 "PostgreSQL server (default: $CLEARING_TEST_DATABASE_URL)");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace clearing::chaos;
  clearing::base::init_logging();
  clearing::base::set_log_level("warn");
  Options o;
  o.plan.seed = std::random_device{}();
  CLI::App app{
      "clearing-chaos: the invariants of DESIGN.md section 7 under kills, broker outages, a "
      "PostgreSQL "
      "restart and bad input, with separate processes. Exit 0: every invariant holds; 1: one does "
      "not; "
      "2: the run could not start."};
  add_plan_options(app, o);
  add_hostile_options(app, o);
  add_run_options(app, o);
  CLI11_PARSE(app, argc, argv);
  if (o.server_url.empty()) o.server_url = env("CLEARING_TEST_DATABASE_URL");
  try {
    return Run(std::move(o)).main();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clearing-chaos: %s\n", e.what());
    return 2;
  }
}
