// HubApi: the hub's HTTP routes (docs/protocol.md 3, 7 and 11).
//
//   agents:    GET  /api/v1/agents/{agent}/tasks/next?wait=S
//              PUT  /api/v1/attempts/{attempt}/final
//   operators: POST /api/v1/tasks           GET /api/v1/tasks[?state=&limit=]
//              GET  /api/v1/tasks/{id}      GET /api/v1/tasks/{id}/output
//              GET  /api/v1/tasks/{id}/events (SSE)
//              POST /api/v1/tasks/{id}/cancel
//              GET  /api/v1/agents          DELETE /api/v1/agents/{name}
//              GET  /api/v1/audit
//   anyone:    GET  /healthz
//
// Agent routes take only the agent's own token. Operator routes take an
// operator token whose role (and agent patterns) allow what the route
// needs: its entry in the route table says what that is, and OperatorGate
// checks it. A valid token in the wrong place is 403, none or an unknown
// one 401.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "hub/agent_channels.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/busy_retries.hpp"
#include "hub/hub_parts.hpp"
#include "hub/operator_gate.hpp"
#include "hub/operator_routes.hpp"
#include "hub/poll_waiters.hpp"
#include "hub/sse_stream.hpp"

namespace tether::hub {

class HubApi {
 public:
  HubApi(const HubParts& parts, size_t max_event_streams);

  // Answers one request. If hub.db is locked by another process, the
  // request runs again every kBusyRetryMs, up to kMaxBusyRetries times,
  // then gets 503 storage_unavailable with Retry-After.
  void handle(const std::shared_ptr<core::HttpExchange>& exchange);
  // The same for a web UI session's request (docs/protocol.md 11.6): only
  // the operator routes, as `session` (its principal, already resolved).
  void handle_as(const std::shared_ptr<core::HttpExchange>& exchange, SessionCaller session);
  // Before a request's body is read: 401 (or 429, see AuthThrottle) unless
  // it carries a token that verifies, as an operator's or any agent's. The
  // route checks whose it is afterwards. A body is never held for a client
  // that has not shown a token. If hub.db cannot be read just now, the
  // body is read and the route decides.
  std::optional<core::HttpResponse> check_before_body(const core::HttpRequest& request);
  void close_streams() { operator_.close_streams(); }
  static constexpr uint64_t kBusyRetryMs = 50;
  static constexpr int kMaxBusyRetries = 100;
  size_t open_streams() const { return operator_.open_streams(); }

 private:
  void handle_once(const std::shared_ptr<core::HttpExchange>& exchange, int busy_retries,
                   const std::optional<SessionCaller>& session);
  void route(const std::shared_ptr<core::HttpExchange>& exchange,
             const std::optional<SessionCaller>& session);
  // An operator route, if the path (after /api/v1/) and method name one;
  // answered through the gate (as `session` if given). False if none does.
  bool route_operator(const std::shared_ptr<core::HttpExchange>& exchange,
                      const std::vector<std::string>& parts,
                      const std::optional<SessionCaller>& session);
  // 401, spending the source's failure budget.
  void unauthorized(const std::shared_ptr<core::HttpExchange>& exchange,
                    const std::string& message);
  void poll(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& agent);
  void put_final(const std::shared_ptr<core::HttpExchange>& exchange,
                 const std::string& attempt_id);
  void register_agent(const std::shared_ptr<core::HttpExchange>& exchange);

  core::Loop& loop_;
  core::SqlStore& store_;
  TokenStore& tokens_;
  TaskRepository& tasks_;
  AgentFrameService& frames_;
  LeaseKeeper& leases_;
  AgentChannels& channels_;
  PollWaiters& polls_;
  AuthThrottle& throttle_;
  AuditLog& audit_;
  BusyRetries busy_;
  OperatorGate gate_;
  OperatorRoutes operator_;
};

}  // namespace tether::hub
