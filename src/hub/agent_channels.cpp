#include "hub/agent_channels.hpp"

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/api_error.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/task_spec.hpp"

namespace tether::hub {

using protocol::ErrorCode;

namespace {

// The answer to a frame that did not decode: the decoder's code
// (invalid_frame, unknown_type, unsupported_version, frame_too_large).
protocol::ErrorFrame decode_error_frame(const Error& error, std::string related_message_id) {
  protocol::ErrorFrame frame;
  frame.code = error.code;
  frame.message = error.message;
  frame.retryable = false;
  frame.related_message_id = std::move(related_message_id);
  return frame;
}

}  // namespace

AgentChannels::AgentChannels(core::Loop& loop, core::SqlStore& store, TokenStore& tokens,
                             AuthThrottle& throttle, AgentFrameService& frames, LeaseKeeper& leases)
    : store_(store),
      tokens_(tokens),
      throttle_(throttle),
      frames_(frames),
      leases_(leases),
      busy_(loop, 50),
      id_prefix_("hub:" + random_hex(4) + ":") {}

std::string AgentChannels::agent_in_path(const std::string& path) {
  constexpr std::string_view kPrefix = "/api/v1/agents/";
  constexpr std::string_view kSuffix = "/channel";
  if (path.size() <= kPrefix.size() + kSuffix.size() || path.rfind(kPrefix, 0) != 0 ||
      path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return {};
  }
  std::string agent = path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
  return protocol::is_valid_id(agent) ? agent : std::string();
}

core::UpgradeDecision AgentChannels::authorize(const core::HttpRequest& request) {
  const std::string agent = agent_in_path(request.path);
  if (agent.empty()) {
    return {404, protocol::api_error_body("not_found", "no WebSocket endpoint at " + request.path,
                                          false)};
  }
  switch (tokens_.check_agent(agent, request.authorization)) {
    case AuthOutcome::kAllowed:
      return {};
    case AuthOutcome::kForbidden: {
      const std::string why = tokens_.forbidden_agent_message(agent, request.authorization);
      core::log_warning("channels", "refused channel for " + agent + " from " +
                                        throttle_.source_of(request) + ": " + why);
      return {403, protocol::api_error_body("forbidden", why, false)};
    }
    case AuthOutcome::kUnauthorized:
      break;
  }
  core::log_warning("channels", "refused channel for " + agent + " from " +
                                    throttle_.source_of(request) + ": missing or unknown token");
  if (auto refused = throttle_.refusal(request)) return {refused->status, refused->body};
  throttle_.failed(request);
  return {401, protocol::api_error_body("unauthorized", "missing or unknown agent token", false)};
}

void AgentChannels::adopt(std::shared_ptr<core::WebSocketConnection> socket) {
  auto channel = std::make_shared<Channel>();
  channel->agent = agent_in_path(socket->upgrade_request().path);
  channel->socket = socket;
  if (auto old = channels_.find(channel->agent); old != channels_.end()) {
    old->second->socket->close(kCloseReplaced, "replaced by a newer connection");
  }
  channels_[channel->agent] = channel;
  counters_.connections += 1;
  leases_.agent_seen(channel->agent);
  core::log_info("channels",
                 channel->agent + " connected from " + socket->upgrade_request().peer_address);
  std::weak_ptr<Channel> weak = channel;
  socket->set_on_message([this, weak](std::string&& text) {
    if (auto live = weak.lock()) on_message(live, std::move(text));
  });
  socket->set_on_closed([this, weak](int code) {
    auto live = weak.lock();
    if (!live) return;
    core::log_info("channels", live->agent + " disconnected (" + std::to_string(code) + ")");
    leases_.agent_seen(live->agent);
    auto it = channels_.find(live->agent);
    if (it != channels_.end() && it->second == live) channels_.erase(it);
  });
}

bool AgentChannels::is_connected(const std::string& agent) const {
  auto it = channels_.find(agent);
  return it != channels_.end() && it->second->socket->is_open() && it->second->hello_done;
}

void AgentChannels::send_cancel(const std::string& agent, const protocol::TaskCancel& cancel) {
  auto it = channels_.find(agent);
  if (it != channels_.end() && it->second->hello_done) send(it->second, cancel);
}

void AgentChannels::send_wake(const std::string& agent) {
  auto it = channels_.find(agent);
  if (it != channels_.end() && it->second->hello_done) send(it->second, protocol::HubWake{});
}

void AgentChannels::close_agent(const std::string& agent, int code, const std::string& reason) {
  auto it = channels_.find(agent);
  if (it != channels_.end()) it->second->socket->close(code, reason);
}

void AgentChannels::close_all(int code, const std::string& reason) {
  for (auto& [agent, channel] : channels_)
    channel->socket->close(code, reason);
}

void AgentChannels::send(const std::shared_ptr<Channel>& channel, protocol::FramePayload payload) {
  protocol::Frame frame;
  frame.message_id = id_prefix_ + std::to_string(next_message_++);
  frame.agent_id = channel->agent;
  frame.sent_at = core::utc_now();
  frame.payload = std::move(payload);
  if (core::log_level() == core::LogLevel::kDebug) {
    core::log_debug("channels",
                    channel->agent + " <- " + std::string(frame.type()) + " " + frame.message_id);
  }
  channel->socket->send_text(protocol::encode_frame(frame));
}

void AgentChannels::send_all(const std::shared_ptr<Channel>& channel,
                             std::vector<protocol::FramePayload> payloads) {
  if (!channel->frames_batch || payloads.size() < 2 ||
      payloads.size() > protocol::kMaxBatchFrames) {
    for (auto& payload : payloads)
      send(channel, std::move(payload));
    return;
  }
  // One message for the lot (section 4.4): an ack per stream of a commit.
  // Acks are small (~200 bytes), so a batch stays far under 1 MiB.
  std::vector<std::string> encoded;
  encoded.reserve(payloads.size());
  const std::string sent_at = core::utc_now();
  const std::string batch_id = id_prefix_ + std::to_string(next_message_);
  for (auto& payload : payloads) {
    protocol::Frame frame;
    frame.message_id = id_prefix_ + std::to_string(next_message_++);
    frame.agent_id = channel->agent;
    frame.sent_at = sent_at;
    frame.payload = std::move(payload);
    encoded.push_back(protocol::encode_frame(frame));
  }
  channel->socket->send_text(
      protocol::encode_batch(batch_id + ":batch", channel->agent, encoded, sent_at));
}

void AgentChannels::reply(const std::shared_ptr<Channel>& channel, protocol::FramePayload payload) {
  store_.after_commit([this, channel, payload = std::move(payload)]() mutable {
    send(channel, std::move(payload));
  });
}

void AgentChannels::reject(const std::shared_ptr<Channel>& channel, protocol::ErrorFrame error,
                           bool close) {
  counters_.rejected += 1;
  core::log_warning("channels", channel->agent + ": " + error.code + ": " + error.message);
  reply(channel, error);
  if (close) {
    store_.after_commit([channel, code = error.code] {
      channel->socket->close(
          code == "unsupported_version" ? core::kCloseProtocolError : core::kClosePolicyViolation,
          code);
    });
  }
}

void AgentChannels::queue_output_ack(const std::shared_ptr<Channel>& channel,
                                     const protocol::Ack& ack) {
  auto& through = channel->pending_output_acks[{ack.attempt_id, ack.stream}];
  through = std::max(through, ack.through_seq);
  if (channel->flush_scheduled) return;
  channel->flush_scheduled = true;
  store_.after_commit([this, channel] {
    channel->flush_scheduled = false;
    auto acks = std::move(channel->pending_output_acks);
    channel->pending_output_acks.clear();
    std::vector<protocol::FramePayload> payloads;
    payloads.reserve(acks.size());
    for (const auto& [key, through_seq] : acks) {
      protocol::Ack coalesced;
      coalesced.attempt_id = key.first;
      coalesced.acked = protocol::AckedKind::kOutput;
      coalesced.stream = key.second;
      coalesced.through_seq = through_seq;
      payloads.emplace_back(std::move(coalesced));
    }
    send_all(channel, std::move(payloads));
  });
}

void AgentChannels::on_message(const std::shared_ptr<Channel>& channel, std::string&& text) {
  if (!channel->socket->is_open()) return;
  counters_.frames += 1;
  leases_.agent_seen(channel->agent);
  // Frames of one channel are handled in order: behind one that waits for
  // hub.db, the rest wait too (the agent's send window bounds them).
  if (!channel->deferred.empty()) {
    channel->deferred.push_back(std::move(text));
    return;
  }
  if (!process(channel, text)) {
    channel->deferred.push_back(std::move(text));
    schedule_deferred(channel);
  }
}

void AgentChannels::schedule_deferred(const std::shared_ptr<Channel>& channel) {
  std::weak_ptr<Channel> weak = channel;
  busy_.later([this, weak] {
    auto live = weak.lock();
    if (!live || !live->socket->is_open()) return;
    while (!live->deferred.empty()) {
      if (!process(live, live->deferred.front())) {
        schedule_deferred(live);
        return;
      }
      live->deferred.pop_front();
    }
  });
}

bool AgentChannels::process(const std::shared_ptr<Channel>& channel, const std::string& text) {
  // The one error boundary of a WebSocket message: the frame's writes and
  // replies are kept or dropped together, and nothing escapes to the loop.
  const auto outcome =
      store_.guarded("frame from " + channel->agent, [&] { handle_text(channel, text); });
  if (outcome == core::SqlStore::Outcome::kBusy)
    return false;  // hub.db locked elsewhere: again soon
  if (outcome == core::SqlStore::Outcome::kFailed) {
    reject(channel,
           protocol::error_frame(ErrorCode::kStorageUnavailable,
                                 "the hub could not store this frame; retry",
                                 protocol::peek_message_id(text)),
           false);
  }
  return true;
}

void AgentChannels::handle_text(const std::shared_ptr<Channel>& channel, const std::string& text) {
  auto frames = protocol::decode_frames(text);  // one, or a batch's (section 4.4)
  if (!frames) {
    // A malformed frame ends this channel only; the agent reconnects and
    // replays from its outbox.
    reject(channel, decode_error_frame(frames.error(), protocol::peek_message_id(text)), true);
    return;
  }
  // A batch's frames in order, as if each had come alone.
  for (auto& frame : *frames) {
    if (!channel->socket->is_open()) return;  // a frame before closed the channel
    handle_frame(channel, std::move(frame));
  }
}

void AgentChannels::handle_frame(const std::shared_ptr<Channel>& channel, protocol::Frame&& frame) {
  if (core::log_level() == core::LogLevel::kDebug) {
    core::log_debug("channels",
                    channel->agent + " -> " + std::string(frame.type()) + " " + frame.message_id);
  }
  if (!frame.agent_id.empty() && frame.agent_id != channel->agent) {
    reject(channel,
           protocol::error_frame(
               ErrorCode::kForbidden,
               "frame for agent " + frame.agent_id + " on " + channel->agent + "'s channel",
               frame.message_id),
           true);
    return;
  }
  const bool is_hello = std::holds_alternative<protocol::AgentHello>(frame.payload);
  if (!channel->hello_done && !is_hello) {
    reject(channel,
           protocol::error_frame(ErrorCode::kHelloRequired,
                                 "send agent.hello before " + std::string(frame.type()),
                                 frame.message_id),
           false);
    return;
  }
  if (is_hello) {
    std::vector<protocol::TaskCancel> cancels;
    const auto& hello = std::get<protocol::AgentHello>(frame.payload);
    auto ack = frames_.on_hello(channel->agent, hello, frame.message_id, cancels);
    channel->hello_done = true;
    channel->frames_batch = protocol::Capabilities::from(hello.capabilities).frames_batch;
    reply(channel, std::move(ack));
    for (auto& cancel : cancels)
      reply(channel, std::move(cancel));
    return;
  }
  auto answer = [&](FrameVerdict verdict) {
    if (verdict.error) {
      reject(channel, std::move(*verdict.error), false);
    } else if (verdict.ack && verdict.ack->acked == protocol::AckedKind::kOutput) {
      queue_output_ack(channel, *verdict.ack);
    } else if (verdict.ack) {
      reply(channel, std::move(*verdict.ack));
    }
  };
  if (auto* output = std::get_if<protocol::TaskOutput>(&frame.payload)) {
    counters_.output_bytes += output->chunk.data.size();
    answer(frames_.on_output(channel->agent, *output, frame.message_id));
  } else if (auto* gap = std::get_if<protocol::TaskOutputGap>(&frame.payload)) {
    answer(frames_.on_gap(channel->agent, *gap, frame.message_id));
  } else if (auto* started = std::get_if<protocol::TaskStarted>(&frame.payload)) {
    answer(frames_.on_started(channel->agent, *started, frame.message_id));
  } else if (auto* final_frame = std::get_if<protocol::TaskFinal>(&frame.payload)) {
    auto verdict = frames_.on_final(channel->agent, *final_frame, frame.message_id);
    if (verdict.error) {
      reject(channel, std::move(*verdict.error), false);
    } else {
      protocol::Ack ack;
      ack.attempt_id = final_frame->attempt.attempt_id;
      ack.acked = protocol::AckedKind::kFinal;
      ack.related_message_id = frame.message_id;
      ack.verified = verdict.verified;
      reply(channel, std::move(ack));
    }
  } else if (auto* said = std::get_if<protocol::ErrorFrame>(&frame.payload)) {
    // The agent could not use something we sent (docs/protocol.md 4.1):
    // for the operator; nothing to answer.
    core::log_warning(
        "channels",
        channel->agent + " reports " + said->code +
            (said->related_message_id.empty() ? "" : " about " + said->related_message_id) + ": " +
            said->message);
  } else {
    reject(
        channel,
        protocol::error_frame(ErrorCode::kInvalidFrame,
                              "agents do not send " + std::string(frame.type()), frame.message_id),
        true);
  }
}

}  // namespace tether::hub
