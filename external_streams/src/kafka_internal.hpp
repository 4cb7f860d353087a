#pragma once
// librdkafka helpers private to this module.

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>
#include <tl/expected.hpp>

#include "clearing/external_streams/errors.hpp"

namespace clearing::external_streams {

// A configuration object with every setting applied; the caller owns it (or hands it to
// rd_kafka_new, which takes ownership on success). A setting librdkafka refuses is
// KafkaErrc::invalid_setting, naming the key.
tl::expected<rd_kafka_conf_t*, KafkaError> make_conf(
    const std::map<std::string, std::string>& settings);

}  // namespace clearing::external_streams
