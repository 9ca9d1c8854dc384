// OperatorGate: the authorisation step of the operator API, the one place
// that decides whether a request may use a route (docs/protocol.md 11.2).
//
// HubApi's route table declares what each operator route needs (a
// Permission, and which agent it acts on); the gate resolves the request's
// token to a Principal and checks both:
//
//   no token, unknown or revoked       401 unauthorized (throttled, not audited)
//   an agent's token                   403 forbidden, audited as "agent:NAME"
//   a role without the permission      403 forbidden, audited
//   an agent outside the patterns      403 forbidden, audited
//
// Listings are not refused: the routes show only what the caller may reach.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/web_server.hpp"
#include "hub/audit_log.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/operator_roles.hpp"
#include "hub/task_repository.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

// Which agent a route acts on, for operators limited by agent patterns.
enum class AgentScope {
  kNone,         // no one agent (listings filter, the audit trail)
  kTaskInPath,   // the agent of the task named in the path
  kAgentInPath,  // the agent named in the path
  kAgentInBody,  // the `agent` of the JSON body (a submit)
};

// What an operator route needs, and the action its refusals are audited as.
struct RouteNeeds {
  Permission permission = Permission::kRead;
  AgentScope scope = AgentScope::kNone;
  const char* action = "";  // "task.submit", ...
};

// A web UI session's request (docs/protocol.md 11.6): its principal, already
// resolved, and how to ask later whether the session is still live.
struct SessionCaller {
  Principal principal;
  std::function<bool()> still_live;
};

// A request the gate admitted: who, and from where.
struct Caller {
  Principal principal;
  std::string source;  // AuthThrottle::source_of
  // Whether its token or session still resolves to an operator, for
  // responses that last (event streams).
  std::function<bool()> still_authorized;
  AuditActor actor() const {
    return {principal.name, std::string(to_string(principal.role)), source};
  }
};

class OperatorGate {
 public:
  OperatorGate(TokenStore& tokens, TaskRepository& tasks, AuditLog& audit, AuthThrottle& throttle)
      : tokens_(tokens), tasks_(tasks), audit_(audit), throttle_(throttle) {}

  // The caller, if the request may use a route that needs `needs`;
  // `path_id` is the route's {id} or {name} segment (empty if it has
  // none). Otherwise answers 401 or 403 and returns nothing. A task that
  // does not exist is admitted: the route answers 404.
  // With `session` (a web UI session's principal, docs/protocol.md 11.6),
  // the request's token is not looked at.
  std::optional<Caller> admit(const std::shared_ptr<core::HttpExchange>& exchange,
                              const RouteNeeds& needs, const std::string& path_id,
                              const SessionCaller* session = nullptr);
  // 401 with `message`, spending the source's failure budget (or 429).
  void unauthorized(const std::shared_ptr<core::HttpExchange>& exchange,
                    const std::string& message);

 private:
  // The agent the request acts on, and how to name it in a refusal; empty
  // when the scope names none (or the task or body does not exist or parse:
  // the route's own answer says so).
  std::pair<std::string, std::string> agent_in_scope(const core::HttpRequest& request,
                                                     AgentScope scope, const std::string& path_id);
  // 403 with `why`, audited.
  void refuse(const std::shared_ptr<core::HttpExchange>& exchange, const AuditActor& actor,
              const RouteNeeds& needs, const std::string& target, const std::string& agent,
              const std::string& why);

  TokenStore& tokens_;
  TaskRepository& tasks_;
  AuditLog& audit_;
  AuthThrottle& throttle_;
};

}  // namespace tether::hub
