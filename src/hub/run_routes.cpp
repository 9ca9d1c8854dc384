#include "hub/run_routes.hpp"

#include "hub/http_replies.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/json_writer.hpp"

namespace tether::hub {

using core::json_response;

namespace {

std::string run_json(const protocol::RunView& view) {
  protocol::JsonWriter json;
  protocol::write_run_view(json, view);
  return json.str();
}

}  // namespace

void RunRoutes::submit(const Exchange& exchange, const Caller& caller) {
  auto request = protocol::decode_run_request(exchange->request().body);
  if (!request) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, request.error().message);
    return;
  }
  auto agents = runs_.targets(*request);
  if (!agents) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, agents.error().message);
    return;
  }
  for (const auto& agent : *agents) {
    if (auto why = caller.principal.agent_refusal(agent, "agent '" + agent + "' of this run")) {
      audit_.record(caller.actor(), {"run.submit", "", "{}", *why});
      respond_error(exchange, protocol::ErrorCode::kForbidden, *why);
      return;
    }
  }
  auto run = runs_.create(*request, *agents, caller.principal.name);
  if (!run) {
    respond_error(exchange, 400, run.error().code, run.error().message);
    return;
  }
  protocol::JsonWriter detail;  // names only: env values stay out of the trail
  detail.begin_object();
  if (run->selector.empty()) {
    detail.field("agents", static_cast<uint64_t>(agents->size()));
  } else {
    detail.field("selector", run->selector);
  }
  detail.field("tasks", static_cast<uint64_t>(agents->size()));
  detail.end_object();
  audit_.record(caller.actor(), {"run.submit", run->id, detail.str(), {}});
  std::string body = run_json(runs_.view(*run, true));
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(201, std::move(body)));
  });
}

void RunRoutes::list(const Exchange& exchange) {
  uint64_t limit = 50;
  const std::string text = exchange->request().query_value("limit");
  if (!text.empty() && (!parse_uint(text, limit) || limit < 1 || limit > 1000)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, "limit: expected 1 to 1000");
    return;
  }
  const std::string state = exchange->request().query_value("state");
  if (!state.empty() && !protocol::is_run_state(state)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "state: unknown run state '" + state + "'");
    return;
  }
  const std::string before = exchange->request().query_value("before");
  if (!before.empty() && !records_.find(before)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "before: no run '" + before + "' (give the last id of the previous page)");
    return;
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.key("runs");
  json.begin_array();
  for (const auto& run : records_.list(state, before, static_cast<int>(limit)))
    protocol::write_run_view(json, runs_.view(run, false));
  json.end_array();
  json.end_object();
  exchange->respond(json_response(200, json.str()));
}

void RunRoutes::show(const Exchange& exchange, const std::string& run_id) {
  auto run = records_.find(run_id);
  if (!run) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no run '" + run_id + "'");
    return;
  }
  exchange->respond(json_response(200, run_json(runs_.view(*run, true))));
}

void RunRoutes::cancel(const Exchange& exchange, const Caller& caller, const std::string& run_id) {
  auto given = cancel_reason(exchange->request().body, "requested by " + caller.principal.name);
  if (!given) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, given.error().message);
    return;
  }
  const std::string reason = std::move(*given);
  auto run = runs_.cancel(run_id, reason);
  if (!run) {
    respond_error(exchange, run.error().kind == Errc::kNotFound ? 404 : 409, run.error().code,
                  run.error().message);
    return;
  }
  protocol::JsonWriter detail;
  detail.begin_object();
  detail.field("reason", reason);
  detail.end_object();
  audit_.record(caller.actor(), {"run.cancel", run_id, detail.str(), {}});
  std::string body = run_json(runs_.view(*run, true));
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(202, std::move(body)));
  });
}

void RunRoutes::events(const Exchange& exchange, const Caller& caller, const std::string& run_id) {
  if (!records_.find(run_id)) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no run '" + run_id + "'");
    return;
  }
  auto ended = [this, run_id] {
    auto run = records_.find(run_id);
    return !run || protocol::is_terminal_run_state(run->state);
  };
  streams_.open(exchange, SseSubject{run_id, true, ended, {}, caller.still_authorized});
}

}  // namespace tether::hub
