#include "clearing/external_streams/errors.hpp"

#include <ostream>

namespace clearing::external_streams {

std::ostream& operator<<(std::ostream& out, const KafkaError& error) {
  return out << error.message;
}

const std::string& message_of(const SetupError& error) noexcept {
  return std::visit([](const auto& cause) -> const std::string& { return cause.message; }, error);
}

}  // namespace clearing::external_streams
