#include "hub/operator_gate.hpp"

#include "core/log.hpp"
#include "hub/http_replies.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/utf8.hpp"

namespace tether::hub {

std::optional<Caller> OperatorGate::admit(const std::shared_ptr<core::HttpExchange>& exchange,
                                          const RouteNeeds& needs, const std::string& path_id,
                                          const SessionCaller* session) {
  const auto& request = exchange->request();
  auto principal = session ? std::optional<Principal>(session->principal)
                           : tokens_.operator_principal(request.authorization);
  std::optional<std::string> agent_token_of;
  if (!principal) {
    agent_token_of = tokens_.agent_of(request.authorization);
    if (!agent_token_of) {
      unauthorized(
          exchange,
          tokens_.why_unverified(request.authorization).value_or("missing or unknown token"));
      return std::nullopt;
    }
  }
  const std::string source = throttle_.source_of(request);
  const auto [agent, subject] = agent_in_scope(request, needs.scope, path_id);
  const std::string target = needs.scope == AgentScope::kAgentInBody ? agent : path_id;
  if (!principal) {
    refuse(exchange, {"agent:" + *agent_token_of, "agent", source}, needs, target, agent,
           "this route needs an operator token, not agent " + *agent_token_of + "'s");
    return std::nullopt;
  }
  Caller caller{std::move(*principal), source, {}};
  if (session) {
    caller.still_authorized = session->still_live;
  } else {
    caller.still_authorized = [tokens = &tokens_, authorization = request.authorization] {
      return tokens->operator_principal(authorization).has_value();
    };
  }
  auto why = caller.principal.refusal(needs.permission);
  if (!why && !agent.empty()) why = caller.principal.agent_refusal(agent, subject);
  if (why) {
    refuse(exchange, caller.actor(), needs, target, agent, *why);
    return std::nullopt;
  }
  return caller;
}

std::pair<std::string, std::string> OperatorGate::agent_in_scope(const core::HttpRequest& request,
                                                                 AgentScope scope,
                                                                 const std::string& path_id) {
  switch (scope) {
    case AgentScope::kNone:
      break;
    case AgentScope::kAgentInPath:
      return {path_id, "agent '" + path_id + "'"};
    case AgentScope::kTaskInPath:
      if (auto task = tasks_.find_task(path_id)) {
        return {task->agent, "the agent of task " + path_id};
      }
      break;
    case AgentScope::kAgentInBody: {
      auto body = protocol::parse_json_object(request.body, "task");
      if (!body) break;
      auto agent = protocol::JsonObjectReader(*body, "task").optional_string("agent");
      if (agent && *agent) return {**agent, "agent '" + **agent + "'"};
      break;
    }
  }
  return {};
}

void OperatorGate::refuse(const std::shared_ptr<core::HttpExchange>& exchange,
                          const AuditActor& actor, const RouteNeeds& needs,
                          const std::string& target, const std::string& agent,
                          const std::string& why) {
  const auto& request = exchange->request();
  protocol::JsonWriter detail;
  detail.begin_object();
  detail.field("method", request.method);
  detail.field("path", protocol::with_invalid_utf8_replaced(request.path, '?'));
  if (!agent.empty()) detail.field("agent", agent);
  detail.end_object();
  audit_.record(actor, {needs.action, target, detail.str(), why});
  core::log_info("api", "refused " + request.method + " " + request.path + " to " + actor.name +
                            " from " + actor.source + ": " + why);
  respond_error(exchange, protocol::ErrorCode::kForbidden, why);
}

void OperatorGate::unauthorized(const std::shared_ptr<core::HttpExchange>& exchange,
                                const std::string& message) {
  if (auto refused = throttle_.refusal(exchange->request())) {
    exchange->respond(std::move(*refused));
    return;
  }
  throttle_.failed(exchange->request());
  respond_error(exchange, protocol::ErrorCode::kUnauthorized, message);
}

}  // namespace tether::hub
