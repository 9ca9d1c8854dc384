#include <algorithm>

#include "scripted_hub.hpp"

#include "protocol/capabilities.hpp"

#include <catch2/catch.hpp>

namespace tether::test {

ScriptedHub::ScriptedHub(core::Loop& loop) : loop_(loop), changed_(loop) {
  core::WebServer::Handlers handlers;
  handlers.on_request = [this](std::shared_ptr<core::HttpExchange> exchange) {
    loop_.update_time();
    requests_.push_back({exchange->request(), loop_.now_ms(), exchange});
    changed_.notify_all();
  };
  handlers.on_upgrade = [this](const core::HttpRequest&) {
    loop_.update_time();
    connect_times_.push_back(loop_.now_ms());
    changed_.notify_all();
    core::UpgradeDecision decision;
    if (refuse_websocket_) {
      decision.status = 503;
      decision.body = R"({"error":{"code":"unavailable","message":"scripted","retryable":true}})";
    }
    return decision;
  };
  handlers.on_websocket = [this](std::shared_ptr<core::WebSocketConnection> socket) {
    channel_ = socket;
    channel_closed_ = false;
    std::weak_ptr<core::WebSocketConnection> weak = socket;
    socket->set_on_message([this, weak](std::string&& text) {
      // One frame, or a batch's (docs/protocol.md 4.4) when the hello_ack
      // listed frames.batch.
      auto frames = protocol::decode_frames(text);
      // CHECK, not REQUIRE: this runs from the loop, outside the test body.
      CHECK(frames.ok());
      if (!frames.ok()) return;
      if (frames->size() > 1) {
        const bool agreed = std::find(capabilities_.begin(), capabilities_.end(),
                                      protocol::kCapabilityFramesBatch) != capabilities_.end();
        CHECK(agreed);  // an agent batches only when the hub listed it
        ++batches_;
      }
      const bool hello = std::holds_alternative<protocol::AgentHello>(frames->front().payload);
      if (!hello) received_bytes_ += text.size();
      for (auto& one : *frames)
        take(std::move(one));
    });
    socket->set_on_closed([this, weak](int code) {
      last_close_code_ = code;
      if (channel_ == weak.lock()) channel_closed_ = true;
      changed_.notify_all();
    });
  };
  core::WebServerOptions options;
  options.max_body_bytes = 4 << 20;
  options.max_message_bytes = 4 << 20;
  auto started = core::WebServer::start(loop_, options, std::move(handlers));
  REQUIRE(started.ok());
  server_ = std::move(*started);
}

ScriptedHub::~ScriptedHub() = default;

void ScriptedHub::take(protocol::Frame&& frame) {
  if (std::holds_alternative<protocol::AgentHello>(frame.payload)) {
    hellos_.push_back(std::get<protocol::AgentHello>(frame.payload));
    changed_.notify_all();
    if (!hello_reply_.empty()) {
      if (channel_) channel_->send_text(hello_reply_);
      return;
    }
    protocol::HubHelloAck ack;
    ack.related_message_id = frame.message_id;
    ack.version = "scripted";
    ack.capabilities = capabilities_;
    send(ack);
    if (close_after_hello_) close_channel();
    return;
  }
  frames_.push_back(std::move(frame));
  changed_.notify_all();
}

core::Co<bool> ScriptedHub::wait_until(const std::function<bool()>& ready, uint64_t timeout_ms) {
  loop_.update_time();
  const uint64_t deadline = loop_.now_ms() + timeout_ms;
  for (;;) {
    if (ready()) co_return true;
    loop_.update_time();
    if (loop_.now_ms() >= deadline) co_return false;
    co_await changed_.wait(deadline - loop_.now_ms());
  }
}

core::Co<std::optional<RecordedRequest>> ScriptedHub::next_request(std::string prefix,
                                                                   uint64_t timeout_ms) {
  auto matches = [&](const RecordedRequest& entry) {
    return entry.request.path.rfind(prefix, 0) == 0;
  };
  std::function<bool()> ready = [&] {
    return std::any_of(requests_.begin(), requests_.end(), matches);
  };
  const bool found = co_await wait_until(ready, timeout_ms);
  if (!found) co_return std::nullopt;
  auto it = std::find_if(requests_.begin(), requests_.end(), matches);
  RecordedRequest taken = std::move(*it);
  requests_.erase(it);
  co_return taken;
}

core::Co<std::optional<protocol::Frame>> ScriptedHub::next_frame(uint64_t timeout_ms) {
  std::function<bool()> ready = [&] { return !frames_.empty() || channel_closed_; };
  const bool found = co_await wait_until(ready, timeout_ms);
  if (!found || frames_.empty()) co_return std::nullopt;
  protocol::Frame frame = std::move(frames_.front());
  frames_.pop_front();
  co_return frame;
}

core::Co<bool> ScriptedHub::wait_for_connects(uint64_t count, uint64_t timeout_ms) {
  std::function<bool()> ready = [&] { return connect_times_.size() >= count; };
  co_return co_await wait_until(ready, timeout_ms);
}

core::Co<bool> ScriptedHub::wait_for_hellos(size_t count, uint64_t timeout_ms) {
  std::function<bool()> ready = [&] { return hellos_.size() >= count; };
  co_return co_await wait_until(ready, timeout_ms);
}

void ScriptedHub::send(protocol::FramePayload payload) {
  REQUIRE(channel_);
  protocol::Frame frame;
  frame.message_id = "hub:" + std::to_string(next_id_++);
  frame.sent_at = "2026-11-22T00:00:00.000Z";
  frame.payload = std::move(payload);
  channel_->send_text(protocol::encode_frame(frame));
}

void ScriptedHub::close_channel(int code) {
  if (channel_) channel_->close(code, "scripted");
}

}  // namespace tether::test
