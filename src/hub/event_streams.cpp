#include "hub/event_streams.hpp"

#include "hub/http_replies.hpp"
#include "hub/poll_waiters.hpp"
#include "protocol/error_codes.hpp"

namespace tether::hub {

void EventStreams::open(const std::shared_ptr<core::HttpExchange>& exchange, SseSubject subject) {
  const auto& request = exchange->request();
  uint64_t after = 0;
  const std::string last =
      !request.last_event_id.empty() ? request.last_event_id : request.query_value("last_event_id");
  if (!last.empty() && !parse_uint(last, after)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "Last-Event-ID: expected an event id, an integer from 0 to 2^63-1");
    return;
  }
  const bool follow = request.query_value("follow") != "0";
  const std::string output = request.query_value("output");
  if (!output.empty() && output != "0" && output != "1") {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, "output: expected 0 or 1");
    return;
  }
  // Each stream holds a connection and, while it replays, reads storage: a
  // bound keeps viewers from starving agents.
  if (streams_.size() >= max_) {
    // Viewers that left while their stream was idle still hold a place
    // until the next heartbeat would find them: look before refusing.
    for (auto it = streams_.begin(); it != streams_.end();) {
      if ((*it)->viewer_gone()) {
        (*it)->close();
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (streams_.size() >= max_) {
    exchange->respond(unavailable_response(
        503, "too_many_streams",
        "the hub already serves " + std::to_string(streams_.size()) +
            " event streams (--max-event-streams " + std::to_string(max_) + ")",
        5));
    return;
  }
  auto stream = std::make_shared<SseStream>(loop_, store_, events_, viewers_, exchange,
                                            std::move(subject), after, follow, output != "0");
  streams_.insert(stream);
  std::weak_ptr<SseStream> weak = stream;
  stream->set_on_finished([this, weak] {
    if (auto finished = weak.lock()) streams_.erase(finished);
  });
  stream->start();
}

void EventStreams::close_all() {
  auto streams = streams_;
  for (const auto& stream : streams)
    stream->close();
}

}  // namespace tether::hub
