#include "clearing/adapter/parking.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string_view>

#include "clearing/base/assert.hpp"
#include "clearing/base/text.hpp"
#include "clearing/privacy/personal_fields.hpp"

namespace clearing::adapter {
namespace {

using Json = nlohmann::ordered_json;

// Text columns are cut to their park() limits in characters when read too: rows parked
// before those limits existed (migration adapter/0004) are unbounded text.
std::string bounded_columns() {
  const auto left = [](const char* column, std::size_t chars) {
    return "left(" + std::string(column) + ", " + std::to_string(chars) + ")";
  };
  return "id, " + left("source", kParkedSourceBytesMax) + ", " +
         left("reason_code", kParkedReasonCodeBytesMax) + ", " +
         left("reason", kParkedReasonBytesMax) + ", " + left("topic", kParkedTopicBytesMax) +
         ", kafka_partition, kafka_offset, " +
         left("correlation_id", kParkedCorrelationIdBytesMax) +
         ", to_char(parked_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
         "coalesce(raw_length, octet_length(raw)), raw_sealed, state, payment_id";
}
enum Column {
  kId,
  kSource,
  kReasonCode,
  kReason,
  kTopic,
  kPartition,
  kOffset,
  kCorrelationId,
  kParkedAt,
  kRawBytes,
  kSealed,
  kState,
  kPaymentId,
  kRaw
};

// Newest first, from a cursor; the raw cut in SQL, so a listing never reads a large
// value whole. $1 reason_code or null, $2 before_id or null, $3 rows, $4 preview bytes.
const std::string& page_sql() {
  static const std::string sql =
      "select " + bounded_columns() +
      ", case when raw_sealed then raw_preview else substring(raw from 1 for $4) end"
      " from parked_messages"
      " where ($1::text is null or reason_code = $1) and ($2::bigint is null or id < $2)"
      " order by id desc limit $3";
  return sql;
}

// $1 id, $2 the first byte (1-based, SQL's), $3 bytes.
const std::string& message_sql() {
  static const std::string sql =
      "select " + bounded_columns() +
      ", case when raw_sealed then raw else substring(raw from $2 for $3) end"
      " from parked_messages where id = $1";
  return sql;
}

// Rows read per statement while a page fills: the rows held in memory at once.
constexpr int kPageFetchRows = 50;
// The page's JSON around its rows: {"parked":[...],"next":"/parked?...","next_before_id":N}.
constexpr std::size_t kPageEnvelopeBytesMax = 1024;
// The most a row can take in JSON: its text columns (every byte a control character
// escaped as \u00XX: 6 bytes), and its raw preview either as text (6 bytes per byte at
// worst) or as base64 plus the escaped view (\xHH, a backslash doubled in JSON: 5 bytes
// per byte). A page always has room for one.
constexpr std::size_t kRawEscapedBytesMax = 4 * kParkedRawPreviewBytes;
constexpr std::size_t kRowBytesWorst =
    6 * (kParkedSourceBytesMax + kParkedReasonCodeBytesMax + kParkedReasonBytesMax +
         kParkedTopicBytesMax + kParkedCorrelationIdBytesMax) +
    std::max(6 * kParkedRawPreviewBytes,
             (kParkedRawPreviewBytes + 2) / 3 * 4 + 5 * kParkedRawPreviewBytes) +
    1024;
static_assert(kRowBytesWorst + kPageEnvelopeBytesMax < kParkedAnswerBytesMax);

std::string base64(std::string_view bytes) {
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t at = 0; at < bytes.size(); at += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - at);
    std::uint32_t group = 0;
    for (std::size_t i = 0; i < 3; ++i)
      group = group << 8 | (i < n ? static_cast<unsigned char>(bytes[at + i]) : 0u);
    for (std::size_t i = 0; i < 4; ++i)
      out += i <= n ? kAlphabet[group >> (18 - 6 * i) & 0x3F] : '=';
  }
  return out;
}

// Shown as a JSON string as it is: well-formed UTF-8 without control characters but tab,
// CR and LF (JSON would escape those as \u00XX, six bytes each, and NUL reads badly).
bool is_text(std::string_view bytes) {
  const bool controls = std::any_of(bytes.begin(), bytes.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7F;
  });
  return !controls && base::is_valid_utf8(bytes);
}

// The bytes at the end of `bytes` that start a character the cut after them left
// incomplete (0..3): left out of a text part, and shown by the next part instead.
std::size_t cut_character_bytes(std::string_view bytes) {
  std::size_t continuation = 0;
  while (continuation < 3 && continuation < bytes.size() &&
         (static_cast<unsigned char>(bytes[bytes.size() - 1 - continuation]) & 0xC0) == 0x80)
    ++continuation;
  if (continuation == bytes.size()) return 0;
  const auto lead = static_cast<unsigned char>(bytes[bytes.size() - 1 - continuation]);
  const std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return length > continuation + 1 ? continuation + 1 : 0;
}

struct RawPart {
  std::string bytes;
  bool text = false;
};

// The part of a raw value to show; `more_follows` when the value goes on after it.
RawPart shown_part(std::string bytes, bool more_follows) {
  if (more_follows) {
    const std::size_t keep = bytes.size() - cut_character_bytes(bytes);
    if (keep > 0 && is_text(std::string_view(bytes).substr(0, keep))) {
      bytes.resize(keep);
      return {std::move(bytes), true};
    }
  }
  const bool text = is_text(bytes);
  return {std::move(bytes), text};
}

Json optional_text(const pqxx::field& f) {
  return f.is_null() ? Json(nullptr) : Json(f.as<std::string>());
}

struct RowJson {
  Json json;
  std::int64_t raw_end = 0;  // the byte after the last one shown
  std::int64_t raw_bytes = 0;
};

// The raw bytes a row shows from byte `from` on, at most `bytes` of them, and the raw's
// length. The row's kRaw column holds those bytes, or, sealed, the whole raw (a message
// read) or its preview (a listing).
struct RawSlice {
  std::string bytes;
  std::int64_t raw_bytes = 0;
};
eventstore::StoreResult<RawSlice> raw_slice(eventstore::Transaction& tx, const pqxx::row& row,
                                            std::int64_t from, std::size_t bytes,
                                            const eventstore::DataProtector* protector) {
  auto stored = pqxx::binarystring(row[kRaw]).str();
  const auto raw_bytes = row[kRawBytes].as<std::int64_t>();
  if (!row[kSealed].as<bool>()) return RawSlice{std::move(stored), raw_bytes};
  if (protector == nullptr)
    return tl::unexpected(eventstore::StoreError{
        eventstore::StoreErrc::internal, "a sealed parked message, and no protector to open it"});
  auto opened = protector->open_bytes(tx, stored);
  if (!opened) return tl::unexpected(opened.error());
  // An erased subject's raw is the placeholder, whole: its length is the placeholder's.
  const auto length =
      *opened == eventstore::kErased ? static_cast<std::int64_t>(opened->size()) : raw_bytes;
  if (from >= static_cast<std::int64_t>(opened->size())) return RawSlice{{}, length};
  return RawSlice{opened->substr(static_cast<std::size_t>(from), bytes), length};
}

// A row as JSON, showing `slice` of its raw from byte `from` on.
RowJson row_json(const pqxx::row& row, std::int64_t from, RawSlice raw) {
  const auto raw_bytes = raw.raw_bytes;
  const auto& slice = raw.bytes;
  const auto part = shown_part(slice, from + static_cast<std::int64_t>(slice.size()) < raw_bytes);
  const std::int64_t raw_end = from + static_cast<std::int64_t>(part.bytes.size());
  Json j{{"id", row[kId].as<std::int64_t>()},
         {"source", row[kSource].as<std::string>()},
         {"reason_code", row[kReasonCode].as<std::string>()},
         {"reason", row[kReason].as<std::string>()},
         {"topic", optional_text(row[kTopic])},
         {"partition",
          row[kPartition].is_null() ? Json(nullptr) : Json(row[kPartition].as<std::int32_t>())},
         {"offset", row[kOffset].is_null() ? Json(nullptr) : Json(row[kOffset].as<std::int64_t>())},
         {"correlation_id", optional_text(row[kCorrelationId])},
         {"parked_at", row[kParkedAt].as<std::string>()},
         {"raw_bytes", raw_bytes},
         {"raw_encoding", part.text ? "text" : "base64"},
         {"raw", part.text ? part.bytes : base64(part.bytes)},
         {"raw_truncated", raw_end < raw_bytes},
         {"state", row[kState].as<std::string>()},
         {"kind", row[kPaymentId].is_null() ? "message" : "incoming_payment"}};
  if (!row[kPaymentId].is_null()) j["payment_id"] = row[kPaymentId].as<std::string>();
  if (!part.text)
    j["raw_escaped"] = base::escape_text(
        std::string_view(part.bytes).substr(0, kParkedRawPreviewBytes), kRawEscapedBytesMax);
  return {std::move(j), raw_end, raw_bytes};
}

// Never throws on text a database in another encoding could hand back.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string percent_encoded(std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    const bool unreserved = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                            (b >= '0' && b <= '9') || b == '-' || b == '_' || b == '.' || b == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  return out;
}

std::string page_body(const std::string& rows, const ParkedListing& listing,
                      std::optional<std::int64_t> next_before) {
  Json next = nullptr;
  if (next_before) {
    std::string path = "/parked?before_id=" + std::to_string(*next_before) +
                       "&limit=" + std::to_string(listing.limit);
    if (listing.reason_code) path += "&reason=" + percent_encoded(*listing.reason_code);
    next = path;
  }
  std::string body = "{\"parked\":[" + rows + "],\"next\":" + dump(next) + ",\"next_before_id\":" +
                     (next_before ? std::to_string(*next_before) : "null") + "}";
  CLEARING_ASSERT(body.size() <= kParkedAnswerBytesMax);
  return body;
}

}  // namespace

eventstore::StoreResult<void> park(eventstore::Transaction& tx, const ParkedMessage& m,
                                   const eventstore::DataProtector* protector) {
  // Text parameters travel as C strings (cut at the first NUL) and the text columns
  // refuse invalid UTF-8: each one escaped and bounded, so no content can fail the insert.
  const auto storable = [](const std::optional<std::string>& text, std::size_t bytes_max) {
    return text ? std::optional<std::string>(base::escape_text(*text, bytes_max)) : std::nullopt;
  };
  std::string reason;
  std::string_view raw = m.raw;
  if (raw.size() > kParkedRawBytesMax) {
    raw = raw.substr(0, kParkedRawBytesMax);
    const auto cut = " (raw cut to its first " + std::to_string(kParkedRawBytesMax) + " of " +
                     std::to_string(m.raw.size()) + " bytes)";
    reason = base::escape_text(m.reason, kParkedReasonBytesMax - cut.size()) + cut;
  } else {
    reason = base::escape_text(m.reason, kParkedReasonBytesMax);
  }
  std::string sealed, preview;
  if (protector != nullptr) {
    // Whose: the subject its JSON names, when it is JSON (personal_fields.hpp's rule).
    std::string subject;
    if (auto json = nlohmann::json::parse(raw, nullptr, false); !json.is_discarded())
      if (auto found = privacy::find_subject(json)) subject = *found;
    auto whole = protector->seal_bytes(tx, raw, subject);
    if (!whole) return tl::unexpected(whole.error());
    auto first = protector->seal_bytes(tx, raw.substr(0, kParkedRawPreviewBytes), subject);
    if (!first) return tl::unexpected(first.error());
    sealed = std::move(*whole);
    preview = std::move(*first);
  }
  const bool seal = protector != nullptr;
  // A binarystring parameter is sent in binary format with its length: every byte kept.
  tx.exec_params(
      "insert into parked_messages (source, reason_code, reason, raw, topic, kafka_partition,"
      " kafka_offset, correlation_id, raw_sealed, raw_length, raw_preview, payment_id,"
      " clearing_reference)"
      " values ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
      " case when $9::boolean then $10::bigint end, case when $9::boolean then $11::bytea end,"
      " $12, $13) on conflict (payment_id) where payment_id is not null do nothing",
      base::escape_text(m.source, kParkedSourceBytesMax),
      base::escape_text(m.reason_code, kParkedReasonCodeBytesMax), reason,
      seal ? pqxx::binarystring(sealed.data(), sealed.size())
           : pqxx::binarystring(raw.data(), raw.size()),
      storable(m.topic, kParkedTopicBytesMax), m.partition, m.offset,
      storable(m.correlation_id, kParkedCorrelationIdBytesMax), seal,
      static_cast<std::int64_t>(raw.size()), pqxx::binarystring(preview.data(), preview.size()),
      m.payment_id, m.clearing_reference);
  return {};
}

eventstore::StoreResult<std::string> parked_page(eventstore::Transaction& tx,
                                                 const ParkedListing& listing,
                                                 const eventstore::DataProtector* protector) {
  CLEARING_ASSERT(listing.limit >= 1 && listing.limit <= kParkedPageMax);
  std::string rows;
  int count = 0;
  std::optional<std::int64_t> cursor = listing.before_id;
  // Each round adds at least one row or ends the page: at most limit + 1 rounds.
  for (int round = 0; round <= listing.limit; ++round) {
    // One row more than the page needs tells whether there is a next page.
    const int want = std::min(kPageFetchRows, listing.limit - count + 1);
    const auto result = tx.exec_params(page_sql(), listing.reason_code, cursor, want,
                                       static_cast<int>(kParkedRawPreviewBytes));
    for (const auto& row : result) {
      if (count == listing.limit) return page_body(rows, listing, cursor);
      auto raw = raw_slice(tx, row, 0, kParkedRawPreviewBytes, protector);
      if (!raw) return tl::unexpected(raw.error());
      const auto text = dump(row_json(row, 0, std::move(*raw)).json);
      const std::size_t separator = count > 0 ? 1 : 0;
      if (count > 0 &&
          rows.size() + separator + text.size() + kPageEnvelopeBytesMax > kParkedAnswerBytesMax)
        return page_body(rows, listing, cursor);
      if (separator) rows += ',';
      rows += text;
      ++count;
      cursor = row[kId].as<std::int64_t>();
    }
    if (static_cast<int>(result.size()) < want) return page_body(rows, listing, std::nullopt);
  }
  CLEARING_ASSERT(false && "a page ends within limit + 1 rounds");
  return {};
}

tl::expected<std::string, ParkedReadError> parked_message(
    eventstore::Transaction& tx, std::int64_t id, std::int64_t from_byte,
    const eventstore::DataProtector* protector) {
  // bytea holds at most 1 GB: a larger start is past the end of any value, and keeps the
  // SQL integers in range.
  constexpr std::int64_t kByteaBytesMax = std::int64_t{1} << 30;
  CLEARING_ASSERT(from_byte >= 0);
  const auto result =
      tx.exec_params(message_sql(), id, static_cast<int>(std::min(from_byte, kByteaBytesMax) + 1),
                     static_cast<int>(kParkedRawChunkBytes));
  if (result.empty()) return tl::unexpected(ParkedReadError::unknown_id);
  const auto& row = result[0];
  auto raw = raw_slice(tx, row, from_byte, kParkedRawChunkBytes, protector);
  // The protector's failure is the transaction's (ConnectionPool::transact returns it).
  if (!raw) throw eventstore::StoreFailure(raw.error());
  if (from_byte > raw->raw_bytes) return tl::unexpected(ParkedReadError::beyond_end);
  auto shown = row_json(row, from_byte, std::move(*raw));
  CLEARING_ASSERT(shown.raw_end > from_byte ||
                  shown.raw_end == shown.raw_bytes);  // a next part moves on
  shown.json["raw_from_byte"] = from_byte;
  shown.json["next"] =
      shown.raw_end < shown.raw_bytes
          ? Json("/parked/" + std::to_string(id) + "?from_byte=" + std::to_string(shown.raw_end))
          : Json(nullptr);
  return dump(shown.json);
}

tl::expected<ParkedRaw, ParkedReadError> parked_for_action(
    eventstore::Transaction& tx, std::int64_t id, const eventstore::DataProtector* protector) {
  static const std::string sql =
      "select " + bounded_columns() + ", raw from parked_messages where id = $1 for update";
  const auto result = tx.exec_params(sql, id);
  if (result.empty()) return tl::unexpected(ParkedReadError::unknown_id);
  const auto& row = result[0];
  auto raw = raw_slice(tx, row, 0, std::string::npos, protector);
  // The protector's failure is the transaction's (ConnectionPool::transact returns it).
  if (!raw) throw eventstore::StoreFailure(raw.error());
  ParkedRaw out;
  out.id = id;
  out.source = row[kSource].as<std::string>();
  out.reason_code = row[kReasonCode].as<std::string>();
  if (!row[kTopic].is_null()) out.topic = row[kTopic].as<std::string>();
  if (!row[kPartition].is_null()) out.partition = row[kPartition].as<std::int32_t>();
  if (!row[kCorrelationId].is_null()) out.correlation_id = row[kCorrelationId].as<std::string>();
  if (!row[kPaymentId].is_null()) out.payment_id = row[kPaymentId].as<std::string>();
  out.state = row[kState].as<std::string>();
  out.raw = std::move(raw->bytes);
  return out;
}

std::optional<ParkedState> lock_parked_state(eventstore::Transaction& tx, std::int64_t id) {
  const auto result = tx.exec_params(
      "select state, correlation_id, payment_id, clearing_reference from parked_messages"
      " where id = $1 for update",
      id);
  if (result.empty()) return std::nullopt;
  const auto optional = [](const pqxx::field& f) {
    return f.is_null() ? std::nullopt : std::optional<std::string>(f.as<std::string>());
  };
  ParkedState out{result[0][0].as<std::string>(), optional(result[0][1]), optional(result[0][2]),
                  optional(result[0][3])};
  if (out.payment_id && !out.clearing_reference)
    out.clearing_reference = parked_event_reference(tx, *out.payment_id);
  return out;
}

std::optional<std::string> parked_event_reference(eventstore::Transaction& tx,
                                                  const std::string& payment_id) {
  const auto rows = tx.exec_params(
      "select data->>'clearing_reference' from events where type = 'IncomingPaymentParked'"
      // events_alarms' predicate, so that its index serves this
      " and type in ('ContradictingClearingAnswerReceived', 'ConflictingIncomingPaymentReceived',"
      " 'IncomingPaymentParked') and data->>'payment_id' = $1 limit 1",
      payment_id);
  if (rows.empty() || rows[0][0].is_null() || rows[0][0].as<std::string>().empty())
    return std::nullopt;
  return rows[0][0].as<std::string>();
}

void set_parked_state(eventstore::Transaction& tx, std::int64_t id, std::string_view state) {
  CLEARING_ASSERT(state == kParkedClosed || state == kParkedReplayed);
  tx.exec_params("update parked_messages set state = $2 where id = $1", id, std::string(state));
}

bool set_parked_payment_state(eventstore::Transaction& tx, const ParkedPaymentState& payment) {
  CLEARING_ASSERT(payment.state == kParkedBooked || payment.state == kParkedReturned);
  CLEARING_ASSERT(!payment.payment_id.empty() && !payment.clearing_reference.empty());
  const auto written = tx.exec_params(
      "update parked_messages set state = $2, clearing_reference = $3"
      " where payment_id = $1 and state = 'open'",
      payment.payment_id, std::string(payment.state), payment.clearing_reference);
  CLEARING_ASSERT(written.affected_rows() <= 1);  // parked_messages_payment: one row a payment
  return written.affected_rows() == 1;
}

}  // namespace clearing::adapter
