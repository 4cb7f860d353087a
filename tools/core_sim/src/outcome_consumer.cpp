// The consumer of the adapter's outcomes: see outcome_consumer.hpp.

#include "outcome_consumer.hpp"

#include "clearing/core_sim/outcome_applier.hpp"
#include "clearing/external_streams/catch_up_api.hpp"

namespace clearing::core_sim {
namespace {

// How often core-sim compares its progress on the adapter's stream with the adapter's head
// and fetches a missing tail: the adapter's default for the same check.
constexpr std::chrono::milliseconds kTailCheckInterval{2'000};

external_streams::CatchUpFetcher adapter_fetcher(const CoreSimOptions& options) {
  if (options.adapter_catch_up_url.empty()) return {};
  return external_streams::make_http_catch_up_fetcher({.base_url = options.adapter_catch_up_url,
                                                       .bearer_token = options.adapter_api_token,
                                                       .token_setting = "--adapter-token",
                                                       .url_setting = "--adapter-catch-up-url"});
}

}  // namespace

tl::expected<std::unique_ptr<external_streams::StreamConsumer>, std::string> make_outcome_consumer(
    eventstore::EventStore& store, AccountCache& cache, const CoreSimOptions& options,
    sagas::Country country, const std::string& adapter_stream,
    const external_streams::KafkaClientOptions& kafka) {
  external_streams::ConsumerOptions consumer_options;
  consumer_options.kafka = kafka;
  consumer_options.group_id = options.consumer_group.empty()
                                  ? "core-sim-" + std::string(sagas::country_code_lower(country))
                                  : options.consumer_group;
  consumer_options.topics = {adapter_stream};
  // The core repairs a lost last outcome as the adapter does (streams.tail_check_interval_ms).
  consumer_options.tail_check_interval = kTailCheckInterval;
  // Outcomes are queued per message and applied set-wise at the batch's end.
  auto made = external_streams::StreamConsumer::create(
      store.pool(), consumer_options,
      std::make_unique<OutcomeApplier>(
          store, cache, BeforeAccountAppend{},
          options.outcomes_version == "v2" ? OutcomesVersion::v2 : OutcomesVersion::v1),
      adapter_fetcher(options));
  if (!made) return tl::unexpected("consumer: " + external_streams::message_of(made.error()));
  return std::move(*made);
}

}  // namespace clearing::core_sim
