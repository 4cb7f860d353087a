#pragma once
// The adapter's config for the multi-process tests and the chaos run: a country's shipped
// config file with retries in seconds, not minutes (the config of an operator in a hurry).
// Each caller then sets what it measures (timeouts, lease, assignment) on the result.

#include <nlohmann/json.hpp>
#include <string>

namespace clearing::support {

// `config_file`: e.g. SOURCE_DIR "/config/dk.json". Throws nlohmann::json's exceptions on a
// file that is missing or not JSON (a test set up wrong).
nlohmann::json adapter_config_in_a_hurry(const std::string& config_file);

}  // namespace clearing::support
