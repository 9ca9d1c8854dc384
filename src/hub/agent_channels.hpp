// AgentChannels: the WebSocket result channel of each connected agent.
//
// One channel per agent; a new one replaces the old (which may be a dead
// connection the hub has not noticed yet). The first frame must be
// agent.hello. Every reply goes out only after the turn's transaction has
// committed, and output acks are coalesced: one ack per (attempt, stream)
// per turn, through the highest stored seq.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "core/http_types.hpp"
#include "core/web_server.hpp"
#include "core/web_socket.hpp"
#include "hub/agent_frame_service.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/busy_retries.hpp"
#include "hub/lease_keeper.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

inline constexpr int kCloseReplaced = 4001;

class AgentChannels {
 public:
  AgentChannels(core::Loop& loop, core::SqlStore& store, TokenStore& tokens, AuthThrottle& throttle,
                AgentFrameService& frames, LeaseKeeper& leases);

  // For GET /api/v1/agents/{agent}/channel; runs inside lws (synchronous).
  core::UpgradeDecision authorize(const core::HttpRequest& request);
  void adopt(std::shared_ptr<core::WebSocketConnection> socket);

  bool is_connected(const std::string& agent) const;
  void send_cancel(const std::string& agent, const protocol::TaskCancel& cancel);
  void send_wake(const std::string& agent);
  void close_all(int code, const std::string& reason);
  // Closes `agent`'s channel, if it has one.
  void close_agent(const std::string& agent, int code, const std::string& reason);
  size_t count() const { return channels_.size(); }

  // For metrics, since the hub started.
  struct Counters {
    uint64_t connections = 0;   // channels adopted
    uint64_t frames = 0;        // frames received (decoded or not)
    uint64_t rejected = 0;      // answered with an error frame
    uint64_t output_bytes = 0;  // output bytes carried by task.output frames
  };
  const Counters& counters() const { return counters_; }

  // The agent named in a channel path, or empty.
  static std::string agent_in_path(const std::string& path);

 private:
  struct Channel {
    std::string agent;
    std::shared_ptr<core::WebSocketConnection> socket;
    bool hello_done = false;
    bool frames_batch = false;  // its hello listed frames.batch (section 4.4)
    bool flush_scheduled = false;
    std::map<std::pair<std::string, protocol::StreamName>, uint64_t> pending_output_acks;
    // Frames waiting, in order, while hub.db is locked by another process.
    std::deque<std::string> deferred;
  };

  void on_message(const std::shared_ptr<Channel>& channel, std::string&& text);
  // Handles one frame inside the storage boundary; false if hub.db was
  // locked elsewhere and nothing was kept (the frame must be tried again).
  bool process(const std::shared_ptr<Channel>& channel, const std::string& text);
  void handle_text(const std::shared_ptr<Channel>& channel, const std::string& text);
  void schedule_deferred(const std::shared_ptr<Channel>& channel);
  void handle_frame(const std::shared_ptr<Channel>& channel, protocol::Frame&& frame);
  void send(const std::shared_ptr<Channel>& channel, protocol::FramePayload payload);
  // Sends each, or all in one batch message when the agent takes batches.
  void send_all(const std::shared_ptr<Channel>& channel,
                std::vector<protocol::FramePayload> payloads);
  // Sends after the current transaction commits, in call order.
  void reply(const std::shared_ptr<Channel>& channel, protocol::FramePayload payload);
  void reject(const std::shared_ptr<Channel>& channel, protocol::ErrorFrame error, bool close);
  void queue_output_ack(const std::shared_ptr<Channel>& channel, const protocol::Ack& ack);

  core::SqlStore& store_;
  TokenStore& tokens_;
  AuthThrottle& throttle_;
  AgentFrameService& frames_;
  LeaseKeeper& leases_;
  BusyRetries busy_;
  std::map<std::string, std::shared_ptr<Channel>> channels_;
  Counters counters_;
  std::string id_prefix_;
  uint64_t next_message_ = 1;
};

}  // namespace tether::hub
