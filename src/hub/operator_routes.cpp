#include "hub/operator_routes.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "hub/http_replies.hpp"
#include "protocol/api_error.hpp"
#include "protocol/audit_api.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/report_json.hpp"
#include "protocol/selector.hpp"

namespace tether::hub {

using core::HttpExchange;
using core::json_response;

namespace {

void write_task(protocol::JsonWriter& json, const TaskRecord& task,
                const std::vector<AttemptRecord>& attempts, bool env_values_shown) {
  protocol::TaskView view;
  view.id = task.id;
  view.agent = task.agent;
  view.selector = task.selector;
  view.state = std::string(to_string(task.state));
  view.command_json = task.command_json;
  view.env_json = task.env_json;
  view.env_values_withheld = !env_values_shown;
  view.secret_names = task.secret_names;  // never their values
  view.cwd = task.cwd;
  view.timeout_s = task.timeout_s;
  view.target = task.target;
  view.limits = task.limits;
  view.max_attempts = task.max_attempts;
  view.attempts_made = task.attempts_made;
  view.current_attempt = task.current_attempt;
  view.cancel_requested = task.cancel_requested;
  view.output_verified = task.output_verified;
  view.verification_error = task.verification_error;
  view.final_json = task.final_json;
  view.created_at = task.created_at;
  view.updated_at = task.updated_at;
  for (const auto& attempt : attempts) {
    view.attempts.push_back({attempt.id, attempt.number, std::string(to_string(attempt.state)),
                             attempt.dispatched_at, attempt.started_at, attempt.finished_at,
                             attempt.lost_reason});
  }
  protocol::write_task_view(json, view);
}

// The 409 answer to a submit with on_conflict reject: names both targets
// when the holder's is not the same (docs/protocol.md 3: "app" and "app/web"
// conflict), and the holder's id in `active_task_id`.
std::string target_busy_body(const protocol::SubmitRequest& request, const std::string& holder_id,
                             const std::optional<TaskRecord>& holder) {
  const std::string& target = request.spec.target;
  std::string message = "target '" + target + "' of agent " + request.agent;
  if (holder && holder->target != target) {
    message += " conflicts with target '" + holder->target + "' held by task " + holder_id;
  } else {
    message += " is held by task " + holder_id;
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.key("error");
  json.begin_object();
  json.field("code", "target_busy");
  json.field("message", message);
  json.field("retryable", true);
  json.field("active_task_id", holder_id);
  json.end_object();
  json.end_object();
  return json.str();
}

}  // namespace

OperatorRoutes::OperatorRoutes(const HubParts& parts, size_t max_event_streams)
    : store_(parts.store),
      agents_(parts.agents),
      tasks_(parts.tasks),
      events_(parts.events),
      dispatch_(parts.dispatch),
      leases_(parts.leases),
      channels_(parts.channels),
      audit_(parts.audit),
      streams_(parts.loop, parts.store, parts.events, parts.viewers, max_event_streams),
      runs_(parts, streams_) {}

void OperatorRoutes::submit(const Exchange& exchange, const Caller& caller) {
  auto request = protocol::decode_submit(exchange->request().body);
  if (!request) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, request.error().message);
    return;
  }
  if (!request->selector.empty() && !caller.principal.agent_patterns.empty()) {
    // Which agent takes a pool task is decided later: it could be one this
    // operator may not reach.
    const std::string why = "operator token " + caller.principal.name +
                            " is limited to agents matching its patterns: it may not submit "
                            "pool tasks (selector)";
    audit_.record(caller.actor(), {"task.submit", "", "{}", why});
    respond_error(exchange, protocol::ErrorCode::kForbidden, why);
    return;
  }
  if (request->selector.empty() && !agents_.exists(request->agent)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "task.agent: no agent named '" + request->agent + "'");
    return;
  }
  auto task = dispatch_.submit(*request);
  if (!task) {
    if (task.error().code == "target_busy") {
      const std::string& holder_id = task.error().message;
      exchange->respond(
          json_response(409, target_busy_body(*request, holder_id, tasks_.find_task(holder_id))));
      return;
    }
    respond_error(exchange, 400, task.error().code, task.error().message);
    return;
  }
  protocol::JsonWriter detail;  // names only: env values stay out of the trail
  detail.begin_object();
  if (task->selector.empty()) {
    detail.field("agent", task->agent);
  } else {
    detail.field("selector", task->selector);
  }
  detail.key("env_names");
  detail.begin_array();
  for (const auto& [name, value] : request->spec.env)
    detail.string(name);
  detail.end_array();
  if (!task->target.empty()) detail.field("target", task->target);
  detail.end_object();
  audit_.record(caller.actor(), {"task.submit", task->id, detail.str(), {}});
  protocol::JsonWriter json;
  write_task(json, *task, {}, true);
  std::string body = json.str();
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(201, std::move(body)));
  });
}

void OperatorRoutes::list_tasks(const Exchange& exchange, const Caller& caller) {
  const std::string state = exchange->request().query_value("state");
  if (!state.empty() && !parse_task_state(state)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "state: unknown state '" + state + "'");
    return;
  }
  uint64_t limit = 100;
  const std::string limit_text = exchange->request().query_value("limit");
  if (!limit_text.empty() && (!parse_uint(limit_text, limit) || limit == 0 || limit > 1000)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, "limit: expected 1 to 1000");
    return;
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.key("tasks");
  json.begin_array();
  const Principal& principal = caller.principal;
  auto visible = [&principal](const std::string& agent) {
    return principal.may_reach_agent(agent);
  };
  const std::string before = exchange->request().query_value("before");
  if (!before.empty() && !tasks_.find_task(before)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "before: no task '" + before + "' (give the last id of the previous page)");
    return;
  }
  for (const auto& task : tasks_.list_tasks(state, before, static_cast<int>(limit), visible)) {
    write_task(json, task, {}, principal.sees_env_values());
  }
  json.end_array();
  json.end_object();
  exchange->respond(json_response(200, json.str()));
}

void OperatorRoutes::show_task(const Exchange& exchange, const Caller& caller,
                               const std::string& task_id) {
  auto task = tasks_.find_task(task_id);
  if (!task) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no task '" + task_id + "'");
    return;
  }
  protocol::JsonWriter json;
  write_task(json, *task, tasks_.attempts_of(task_id), caller.principal.sees_env_values());
  exchange->respond(json_response(200, json.str()));
}

void OperatorRoutes::task_output(const Exchange& exchange, const std::string& task_id) {
  const auto& request = exchange->request();
  auto task = tasks_.find_task(task_id);
  if (!task) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no task '" + task_id + "'");
    return;
  }
  auto stream = protocol::parse_stream_name(request.query_value("stream"));
  if (!stream) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "stream: expected stdout or stderr");
    return;
  }
  uint64_t offset = 0;
  if (request.has_query("offset") && !parse_uint(request.query_value("offset"), offset)) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "offset: expected an integer from 0 to 2^63-1");
    return;
  }
  // The bytes [offset, end): to the end of what is stored unless `length`.
  uint64_t end = protocol::kMaxWireInteger;
  if (request.has_query("length")) {
    uint64_t length = 0;
    if (!parse_uint(request.query_value("length"), length)) {
      respond_error(exchange, protocol::ErrorCode::kInvalidField,
                    "length: expected an integer from 0 to 2^63-1");
      return;
    }
    end = offset + std::min(length, protocol::kMaxWireInteger - offset);
  }
  const std::string attempt =
      request.has_query("attempt") ? request.query_value("attempt") : task->current_attempt;
  // Size first, from the chunk lengths alone; then the bytes, page by page.
  auto sizes = store_.query(
      "SELECT byte_offset, length FROM events WHERE attempt_id = ? AND stream = ? AND "
      "kind = 'output' AND byte_offset + length > ? AND byte_offset < ? ORDER BY seq");
  sizes.bind(1, attempt);
  sizes.bind(2, std::string(to_string(*stream)));
  sizes.bind(3, static_cast<int64_t>(offset));
  sizes.bind(4, static_cast<int64_t>(end));
  uint64_t total = 0;
  while (sizes.executeStep()) {
    const uint64_t start = static_cast<uint64_t>(sizes.getColumn(0).getInt64());
    const uint64_t stop = start + static_cast<uint64_t>(sizes.getColumn(1).getInt64());
    total += std::min(stop, end) - std::max(start, offset);
  }
  core::HttpResponse response;
  response.content_type = "application/octet-stream";
  response.headers.emplace_back("x-tether-attempt", attempt);
  response.content_length = total;
  struct Cursor {
    uint64_t after_seq = 0;
    std::vector<StoredEvent> page;
    size_t index = 0;
  };
  auto cursor = std::make_shared<Cursor>();
  EventLog* events = &events_;
  const auto which = *stream;
  response.body_source = [cursor, events, attempt, which, offset, end]() -> std::string {
    for (;;) {
      if (cursor->index == cursor->page.size()) {
        cursor->page = events->stream_page(attempt, which, cursor->after_seq, 16);
        cursor->index = 0;
        if (cursor->page.empty()) return {};
      }
      const StoredEvent& event = cursor->page[cursor->index++];
      cursor->after_seq = event.seq;
      if (event.offset >= end) return {};
      if (event.kind != EventKind::kOutput || event.offset + event.length <= offset) continue;
      const uint64_t from = std::max(event.offset, offset) - event.offset;
      const uint64_t to = std::min(event.offset + event.length, end) - event.offset;
      return event.data.substr(from, to - from);
    }
  };
  exchange->respond(std::move(response));
}

void OperatorRoutes::task_events(const Exchange& exchange, const Caller& caller,
                                 const std::string& task_id) {
  auto task = tasks_.find_task(task_id);
  if (!task) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no task '" + task_id + "'");
    return;
  }
  const auto& request = exchange->request();
  OutputFrom from;
  if (request.has_query("tail_bytes")) {
    uint64_t tail_bytes = 0;
    if (!parse_uint(request.query_value("tail_bytes"), tail_bytes) || tail_bytes == 0) {
      respond_error(exchange, protocol::ErrorCode::kInvalidField,
                    "tail_bytes: expected an integer from 1 to 2^63-1");
      return;
    }
    // Fixed now: output stored later is all sent, so the replay has no hole.
    // Earlier attempts' output goes too (its ids are smaller).
    if (!task->current_attempt.empty()) from = events_.tail_of(task->current_attempt, tail_bytes);
  }
  auto ended = [this, task_id] {
    auto task = tasks_.find_task(task_id);
    return !task || is_terminal(task->state);
  };
  streams_.open(exchange, SseSubject{task_id, false, ended, from, caller.still_authorized});
}

void OperatorRoutes::remove_agent(const Exchange& exchange, const Caller& caller,
                                  const std::string& name) {
  if (!agents_.exists(name)) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no agent named '" + name + "'");
    return;
  }
  const int ended = dispatch_.end_tasks_of_removed_agent(name);
  if (!agents_.remove(name)) {
    respond_error(exchange, protocol::ErrorCode::kNotFound, "no agent named '" + name + "'");
    return;
  }
  core::log_info("api", "agent " + name + " removed by " + caller.principal.name + "; " +
                            std::to_string(ended) + " task(s) ended");
  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", name);
  json.field("tasks_ended", static_cast<uint64_t>(ended));
  json.end_object();
  std::string body = json.str();
  audit_.record(caller.actor(), {"agent.remove", name, body, {}});
  store_.after_commit([this, exchange, name, body = std::move(body)]() mutable {
    // Its token no longer verifies; a connected channel goes now.
    channels_.close_agent(name, 1008, "agent removed");
    exchange->respond(json_response(200, std::move(body)));
  });
}

void OperatorRoutes::cancel(const Exchange& exchange, const Caller& caller,
                            const std::string& task_id) {
  auto given = cancel_reason(exchange->request().body, "requested by an operator");
  if (!given) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, given.error().message);
    return;
  }
  const std::string reason = std::move(*given);
  auto task = dispatch_.cancel(task_id, reason);
  if (!task) {
    respond_error(exchange, task.error().kind == Errc::kNotFound ? 404 : 409, task.error().code,
                  task.error().message);
    return;
  }
  protocol::JsonWriter detail;
  detail.begin_object();
  detail.field("agent", task->agent);
  detail.field("reason", reason);
  detail.end_object();
  audit_.record(caller.actor(), {"task.cancel", task_id, detail.str(), {}});
  protocol::JsonWriter json;
  write_task(json, *task, {}, caller.principal.sees_env_values());
  std::string body = json.str();
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(202, std::move(body)));
  });
}

void OperatorRoutes::list_agents(const Exchange& exchange, const Caller& caller) {
  std::optional<protocol::Selector> selector;
  if (exchange->request().has_query("selector")) {
    auto parsed = protocol::Selector::parse(exchange->request().query_value("selector"));
    if (!parsed) {
      respond_error(exchange, protocol::ErrorCode::kInvalidField, parsed.error().message);
      return;
    }
    selector = std::move(*parsed);
  }
  const std::vector<AgentRecord> rows = agents_.list();
  protocol::JsonWriter json;
  json.begin_object();
  json.key("agents");
  json.begin_array();
  for (const auto& row : rows) {
    if (!caller.principal.may_reach_agent(row.name)) continue;
    if (selector && !selector->matches(row.labels)) continue;
    protocol::AgentView agent;
    agent.name = row.name;
    agent.connected = channels_.is_connected(row.name);
    agent.last_seen_at = row.last_seen_at;
    if (auto ms = leases_.last_seen_ms(row.name)) {
      agent.last_seen_at =
          core::format_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms)));
    }
    agent.version = row.version;
    agent.created_at = row.created_at;
    agent.labels = row.labels;
    agent.reported_labels = row.reported_labels;
    agent.hub_labels = row.hub_labels;
    agent.running_attempts = tasks_.active_attempts_of(row.name).size();
    if (row.outbox_rows) agent.outbox_rows = static_cast<uint64_t>(*row.outbox_rows);
    if (row.outbox_bytes) agent.outbox_bytes = static_cast<uint64_t>(*row.outbox_bytes);
    agent.outbox_reported_at = row.outbox_reported_at;
    protocol::write_agent_view(json, agent);
  }
  json.end_array();
  json.end_object();
  exchange->respond(json_response(200, json.str()));
}

void OperatorRoutes::read_audit(const Exchange& exchange) {
  auto query = protocol::decode_audit_query(exchange->request().query);
  if (!query) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, query.error().message);
    return;
  }
  exchange->respond(json_response(200, protocol::encode_audit_page(audit_.read(*query))));
}

}  // namespace tether::hub
