// WebSocketKeepalive: the server's side of keeping WebSockets honest. A
// connection nothing was heard from (no message, no pong) for ping_after_ms
// gets a ping; one still silent at hangup_after_ms is dropped without a
// close handshake (a peer that vanished would never finish one).
//
// Why our own and not libwebsockets' retry_and_idle_policy: lws 4.1 re-arms
// a per-connection timer in one sorted list on every pong, an O(n) walk;
// with 9,900 agents that walk was 67 % of the hub's time (issue [6/8]).
// Here hearing from a peer is a store to WebSocketConnection::last_heard_ms,
// and the checks come from one TimingWheel ticking once a second, so each
// event is O(1) and each connection costs one check per interval.
//
// Spread: each connection's checks are offset by a random share (up to a
// quarter) of ping_after_ms, chosen when it is watched, so a fleet that
// reconnected in the same second is pinged over several seconds instead of
// in one burst.
#pragma once

#include <cstdint>
#include <memory>
#include <random>

#include "core/loop.hpp"
#include "core/timer.hpp"
#include "core/timing_wheel.hpp"
#include "core/web_socket.hpp"

namespace tether::core {

struct WebSocketKeepaliveOptions {
  uint64_t ping_after_ms = 15'000;
  uint64_t hangup_after_ms = 45'000;  // > ping_after_ms
};

class WebSocketKeepalive {
 public:
  WebSocketKeepalive(Loop& loop, WebSocketKeepaliveOptions options);
  WebSocketKeepalive(const WebSocketKeepalive&) = delete;
  WebSocketKeepalive& operator=(const WebSocketKeepalive&) = delete;

  // Watches `connection` until it closes (held weakly). O(1).
  void watch(const std::shared_ptr<WebSocketConnection>& connection);

  size_t watched() const { return wheel_.size(); }

 private:
  struct Watched {
    std::weak_ptr<WebSocketConnection> connection;
    uint64_t offset_ms;  // this connection's share of the spread
  };

  void tick();
  void check(Watched watched, uint64_t now_ms);

  Loop& loop_;
  WebSocketKeepaliveOptions options_;
  uint64_t tick_ms_;
  TimingWheel<Watched> wheel_;
  Timer timer_;
  std::minstd_rand random_;
};

}  // namespace tether::core
