// AuditLog: the `audit_log` table of hub.db, append-only (its triggers abort
// UPDATE and DELETE). Who did what, when, from where, and whether it was
// allowed: every submit and cancel, token and agent change, registration,
// and every request refused for lack of role or permission
// (docs/operations.md, "The audit trail").
//
// Callers build an entry's detail with a JsonWriter from names and ids
// only: never a token, an env value or a secret.
#pragma once

#include <string>

#include "hub/hub_store.hpp"
#include "protocol/audit_api.hpp"

namespace tether::hub {

// Who acts, and from where.
struct AuditActor {
  std::string name;    // a token's name, "local:USER", "agent:NAME", "reg-..."
  std::string role;    // admin, operator, viewer, local, agent, registration
  std::string source;  // a request's remote address (AuthThrottle::source_of), or "local"
};

// What was done, or tried.
struct AuditAction {
  std::string action;  // "task.submit", "agent.remove", ...
  std::string target;  // a task id, an agent or a token name
  std::string detail_json = "{}";
  std::string refusal;  // why it was refused; empty: allowed
};

// The actor of a `tether-hub` command: "local:" and the name of the user
// who runs it (the real uid, also when the command works on hub.db as the
// data directory's owner), from "local".
AuditActor local_actor();

class AuditLog {
 public:
  explicit AuditLog(core::SqlStore& store) : store_(store) {}

  // Appends an entry, stamped now (UTC), in the turn's write transaction:
  // it is kept or dropped with the change it records. Throws
  // as SqlStore::execute.
  void record(const AuditActor& actor, const AuditAction& action);
  // The entries that match `query`, oldest first, at most query.limit.
  protocol::AuditPage read(const protocol::AuditQuery& query);

 private:
  core::SqlStore& store_;
};

}  // namespace tether::hub
