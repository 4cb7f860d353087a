#pragma once
// What the service exports on /metrics (service.cpp wires it; internal to adapter/src).
//
// Every way the handling can stop has a figure here, and a rule in
// deploy/prometheus/alerts.yml (the README's "Metrics and alerts" lists both):
// - counts since start, kept in memory by the workers, are counters (`_total`);
// - states and backlogs are gauges, read at each scrape: from a worker's stats, or from the
//   database with one cheap statement each (an index serves every one; measured by
//   service_metrics_pgtest). Figures read from the database are the whole deployment's,
//   the same on every instance of a country (aggregate them with max, not sum); figures
//   from a worker's stats are this instance's.

#include <spdlog/spdlog.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clearing/adapter/dispatcher.hpp"
#include "clearing/adapter/incoming_poller.hpp"
#include "clearing/base/clock.hpp"
#include "clearing/base/metrics.hpp"
#include "clearing/clearing_client/client.hpp"
#include "clearing/eventstore/database.hpp"
#include "clearing/eventstore/subscription.hpp"
#include "clearing/external_streams/consumer.hpp"
#include "clearing/external_streams/derivation.hpp"
#include "clearing/tracing/otlp.hpp"

namespace clearing::adapter {

// The service's parts, by reference to the service's own pointers: a part not made yet (or
// gone) is null at a scrape, and its families then have no samples.
struct ServiceMetricParts {
  const std::unique_ptr<eventstore::ConnectionPool>& pool;
  const std::unique_ptr<clearing_client::ClearingClient>& client;
  const std::unique_ptr<Dispatcher>& dispatcher;
  const std::unique_ptr<IncomingPoller>& poller;
  const std::unique_ptr<eventstore::Subscription>& derivation;
  const std::shared_ptr<external_streams::DerivationLookups>& derivation_lookups;
  const std::unique_ptr<external_streams::StreamConsumer>& consumer;
  const base::Clock& clock;
  // The service's span exporter (a null pointer, or a null exporter: tracing is off).
  const std::shared_ptr<tracing::OtlpHttpExporter>* span_exporter = nullptr;
};

// The dispatcher's hook for each answer (counts and latency).
using AnswerHook = std::function<void(std::string_view action, std::string_view answer_class,
                                      std::int64_t latency_ms)>;

// Registers every family; returns the hook to hand to the dispatcher.
AnswerHook register_service_metrics(base::metrics::Registry& registry,
                                    const ServiceMetricParts& parts,
                                    std::shared_ptr<spdlog::logger> log);

}  // namespace clearing::adapter
