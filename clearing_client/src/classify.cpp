// Classification of clearing answers, per the contract table. Pure: JSON only.

#include "clearing/clearing_client/classify.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace clearing::clearing_client {
namespace {

using nlohmann::json;

// Error bodies can be long HTML pages from a proxy; keep details short for logs and events.
constexpr std::size_t kDetailCharsMax = 200;

std::string clip(std::string_view text) { return std::string(text.substr(0, kDetailCharsMax)); }

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

std::optional<json> parse_json(std::string_view body) {
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
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
std::string error_detail(std::string_view body) {
  const auto parsed = parse_json(body);
  if (!parsed || !parsed->is_object()) return clip(body);
  const auto it = parsed->find("error");
  if (it == parsed->end()) return clip(body);
  if (it->is_object()) {
    std::string detail = string_field(*it, "code").value_or("");
    if (auto message = string_field(*it, "message")) detail += ": " + *message;
    return clip(detail);
  }
  return clip(it->dump());
}

std::optional<std::string> error_code(std::string_view body) {
  const auto parsed = parse_json(body);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const auto it = parsed->find("error");
  if (it == parsed->end() || !it->is_object()) return std::nullopt;
  return string_field(*it, "code");
}

// ACSC / PDNG / RJCT bodies. `allowed` lists which statuses this HTTP status may carry.
ClearingAnswer classify_status_body(int http_status, std::string_view body, bool allow_acsc,
                                    bool allow_pdng, bool allow_rjct) {
  const auto parsed = parse_json(body);
  if (!parsed) return unknown(UnknownCause::unparsable_body, http_status, "body is not JSON");
  if (!parsed->is_object()) {
    return unknown(UnknownCause::unparsable_body, http_status, "body is not a JSON object");
  }
  if (parsed->contains("error")) {
    return unknown(UnknownCause::error_body_200, http_status, error_detail(body));
  }
  const auto status = string_field(*parsed, "status");
  if (!status) return unknown(UnknownCause::unparsable_body, http_status, "no status field");

  ClearingAnswer answer;
  answer.http_status = http_status;
  answer.status = *status;
  if ((*status == "ACSC" && allow_acsc) || (*status == "PDNG" && allow_pdng)) {
    auto reference = string_field(*parsed, "clearing_reference");
    auto date = string_field(*parsed, "settlement_date");
    if (!reference || !date) {
      return unknown(UnknownCause::unparsable_body, http_status,
                     *status + " without clearing_reference or settlement_date");
    }
    answer.answer_class = *status == "ACSC" ? AnswerClass::settled : AnswerClass::pending;
    answer.clearing_reference = std::move(*reference);
    answer.settlement_date = std::move(*date);
    return answer;
  }
  if (*status == "RJCT" && allow_rjct) {
    auto reason_code = string_field(*parsed, "reason_code");
    if (!reason_code) {
      return unknown(UnknownCause::unparsable_body, http_status, "RJCT without reason_code");
    }
    answer.answer_class = AnswerClass::rejected;
    answer.reason_code = std::move(*reason_code);
    answer.reason = string_field(*parsed, "reason").value_or("");
    return answer;
  }
  return unknown(
      UnknownCause::unparsable_body, http_status,
      clip("status " + *status + " makes no sense with HTTP " + std::to_string(http_status)));
}

// The statuses every call shares (auth, maintenance, server errors).
std::optional<ClearingAnswer> classify_common(int http_status, std::string_view body,
                                              std::optional<std::string_view> retry_after) {
  switch (http_status) {
    case 400:
      return of_class(AnswerClass::malformed_request, http_status, error_detail(body));
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

ClearingAnswer unexpected_status(int http_status, std::string_view body) {
  return unknown(UnknownCause::unexpected_status, http_status,
                 clip("HTTP " + std::to_string(http_status) + ": " + error_detail(body)));
}

}  // namespace

std::string_view to_string(AnswerClass answer_class) noexcept {
  switch (answer_class) {
    case AnswerClass::settled:
      return "settled";
    case AnswerClass::pending:
      return "pending";
    case AnswerClass::rejected:
      return "rejected";
    case AnswerClass::unknown:
      return "unknown";
    case AnswerClass::in_progress:
      return "in_progress";
    case AnswerClass::key_reused:
      return "key_reused";
    case AnswerClass::maintenance:
      return "maintenance";
    case AnswerClass::malformed_request:
      return "malformed_request";
    case AnswerClass::not_found:
      return "not_found";
    case AnswerClass::unauthorized:
      return "unauthorized";
  }
  return "invalid";
}

std::string_view to_string(UnknownCause cause) noexcept {
  switch (cause) {
    case UnknownCause::none:
      return "none";
    case UnknownCause::timeout:
      return "timeout";
    case UnknownCause::connection_reset:
      return "connection_reset";
    case UnknownCause::connect_failed:
      return "connect_failed";
    case UnknownCause::server_error:
      return "server_error";
    case UnknownCause::error_body_200:
      return "error_body_200";
    case UnknownCause::unparsable_body:
      return "unparsable_body";
    case UnknownCause::unexpected_status:
      return "unexpected_status";
  }
  return "invalid";
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

ClearingAnswer classify_answer(CallKind kind, int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after) {
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
        return of_class(AnswerClass::key_reused, http_status, error_detail(body));
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

namespace {

std::optional<IncomingPayment> parse_payment(const json& item, std::string& problem) {
  if (!item.is_object()) {
    problem = "payment is not an object";
    return std::nullopt;
  }
  IncomingPayment payment;
  struct Field {
    const char* name;
    std::string* target;
    bool required;
  };
  const Field fields[] = {
      {"cursor", &payment.cursor, true},
      {"clearing_reference", &payment.clearing_reference, true},
      {"currency", &payment.currency, true},
      {"debtor_account", &payment.debtor_account, true},
      {"debtor_name", &payment.debtor_name, false},
      {"creditor_account", &payment.creditor_account, true},
      {"creditor_name", &payment.creditor_name, false},
      {"remittance_info", &payment.remittance_info, false},
      {"received_at", &payment.received_at, true},
  };
  for (const auto& field : fields) {
    const auto it = item.find(field.name);
    if (it != item.end() && it->is_string()) {
      *field.target = it->get<std::string>();
    } else if (field.required || (it != item.end() && !it->is_null())) {
      problem = std::string("payment field ") + field.name + " missing or not a string";
      return std::nullopt;
    }
    if (field.required && field.target->empty()) {
      problem = std::string("payment field ") + field.name + " is empty";
      return std::nullopt;
    }
  }
  const auto amount = item.find("amount_minor");
  if (amount == item.end() || !amount->is_number_integer() || amount->get<std::int64_t>() <= 0) {
    problem = "payment amount_minor missing or not a positive integer";
    return std::nullopt;
  }
  payment.amount_minor = amount->get<std::int64_t>();
  return payment;
}

}  // namespace

IncomingPage classify_incoming(int http_status, std::string_view body,
                               std::optional<std::string_view> retry_after) {
  IncomingPage page;
  if (http_status != 200) {
    auto common = classify_common(http_status, body, retry_after);
    page.failure = common ? std::move(*common) : unexpected_status(http_status, body);
    return page;
  }
  const auto parsed = parse_json(body);
  if (!parsed || !parsed->is_object()) {
    page.failure = unknown(UnknownCause::unparsable_body, http_status, "body is not a JSON object");
    return page;
  }
  if (parsed->contains("error")) {
    page.failure = unknown(UnknownCause::error_body_200, http_status, error_detail(body));
    return page;
  }
  const auto payments = parsed->find("payments");
  if (payments == parsed->end() || !payments->is_array()) {
    page.failure = unknown(UnknownCause::unparsable_body, http_status, "no payments array");
    return page;
  }
  for (const auto& item : *payments) {
    std::string problem;
    auto payment = parse_payment(item, problem);
    if (!payment) {
      page.payments.clear();
      page.failure = unknown(UnknownCause::unparsable_body, http_status, problem);
      return page;
    }
    page.payments.push_back(std::move(*payment));
  }
  page.next_cursor = string_field(*parsed, "next_cursor");
  if (!page.payments.empty() && !page.next_cursor) {
    page.payments.clear();
    page.failure =
        unknown(UnknownCause::unparsable_body, http_status, "payments without next_cursor");
    return page;
  }
  page.ok = true;
  page.failure.answer_class = AnswerClass::settled;
  page.failure.http_status = http_status;
  return page;
}

std::string encode_submit_body(const SubmitRequest& request) {
  const json body = {
      {"reference", request.reference},         {"amount_minor", request.amount_minor},
      {"currency", request.currency},           {"debtor_account", request.debtor_account},
      {"debtor_name", request.debtor_name},     {"creditor_account", request.creditor_account},
      {"creditor_name", request.creditor_name}, {"remittance_info", request.remittance_info},
  };
  // Names may carry any UTF-8; replace invalid sequences rather than throw.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace clearing::clearing_client
