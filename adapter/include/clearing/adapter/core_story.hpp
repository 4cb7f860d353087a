#pragma once
// Both sides in one trace (issue 22, item 3): the core's story of a transfer (GET
// <core>/transfers/{id}/story, docs/core-story.md; core-sim serves it) fetched and merged into
// the adapter's trace (transfer_api.hpp, build_trace), so that `clearing-adapter trace` shows
// FundsReserved -> TransferRequested -> ... -> ReservationCompleted as one timeline.
//
// The merge is pure JSON: the core's events join the timeline as steps of kind "core", every
// step is marked with its side ("core" or "adapter"), and the timeline is ordered by time
// (each side's own clock, UTC to the millisecond; within one instant the adapter's steps
// first: they were already in order). The links are the external event ids, which both sides
// keep: the core's TransferRequested is the adapter's core_event (its event_id), and the
// core's event that applied an outcome names the adapter's published message as its
// causation_id. When the core's side cannot be had, the trace says why in one line and still
// tells the adapter's side.
//
// Thread safety: free functions; fetch_core_story blocks on one HTTP exchange (its deadline
// is the options' timeout_ms).

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

#include "clearing/http/tls.hpp"

namespace clearing::adapter {

inline constexpr std::size_t kCoreStoryBytesMax = 1 << 20;  // a longer answer is refused
inline constexpr std::size_t kCoreStoryEventsMax = 1000;    // events merged, at most

struct CoreStoryClientOptions {
  std::string base_url;      // http(s)://host[:port] of the core's story API
  std::string bearer_token;  // the adapter's credential toward the core ("" for none)
  http::TlsClientOptions tls;
  int timeout_ms = 5'000;
  // Where the operator sets the URL and the token, named in the messages that ask for a fix.
  std::string url_setting = "the core's story URL";
  std::string token_setting = "the core's token";
};

// The core's story of `transfer_id` (an object with an "events" array of objects, each with
// string "at" and "type"), or why it is missing, in one line that never carries the token:
// no answer (connection, deadline, TLS), 401/403, 404 (the core does not know the transfer,
// or the URL serves no story), another status, or an answer that is not a story.
tl::expected<nlohmann::json, std::string> fetch_core_story(const CoreStoryClientOptions& options,
                                                           const std::string& transfer_id);

// Pure: the trace gains "core_story" (the story without its events) and the story's events in
// its "timeline" (see above), at most kCoreStoryEventsMax of them.
void merge_core_story(nlohmann::json& trace, const nlohmann::json& story);

// Pure: the trace gains "core_story": {"missing": why}.
void mark_core_story_missing(nlohmann::json& trace, const std::string& why);

// For render_trace: "" for a trace without "core_story"; else the line under the header
// ("  core:        succeeded ..." or "  core:        the core's side is missing: why").
std::string core_story_header(const nlohmann::json& trace);
// For render_trace: the column that marks a step's side ("core     " or "adapter  ") in a
// merged trace; "" otherwise.
std::string side_column(const nlohmann::json& trace, const nlohmann::json& step);
// For render_trace: a core step, after its time and side (type, what happened, its links).
// Text from the core is escaped (no control characters reach the terminal).
std::string describe_core_step(const nlohmann::json& trace, const nlohmann::json& step);

}  // namespace clearing::adapter
