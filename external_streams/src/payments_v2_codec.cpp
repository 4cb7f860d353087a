#include "clearing/external_streams/payments_v2_codec.hpp"

#include "clearing/base/text.hpp"

namespace clearing::external_streams::payments::v2 {
namespace {

using Json = nlohmann::json;

template <class T>
Json or_null(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

// Reads the fields of one object; the first problem found is kept and named
// "TransferStatusChanged.<path> <why>".
class Reader {
 public:
  explicit Reader(const Json& object) : object_(object) {}

  const Json* field(const char* name, const std::string& path = {}) {
    const auto it = object_.find(name);
    if (it == object_.end()) return fail(path + name, "is missing");
    return &*it;
  }
  std::optional<std::string> text(const char* name, bool nullable, const std::string& path = {}) {
    const Json* v = field(name, path);
    if (v == nullptr || (nullable && v->is_null())) return std::nullopt;
    if (!v->is_string()) return fail(path + name, "is not a string"), std::nullopt;
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > kTextFieldBytesMax || !base::is_printable_utf8(s))
      return fail(path + name, "is not printable text of at most 1024 bytes"), std::nullopt;
    return s;
  }
  std::optional<std::int64_t> integer(const char* name, const std::string& path = {}) {
    const Json* v = field(name, path);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<std::uint64_t>() > INT64_MAX))
      return fail(path + name, "is not an integer"), std::nullopt;
    return v->get<std::int64_t>();
  }
  const Json* object(const char* name) {
    const Json* v = field(name);
    if (v == nullptr || v->is_null()) return nullptr;
    if (!v->is_object()) return fail(name, "is not an object or null");
    return v;
  }
  const Json* fail(const std::string& path, const std::string& why) {
    if (!error_)
      error_ = MessageError{MessageErrc::invalid_data,
                            std::string(TransferStatusChanged::kType) + "." + path + " " + why};
    return nullptr;
  }
  // A problem found by another reader (a nested object's, the amount's), kept if first.
  void keep(const MessageError& error) {
    if (!error_) error_ = error;
  }
  const std::optional<MessageError>& error() const { return error_; }

 private:
  const Json& object_;
  std::optional<MessageError> error_;
};

}  // namespace

Json encode(const TransferStatusChanged& e) {
  Json reason = nullptr;
  if (e.reason) reason = {{"code", e.reason->code}, {"text", e.reason->text}};
  Json investigation = nullptr;
  if (e.investigation)
    investigation = {{"since", e.investigation->since},
                     {"attempts", e.investigation->attempts},
                     {"last_error", e.investigation->last_error}};
  return {{"transfer_id", e.transfer_id},
          {"status", std::string(base::name_in(kTransferStatusCodes, e.status).value_or("?"))},
          {"amount", e.amount ? encode_amount(*e.amount) : Json(nullptr)},
          {"clearing_reference", or_null(e.clearing_reference)},
          {"settlement_date", or_null(e.settlement_date)},
          {"reason", reason},
          {"investigation", investigation},
          {"resolved_manually", e.resolved_manually}};
}

tl::expected<TransferStatusChanged, MessageError> decode_transfer_status_changed(const Json& data) {
  if (!data.is_object())
    return tl::unexpected(
        MessageError{MessageErrc::invalid_data, "TransferStatusChanged data is not an object"});
  Reader read(data);
  TransferStatusChanged out;
  out.transfer_id = read.text("transfer_id", false).value_or("");
  if (!read.error() && !is_transfer_id(out.transfer_id))
    read.fail("transfer_id", "is not a transfer id");
  if (const auto status = read.text("status", false)) {
    if (const auto known = base::value_in(kTransferStatusCodes, *status))
      out.status = *known;
    else
      read.fail("status", "is not PDNG, ACSC or RJCT");
  }
  if (const Json* amount = read.object("amount")) {
    auto decoded = decode_amount(*amount, "TransferStatusChanged.", "amount");
    if (decoded)
      out.amount = std::move(*decoded);
    else
      read.keep(decoded.error());
  }
  out.clearing_reference = read.text("clearing_reference", true);
  out.settlement_date = read.text("settlement_date", true);
  if (const Json* reason = read.object("reason")) {
    Reader inner(*reason);
    out.reason = StatusReason{inner.text("code", false, "reason.").value_or(""),
                              inner.text("text", false, "reason.").value_or("")};
    if (inner.error()) read.keep(*inner.error());
  }
  if (const Json* investigation = read.object("investigation")) {
    Reader inner(*investigation);
    out.investigation =
        Investigation{inner.text("since", false, "investigation.").value_or(""),
                      inner.integer("attempts", "investigation.").value_or(0),
                      inner.text("last_error", false, "investigation.").value_or("")};
    if (inner.error()) read.keep(*inner.error());
  }
  if (const Json* manual = read.field("resolved_manually"); manual && !manual->is_boolean())
    read.fail("resolved_manually", "is not true or false");
  else if (manual)
    out.resolved_manually = manual->get<bool>();
  if (read.error()) return tl::unexpected(*read.error());
  if (out.status == TransferStatus::rejected && !out.reason)
    return tl::unexpected(
        MessageError{MessageErrc::invalid_data, "TransferStatusChanged.reason is null for RJCT"});
  return out;
}

TransferOutcome outcome_of(const TransferStatusChanged& e) {
  TransferOutcome out;
  out.transfer_id = e.transfer_id;
  out.clearing_reference = e.clearing_reference;
  switch (e.status) {
    case TransferStatus::pending:
      out.type = e.investigation ? TransferUnderInvestigation::kType : TransferPending::kType;
      break;
    case TransferStatus::settled:
      out.type = TransferSucceeded::kType;
      break;
    case TransferStatus::rejected:
      out.type = TransferRejected::kType;
      if (e.reason && !e.reason->code.empty()) out.reason_code = e.reason->code;
      break;
  }
  return out;
}

}  // namespace clearing::external_streams::payments::v2
