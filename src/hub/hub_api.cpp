#include "hub/hub_api.hpp"

#include <charconv>
#include <set>
#include <vector>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "hub/http_replies.hpp"
#include "protocol/api_error.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::hub {

using core::HttpExchange;
using core::json_response;

namespace {

// The answer to PUT .../final (docs/protocol.md 7): 200 with whether the
// output was verified; 409 output_incomplete with what is missing; else the
// error's own status (404 unknown_attempt, 410 attempt_discarded, 422
// final_conflict, 400).
core::HttpResponse final_response(const FinalVerdict& verdict) {
  if (!verdict.error) {
    return json_response(200, std::string(R"({"accepted":true,"verified":)") +
                                  (verdict.verified ? "true" : "false") + "}");
  }
  const auto code = protocol::code_of(*verdict.error);
  if (code != protocol::ErrorCode::kOutputIncomplete) {
    return json_response(code ? protocol::http_status(*code) : 400,
                         protocol::api_error_body(verdict.error->code, verdict.error->message,
                                                  verdict.error->retryable));
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.key("error");
  json.begin_object();
  json.field("code", verdict.error->code);
  json.field("message", verdict.error->message);
  json.field("retryable", true);
  json.key("missing");
  json.begin_array();
  for (const auto& missing : verdict.missing) {
    json.begin_object();
    json.field("stream", to_string(missing.stream));
    json.field("from_seq", missing.from_seq);
    json.field("from_offset", missing.from_offset);
    json.field("expected_bytes", missing.expected_bytes);
    json.end_object();
  }
  json.end_array();
  json.end_object();
  json.end_object();
  return json_response(409, json.str());
}

}  // namespace

HubApi::HubApi(const HubParts& parts, size_t max_event_streams)
    : loop_(parts.loop),
      store_(parts.store),
      tokens_(parts.tokens),
      tasks_(parts.tasks),
      frames_(parts.frames),
      leases_(parts.leases),
      channels_(parts.channels),
      polls_(parts.polls),
      throttle_(parts.throttle),
      audit_(parts.audit),
      busy_(parts.loop, kBusyRetryMs),
      gate_(parts.tokens, parts.tasks, parts.audit, parts.throttle),
      operator_(parts, max_event_streams) {}

void HubApi::handle(const std::shared_ptr<HttpExchange>& exchange) {
  handle_once(exchange, 0, std::nullopt);
}

void HubApi::handle_as(const std::shared_ptr<HttpExchange>& exchange, SessionCaller session) {
  handle_once(exchange, 0, std::move(session));
}

void HubApi::handle_once(const std::shared_ptr<HttpExchange>& exchange, int busy_retries,
                         const std::optional<SessionCaller>& session) {
  const auto& request = exchange->request();
  // The one error boundary of an HTTP request: its writes are kept or
  // dropped together, and no storage error escapes to the loop.
  const auto outcome =
      store_.guarded(request.method + " " + request.path, [&] { route(exchange, session); });
  if (outcome == core::SqlStore::Outcome::kDone || exchange->responded() || !exchange->is_open())
    return;
  if (outcome == core::SqlStore::Outcome::kBusy && busy_retries < kMaxBusyRetries) {
    // hub.db is locked by another process for a moment (`tether-hub agent
    // add`, sqlite3): nothing was kept, so the request runs again.
    busy_.later([this, exchange, busy_retries, session] {
      handle_once(exchange, busy_retries + 1, session);
    });
    return;
  }
  auto response = json_response(
      503, protocol::api_error_body("storage_unavailable",
                                    outcome == core::SqlStore::Outcome::kBusy
                                        ? "the hub's database is busy (locked by another "
                                          "process, or unreachable); retry"
                                        : "the hub could not read or write its storage; retry",
                                    true));
  response.headers.emplace_back("retry-after", "1");
  exchange->respond(std::move(response));
}

std::optional<core::HttpResponse> HubApi::check_before_body(const core::HttpRequest& request) {
  std::optional<std::string> why;
  try {
    why = tokens_.why_unverified(request.authorization);
  } catch (const std::exception&) {
    return std::nullopt;  // busy or failing storage: the route's own boundary answers
  }
  if (!why) return std::nullopt;
  if (auto refused = throttle_.refusal(request)) return refused;
  throttle_.failed(request);
  return json_response(401, protocol::api_error_body("unauthorized", *why, false));
}

void HubApi::route(const std::shared_ptr<HttpExchange>& exchange,
                   const std::optional<SessionCaller>& session) {
  const auto& request = exchange->request();
  const auto parts = split_path(request.path);
  const std::string& method = request.method;
  if (session) {  // the web UI: operator routes only
    if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1" ||
        !route_operator(exchange, parts, session)) {
      respond_error(exchange, protocol::ErrorCode::kNotFound,
                    "no route for " + method + " " + request.path);
    }
    return;
  }
  if (parts.size() == 1 && parts[0] == "healthz" && method == "GET") {
    exchange->respond(json_response(200, R"({"ok":true})"));
    return;
  }
  // Every other route authenticates (unauthorized() throttles failures).
  if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1") {
    respond_error(exchange, protocol::ErrorCode::kNotFound,
                  "no route for " + method + " " + request.path);
    return;
  }
  const std::string& section = parts[2];
  if (section == "agents" && parts.size() == 4 && parts[3] == "register" && method == "POST") {
    register_agent(exchange);
    return;
  }
  if (section == "agents" && parts.size() == 6 && parts[4] == "tasks" && parts[5] == "next" &&
      method == "GET") {
    poll(exchange, parts[3]);
  } else if (section == "attempts" && parts.size() == 5 && parts[4] == "final" && method == "PUT") {
    put_final(exchange, parts[3]);
  } else if (!route_operator(exchange, parts, std::nullopt)) {
    respond_error(exchange, protocol::ErrorCode::kNotFound,
                  "no route for " + method + " " + request.path);
  }
}

namespace {

// One operator route: the method, the path after /api/v1/ ("{}" stands for
// the one id or name segment), what it needs, and the handler.
struct OperatorRoute {
  const char* method;
  std::vector<std::string_view> shape;
  RouteNeeds needs;
  void (*handle)(OperatorRoutes& routes, const std::shared_ptr<HttpExchange>& exchange,
                 const Caller& caller, const std::string& id);
};

// The fan-out run routes (docs/protocol.md 11.5).
std::vector<OperatorRoute> run_routes() {
  using P = Permission;
  using S = AgentScope;
  using Exchange = std::shared_ptr<HttpExchange>;
  return {
      {"POST",
       {"runs"},
       {P::kSubmit, S::kNone, "run.submit"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string&) {
         r.runs().submit(e, c);
       }},
      {"GET",
       {"runs"},
       {P::kRead, S::kNone, "run.list"},
       [](OperatorRoutes& r, const Exchange& e, const Caller&, const std::string&) {
         r.runs().list(e);
       }},
      {"GET",
       {"runs", "{}"},
       {P::kRead, S::kNone, "run.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller&, const std::string& id) {
         r.runs().show(e, id);
       }},
      {"POST",
       {"runs", "{}", "cancel"},
       {P::kCancel, S::kNone, "run.cancel"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.runs().cancel(e, c, id);
       }},
      {"GET",
       {"runs", "{}", "events"},
       {P::kRead, S::kNone, "run.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.runs().events(e, c, id);
       }},
  };
}

// The operator API and what each route needs (docs/protocol.md 11.2).
const std::vector<OperatorRoute>& operator_route_table() {
  using P = Permission;
  using S = AgentScope;
  using Exchange = std::shared_ptr<HttpExchange>;
  static const std::vector<OperatorRoute> table = {
      {"POST",
       {"tasks"},
       {P::kSubmit, S::kAgentInBody, "task.submit"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string&) {
         r.submit(e, c);
       }},
      {"GET",
       {"tasks"},
       {P::kRead, S::kNone, "task.list"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string&) {
         r.list_tasks(e, c);
       }},
      {"GET",
       {"tasks", "{}"},
       {P::kRead, S::kTaskInPath, "task.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.show_task(e, c, id);
       }},
      {"GET",
       {"tasks", "{}", "output"},
       {P::kRead, S::kTaskInPath, "task.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller&, const std::string& id) {
         r.task_output(e, id);
       }},
      {"GET",
       {"tasks", "{}", "events"},
       {P::kRead, S::kTaskInPath, "task.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.task_events(e, c, id);
       }},
      {"POST",
       {"tasks", "{}", "cancel"},
       {P::kCancel, S::kTaskInPath, "task.cancel"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.cancel(e, c, id);
       }},
      {"GET",
       {"agents"},
       {P::kRead, S::kNone, "agent.list"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string&) {
         r.list_agents(e, c);
       }},
      {"DELETE",
       {"agents", "{}"},
       {P::kRemoveAgent, S::kAgentInPath, "agent.remove"},
       [](OperatorRoutes& r, const Exchange& e, const Caller& c, const std::string& id) {
         r.remove_agent(e, c, id);
       }},
      {"GET",
       {"audit"},
       {P::kReadAudit, S::kNone, "audit.read"},
       [](OperatorRoutes& r, const Exchange& e, const Caller&, const std::string&) {
         r.read_audit(e);
       }},
  };
  static const std::vector<OperatorRoute> with_runs = [] {
    std::vector<OperatorRoute> all = table;
    for (auto& route : run_routes())
      all.push_back(std::move(route));
    return all;
  }();
  return with_runs;
}

}  // namespace

bool HubApi::route_operator(const std::shared_ptr<HttpExchange>& exchange,
                            const std::vector<std::string>& parts,
                            const std::optional<SessionCaller>& session) {
  for (const auto& route : operator_route_table()) {
    if (exchange->request().method != route.method || parts.size() != route.shape.size() + 2)
      continue;
    std::string id;
    bool matches = true;
    for (size_t i = 0; i < route.shape.size() && matches; ++i) {
      if (route.shape[i] == "{}") {
        id = parts[i + 2];
      } else {
        matches = parts[i + 2] == route.shape[i];
      }
    }
    if (!matches) continue;
    if (auto caller = gate_.admit(exchange, route.needs, id, session ? &*session : nullptr)) {
      route.handle(operator_, exchange, *caller, id);
    }
    return true;
  }
  return false;
}

void HubApi::unauthorized(const std::shared_ptr<HttpExchange>& exchange,
                          const std::string& message) {
  gate_.unauthorized(exchange, message);
}

void HubApi::poll(const std::shared_ptr<HttpExchange>& exchange, const std::string& agent) {
  switch (tokens_.check_agent(agent, exchange->request().authorization)) {
    case AuthOutcome::kAllowed:
      break;
    case AuthOutcome::kForbidden:
      respond_error(exchange, protocol::ErrorCode::kForbidden,
                    tokens_.forbidden_agent_message(agent, exchange->request().authorization));
      return;
    case AuthOutcome::kUnauthorized:
      unauthorized(exchange, "missing or unknown agent token");
      return;
  }
  leases_.agent_seen(agent);
  uint64_t wait = 0;
  const std::string wait_text = exchange->request().query_value("wait");
  if (!wait_text.empty() && !parse_uint(wait_text, wait)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "wait: expected seconds, an integer from 0 to 2^63-1 (above 60 counts as 60)");
    return;
  }
  const std::string instance = exchange->request().query_value("instance");
  if (!instance.empty() && !protocol::is_valid_id(instance)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "instance: must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    return;
  }
  polls_.poll(agent, instance, exchange,
              static_cast<int>(std::min<uint64_t>(wait, kMaxPollWaitSeconds)));
}

void HubApi::put_final(const std::shared_ptr<HttpExchange>& exchange,
                       const std::string& attempt_id) {
  const auto& request = exchange->request();
  auto agent = tokens_.agent_of(request.authorization);
  if (!agent) {
    if (tokens_.operator_principal(request.authorization)) {
      respond_error(exchange, protocol::ErrorCode::kForbidden,
                    "finals come from agents, not operators");
    } else {
      unauthorized(exchange, "missing or unknown agent token");
    }
    return;
  }
  leases_.agent_seen(*agent);
  auto frame = protocol::decode_frame(request.body);
  if (!frame) {
    respond_error(exchange, 400, frame.error().code, frame.error().message);
    return;
  }
  auto* final_frame = std::get_if<protocol::TaskFinal>(&frame->payload);
  if (!final_frame) {
    respond_error(exchange, protocol::ErrorCode::kInvalidFrame, "frame.type: expected task.final");
    return;
  }
  if (final_frame->attempt.attempt_id != attempt_id) {
    respond_error(
        exchange, protocol::ErrorCode::kInvalidFrame,
        "frame.attempt_id: " + final_frame->attempt.attempt_id + " does not match the URL");
    return;
  }
  auto attempt = tasks_.find_attempt(attempt_id);
  if ((attempt && attempt->agent != *agent) ||
      (!frame->agent_id.empty() && frame->agent_id != *agent)) {
    respond_error(exchange, protocol::ErrorCode::kForbidden,
                  "attempt " + attempt_id + " is not this agent's");
    return;
  }
  auto verdict = frames_.on_final(*agent, *final_frame, frame->message_id);
  core::HttpResponse response = final_response(verdict);
  store_.after_commit([exchange, response = std::move(response)]() mutable {
    exchange->respond(std::move(response));
  });
}

void HubApi::register_agent(const std::shared_ptr<HttpExchange>& exchange) {
  auto document = protocol::parse_json_object(exchange->request().body, "registration");
  if (!document) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, document.error().message);
    return;
  }
  auto name = protocol::JsonObjectReader(*document, "registration").required_string("name");
  if (!name) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, name.error().message);
    return;
  }
  auto registered = tokens_.register_agent(exchange->request().authorization, *name);
  if (!registered) {
    if (registered.error().kind == Errc::kUnauthorized) {
      unauthorized(exchange, registered.error().message);
    } else {
      const bool exists = registered.error().kind == Errc::kExists;
      respond_error(exchange, exists ? 409 : 400, exists ? "agent_exists" : "invalid_field",
                    registered.error().message);
    }
    return;
  }
  protocol::JsonWriter detail;
  detail.begin_object();
  detail.key("labels");  // the labels the hub gave it, from the registration token
  detail.begin_object();
  for (const auto& [key, value] : registered->labels)
    detail.field(key, value);
  detail.end_object();
  detail.end_object();
  audit_.record(
      {registered->registration_id, "registration", throttle_.source_of(exchange->request())},
      {"agent.register", *name, detail.str(), {}});
  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", *name);
  json.field("token", registered->agent_token);
  json.end_object();
  std::string body = json.str();
  // Answered once the agent is stored: a token that reached its host works.
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(201, std::move(body)));
  });
}

}  // namespace tether::hub
