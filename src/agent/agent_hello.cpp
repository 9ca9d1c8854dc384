#include "agent/agent_hello.hpp"

#include "protocol/capabilities.hpp"

namespace tether::agent {

std::optional<protocol::AgentHello> describe_outbox(Outbox& outbox, const std::string& version) {
  protocol::AgentHello hello;
  hello.version = version;
  hello.capabilities = protocol::agent_capabilities();
  if (!outbox.attempts().running(hello.running)) return std::nullopt;
  if (!outbox.frames().describe(hello.outbox, hello.unacked_finals)) return std::nullopt;
  hello.outbox_rows = outbox.frames().rows();
  hello.outbox_bytes = outbox.frames().bytes();
  return hello;
}

std::string fitted_hello(protocol::Frame hello) {
  for (;;) {
    std::string text = protocol::encode_frame(hello);
    if (text.size() <= protocol::kMaxFrameBytes) return text;
    auto& payload = std::get<protocol::AgentHello>(hello.payload);
    payload.partial = true;
    if (!payload.outbox.empty()) {
      payload.outbox.resize(payload.outbox.size() / 2);
    } else if (!payload.unacked_finals.empty()) {
      payload.unacked_finals.resize(payload.unacked_finals.size() / 2);
    } else {
      payload.running.resize(payload.running.size() / 2);
    }
  }
}

}  // namespace tether::agent
