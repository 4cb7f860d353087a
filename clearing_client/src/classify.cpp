// Classification of clearing answers, per the contract table. Pure: JSON only.

#include "clearing/clearing_client/classify.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tl/expected.hpp>
#include <vector>

#include "clearing/base/name_table.hpp"
#include "clearing/base/text.hpp"

namespace clearing::clearing_client {
namespace {

using nlohmann::json;

// Why `text` cannot be taken as a field, or nullopt when it can.
std::optional<std::string> text_problem(std::string_view text, std::size_t bytes_max) {
  if (text.size() > bytes_max) {
    return "is " + std::to_string(text.size()) + " bytes, limit " + std::to_string(bytes_max);
  }
  if (!base::is_valid_utf8(text)) return "is not valid UTF-8";
  if (base::has_control_characters(text)) return "contains a control character";
  return std::nullopt;
}

bool is_calendar_date(std::string_view text) {
  if (text.size() != kSettlementDateBytes || text[4] != '-' || text[7] != '-') return false;
  int parts[3] = {0, 0, 0};
  const std::size_t starts[3] = {0, 5, 8};
  const std::size_t lengths[3] = {4, 2, 2};
  for (int i = 0; i < 3; ++i) {
    const auto part = text.substr(starts[i], lengths[i]);
    if (!std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    std::from_chars(part.data(), part.data() + part.size(), parts[i]);
  }
  const std::chrono::year_month_day date{std::chrono::year{parts[0]},
                                         std::chrono::month{static_cast<unsigned>(parts[1])},
                                         std::chrono::day{static_cast<unsigned>(parts[2])}};
  return parts[0] >= 1 && date.ok();
}

bool is_reason_code(std::string_view text) {
  return text.size() == kReasonCodeBytes && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
         });
}

// A feed cursor is opaque, but travels in a URL and in events: visible ASCII only.
bool is_cursor(std::string_view text) {
  return !text.empty() && text.size() <= kCursorBytesMax &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7F; });
}

// Details quote what the clearing sent (an error message, a proxy's page) and reach logs and
// events: they are built from at most kDetailBytesMax bytes of it (bounded copies), and made
// one storable line exactly once, where classify_answer and classify_incoming return
// (escaping twice would double every backslash).
std::string clip(std::string_view text) { return std::string(text.substr(0, kDetailBytesMax)); }
std::string storable(std::string_view detail) { return base::escape_text(detail, kDetailBytesMax); }

ClearingAnswer unknown(UnknownCause cause, int http_status, std::string detail) {
  ClearingAnswer answer;
  answer.answer_class = AnswerClass::unknown;
  answer.cause = cause;
  answer.http_status = http_status;
  answer.detail = std::move(detail);
  return answer;
}

ClearingAnswer of_class(AnswerClass answer_class, int http_status, std::string detail) {
  ClearingAnswer answer;
  answer.answer_class = answer_class;
  answer.http_status = http_status;
  answer.detail = std::move(detail);
  return answer;
}

// A body parsed once. nlohmann::json keeps the last of two equal keys without a word, so a
// body could say one thing to us and another to whoever reads it next: duplicates are noted
// by a parser callback and the body is then refused wherever it would decide anything.
struct Body {
  std::string_view raw;
  std::optional<json> value;    // the body when it is JSON
  bool duplicate_keys = false;  // some object in it repeats a key

  const json* object() const { return value && value->is_object() ? &*value : nullptr; }
};

Body parse_body(std::string_view raw) {
  Body body{raw, std::nullopt, false};
  std::vector<std::set<std::string, std::less<>>> open_objects;
  bool duplicate = false;
  const json::parser_callback_t note_duplicates = [&](int, json::parse_event_t event,
                                                      json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
        }
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  json parsed = json::parse(raw.begin(), raw.end(), note_duplicates, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return body;
  body.value = std::move(parsed);
  body.duplicate_keys = duplicate;
  return body;
}

// Non-empty string field, or nullopt.
std::optional<std::string> string_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  auto value = it->get<std::string>();
  if (value.empty()) return std::nullopt;
  return value;
}

// The error code of an {"error":{"code":..,"message":..}} body, for details only.
std::string error_detail(const Body& body) {
  const json* object = body.object();
  if (object == nullptr) return clip(body.raw);
  const auto it = object->find("error");
  if (it == object->end()) return clip(body.raw);
  if (it->is_object()) {
    std::string detail = clip(string_field(*it, "code").value_or(""));
    if (auto message = string_field(*it, "message")) detail += ": " + clip(*message);
    return clip(detail);
  }
  return clip(it->dump(-1, ' ', false, json::error_handler_t::replace));
}

// The code of the clearing's own error body {"error":{"code":"..."}}; nullopt for anything
// else (an HTML page, a proxy's JSON, a body with duplicate keys).
std::optional<std::string> error_code(const Body& body) {
  const json* object = body.object();
  if (object == nullptr || body.duplicate_keys) return std::nullopt;
  const auto it = object->find("error");
  if (it == object->end() || !it->is_object()) return std::nullopt;
  return string_field(*it, "code");
}

// Why a body is no answer object, whatever the call: not a JSON object, an object that
// repeats a key, or the clearing's error body behind a 200. Nullopt when it is one.
std::optional<ClearingAnswer> not_an_answer_object(const Body& body, int http_status) {
  const json* object = body.object();
  if (object == nullptr) {
    return unknown(UnknownCause::unparsable_body, http_status, "body is not a JSON object");
  }
  if (body.duplicate_keys) {
    return unknown(UnknownCause::contract_violation, http_status, "body repeats a JSON key");
  }
  if (object->contains("error")) {
    return unknown(UnknownCause::error_body_200, http_status, error_detail(body));
  }
  return std::nullopt;
}

// An answer that names another transfer is nobody's answer here: whatever it says, it must
// not decide this one (a stray response on a reused connection, or a proxy's mix-up).
std::optional<ClearingAnswer> reference_mismatch(const Body& body, int http_status,
                                                 std::string_view reference) {
  const json* object = body.object();
  if (object == nullptr) return std::nullopt;
  const auto it = object->find("reference");
  if (it == object->end()) return std::nullopt;
  if (it->is_string() && it->get_ref<const std::string&>() == reference) return std::nullopt;
  return unknown(UnknownCause::reference_mismatch, http_status,
                 "the answer's reference is not the request's key");
}

}  // namespace

bool names_another_reference(std::string_view body, std::string_view reference) {
  return reference_mismatch(parse_body(body), 0, reference).has_value();
}

namespace {

ClearingAnswer violation(int http_status, std::string_view field, const std::string& problem) {
  return unknown(UnknownCause::contract_violation, http_status, std::string(field) + " " + problem);
}

// ACSC / PDNG: a clearing reference and a settlement date, both checked.
ClearingAnswer accepted_answer(ClearingAnswer answer, const json& object) {
  const int http_status = answer.http_status;
  auto reference = string_field(object, "clearing_reference");
  auto date = string_field(object, "settlement_date");
  if (!reference || !date) {
    return unknown(UnknownCause::unparsable_body, http_status,
                   answer.status + " without clearing_reference or settlement_date");
  }
  if (auto problem = text_problem(*reference, kClearingReferenceBytesMax)) {
    return violation(http_status, "clearing_reference", *problem);
  }
  if (!is_calendar_date(*date)) {
    return violation(http_status, "settlement_date", "is not a calendar date YYYY-MM-DD");
  }
  answer.answer_class = answer.status == "ACSC" ? AnswerClass::settled : AnswerClass::pending;
  answer.clearing_reference = std::move(*reference);
  answer.settlement_date = std::move(*date);
  return answer;
}

// RJCT: a reason code of the ISO 20022 form and an optional reason text, both checked.
ClearingAnswer rejected_answer(ClearingAnswer answer, const json& object) {
  const int http_status = answer.http_status;
  auto reason_code = string_field(object, "reason_code");
  if (!reason_code) {
    return unknown(UnknownCause::unparsable_body, http_status, "RJCT without reason_code");
  }
  if (!is_reason_code(*reason_code)) {
    return violation(http_status, "reason_code", "is not four upper-case letters or digits");
  }
  std::string reason;
  if (const auto it = object.find("reason"); it != object.end() && !it->is_null()) {
    if (!it->is_string()) return violation(http_status, "reason", "is not a string");
    reason = it->get<std::string>();
    if (auto problem = text_problem(reason, kReasonBytesMax)) {
      return violation(http_status, "reason", *problem);
    }
  }
  answer.answer_class = AnswerClass::rejected;
  answer.reason_code = std::move(*reason_code);
  answer.reason = std::move(reason);
  return answer;
}

// ACSC / PDNG / RJCT bodies. `allow_*` say which statuses this HTTP status may carry.
ClearingAnswer classify_status_body(int http_status, const Body& body, bool allow_acsc,
                                    bool allow_pdng, bool allow_rjct) {
  if (!body.value) return unknown(UnknownCause::unparsable_body, http_status, "body is not JSON");
  if (auto refused = not_an_answer_object(body, http_status)) return std::move(*refused);
  const json* object = body.object();
  const auto status = string_field(*object, "status");
  if (!status) return unknown(UnknownCause::unparsable_body, http_status, "no status field");
  if (auto problem = text_problem(*status, kStatusBytesMax)) {
    return violation(http_status, "status", *problem);
  }

  ClearingAnswer answer;
  answer.http_status = http_status;
  answer.status = *status;
  if ((*status == "ACSC" && allow_acsc) || (*status == "PDNG" && allow_pdng)) {
    return accepted_answer(std::move(answer), *object);
  }
  if (*status == "RJCT" && allow_rjct) return rejected_answer(std::move(answer), *object);
  return unknown(
      UnknownCause::unparsable_body, http_status,
      clip("status " + *status + " makes no sense with HTTP " + std::to_string(http_status)));
}

ClearingAnswer unexpected_status(int http_status, const Body& body) {
  return unknown(UnknownCause::unexpected_status, http_status,
                 clip("HTTP " + std::to_string(http_status) + ": " + error_detail(body)));
}

// A class that decides without another call (400: an FF01 rejection; 422: a conflict for
// people) is taken only from the clearing's own error body: the same status from a proxy (an
// HTML page, anything else) says nothing about the transfer.
ClearingAnswer from_error_body(AnswerClass answer_class, int http_status, const Body& body) {
  if (!error_code(body)) return unexpected_status(http_status, body);
  return of_class(answer_class, http_status, error_detail(body));
}

// The statuses every call shares (auth, maintenance, server errors).
std::optional<ClearingAnswer> classify_common(int http_status, const Body& body,
                                              std::optional<std::string_view> retry_after) {
  switch (http_status) {
    case 400:
      return from_error_body(AnswerClass::malformed_request, http_status, body);
    case 401:
      return of_class(AnswerClass::unauthorized, http_status, error_detail(body));
    case 503: {
      auto answer = of_class(AnswerClass::maintenance, http_status, error_detail(body));
      answer.retry_after_ms = parse_retry_after_ms(retry_after);
      return answer;
    }
    case 500:
    case 502:
    case 504:
      return unknown(UnknownCause::server_error, http_status, error_detail(body));
    default:
      return std::nullopt;
  }
}

}  // namespace

namespace {

// Persisted and used as metric labels (answer.hpp): one table per enumeration.
constexpr base::NameTable<AnswerClass, 10> kAnswerClassNames{{
    {AnswerClass::settled, "settled"},
    {AnswerClass::pending, "pending"},
    {AnswerClass::rejected, "rejected"},
    {AnswerClass::unknown, "unknown"},
    {AnswerClass::in_progress, "in_progress"},
    {AnswerClass::key_reused, "key_reused"},
    {AnswerClass::maintenance, "maintenance"},
    {AnswerClass::malformed_request, "malformed_request"},
    {AnswerClass::not_found, "not_found"},
    {AnswerClass::unauthorized, "unauthorized"},
}};
static_assert(base::lists_every_enumerator(kAnswerClassNames, AnswerClass::unauthorized));

constexpr base::NameTable<UnknownCause, 10> kUnknownCauseNames{{
    {UnknownCause::none, "none"},
    {UnknownCause::timeout, "timeout"},
    {UnknownCause::connection_reset, "connection_reset"},
    {UnknownCause::connect_failed, "connect_failed"},
    {UnknownCause::server_error, "server_error"},
    {UnknownCause::error_body_200, "error_body_200"},
    {UnknownCause::unparsable_body, "unparsable_body"},
    {UnknownCause::unexpected_status, "unexpected_status"},
    {UnknownCause::reference_mismatch, "reference_mismatch"},
    {UnknownCause::contract_violation, "contract_violation"},
}};
static_assert(base::lists_every_enumerator(kUnknownCauseNames, UnknownCause::contract_violation));

}  // namespace

std::string_view to_string(AnswerClass answer_class) noexcept {
  return base::name_in(kAnswerClassNames, answer_class).value_or("invalid");
}

std::string_view to_string(UnknownCause cause) noexcept {
  return base::name_in(kUnknownCauseNames, cause).value_or("invalid");
}

std::int64_t parse_retry_after_ms(std::optional<std::string_view> retry_after) {
  if (!retry_after) return kRetryAfterDefaultMs;
  std::string_view text = *retry_after;
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::int64_t seconds = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || seconds < 0) {
    return kRetryAfterDefaultMs;
  }
  if (seconds > kRetryAfterMaxMs / 1000) return kRetryAfterMaxMs;
  return seconds * 1000;
}

namespace {

ClearingAnswer classify_decided(CallKind kind, int http_status, const Body& body,
                                std::optional<std::string_view> retry_after,
                                std::string_view reference) {
  if (auto mismatch = reference_mismatch(body, http_status, reference)) return std::move(*mismatch);
  if (auto common = classify_common(http_status, body, retry_after)) return std::move(*common);
  if (kind == CallKind::submit) {
    switch (http_status) {
      case 201:
        return classify_status_body(http_status, body, true, false, false);
      case 202:
        return classify_status_body(http_status, body, false, true, false);
      case 200:
        return classify_status_body(http_status, body, false, false, true);
      case 409:
        return of_class(AnswerClass::in_progress, http_status, error_detail(body));
      case 422:
        return from_error_body(AnswerClass::key_reused, http_status, body);
      default:
        return unexpected_status(http_status, body);
    }
  }
  if (kind == CallKind::inquire) {
    switch (http_status) {
      case 200:
        return classify_status_body(http_status, body, true, true, true);
      case 409:
        return of_class(AnswerClass::in_progress, http_status, error_detail(body));
      case 404:
        // Only the clearing's own NOT_FOUND proves "never accepted": a 404 page from a
        // misrouted proxy says nothing about the transfer.
        if (error_code(body) == std::optional<std::string>("NOT_FOUND")) {
          return of_class(AnswerClass::not_found, http_status, "NOT_FOUND");
        }
        return unexpected_status(http_status, body);
      default:
        return unexpected_status(http_status, body);
    }
  }
  return unexpected_status(http_status, body);
}

}  // namespace

ClearingAnswer classify_answer(CallKind kind, int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after,
                               std::string_view reference) {
  auto answer = classify_decided(kind, http_status, parse_body(body), retry_after, reference);
  answer.detail = storable(answer.detail);
  return answer;
}

namespace {

// ---- The feed page, split before it is decoded ----------------------------------------------
// nlohmann::json refuses a whole text for one invalid UTF-8 byte anywhere in it, so a page
// decoded at once would fail for one bad payment. The page is first split into its envelope
// and the elements of its payments array by the JSON grammar's brackets and strings alone
// (the bytes inside a string are skipped, never decoded), and each part is decoded alone.

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() && is_json_space(text[at])) ++at;
  return at;
}

std::string_view trim_space_end(std::string_view text) {
  while (!text.empty() && is_json_space(text.back())) text.remove_suffix(1);
  return text;
}

// The index of the quote that closes the string opened at text[open], or npos when none
// does. A backslash escapes the byte after it; no other byte is looked at.
std::size_t string_end(std::string_view text, std::size_t open) {
  for (std::size_t at = open + 1; at < text.size(); ++at) {
    if (text[at] == '\\') {
      ++at;
    } else if (text[at] == '"') {
      return at;
    }
  }
  return std::string_view::npos;
}

// The items of the object or array that `text` holds, each trimmed of whitespace (an
// object's items are its members, `"key": value`). nullopt when its brackets and strings
// are not well formed: `text` does not open with `open`, a string is never closed, a
// bracket is closed by the other kind, an item is empty (`[1,,2]`, `[1,]`), or something
// follows the container. The stack of open brackets is bounded by text.size(), which the
// client's response_body_bytes_max bounds.
std::optional<std::vector<std::string_view>> container_items(std::string_view text, char open) {
  const char close = open == '{' ? '}' : ']';
  std::size_t at = skip_space(text, 0);
  if (at == text.size() || text[at] != open) return std::nullopt;
  std::vector<char> closers;  // the brackets open inside the current item
  std::vector<std::string_view> items;
  std::size_t item_begin = std::string_view::npos;
  for (++at; at < text.size(); ++at) {
    const char c = text[at];
    if (closers.empty()) {
      if (is_json_space(c)) continue;
      if (c == ',' || c == close) {
        if (item_begin == std::string_view::npos) {
          if (c == ',' || !items.empty()) return std::nullopt;  // an empty item
        } else {
          items.push_back(trim_space_end(text.substr(item_begin, at - item_begin)));
          item_begin = std::string_view::npos;
        }
        if (c == ',') continue;
        if (skip_space(text, at + 1) != text.size()) return std::nullopt;
        return items;
      }
      if (item_begin == std::string_view::npos) item_begin = at;
    }
    if (c == '"') {
      at = string_end(text, at);
      if (at == std::string_view::npos) return std::nullopt;
    } else if (c == '{' || c == '[') {
      closers.push_back(c == '{' ? '}' : ']');
    } else if (c == '}' || c == ']') {
      if (closers.empty() || closers.back() != c) return std::nullopt;
      closers.pop_back();
    }
  }
  return std::nullopt;  // never closed
}

// One member of an object as it lies in the text.
struct RawMember {
  std::string_view key;    // the key's string token, quotes included
  std::string_view value;  // the value's text, not empty
};

std::optional<RawMember> split_member(std::string_view item) {
  if (item.empty() || item.front() != '"') return std::nullopt;
  const std::size_t key_end = string_end(item, 0);
  if (key_end == std::string_view::npos) return std::nullopt;
  const std::size_t colon = skip_space(item, key_end + 1);
  if (colon == item.size() || item[colon] != ':') return std::nullopt;
  const std::size_t value = skip_space(item, colon + 1);
  if (value == item.size()) return std::nullopt;
  return RawMember{item.substr(0, key_end + 1), item.substr(value)};
}

// A string token decoded, or nullopt when it is not exactly one valid JSON string.
std::optional<std::string> decode_string(std::string_view token) {
  if (token.empty() || token.front() != '"') return std::nullopt;
  json parsed = json::parse(token.begin(), token.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_string()) return std::nullopt;
  return parsed.get<std::string>();
}

// A feed body split: the envelope is the body with its payments array emptied ("[]"), the
// elements are that array's items as received. A body without a top-level "payments" array
// is its own envelope, which the envelope's checks then refuse. nullopt when the brackets and
// strings of the body or of its payments array are not well formed.
struct SplitPage {
  std::string envelope;
  std::vector<std::string_view> elements;
};

std::optional<SplitPage> split_page(std::string_view body) {
  const auto members = container_items(body, '{');
  if (!members) return std::nullopt;
  for (const auto text : *members) {
    const auto member = split_member(text);
    // A second "payments" member stays in the envelope, which then repeats a key.
    if (!member || member->value.front() != '[' || decode_string(member->key) != "payments") {
      continue;
    }
    auto elements = container_items(member->value, '[');
    if (!elements) return std::nullopt;
    const auto begin = static_cast<std::size_t>(member->value.data() - body.data());
    std::string envelope(body.substr(0, begin));
    envelope += "[]";
    envelope += body.substr(begin + member->value.size());
    return SplitPage{std::move(envelope), std::move(*elements)};
  }
  return SplitPage{std::string(body), {}};
}

// ---- One payment ------------------------------------------------------------------------------

// The contract's payment fields: a reason names one of these, never a key the sender made up
// (a key is sender text like any value).
constexpr std::array<std::string_view, 10> kPaymentFieldNames = {
    "cursor",      "clearing_reference", "amount_minor",  "currency",        "debtor_account",
    "debtor_name", "creditor_account",   "creditor_name", "remittance_info", "received_at"};

std::string field_label(const std::optional<std::string>& key) {
  const bool named = key && std::find(kPaymentFieldNames.begin(), kPaymentFieldNames.end(), *key) !=
                                kPaymentFieldNames.end();
  return named ? "payment field " + *key
               : std::string("a payment field the contract does not name");
}

// Why a payment cannot be taken, with the cause to report.
struct PaymentProblem {
  UnknownCause cause = UnknownCause::unparsable_body;
  std::string text;
};

bool has_raw_control_byte(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

// Text no JSON parser takes (invalid UTF-8 anywhere in a member, a raw control character in
// a string), found member by member so that the reason can name the field.
std::optional<PaymentProblem> raw_text_problem(const std::vector<std::string_view>& members) {
  for (const auto text : members) {
    const auto member = split_member(text);
    if (!member) return PaymentProblem{UnknownCause::unparsable_body, "payment is not valid JSON"};
    if (!base::is_valid_utf8(member->key) || has_raw_control_byte(member->key)) {
      return PaymentProblem{UnknownCause::contract_violation, "payment has a key that is not text"};
    }
    const auto label = [&] { return field_label(decode_string(member->key)); };
    if (!base::is_valid_utf8(member->value)) {
      return PaymentProblem{UnknownCause::contract_violation, label() + " is not valid UTF-8"};
    }
    if (member->value.front() == '"' && has_raw_control_byte(member->value)) {
      return PaymentProblem{UnknownCause::contract_violation,
                            label() + " contains a control character"};
    }
  }
  return std::nullopt;
}

tl::expected<IncomingPayment, PaymentProblem> parse_payment(const json& item) {
  const auto problem = [](UnknownCause cause, std::string text) {
    return tl::unexpected(PaymentProblem{cause, std::move(text)});
  };
  if (!item.is_object()) return problem(UnknownCause::unparsable_body, "payment is not an object");
  IncomingPayment payment;
  struct Field {
    const char* name;
    std::string* target;
    bool required;
    std::size_t bytes_max;
  };
  const Field fields[] = {
      {"cursor", &payment.cursor, true, kCursorBytesMax},
      {"clearing_reference", &payment.clearing_reference, true, kClearingReferenceBytesMax},
      {"currency", &payment.currency, true, kCurrencyBytesMax},
      {"debtor_account", &payment.debtor_account, true, kAccountIdBytesMax},
      {"debtor_name", &payment.debtor_name, false, kPartyNameBytesMax},
      {"creditor_account", &payment.creditor_account, true, kAccountIdBytesMax},
      {"creditor_name", &payment.creditor_name, false, kPartyNameBytesMax},
      {"remittance_info", &payment.remittance_info, false, kRemittanceInfoBytesMax},
      {"received_at", &payment.received_at, true, kTimestampBytesMax},
  };
  for (const auto& field : fields) {
    const auto it = item.find(field.name);
    if (it != item.end() && it->is_string()) {
      *field.target = it->get<std::string>();
    } else if (field.required || (it != item.end() && !it->is_null())) {
      return problem(UnknownCause::unparsable_body,
                     std::string("payment field ") + field.name + " missing or not a string");
    }
    if (field.required && field.target->empty()) {
      return problem(UnknownCause::unparsable_body,
                     std::string("payment field ") + field.name + " is empty");
    }
    if (auto text = text_problem(*field.target, field.bytes_max)) {
      return problem(UnknownCause::contract_violation,
                     std::string("payment field ") + field.name + " " + *text);
    }
  }
  if (!is_cursor(payment.cursor)) {
    return problem(UnknownCause::contract_violation, "payment field cursor is not visible ASCII");
  }
  // nlohmann keeps a number above 2^63-1 as unsigned: get<std::int64_t>() would wrap it.
  const auto amount = item.find("amount_minor");
  const bool in_range =
      amount != item.end() && amount->is_number_integer() &&
      (amount->is_number_unsigned()
           ? amount->get<std::uint64_t>() <=
                 static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
           : amount->get<std::int64_t>() > 0);
  if (!in_range || amount->get<std::int64_t>() <= 0) {
    return problem(UnknownCause::unparsable_body,
                   "payment amount_minor missing or not a positive 64-bit integer");
  }
  payment.amount_minor = amount->get<std::int64_t>();
  return payment;
}

// One element of a sound page's payments array: the payment, or why it cannot be taken.
tl::expected<IncomingPayment, PaymentProblem> read_payment(std::string_view element) {
  if (element.front() != '{') {
    return tl::unexpected(
        PaymentProblem{UnknownCause::unparsable_body, "payment is not an object"});
  }
  const auto members = container_items(element, '{');
  if (!members) {
    return tl::unexpected(
        PaymentProblem{UnknownCause::unparsable_body, "payment is not valid JSON"});
  }
  if (auto problem = raw_text_problem(*members)) return tl::unexpected(std::move(*problem));
  const Body body = parse_body(element);
  if (!body.value) {
    return tl::unexpected(
        PaymentProblem{UnknownCause::unparsable_body, "payment is not valid JSON"});
  }
  if (body.duplicate_keys) {
    return tl::unexpected(
        PaymentProblem{UnknownCause::contract_violation, "payment repeats a JSON key"});
  }
  return parse_payment(*body.value);
}

// A rejected payment's cursor and clearing reference, read from its members alone: each only
// when its key occurs once, its value is a clean string token, and it is valid as a good
// payment's would be (so that it can name the payment in events, logs and parked rows).
void read_identity(std::string_view element, RejectedPayment& rejected) {
  const auto members = container_items(element, '{');
  if (!members) return;
  int cursors = 0;
  int references = 0;
  std::optional<std::string> cursor;
  std::optional<std::string> reference;
  for (const auto text : *members) {
    const auto member = split_member(text);
    if (!member) return;
    const auto key = decode_string(member->key);
    if (key != "cursor" && key != "clearing_reference") continue;
    const bool is_cursor_key = key == "cursor";
    ++(is_cursor_key ? cursors : references);
    auto value = base::is_valid_utf8(member->value) && !has_raw_control_byte(member->value)
                     ? decode_string(member->value)
                     : std::nullopt;
    (is_cursor_key ? cursor : reference) = std::move(value);
  }
  if (cursors == 1 && cursor && is_cursor(*cursor)) rejected.cursor = std::move(cursor);
  if (references == 1 && reference && !reference->empty() &&
      !text_problem(*reference, kClearingReferenceBytesMax)) {
    rejected.clearing_reference = std::move(reference);
  }
}

RejectedPayment rejected_payment(std::size_t index, std::string_view element,
                                 PaymentProblem problem) {
  RejectedPayment rejected;
  rejected.index = index;
  rejected.raw = std::string(element.substr(0, kRejectedPaymentRawBytesMax));
  rejected.raw_bytes = element.size();
  rejected.cause = problem.cause;
  rejected.reason = storable(problem.text);
  read_identity(element, rejected);
  return rejected;
}

// ---- The page -----------------------------------------------------------------------------------

IncomingPage failed_page(ClearingAnswer failure) {
  IncomingPage page;
  page.failure = std::move(failure);
  return page;
}

IncomingPage failed_page(UnknownCause cause, int http_status, std::string detail) {
  return failed_page(unknown(cause, http_status, std::move(detail)));
}

IncomingPage classify_feed(int http_status, std::string_view raw,
                           std::optional<std::string_view> retry_after) {
  if (http_status != 200) {
    const Body body = parse_body(raw);
    auto common = classify_common(http_status, body, retry_after);
    return failed_page(common ? std::move(*common) : unexpected_status(http_status, body));
  }
  auto split = split_page(raw);
  if (!split) {
    return failed_page(UnknownCause::unparsable_body, http_status,
                       "body is not a well-formed JSON object");
  }
  const Body body = parse_body(split->envelope);
  if (auto refused = not_an_answer_object(body, http_status))
    return failed_page(std::move(*refused));
  const json* object = body.object();
  const auto payments = object->find("payments");
  if (payments == object->end() || !payments->is_array()) {
    return failed_page(UnknownCause::unparsable_body, http_status, "no payments array");
  }
  IncomingPage page;
  page.next_cursor = string_field(*object, "next_cursor");
  if (!split->elements.empty() && !page.next_cursor) {
    return failed_page(UnknownCause::unparsable_body, http_status, "payments without next_cursor");
  }
  if (page.next_cursor && !is_cursor(*page.next_cursor)) {
    return failed_page(
        UnknownCause::contract_violation, http_status,
        "next_cursor is not 1 to " + std::to_string(kCursorBytesMax) + " visible ASCII characters");
  }
  for (std::size_t index = 0; index < split->elements.size(); ++index) {
    const auto element = split->elements[index];
    auto payment = read_payment(element);
    if (payment) {
      page.payments.push_back(std::move(*payment));
    } else {
      page.rejected.push_back(rejected_payment(index, element, std::move(payment.error())));
    }
  }
  page.ok = true;
  page.failure.answer_class = AnswerClass::settled;
  page.failure.http_status = http_status;
  return page;
}

}  // namespace

IncomingPage classify_incoming(int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after) {
  auto page = classify_feed(http_status, body, retry_after);
  page.failure.detail = storable(page.failure.detail);
  return page;
}

std::string encode_submit_body(const SubmitRequest& request) {
  // Names may carry any UTF-8; replace invalid sequences rather than throw.
  return submit_body_json(request).dump(-1, ' ', false, json::error_handler_t::replace);
}

json submit_body_json(const SubmitRequest& request) {
  return {
      {"reference", request.reference},         {"amount_minor", request.amount_minor},
      {"currency", request.currency},           {"debtor_account", request.debtor_account},
      {"debtor_name", request.debtor_name},     {"creditor_account", request.creditor_account},
      {"creditor_name", request.creditor_name}, {"remittance_info", request.remittance_info},
  };
}

namespace {

constexpr base::NameTable<SubmitBodyErrc, 2> kSubmitBodyErrcNames{{
    {SubmitBodyErrc::not_an_object, "not_an_object"},
    {SubmitBodyErrc::invalid_field, "invalid_field"},
}};
static_assert(base::lists_every_enumerator(kSubmitBodyErrcNames, SubmitBodyErrc::invalid_field));

tl::unexpected<SubmitBodyError> invalid_field(std::string field, const char* what) {
  std::string message = field + what;
  return tl::unexpected(
      SubmitBodyError{SubmitBodyErrc::invalid_field, std::move(field), std::move(message)});
}

}  // namespace

std::string_view to_string(SubmitBodyErrc code) noexcept {
  return base::name_in(kSubmitBodyErrcNames, code).value_or("invalid");
}

tl::expected<SubmitRequest, SubmitBodyError> decode_submit_body(std::string_view body) {
  return decode_submit_body(json::parse(body, nullptr, /*allow_exceptions=*/false));
}

tl::expected<SubmitRequest, SubmitBodyError> decode_submit_body(const json& parsed) {
  if (!parsed.is_object()) {
    return tl::unexpected(
        SubmitBodyError{SubmitBodyErrc::not_an_object, "", "the body is not a JSON object"});
  }
  SubmitRequest request;
  const auto text = [&](const char* name, std::string& out) {
    const auto it = parsed.find(name);
    if (it == parsed.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  const auto amount = parsed.find("amount_minor");
  if (!text("reference", request.reference)) return invalid_field("reference", " is not a string");
  if (amount == parsed.end() || !amount->is_number_integer() ||
      (amount->is_number_unsigned() &&
       amount->get<std::uint64_t>() >
           static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())))
    return invalid_field("amount_minor", " is not an integer");
  request.amount_minor = amount->get<std::int64_t>();
  const std::pair<const char*, std::string*> texts[] = {
      {"currency", &request.currency},
      {"debtor_account", &request.debtor_account},
      {"debtor_name", &request.debtor_name},
      {"creditor_account", &request.creditor_account},
      {"creditor_name", &request.creditor_name}};
  for (const auto& [name, out] : texts)
    if (!text(name, *out)) return invalid_field(name, " is not a string");
  // Remittance information is optional in payments (ISO 20022 RmtInf 0..1): absent or null
  // reads as none. The client always writes it.
  if (const auto it = parsed.find("remittance_info");
      it != parsed.end() && !it->is_null() && !text("remittance_info", request.remittance_info))
    return invalid_field("remittance_info", " is not a string");
  return request;
}

}  // namespace clearing::clearing_client
