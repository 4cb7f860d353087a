#include <CLI/CLI.hpp>

#include "demo.hpp"

namespace clearing::demo {
void add_demo_options(CLI::App&, DemoOptions&) {}
int run_demo(const DemoOptions&) { return 2; }
}  // namespace clearing::demo
