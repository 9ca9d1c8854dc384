// ResultChannel: the agent's WebSocket to the hub (docs/protocol.md 4).
//
// A session: connect with the token, send agent.hello (built from the
// outbox, agent_hello.hpp), reconcile with hub.hello_ack (drop what the hub
// already has, forget discarded attempts), then let the FrameSender replay
// the outbox from its start and keep sending as frames are committed. Acks,
// errors, cancels and wakes come back on the same socket: acks and errors
// go to the FrameSender, cancels and wakes to the handlers. A session
// without an ack for 3 keepalives while frames wait ends. The next session
// starts after a backoff with jitter (0.5 s to 30 s).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agent/frame_sender.hpp"
#include "agent/hub_endpoint.hpp"
#include "agent/outbox.hpp"
#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/notification.hpp"
#include "core/timer.hpp"
#include "core/url.hpp"
#include "core/websocket_client.hpp"
#include "protocol/capabilities.hpp"

namespace tether::agent {

struct ChannelOptions {
  HubEndpoint hub;
  std::string agent;
  uint64_t send_window_bytes = 8ull << 20;
  uint64_t keepalive_s = 15;
  // This run of the agent process, in the hello (docs/protocol.md 4.1).
  std::string instance;
  // Where the token came from, for a refusal's log line.
  std::string token_source;
  // agent.conf `labels`, in the hello.
  protocol::Labels labels;
};

struct ChannelHandlers {
  std::function<void(const std::string& attempt_id, const std::string& reason)> cancel;
  std::function<void()> wake;
  std::function<void(const std::string& attempt_id)> discarded;
};

class ResultChannel {
 public:
  ResultChannel(core::Loop& loop, Outbox& outbox, ChannelOptions options, ChannelHandlers handlers);
  ~ResultChannel();

  // Connects, and reconnects, until `stop`; then closes with 1001.
  core::Co<void> run(core::CancellationToken stop);

  bool live() const { return live_; }
  // Sessions that reached hub.hello_ack; every one after the first is a reconnect.
  uint64_t sessions() const { return sessions_; }
  // For status and metrics.
  struct Counters {
    std::string since;       // UTC: when the channel last came up or went down
    std::string last_error;  // why the last connection attempt or session failed
    uint64_t connect_failures = 0;
    uint64_t frames_sent = 0;  // resends included
    uint64_t bytes_sent = 0;
    uint64_t batches_sent = 0;  // messages of several frames (docs/protocol.md 4.4)
    uint64_t acks_received = 0;
  };
  Counters counters() const {
    Counters counters = counters_;
    counters.frames_sent = sender_.frames_sent();
    counters.bytes_sent = sender_.bytes_sent();
    counters.batches_sent = sender_.batches_sent();
    return counters;
  }
  // When a final was first sent on this session, if it was (milliseconds,
  // loop time); the HTTP fallback waits 10 s for its ack.
  std::optional<uint64_t> final_sent_at(const std::string& message_id) const {
    return sender_.final_sent_at(message_id);
  }
  // Sends what is pending and closes the session with 1001.
  void close();
  // What the hub listed in its last hello_ack (all, before any session).
  const protocol::Capabilities& agreed() const { return agreed_; }

 private:
  core::Co<void> session(std::shared_ptr<core::WebSocketConnection> socket,
                         core::CancellationToken stop);
  // Sends agent.hello and waits (30 s at most) for hub.hello_ack; false if
  // the session cannot begin (outbox locked, no ack, socket closed).
  core::Co<bool> handshake(std::shared_ptr<core::WebSocketConnection> socket,
                           core::CancellationToken stop);
  void begin_session();
  // Frames from the hub until the socket closes (or `stop`: then a brief
  // close handshake).
  core::Co<void> receive_frames(std::shared_ptr<core::WebSocketConnection> socket,
                                core::CancellationToken stop);
  // Returns how the socket closed ("1001: agent shutting down").
  std::string end_session(const core::WebSocketConnection& socket);
  void check_acks();
  core::Co<void> forward_outbox_changes(core::CancellationToken stop);
  void handle(protocol::Frame&& frame);
  void apply_hello_ack(const protocol::HubHelloAck& ack);
  void on_ack(const protocol::Ack& ack);
  void on_error(const protocol::ErrorFrame& error);
  // A frame from the hub that did not decode: false when the session must
  // end (another protocol version).
  bool on_unreadable(const std::string& text, const Error& error);
  void send_error(const std::string& code, const std::string& message,
                  const std::string& related_message_id);
  uint64_t ack_timeout_ms() const { return 3 * options_.keepalive_s * 1000; }

  core::Loop& loop_;
  Outbox& outbox_;
  ChannelOptions options_;
  ChannelHandlers handlers_;
  std::unique_ptr<core::WebSocketClient> client_;
  std::shared_ptr<core::WebSocketConnection> socket_;
  bool live_ = false;
  Counters counters_;
  uint64_t sessions_ = 0;
  FrameSender sender_;
  core::Timer ack_watchdog_;
  uint64_t next_message_ = 1;
  protocol::Capabilities agreed_ = protocol::Capabilities::all();
  uint64_t last_ack_ms_ = 0;
  int64_t last_auth_log_ms_ = -1'000'000;
};

}  // namespace tether::agent
