// Operator roles: who may do what on the operator API (docs/operations.md,
// "Roles"; docs/protocol.md 11.2).
//
//   admin     everything
//   operator  submit, cancel and read; with agent patterns, only on the
//             agents whose names match one of them
//   viewer    read only, and task views without env values
//
// A request made with an operator token resolves to a Principal; each route
// of the operator API declares the Permission it needs (HubApi's route
// table), and OperatorGate checks it here. Nothing else decides access.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace tether::hub {

enum class Role { kAdmin, kOperator, kViewer };
std::string_view to_string(Role role);
// "admin", "operator" or "viewer"; nothing for anything else.
std::optional<Role> parse_role(std::string_view text);

enum class Permission {
  kRead,         // tasks, their output and events, agents
  kSubmit,       // POST /api/v1/tasks
  kCancel,       // POST /api/v1/tasks/{id}/cancel
  kRemoveAgent,  // DELETE /api/v1/agents/{name}
  kReadAudit,    // GET /api/v1/audit
};
std::string_view to_string(Permission permission);  // "read", "submit", ...
// The table: admin all; operator read, submit, cancel; viewer read.
bool role_allows(Role role, Permission permission);

// Who a request comes from: an operator token's name, role and agent
// patterns (shell globs, fnmatch(3); empty: every agent).
struct Principal {
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> agent_patterns;

  // Whether the principal may act on, and see, agent `agent`: true for
  // admins, viewers and operators without patterns; else when a pattern
  // matches the whole name.
  bool may_reach_agent(std::string_view agent) const;
  // Viewers see env names only (docs/protocol.md 11).
  bool sees_env_values() const { return role != Role::kViewer; }
  // Why `permission` is refused (names the role and who may), or nothing.
  std::optional<std::string> refusal(Permission permission) const;
  // Why acting on `agent` is refused, or nothing. The message names the
  // token, its patterns and `subject` ("agent 'db-1'", "the agent of task
  // t-1": a task's agent is not named to whom may not see it).
  std::optional<std::string> agent_refusal(std::string_view agent, std::string_view subject) const;
};

// A token name: 1 to 64 characters of A-Z a-z 0-9 . _ -, and not of the
// form of a token id ("op-" and 12 hex digits), so that `token revoke X`
// means one token. Errors ("invalid_name") name the field `name`.
Result<void> check_token_name(std::string_view name);
// "web-*,db-1" -> {"web-*", "db-1"}: comma-separated, 1 to 32 patterns, each
// 1 to 128 characters of the agent id characters (A-Z a-z 0-9 . _ : -) and
// the glob characters * ? [ ] !. Errors ("invalid_field") name `agents` and
// the pattern.
Result<std::vector<std::string>> parse_agent_patterns(std::string_view text);
// The comma-separated form parse_agent_patterns reads.
std::string format_agent_patterns(const std::vector<std::string>& patterns);

}  // namespace tether::hub
