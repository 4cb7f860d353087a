#include "clearing/adapter/personal_data.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "clearing/base/text.hpp"
#include "clearing/base/uuid.hpp"

namespace clearing::adapter {
namespace {

using eventstore::StoreResult;
using eventstore::Transaction;

constexpr std::string_view kKeysStream = "privacy-keys";

// Each event's fields, as written below: (name, is text).
struct Field {
  const char* name;
  bool text;
};
const std::vector<Field>* fields_of(std::string_view type) {
  static const std::vector<Field> erased{
      {"subject_ref", true}, {"keys_destroyed", false}, {"reason", true}, {"operator", true}};
  static const std::vector<Field> expired{
      {"first_kept_year", false}, {"retention_years", false}, {"keys_destroyed", false}};
  static const std::vector<Field> rewrapped{{"kek_id", true}, {"keys", false}};
  if (type == kSubjectErasedType) return &erased;
  if (type == kDataKeysExpiredType) return &expired;
  if (type == kDataKeysRewrappedType) return &rewrapped;
  return nullptr;
}
constexpr int kRewrapBatch = 500;

// Unfinished transfers of an outgoing subject (the core's account id, in clear in
// TransferInitiated: it is the core's pseudonym, not personal data here).
constexpr const char* kOpenTransfers =
    "select count(*) from transfer_status s join events e"
    " on e.stream_id = 'transfer-' || s.transfer_id and e.type = 'TransferInitiated'"
    " where s.status not in ('succeeded', 'rejected') and e.data->>'account_id' = $1";

eventstore::EventData privacy_event(std::string_view type, nlohmann::json data) {
  const auto id = base::new_uuid();
  return eventstore::EventData{eventstore::EventId{id}, std::string(type), std::move(data),
                               eventstore::Metadata{id, id, nullptr, nullptr},
                               eventstore::kFirstSchemaVersion};
}

StoreResult<void> append_one(eventstore::EventStore& store, Transaction& tx,
                             std::string_view stream, const eventstore::EventData& event) {
  auto appended = store.append(tx, eventstore::StreamId{std::string(stream)},
                               eventstore::ExpectedVersion::any(), std::span(&event, 1));
  if (!appended) return tl::unexpected(appended.error());
  return {};
}

bool printable(std::string_view text) {
  return base::escape_text(text, text.size() * 6 + 1) == text;
}

}  // namespace

std::optional<std::string> privacy_event_failure(const eventstore::RecordedEvent& event) {
  const auto* fields = fields_of(event.type);
  if (fields == nullptr) return "unknown event type " + event.type;
  if (event.schema_version != eventstore::kFirstSchemaVersion)
    return event.type + ": unknown schema version " + std::to_string(event.schema_version.value());
  for (const auto& field : *fields) {
    const auto found = event.data.find(field.name);
    if (found == event.data.end()) return event.type + ": missing field " + field.name;
    if (field.text ? !found->is_string() : !found->is_number_integer())
      return event.type + ": invalid field " + field.name;
  }
  return std::nullopt;
}

tl::expected<Erasure, ErasureError> erase_subject(eventstore::EventStore& store,
                                                  const privacy::Vault& vault,
                                                  std::string_view subject,
                                                  std::string_view operator_name,
                                                  std::string_view reason) {
  if (subject.empty() || subject.size() > kErasureSubjectBytesMax || !printable(subject))
    return tl::unexpected(ErasureError{
        ErasureErrc::invalid, "subject must be 1.." + std::to_string(kErasureSubjectBytesMax) +
                                  " printable bytes: the core's account id, or for incoming "
                                  "payments the creditor's account"});
  if (reason.empty() || reason.size() > kErasureReasonBytesMax || !printable(reason))
    return tl::unexpected(ErasureError{
        ErasureErrc::invalid, "reason must be 1.." + std::to_string(kErasureReasonBytesMax) +
                                  " printable bytes: why the data is erased"});
  std::optional<ErasureError> refused;
  auto done = store.pool().transact([&](Transaction& tx) -> StoreResult<Erasure> {
    const auto open = tx.exec_params(kOpenTransfers, std::string(subject))[0][0].as<long>();
    if (open > 0) {
      refused = ErasureError{ErasureErrc::open_transfers,
                             "the subject has " + std::to_string(open) +
                                 " unfinished transfer(s): erase once they are decided"};
      return Erasure{};
    }
    Erasure erasure;
    erasure.subject_ref = vault.subject_ref(subject);
    auto destroyed = vault.erase_subject(tx, subject, reason);
    if (!destroyed) return tl::unexpected(destroyed.error());
    erasure.keys_destroyed = *destroyed;
    const auto event = privacy_event(kSubjectErasedType, {{"subject_ref", erasure.subject_ref},
                                                          {"keys_destroyed", *destroyed},
                                                          {"reason", reason},
                                                          {"operator", operator_name}});
    erasure.event_id = event.event_id.value();
    if (auto appended = append_one(store, tx, "privacy-" + erasure.subject_ref, event); !appended)
      return tl::unexpected(appended.error());
    return erasure;
  });
  if (!done) return tl::unexpected(ErasureError{ErasureErrc::store, done.error().message});
  if (refused) return tl::unexpected(*refused);
  return *done;
}

void add_erasure_route(http::HttpServer& server, eventstore::EventStore& store,
                       const privacy::Vault& vault) {
  using http::HttpResponse;
  server.route(
      "POST", "/subjects/erase",
      [&store, &vault](const http::HttpRequest& request) {
        const auto body = nlohmann::json::parse(request.body, nullptr, false);
        if (body.is_discarded() || !body.is_object())
          return HttpResponse::error(400, "bad_body", "the body must be a JSON object");
        for (const auto& [key, value] : body.items()) {
          if (key != "subject" && key != "reason")
            return HttpResponse::error(
                400, "bad_body",
                "unknown field '" + key + "' (subject, reason; the operator is the token's name)");
          if (!value.is_string())
            return HttpResponse::error(400, "bad_body", "field '" + key + "' must be text");
        }
        auto erased = erase_subject(store, vault, body.value("subject", std::string()),
                                    request.principal, body.value("reason", std::string()));
        if (!erased) {
          switch (erased.error().code) {
            case ErasureErrc::invalid:
              return HttpResponse::error(400, "bad_erasure", erased.error().message);
            case ErasureErrc::open_transfers:
              return HttpResponse::error(409, "unfinished_transfers", erased.error().message);
            case ErasureErrc::store:
              break;
          }
          return HttpResponse::error(503, "unavailable", "the database is unavailable");
        }
        return HttpResponse::json(200, nlohmann::json{{"subject_ref", erased->subject_ref},
                                                      {"keys_destroyed", erased->keys_destroyed},
                                                      {"event_id", erased->event_id},
                                                      {"operator", request.principal}}
                                           .dump());
      },
      http::RouteOptions{.role = http::kRoleOperator});
}

StoreResult<int> apply_retention(eventstore::EventStore& store, const privacy::Vault& vault,
                                 int retention_years, int current_year) {
  const int first_kept_year = current_year - retention_years;
  return store.pool().transact([&](Transaction& tx) -> StoreResult<int> {
    auto destroyed = vault.expire_before(tx, first_kept_year);
    if (!destroyed || *destroyed == 0) return destroyed;
    const auto event = privacy_event(kDataKeysExpiredType, {{"first_kept_year", first_kept_year},
                                                            {"retention_years", retention_years},
                                                            {"keys_destroyed", *destroyed}});
    if (auto appended = append_one(store, tx, kKeysStream, event); !appended)
      return tl::unexpected(appended.error());
    return destroyed;
  });
}

StoreResult<int> rewrap_data_keys(eventstore::EventStore& store, const privacy::Vault& vault) {
  int total = 0;
  for (;;) {
    auto batch = store.pool().transact([&](Transaction& tx) -> StoreResult<int> {
      auto rewrapped = vault.rewrap(tx, kRewrapBatch);
      if (!rewrapped || *rewrapped == 0) return rewrapped;
      const auto event =
          privacy_event(kDataKeysRewrappedType, {{"kek_id", vault.kek_id()}, {"keys", *rewrapped}});
      if (auto appended = append_one(store, tx, kKeysStream, event); !appended)
        return tl::unexpected(appended.error());
      return rewrapped;
    });
    if (!batch) return batch;
    if (*batch == 0) return total;
    total += *batch;
  }
}

}  // namespace clearing::adapter
