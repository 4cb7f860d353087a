#pragma once
// The typed errors of making this module's Kafka clients and of its options, shared by the
// relay, the consumer and the embedded cluster. None is retryable: the same call with the
// same options fails the same way until a person changes something, so these end a
// start-up with a message, never a retry loop. The errors of running (a relay's round, a
// partition ownership's refresh, a catch-up page) are typed beside their modules
// (relay.hpp, ownership.hpp, consumer.hpp), with whether a retry can help, all in the one
// form CodedError below.

#include <concepts>
#include <iosfwd>
#include <string>
#include <string_view>
#include <variant>

#include "clearing/base/name_table.hpp"

namespace clearing::external_streams {

// An option out of its range: which one, and a message that names it and its range.
struct OptionsError {
  std::string field;  // as the options struct names it: "batch_max", "handover_grace", ...
  std::string message;
};

// The form every typed error of this module takes: a code, and words for a person that say
// what was being done (never a token, nor a message's values). A code that says whether
// another try can help has is_retryable(code) beside it, and then its error has
// is_retryable() too.
template <class Errc>
concept RetryableErrc = requires(Errc code) {
  { is_retryable(code) } -> std::same_as<bool>;
};

template <RetryableErrc Errc>
constexpr bool is_retryable_code(Errc code) noexcept {
  return is_retryable(code);
}

template <class Errc>
struct CodedError {
  Errc code;
  std::string message;
  bool is_retryable() const noexcept requires RetryableErrc<Errc> {
    return is_retryable_code(code);  // the code's own is_retryable, found beside it
  }
};

enum class KafkaErrc {
  invalid_setting,  // librdkafka refused a setting, or an argument is out of its range
  client_failed,    // librdkafka could not make the client (producer, consumer) or subscribe it
  cluster_refused,  // the embedded cluster did not start, or refused an operation on it
};

inline constexpr base::NameTable<KafkaErrc, 3> kKafkaErrcNames{{
    {KafkaErrc::invalid_setting, "invalid_setting"},
    {KafkaErrc::client_failed, "client_failed"},
    {KafkaErrc::cluster_refused, "cluster_refused"},
}};
static_assert(base::lists_every_enumerator(kKafkaErrcNames, KafkaErrc::cluster_refused));

constexpr std::string_view to_string(KafkaErrc code) noexcept {
  return base::name_in(kKafkaErrcNames, code).value_or("unknown");
}

// The message: librdkafka's words, with what was being done.
using KafkaError = CodedError<KafkaErrc>;

std::ostream& operator<<(std::ostream& out, const KafkaError& error);

// Why a relay or a consumer could not be made: an option out of its range, or a Kafka
// client librdkafka would not make.
using SetupError = std::variant<OptionsError, KafkaError>;

// The words of either, for a person (a start-up failure).
const std::string& message_of(const SetupError& error) noexcept;

}  // namespace clearing::external_streams
