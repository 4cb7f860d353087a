#pragma once
// The story of a transfer (`trace`) and the HTTP routes that read the adapter's state:
//   GET /transfers/{id}   state and full history (the trace as JSON)
//   GET /parked           what was parked, and why: newest first, in pages of at most
//                         kParkedAnswerBytesMax bytes (?reason=&limit=&before_id=; parking.hpp)
//   GET /parked/{id}      one parked message with its raw value (?from_byte=)
// All read the database only; they are for support people and tools.

#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

#include "clearing/adapter/transfer_service.hpp"
#include "clearing/http/server.hpp"

namespace clearing::adapter {

// The trace as JSON: state, the core event that started it, every internal event with
// its cause, every clearing attempt with its answer class and latency, every external
// message with its seq, and what is still pending. nullopt-like error when unknown.
tl::expected<nlohmann::json, std::string> build_trace(eventstore::ConnectionPool& pool,
                                                      TransferService& transfers,
                                                      const std::string& transfer_id);

// The same, for a person: one line per step, in time order.
std::string render_trace(const nlohmann::json& trace);

void add_transfer_routes(http::HttpServer& server, eventstore::ConnectionPool& pool,
                         TransferService& transfers);

}  // namespace clearing::adapter
