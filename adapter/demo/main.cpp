// clearing-demo: the demo on embedded defaults (scripts/demo gives it a PostgreSQL server).
//   clearing-demo [--transfers N --seed S | --file F] [--rate R] [--quiet]
// main() only parses arguments; the demo is in demo.cpp.

#include <CLI/CLI.hpp>

#include "demo.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "clearing-demo: one country's adapter, the clearing mock with faults, the core simulator and "
      "Kafka "
      "(embedded), all in this process; exits non-zero if an invariant failed"};
  clearing::demo::DemoOptions options;
  clearing::demo::add_demo_options(app, options);
  CLI11_PARSE(app, argc, argv);
  return clearing::demo::run_demo(options);
}
