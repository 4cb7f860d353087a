#pragma once
// Shared set-up for the event store's database tests.

#include <memory>

#include "clearing/base/uuid.hpp"
#include "clearing/eventstore/event_store.hpp"
#include "clearing/eventstore/migrations.hpp"
#include "test_database.hpp"

namespace clearing::eventstore::testing {

struct StoreFixture {
  clearing::testing::TestDatabase database;
  std::unique_ptr<ConnectionPool> pool;
  std::unique_ptr<EventStore> store;

  explicit StoreFixture(std::size_t connections_max = 16) {
    DatabaseOptions options;
    options.url = database.url();
    options.connections_max = connections_max;
    pool = std::make_unique<ConnectionPool>(options);
    auto applied = apply_migrations(*pool, eventstore_migrations());
    if (!applied) throw std::runtime_error("migrations failed: " + applied.error().message);
    store = std::make_unique<EventStore>(*pool);
  }
};

inline EventData make_event(std::string type, nlohmann::json data = nlohmann::json::object(),
                            std::string correlation = "corr-1") {
  return EventData{EventId{base::new_uuid()}, std::move(type), std::move(data),
                   Metadata{std::move(correlation), "cause-1", nullptr, nullptr}};
}

}  // namespace clearing::eventstore::testing
