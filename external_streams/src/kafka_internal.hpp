#pragma once
// librdkafka helpers private to this module.

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>
#include <tl/expected.hpp>

namespace clearing::external_streams {

// A configuration object with every setting applied; the caller owns it (or hands it to
// rd_kafka_new, which takes ownership on success).
tl::expected<rd_kafka_conf_t*, std::string> make_conf(
    const std::map<std::string, std::string>& settings);

}  // namespace clearing::external_streams
