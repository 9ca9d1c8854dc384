// `tether-agent register`: an edge host joins a hub in one command.
//
// With a registration token an operator made on the hub (`tether-hub
// registration-token create`), it asks the hub for this host's own agent
// token (POST /api/v1/agents/register, docs/protocol.md 11), writes the
// token to token_file (mode 0600, owned by the user the service runs as),
// and sets hub_url, agent and token_file in agent.conf (keeping every other
// line); then the service can start. The registration token is read from a
// file (never argv) and never written anywhere.
//
// Exit status: 0 registered; 1 the hub refused or could not be reached (the
// message says why; nothing was written); 2 a usage error.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tether::agent {

int register_command(const std::vector<std::string>& args);

// `text` (an agent.conf) with each key of `settings` set: an active
// `key = value` line is replaced, else a commented example (`# key = ...`)
// becomes the setting, else it is appended. Other lines stay as they are.
std::string set_config_keys(const std::string& text,
                            const std::vector<std::pair<std::string, std::string>>& settings);

}  // namespace tether::agent
