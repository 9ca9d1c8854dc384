// EventStreams: the SSE streams the hub serves (docs/protocol.md 11.1, 11.5),
// a task's or a run's, up to --max-event-streams at once. Each holds a
// connection and, while it replays, reads storage: the bound keeps viewers
// from starving agents.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>

#include "core/web_server.hpp"
#include "hub/sse_stream.hpp"

namespace tether::hub {

class EventStreams {
 public:
  EventStreams(core::Loop& loop, core::SqlStore& store, EventLog& events, EventHub& viewers,
               size_t max_streams)
      : loop_(loop), store_(store), events_(events), viewers_(viewers), max_(max_streams) {}

  // Reads Last-Event-ID (or ?last_event_id=), ?follow= and ?output= from the
  // request and starts a stream of `subject`; answers 400 `invalid_field`
  // naming a bad one, 503 `too_many_streams` at the bound.
  void open(const std::shared_ptr<core::HttpExchange>& exchange, SseSubject subject);
  // Ends every stream (shutdown).
  void close_all();
  size_t size() const { return streams_.size(); }

 private:
  core::Loop& loop_;
  core::SqlStore& store_;
  EventLog& events_;
  EventHub& viewers_;
  size_t max_;
  std::unordered_set<std::shared_ptr<SseStream>> streams_;
};

}  // namespace tether::hub
