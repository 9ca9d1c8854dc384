// The `tether-hub token` commands: operator tokens with names and roles,
// made, listed and revoked on hub.db, also while the hub runs
// (docs/operations.md, "Roles and operator tokens").
//
//   token create --name N --role admin|operator|viewer [--agents 'web-*,db-1']
//   token admin                 an admin token with a generated name
//   token list                  id, name, role, agent patterns, created, revoked
//   token revoke ID|NAME
//
// Every change is recorded in the audit trail as local_actor().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "hub/audit_log.hpp"
#include "hub/database_owner.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

struct TokenCommand {
  std::vector<std::string> words;  // "token" and what follows
  std::string output;              // --output FILE: where a new token goes
  std::optional<std::string> name, role, agents;
};

// A new token: to `output` (mode 0600) if given, else alone on stdout, so
// that it can be piped; `what` names it on stderr. Commits `store` first:
// a token handed out is stored. The exit status: 0, or 1 (said on stderr).
int hand_out_token(core::SqlStore& store, const std::string& output, const std::string& token,
                   const std::string& what, DatabaseOwner& owner);

// Runs a token command. The exit status: 0, or 1 when refused (stderr
// says why, naming the flag: `--name: a token named 'ci' exists already`).
// Errors (code "usage"): a malformed command or flag value, nothing changed.
Result<int> run_token_command(const TokenCommand& command, core::SqlStore& store,
                              TokenStore& tokens, AuditLog& audit, DatabaseOwner& owner);

}  // namespace tether::hub
