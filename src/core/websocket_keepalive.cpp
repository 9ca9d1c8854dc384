#include "core/websocket_keepalive.hpp"

#include <algorithm>

namespace tether::core {

namespace {

// A check may come up to a tick late: a tick of at most 1 s, or an eighth of
// the ping interval when that is shorter (tests use ~200 ms).
uint64_t tick_ms_for(const WebSocketKeepaliveOptions& options) {
  return std::clamp<uint64_t>(options.ping_after_ms / 8, 10, 1'000);
}

// Enough slots that every deadline falls within one revolution.
size_t slots_for(const WebSocketKeepaliveOptions& options) {
  return static_cast<size_t>(options.hangup_after_ms * 2 / tick_ms_for(options) + 2);
}

}  // namespace

WebSocketKeepalive::WebSocketKeepalive(Loop& loop, WebSocketKeepaliveOptions options)
    : loop_(loop),
      options_(options),
      tick_ms_(tick_ms_for(options)),
      wheel_(tick_ms_, slots_for(options), loop.now_ms()),
      timer_(loop),
      random_(std::random_device{}()) {}

void WebSocketKeepalive::watch(const std::shared_ptr<WebSocketConnection>& connection) {
  std::uniform_int_distribution<uint64_t> share(0, options_.ping_after_ms / 4);
  const uint64_t offset_ms = share(random_);
  wheel_.add(connection->last_heard_ms() + options_.ping_after_ms + offset_ms,
             Watched{connection, offset_ms});
  if (!timer_.active()) timer_.start(tick_ms_, [this] { tick(); });
}

void WebSocketKeepalive::tick() {
  const uint64_t now_ms = loop_.now_ms();
  wheel_.advance(now_ms, [this, now_ms](Watched watched) { check(std::move(watched), now_ms); });
  // An idle server with no WebSockets does not wake up.
  if (!wheel_.empty()) timer_.start(tick_ms_, [this] { tick(); });
}

void WebSocketKeepalive::check(Watched watched, uint64_t now_ms) {
  std::shared_ptr<WebSocketConnection> connection = watched.connection.lock();
  if (!connection || !connection->is_open()) return;  // closed: forgotten
  const uint64_t heard_ms = connection->last_heard_ms();
  const uint64_t silent_ms = now_ms > heard_ms ? now_ms - heard_ms : 0;
  if (silent_ms >= options_.hangup_after_ms) {
    connection->hang_up("nothing heard for " + std::to_string(silent_ms / 1000) +
                        " s, pings unanswered");
    return;
  }
  uint64_t next_ms = heard_ms + options_.ping_after_ms + watched.offset_ms;
  if (silent_ms >= options_.ping_after_ms) {
    connection->ping();
    next_ms = heard_ms + options_.hangup_after_ms;
  }
  wheel_.add(std::max(next_ms, now_ms + 1), std::move(watched));
}

}  // namespace tether::core
