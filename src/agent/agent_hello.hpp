// agent.hello (docs/protocol.md 4.1): what the sender tells the hub the
// outbox holds when a session begins, so the hub can say what it already has.
#pragma once

#include <optional>
#include <string>

#include "agent/outbox.hpp"
#include "protocol/frames.hpp"

namespace tether::agent {

// The attempts running, the seq range held per stream and the finals held,
// with the outbox's size; `capabilities` are this agent's (section 9).
// Nothing while another process locks the file: a partial hello would tell
// the hub attempts are gone.
std::optional<protocol::AgentHello> describe_outbox(Outbox& outbox, const std::string& version);

// `hello` encoded to fit one message (section 2.1, kMaxFrameBytes): after a
// long outage the outbox can hold more attempts than one message can name,
// so its lists are halved until it fits, and it is marked partial. What is
// left out is still replayed; the hub acks duplicates.
std::string fitted_hello(protocol::Frame hello);

}  // namespace tether::agent
