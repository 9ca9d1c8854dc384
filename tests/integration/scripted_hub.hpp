// ScriptedHub: a hub the test plays by hand, for driving the real
// tether-agent into situations a well-behaved tether-hub never creates: a
// poll answered 503 with Retry-After, a final left unacknowledged, a gap
// error, a frame refused for good, a channel closed right after hello.
//
// HTTP requests are queued unanswered for the test to take and answer; the
// channel's frames are queued for the test to read. agent.hello is answered
// with an empty hub.hello_ack unless the test turns that off.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "core/co.hpp"
#include "core/notification.hpp"
#include "core/web_server.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/frames.hpp"

namespace tether::test {

struct RecordedRequest {
  core::HttpRequest request;
  uint64_t at_ms = 0;  // loop time when it arrived
  std::shared_ptr<core::HttpExchange> exchange;
};

class ScriptedHub {
 public:
  explicit ScriptedHub(core::Loop& loop);
  ~ScriptedHub();

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  // The next request whose path starts with `prefix` (others stay queued),
  // unanswered; nullopt after `timeout_ms`.
  core::Co<std::optional<RecordedRequest>> next_request(std::string prefix, uint64_t timeout_ms);
  // The next frame from the agent that is not agent.hello; nullopt after
  // `timeout_ms` or when the channel closes.
  core::Co<std::optional<protocol::Frame>> next_frame(uint64_t timeout_ms);
  // Waits until the agent has opened the channel `count` times in all.
  core::Co<bool> wait_for_connects(uint64_t count, uint64_t timeout_ms);
  // Waits until `count` agent.hello frames have arrived in all.
  core::Co<bool> wait_for_hellos(size_t count, uint64_t timeout_ms);

  void send(protocol::FramePayload payload);
  void close_channel(int code = 1000);

  // Refuse the next upgrades with 503 (true), or accept them (false).
  void set_refuse_websocket(bool refuse) { refuse_websocket_ = refuse; }
  // Close the channel right after the hello_ack (reconnect tests).
  void set_close_after_hello(bool close) { close_after_hello_ = close; }
  // What the hello_ack lists (docs/protocol.md 9); every v1 capability by default.
  void set_capabilities(std::vector<std::string> capabilities) {
    capabilities_ = std::move(capabilities);
  }
  // Answer hello with this frame text instead (a hub of another version).
  void set_hello_reply(std::string text) { hello_reply_ = std::move(text); }

  uint64_t connects() const { return connect_times_.size(); }
  // The close code of the last channel, once it closed (0 before).
  int last_close_code() const { return last_close_code_; }
  // Every agent.hello received, in order.
  const std::vector<protocol::AgentHello>& hellos() const { return hellos_; }
  // Bytes of the frames received so far (as sent, JSON), hello excluded.
  uint64_t received_bytes() const { return received_bytes_; }
  // Messages that carried several frames (docs/protocol.md 4.4).
  uint64_t batches() const { return batches_; }
  // Loop time of each upgrade attempt, accepted or refused.
  const std::vector<uint64_t>& connect_times() const { return connect_times_; }

 private:
  // One frame from the agent: a hello is answered, the rest recorded.
  void take(protocol::Frame&& frame);
  core::Co<bool> wait_until(const std::function<bool()>& ready, uint64_t timeout_ms);

  core::Loop& loop_;
  std::unique_ptr<core::WebServer> server_;
  std::shared_ptr<core::WebSocketConnection> channel_;
  std::deque<RecordedRequest> requests_;
  std::deque<protocol::Frame> frames_;
  std::vector<uint64_t> connect_times_;
  bool refuse_websocket_ = false;
  bool close_after_hello_ = false;
  std::vector<std::string> capabilities_ = protocol::hub_capabilities();
  std::string hello_reply_;
  std::vector<protocol::AgentHello> hellos_;
  int last_close_code_ = 0;
  bool channel_closed_ = false;
  uint64_t received_bytes_ = 0;
  uint64_t batches_ = 0;
  core::Notification changed_;
  uint64_t next_id_ = 1;
};

}  // namespace tether::test
