// The `tether-hub agent` commands, on hub.db, also while the hub runs
// (docs/operations.md, "Register an agent" and "Labels"):
//
//   agent add NAME             register an agent by hand; its token
//   agent rotate NAME          a new token; the old one stops working
//   agent list                 name, created, last seen, labels in effect
//   agent label NAME key=value... key-...
//                              set (key=value) or remove (key-) the hub's own
//                              labels of the agent, like `kubectl label`
//
// The hub's labels take precedence over those the agent reports in its
// hello (agent_directory.hpp). Every change is recorded in the audit trail
// as local_actor().
#pragma once

#include <string>
#include <vector>

#include "core/result.hpp"
#include "hub/agent_directory.hpp"
#include "hub/audit_log.hpp"
#include "hub/database_owner.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

struct AgentCommand {
  std::vector<std::string> words;  // "agent" and what follows
  std::string output;              // --output FILE: where a new token goes
};

// Runs an agent command. The exit status: 0, or 1 when refused (stderr says
// why). Errors (code "usage"): a malformed command or label, nothing changed.
Result<int> run_agent_command(const AgentCommand& command, core::SqlStore& store,
                              AgentDirectory& agents, TokenStore& tokens, AuditLog& audit,
                              DatabaseOwner& owner);

}  // namespace tether::hub
