// ResumingEventStream: one of the hub's Server-Sent Events streams (a
// task's or a run's, docs/protocol.md 11.1) followed across dropped
// connections. After a network error, or a stream that closed before the
// caller was done, it reconnects with Last-Event-ID set to the last event
// it passed on, so no event is seen twice or skipped; an event cut off by
// the drop is discarded, and comes again whole.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "cli/hub_client.hpp"
#include "cli/sse_parser.hpp"
#include "core/result.hpp"

namespace tether::cli {

class ResumingEventStream {
 public:
  using EventHandler = std::function<Result<void>(const SseEvent&)>;

  // `target`: the stream's path and query ("/api/v1/runs/r-1/events?output=0").
  // `follow` false: a bounded replay (?follow=0), not reopened once it ends.
  ResumingEventStream(HubClient& client, std::string target, bool follow, EventHandler on_event);

  // Passes every event to the handler until `done()` (asked after each
  // piece of the stream) is true, `interrupted` is set (and `control`
  // stopped), or a bounded replay ends. Reconnects after network errors
  // with backoff (250 ms doubling to 5 s, back to 250 ms once events come
  // again). Errors: the hub's refusal (4xx, 5xx: its message), a malformed
  // stream (code "sse_invalid"), or the handler's own error.
  Result<void> run(const std::atomic<bool>& interrupted, core::HttpCallControl& control,
                   const std::function<bool()>& done);

  // The id of the last event passed on ("" before any).
  const std::string& last_event_id() const { return parser_.last_event_id(); }

 private:
  HubClient& client_;
  std::string target_;
  bool follow_;
  EventHandler on_event_;
  std::optional<Error> failure_;
  SseParser parser_;
  bool received_ = false;  // an event came since the last connection began
};

}  // namespace tether::cli
