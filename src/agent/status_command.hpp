// `tether-agent status`: what the agent on this host is doing.
//
// Two sources, so it helps most when things are wrong: the running agent,
// asked over state_dir/status.sock (channel, polls, running tasks, counters),
// and the outbox file itself, read-only (what is waiting to be delivered,
// which a stopped agent still holds). Exit status: 0 the agent answered,
// 3 it is not running (the outbox is still shown), 1 another failure,
// 2 a usage error.
#pragma once

#include <string>
#include <vector>

namespace tether::agent {

int status_command(const std::vector<std::string>& args);

}  // namespace tether::agent
