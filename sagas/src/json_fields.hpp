#pragma once
// Private to sagas: the JSON shape of the shared vocabulary (money, accounts, parties,
// timestamps) and a reader that never throws. Each codec lists the fields of an event
// once, in a `fields(event, visitor)` function, and the same list drives encoding and
// decoding, so the two cannot drift apart.
//
// Shapes (docs/streams.md): amount {"minor_units": 125000, "currency": "DKK"}, account
// {"scheme": "IBAN", "id": "..."}, party {"name": "...", "account": {...}}, timestamps RFC
// 3339 text in UTC with milliseconds.

#include <concepts>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "clearing/base/clock.hpp"
#include "clearing/eventstore/decider.hpp"
#include "clearing/sagas/account.hpp"
#include "clearing/sagas/event_codec.hpp"
#include "clearing/sagas/money.hpp"
#include "clearing/sagas/transfer_decider.hpp"
#include "clearing/sagas/upcasters.hpp"

namespace clearing::sagas::json_fields {

using Json = nlohmann::json;

// `Is<E> auto& e` binds both E& and const E&: one field list serves encode and decode.
template <class T, class U>
concept Is = std::same_as<std::remove_const_t<T>, U>;

// ---- values to JSON

inline Json to_value(const std::string& v) { return v; }
inline Json to_value(std::int64_t v) { return v; }
inline Json to_value(std::int32_t v) { return v; }
inline Json to_value(Timestamp v) { return base::format_timestamp(v); }
inline Json to_value(const Money& v) {
  return Json{{"minor_units", v.minor_units}, {"currency", std::string(v.currency.code())}};
}
inline Json to_value(const Account& v) {
  return Json{{"scheme", std::string(scheme_name(v.scheme))}, {"id", v.id}};
}
inline Json to_value(const Party& v) {
  return Json{{"name", v.name}, {"account", to_value(v.account)}};
}
inline Json to_value(ClearingAction v) { return std::string(action_name(v)); }
inline Json to_value(ManualOutcome v) { return std::string(manual_outcome_name(v)); }
inline Json to_value(const std::vector<std::string>& v) { return Json(v); }

// ---- JSON to values: false on any mismatch, never an exception

inline bool from_value(const Json& j, std::string& out) {
  if (!j.is_string()) return false;
  out = j.get_ref<const std::string&>();
  return true;
}
inline bool from_value(const Json& j, std::int64_t& out) {
  if (!j.is_number_integer()) return false;
  if (j.is_number_unsigned() &&
      j.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return false;
  out = j.get<std::int64_t>();
  return true;
}
inline bool from_value(const Json& j, std::int32_t& out) {
  std::int64_t wide = 0;
  if (!from_value(j, wide) || wide < std::numeric_limits<std::int32_t>::min() ||
      wide > std::numeric_limits<std::int32_t>::max())
    return false;
  out = static_cast<std::int32_t>(wide);
  return true;
}
inline bool from_value(const Json& j, Timestamp& out) {
  return j.is_string() && base::parse_timestamp(j.get_ref<const std::string&>(), out);
}
inline bool from_value(const Json& j, Money& out) {
  std::string code;
  if (!j.is_object() || !j.contains("minor_units") || !j.contains("currency")) return false;
  if (!from_value(j["minor_units"], out.minor_units) || !from_value(j["currency"], code))
    return false;
  const auto currency = Currency::parse(code);
  if (!currency) return false;
  out.currency = *currency;
  return true;
}
inline bool from_value(const Json& j, Account& out) {
  std::string scheme;
  if (!j.is_object() || !j.contains("scheme") || !j.contains("id")) return false;
  if (!from_value(j["scheme"], scheme) || !from_value(j["id"], out.id)) return false;
  const auto parsed = parse_scheme(scheme);
  if (!parsed) return false;
  out.scheme = *parsed;
  return true;
}
inline bool from_value(const Json& j, Party& out) {
  return j.is_object() && j.contains("name") && j.contains("account") &&
         from_value(j["name"], out.name) && from_value(j["account"], out.account);
}
inline bool from_value(const Json& j, ClearingAction& out) {
  const auto parsed = j.is_string() ? parse_action(j.get_ref<const std::string&>()) : std::nullopt;
  if (parsed) out = *parsed;
  return parsed.has_value();
}
inline bool from_value(const Json& j, ManualOutcome& out) {
  const auto parsed =
      j.is_string() ? parse_manual_outcome(j.get_ref<const std::string&>()) : std::nullopt;
  if (parsed) out = *parsed;
  return parsed.has_value();
}
inline bool from_value(const Json& j, std::vector<std::string>& out) {
  if (!j.is_array()) return false;
  out.clear();
  for (const auto& item : j) {
    if (!item.is_string()) return false;
    out.push_back(item.get<std::string>());
  }
  return true;
}

// ---- visitors over a field list

struct Encoder {
  Json& out;
  template <class V>
  void operator()(const char* key, const V& value) {
    out[key] = to_value(value);
  }
};

// Reads every listed field; keeps the first problem. Unlisted fields are ignored, so an
// event written by a newer version with an added optional field still reads.
class Decoder {
 public:
  explicit Decoder(const Json& in) : in_(in) {}

  template <class V>
  void operator()(const char* key, V& value) {
    if (problem_) return;
    const auto it = in_.find(key);
    if (it == in_.end()) {
      problem_ = Problem{eventstore::DecodeErrc::missing_field, key};
    } else if (!from_value(*it, value)) {
      problem_ = Problem{eventstore::DecodeErrc::invalid_field, key};
    }
  }

  // The first problem as the error of decoding an event of type `type`.
  std::optional<eventstore::DecodeError> error(std::string_view type) const {
    if (!problem_) return std::nullopt;
    const char* what = problem_->code == eventstore::DecodeErrc::missing_field ? "missing field "
                                                                               : "invalid field ";
    return eventstore::DecodeError{problem_->code, problem_->field,
                                   std::string(type) + ": " + what + problem_->field};
  }

 private:
  struct Problem {
    eventstore::DecodeErrc code;
    std::string field;
  };
  const Json& in_;
  std::optional<Problem> problem_;
};

template <class Event, class Describe>
Json encode_event(const Event& event, Describe describe) {
  Json out = Json::object();
  Encoder encoder{out};
  describe(event, encoder);
  return out;
}

// Decodes `json` as the alternative of Variant whose kType is `type`. Never throws: the
// readers check every type before they read, and a library exception (there should be
// none) is turned into an error too, because decoding reads what is stored, and stored
// data must never crash the service.
template <class Variant, class Describe>
tl::expected<Variant, eventstore::DecodeError> decode_event(std::string_view type, const Json& json,
                                                            Describe describe) {
  using eventstore::DecodeErrc;
  using eventstore::DecodeError;
  const std::string name(type);
  if (!json.is_object())
    return tl::unexpected(
        DecodeError{DecodeErrc::not_an_object, "", name + ": data is not an object"});
  tl::expected<Variant, DecodeError> result =
      tl::unexpected(DecodeError{DecodeErrc::unknown_type, "", "unknown event type " + name});
  const auto try_one = [&](auto tag) {
    using Event = typename decltype(tag)::type;
    if (type != Event::kType) return false;
    Event event;
    Decoder decoder{json};
    describe(event, decoder);
    if (auto error = decoder.error(type)) {
      result = tl::unexpected(std::move(*error));
    } else {
      result = Variant{std::move(event)};
    }
    return true;
  };
  try {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (try_one(std::type_identity<std::variant_alternative_t<I, Variant>>{}) || ...);
    }
    (std::make_index_sequence<std::variant_size_v<Variant>>{});
  } catch (const Json::exception& e) {
    result = tl::unexpected(DecodeError{DecodeErrc::invalid_field, "", name + ": " + e.what()});
  }
  return result;
}

// True when `type` is the kType of an alternative of Variant.
template <class Variant>
constexpr bool names_an_event(std::string_view type) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((type == std::variant_alternative_t<I, Variant>::kType) || ...);
  }
  (std::make_index_sequence<std::variant_size_v<Variant>>{});
}

// True when every upcaster names an event of Variant and each type's chain is complete.
template <class Variant>
constexpr bool upcasters_fit(std::span<const Upcaster> upcasters) {
  for (const auto& step : upcasters)
    if (!names_an_event<Variant>(step.type)) return false;
  return chains_are_complete(upcasters);
}

// The field lists of the events of `Variant`: a codec source specialises it with
//   static constexpr auto describe = [](auto& event, auto& visitor) { fields(event, visitor); };
//   static constexpr std::array<Upcaster, N> upcasters{...};  // N = 0: every type at 1
// where its `fields` overloads list each event's fields (the current version's), then
// checks static_assert(upcasters_fit<Variant>(FieldLists<Variant>::upcasters)) and
// instantiates EventCodec<Variant> (the members below).
template <class Variant>
struct FieldLists;

}  // namespace clearing::sagas::json_fields

namespace clearing::sagas {

template <class Event>
std::string_view EventCodec<Event>::event_type(const Event& event) {
  return std::visit([](const auto& e) { return std::string_view{e.kType}; }, event);
}

template <class Event>
nlohmann::json EventCodec<Event>::encode(const Event& event) {
  return std::visit(
      [](const auto& e) {
        return json_fields::encode_event(e, json_fields::FieldLists<Event>::describe);
      },
      event);
}

template <class Event>
SchemaVersion EventCodec<Event>::schema_version(const Event& event) {
  return current_version(event_type(event));
}

template <class Event>
SchemaVersion EventCodec<Event>::current_version(std::string_view type) {
  return sagas::current_version(upcasters(), type);
}

template <class Event>
std::span<const Upcaster> EventCodec<Event>::upcasters() {
  return json_fields::FieldLists<Event>::upcasters;
}

template <class Event>
tl::expected<Event, eventstore::DecodeError> EventCodec<Event>::decode(std::string_view type,
                                                                       const nlohmann::json& data) {
  return json_fields::decode_event<Event>(type, data, json_fields::FieldLists<Event>::describe);
}

template <class Event>
tl::expected<Event, eventstore::DecodeError> EventCodec<Event>::decode(std::string_view type,
                                                                       SchemaVersion version,
                                                                       const nlohmann::json& data) {
  // An unknown type says so whatever its version; the current version needs no copy.
  if (!json_fields::names_an_event<Event>(type) || version == current_version(type))
    return decode(type, data);
  auto current = upcast_to_current(upcasters(), type, version, data);
  if (!current) return tl::unexpected(std::move(current.error()));
  return decode(type, *current);
}

}  // namespace clearing::sagas
