#include "clearing/support/adapter_config.hpp"

#include <fstream>

namespace clearing::support {

nlohmann::json adapter_config_in_a_hurry(const std::string& config_file) {
  std::ifstream in(config_file);
  auto cfg = nlohmann::json::parse(in);
  cfg["retry"] = {{"backoff_initial_ms", 100},
                  {"backoff_max_ms", 2000},
                  {"backoff_multiplier", 2},
                  {"unknown_outcomes_before_inquiry", 2},
                  {"pending_inquiry_interval_ms", 300},
                  {"investigation_inquiry_interval_ms", 1000},
                  {"deadline_ms", 120000}};
  return cfg;
}

}  // namespace clearing::support
