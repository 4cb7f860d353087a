#pragma once
// The chaos run's faulty core: one bad input of a class (BadInput in schedule.hpp) on the
// inbound stream. Envelope faults go straight onto Kafka (they carry no usable seq);
// unknown_type and invalid_data need a seq of the stream, so they are appended to the core's
// own stream through the core's append path, caused by an internal event saying why.
//
// Not thread safe: the run's main loop calls it. The destructor waits (up to 30 s) for Kafka
// to take what it still holds.

#include <librdkafka/rdkafka.h>

#include <nlohmann/json.hpp>
#include <string>

#include "schedule.hpp"

namespace clearing::chaos {

class BadInputInjector {
 public:
  BadInputInjector(const std::string& bootstrap, const std::string& core_url, std::string stream,
                   int partitions);
  ~BadInputInjector();
  BadInputInjector(const BadInputInjector&) = delete;
  BadInputInjector& operator=(const BadInputInjector&) = delete;

  // "" when it went out, else why not.
  std::string inject(BadInput kind, int partition);

 private:
  nlohmann::json envelope(int partition) const;
  std::string produce(int partition, const std::string& value);
  std::string append_to_core(const std::string& type, nlohmann::json data);

  std::string core_url_;
  std::string stream_;
  int partitions_;
  rd_kafka_t* producer_ = nullptr;
};

}  // namespace clearing::chaos
