#include "hub/hub_api.hpp"

#include <charconv>
#include <set>
#include <vector>

#include "core/log.hpp"
#include "protocol/api_error.hpp"
#include "core/wall_clock.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::hub {

namespace {

using core::HttpExchange;
using core::json_response;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const size_t end = slash == std::string::npos ? path.size() : slash;
    if (end > start) parts.push_back(path.substr(start, end - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts;
}

void respond_error(const std::shared_ptr<HttpExchange>& exchange, int status,
                   const std::string& code, const std::string& message, bool retryable = false) {
  exchange->respond(json_response(status, protocol::api_error_body(code, message, retryable)));
}

// A number from the client (docs/protocol.md 2.1): 0 to 2^63-1, or `max`.
bool parse_uint(const std::string& text, uint64_t& out, uint64_t max = protocol::kMaxWireInteger) {
  auto value = protocol::parse_wire_integer(text, max);
  if (value) out = *value;
  return value.has_value();
}

void write_task(protocol::JsonWriter& json, const TaskRecord& task,
                const std::vector<AttemptRecord>& attempts) {
  json.begin_object();
  json.field("id", task.id);
  json.field("agent", task.agent);
  json.field("state", to_string(task.state));
  json.key("command");
  json.raw(task.command_json);
  json.key("env");
  json.raw(task.env_json);
  json.field("cwd", task.cwd);
  json.field("timeout_s", task.timeout_s);
  json.field("target", task.target);
  json.field("max_attempts", task.max_attempts);
  json.field("attempts_made", task.attempts_made);
  if (task.current_attempt.empty()) {
    json.key("current_attempt");
    json.null();
  } else {
    json.field("current_attempt", task.current_attempt);
  }
  json.field("cancel_requested", task.cancel_requested);
  json.field("output_verified", task.output_verified);
  if (task.verification_error.empty()) {
    json.key("verification_error");
    json.null();
  } else {
    json.field("verification_error", task.verification_error);
  }
  json.key("final");
  if (task.final_json.empty()) {
    json.null();
  } else {
    json.raw(task.final_json);
  }
  json.field("created_at", task.created_at);
  json.field("updated_at", task.updated_at);
  json.key("attempts");
  json.begin_array();
  for (const auto& attempt : attempts) {
    json.begin_object();
    json.field("id", attempt.id);
    json.field("number", attempt.number);
    json.field("state", to_string(attempt.state));
    json.field("dispatched_at", attempt.dispatched_at);
    json.field("started_at", attempt.started_at);
    json.field("finished_at", attempt.finished_at);
    if (!attempt.lost_reason.empty()) json.field("lost_reason", attempt.lost_reason);
    json.end_object();
  }
  json.end_array();
  json.end_object();
}

}  // namespace

HubApi::HubApi(const HubParts& parts, size_t max_event_streams)
    : loop_(parts.loop),
      store_(parts.store),
      tokens_(parts.tokens),
      agents_(parts.agents),
      tasks_(parts.tasks),
      events_(parts.events),
      viewers_(parts.viewers),
      dispatch_(parts.dispatch),
      frames_(parts.frames),
      leases_(parts.leases),
      channels_(parts.channels),
      polls_(parts.polls),
      throttle_(parts.throttle),
      max_event_streams_(max_event_streams),
      busy_(parts.loop, kBusyRetryMs) {}

void HubApi::handle(const std::shared_ptr<HttpExchange>& exchange) {
  handle_once(exchange, 0);
}

void HubApi::handle_once(const std::shared_ptr<HttpExchange>& exchange, int busy_retries) {
  const auto& request = exchange->request();
  // The one error boundary of an HTTP request: its writes are kept or
  // dropped together, and no storage error escapes to the loop.
  const auto outcome =
      store_.guarded(request.method + " " + request.path, [&] { route(exchange); });
  if (outcome == HubStore::Outcome::kDone || exchange->responded() || !exchange->is_open()) return;
  if (outcome == HubStore::Outcome::kBusy && busy_retries < kMaxBusyRetries) {
    // hub.db is locked by another process for a moment (`tether-hub agent
    // add`, sqlite3): nothing was kept, so the request runs again.
    busy_.later([this, exchange, busy_retries] { handle_once(exchange, busy_retries + 1); });
    return;
  }
  auto response =
      json_response(503, protocol::api_error_body("storage_unavailable",
                                    outcome == HubStore::Outcome::kBusy
                                        ? "the hub's database is locked by another process; retry"
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

void HubApi::route(const std::shared_ptr<HttpExchange>& exchange) {
  const auto& request = exchange->request();
  const auto parts = split_path(request.path);
  const std::string& method = request.method;
  if (parts.size() == 1 && parts[0] == "healthz" && method == "GET") {
    exchange->respond(json_response(200, R"({"ok":true})"));
    return;
  }
  // Every other route authenticates (unauthorized() throttles failures).
  if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1") {
    respond_error(exchange, 404, "not_found", "no route for " + method + " " + request.path);
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
  } else if (section == "agents" && parts.size() == 3 && method == "GET") {
    if (require_admin(exchange)) list_agents(exchange);
  } else if (section == "agents" && parts.size() == 4 && method == "DELETE") {
    if (require_admin(exchange)) remove_agent(exchange, parts[3]);
  } else if (section == "tasks" && parts.size() == 3 && method == "POST") {
    if (require_admin(exchange)) submit(exchange);
  } else if (section == "tasks" && parts.size() == 3 && method == "GET") {
    if (require_admin(exchange)) list_tasks(exchange);
  } else if (section == "tasks" && parts.size() == 4 && method == "GET") {
    if (require_admin(exchange)) show_task(exchange, parts[3]);
  } else if (section == "tasks" && parts.size() == 5 && parts[4] == "output" && method == "GET") {
    if (require_admin(exchange)) task_output(exchange, parts[3]);
  } else if (section == "tasks" && parts.size() == 5 && parts[4] == "events" && method == "GET") {
    if (require_admin(exchange)) task_events(exchange, parts[3]);
  } else if (section == "tasks" && parts.size() == 5 && parts[4] == "cancel" && method == "POST") {
    if (require_admin(exchange)) cancel(exchange, parts[3]);
  } else {
    respond_error(exchange, 404, "not_found", "no route for " + method + " " + request.path);
  }
}

bool HubApi::require_admin(const std::shared_ptr<HttpExchange>& exchange) {
  switch (tokens_.check_admin(exchange->request().authorization)) {
    case AuthOutcome::kAllowed:
      return true;
    case AuthOutcome::kForbidden:
      respond_error(exchange, 403, "forbidden", "this route needs an operator (admin) token");
      return false;
    case AuthOutcome::kUnauthorized:
      break;
  }
  unauthorized(exchange, "missing or unknown token");
  return false;
}

void HubApi::unauthorized(const std::shared_ptr<HttpExchange>& exchange,
                          const std::string& message) {
  if (auto refused = throttle_.refusal(exchange->request())) {
    exchange->respond(std::move(*refused));
    return;
  }
  throttle_.failed(exchange->request());
  respond_error(exchange, 401, "unauthorized", message);
}

void HubApi::poll(const std::shared_ptr<HttpExchange>& exchange, const std::string& agent) {
  switch (tokens_.check_agent(agent, exchange->request().authorization)) {
    case AuthOutcome::kAllowed:
      break;
    case AuthOutcome::kForbidden:
      respond_error(exchange, 403, "forbidden",
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
    respond_error(exchange, 400, "invalid_field",
                  "wait: expected seconds, an integer from 0 to 2^63-1 (above 60 counts as 60)");
    return;
  }
  const std::string instance = exchange->request().query_value("instance");
  if (!instance.empty() && !protocol::is_valid_id(instance)) {
    respond_error(exchange, 400, "invalid_field",
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
    if (tokens_.check_admin(request.authorization) == AuthOutcome::kAllowed) {
      respond_error(exchange, 403, "forbidden", "finals come from agents, not operators");
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
    respond_error(exchange, 400, "invalid_frame", "frame.type: expected task.final");
    return;
  }
  if (final_frame->attempt.attempt_id != attempt_id) {
    respond_error(
        exchange, 400, "invalid_frame",
        "frame.attempt_id: " + final_frame->attempt.attempt_id + " does not match the URL");
    return;
  }
  auto attempt = tasks_.find_attempt(attempt_id);
  if ((attempt && attempt->agent != *agent) ||
      (!frame->agent_id.empty() && frame->agent_id != *agent)) {
    respond_error(exchange, 403, "forbidden", "attempt " + attempt_id + " is not this agent's");
    return;
  }
  auto verdict = frames_.on_final(*agent, *final_frame, frame->message_id);
  core::HttpResponse response;
  if (!verdict.error) {
    response = json_response(200, std::string(R"({"accepted":true,"verified":)") +
                                      (verdict.verified ? "true" : "false") + "}");
  } else if (verdict.error->code == "output_incomplete") {
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
    response = json_response(409, json.str());
  } else {
    const std::string& code = verdict.error->code;
    const int status = code == "unknown_attempt"     ? 404
                       : code == "attempt_discarded" ? 410
                       : code == "final_conflict"    ? 422
                                                     : 400;
    response =
        json_response(status, protocol::api_error_body(code, verdict.error->message, verdict.error->retryable));
  }
  store_.after_commit([exchange, response = std::move(response)]() mutable {
    exchange->respond(std::move(response));
  });
}

void HubApi::submit(const std::shared_ptr<HttpExchange>& exchange) {
  auto request = protocol::decode_submit(exchange->request().body);
  if (!request) {
    respond_error(exchange, 400, "invalid_field", request.error().message);
    return;
  }
  if (!agents_.exists(request->agent)) {
    respond_error(exchange, 400, "invalid_field",
                  "task.agent: no agent named '" + request->agent + "'");
    return;
  }
  auto task = dispatch_.submit(*request);
  if (!task) {
    if (task.error().code == "target_busy") {
      protocol::JsonWriter json;
      json.begin_object();
      json.key("error");
      json.begin_object();
      json.field("code", "target_busy");
      json.field("message", "target '" + request->spec.target + "' of agent " + request->agent +
                                " is held by task " + task.error().message);
      json.field("retryable", true);
      json.field("active_task_id", task.error().message);
      json.end_object();
      json.end_object();
      exchange->respond(json_response(409, json.str()));
      return;
    }
    respond_error(exchange, 400, task.error().code, task.error().message);
    return;
  }
  protocol::JsonWriter json;
  write_task(json, *task, {});
  std::string body = json.str();
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(201, std::move(body)));
  });
}

void HubApi::list_tasks(const std::shared_ptr<HttpExchange>& exchange) {
  const std::string state = exchange->request().query_value("state");
  if (!state.empty() && !parse_task_state(state)) {
    respond_error(exchange, 400, "invalid_field", "state: unknown state '" + state + "'");
    return;
  }
  uint64_t limit = 100;
  const std::string limit_text = exchange->request().query_value("limit");
  if (!limit_text.empty() && (!parse_uint(limit_text, limit) || limit == 0 || limit > 1000)) {
    respond_error(exchange, 400, "invalid_field", "limit: expected 1 to 1000");
    return;
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.key("tasks");
  json.begin_array();
  for (const auto& task : tasks_.list_tasks(state, static_cast<int>(limit))) {
    write_task(json, task, {});
  }
  json.end_array();
  json.end_object();
  exchange->respond(json_response(200, json.str()));
}

void HubApi::show_task(const std::shared_ptr<HttpExchange>& exchange, const std::string& task_id) {
  auto task = tasks_.find_task(task_id);
  if (!task) {
    respond_error(exchange, 404, "not_found", "no task '" + task_id + "'");
    return;
  }
  protocol::JsonWriter json;
  write_task(json, *task, tasks_.attempts_of(task_id));
  exchange->respond(json_response(200, json.str()));
}

void HubApi::task_output(const std::shared_ptr<HttpExchange>& exchange,
                         const std::string& task_id) {
  const auto& request = exchange->request();
  auto task = tasks_.find_task(task_id);
  if (!task) {
    respond_error(exchange, 404, "not_found", "no task '" + task_id + "'");
    return;
  }
  auto stream = protocol::parse_stream_name(request.query_value("stream"));
  if (!stream) {
    respond_error(exchange, 400, "invalid_field", "stream: expected stdout or stderr");
    return;
  }
  uint64_t offset = 0;
  if (request.has_query("offset") && !parse_uint(request.query_value("offset"), offset)) {
    respond_error(exchange, 400, "invalid_field", "offset: expected an integer from 0 to 2^63-1");
    return;
  }
  const std::string attempt =
      request.has_query("attempt") ? request.query_value("attempt") : task->current_attempt;
  // Size first, from the chunk lengths alone; then the bytes, page by page.
  auto sizes = store_.statement(
      "SELECT byte_offset, length FROM events WHERE attempt_id = ? AND stream = ? AND "
      "kind = 'output' AND byte_offset + length > ? ORDER BY seq");
  sizes.bind(1, attempt);
  sizes.bind(2, std::string(to_string(*stream)));
  sizes.bind(3, static_cast<int64_t>(offset));
  uint64_t total = 0;
  while (sizes.executeStep()) {
    const uint64_t start = static_cast<uint64_t>(sizes.getColumn(0).getInt64());
    const uint64_t length = static_cast<uint64_t>(sizes.getColumn(1).getInt64());
    total += start < offset ? start + length - offset : length;
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
  response.body_source = [cursor, events, attempt, which, offset]() -> std::string {
    for (;;) {
      if (cursor->index == cursor->page.size()) {
        cursor->page = events->stream_page(attempt, which, cursor->after_seq, 16);
        cursor->index = 0;
        if (cursor->page.empty()) return {};
      }
      const StoredEvent& event = cursor->page[cursor->index++];
      cursor->after_seq = event.seq;
      if (event.kind != EventKind::kOutput || event.offset + event.length <= offset) continue;
      if (event.offset >= offset) return event.data;
      return event.data.substr(offset - event.offset);
    }
  };
  exchange->respond(std::move(response));
}

void HubApi::task_events(const std::shared_ptr<HttpExchange>& exchange,
                         const std::string& task_id) {
  const auto& request = exchange->request();
  if (!tasks_.find_task(task_id)) {
    respond_error(exchange, 404, "not_found", "no task '" + task_id + "'");
    return;
  }
  uint64_t after = 0;
  const std::string last =
      !request.last_event_id.empty() ? request.last_event_id : request.query_value("last_event_id");
  if (!last.empty() && !parse_uint(last, after)) {
    respond_error(exchange, 400, "invalid_field",
                  "Last-Event-ID: expected an event id, an integer from 0 to 2^63-1");
    return;
  }
  const bool follow = request.query_value("follow") != "0";
  const std::string output = request.query_value("output");
  if (!output.empty() && output != "0" && output != "1") {
    respond_error(exchange, 400, "invalid_field", "output: expected 0 or 1");
    return;
  }
  // Each stream holds a connection and, while it replays, reads storage: a
  // bound keeps viewers from starving agents.
  if (streams_.size() >= max_event_streams_) {
    // Viewers that left while their stream was idle still hold a place
    // until the next heartbeat would find them: look before refusing.
    for (auto it = streams_.begin(); it != streams_.end();) {
      if ((*it)->viewer_gone()) {
        (*it)->close();
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (streams_.size() >= max_event_streams_) {
    exchange->respond(unavailable_response(
        503, "too_many_streams",
        "the hub already serves " + std::to_string(streams_.size()) +
            " event streams (--max-event-streams " + std::to_string(max_event_streams_) + ")",
        5));
    return;
  }
  auto stream = std::make_shared<SseStream>(loop_, store_, events_, viewers_, tasks_, exchange, task_id,
                                            after, follow, output != "0");
  streams_.insert(stream);
  std::weak_ptr<SseStream> weak = stream;
  stream->set_on_finished([this, weak] {
    if (auto finished = weak.lock()) streams_.erase(finished);
  });
  stream->start();
}

void HubApi::register_agent(const std::shared_ptr<HttpExchange>& exchange) {
  auto document = protocol::parse_json_object(exchange->request().body, "registration");
  if (!document) {
    respond_error(exchange, 400, "invalid_field", document.error().message);
    return;
  }
  auto name = protocol::JsonObjectReader(*document, "registration").required_string("name");
  if (!name) {
    respond_error(exchange, 400, "invalid_field", name.error().message);
    return;
  }
  auto token = tokens_.register_agent(exchange->request().authorization, *name);
  if (!token) {
    const std::string& code = token.error().code;
    if (code == "unauthorized") {
      unauthorized(exchange, token.error().message);
    } else {
      respond_error(exchange, code == "exists" ? 409 : 400,
                    code == "exists" ? "agent_exists" : "invalid_field", token.error().message);
    }
    return;
  }
  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", *name);
  json.field("token", *token);
  json.end_object();
  std::string body = json.str();
  // Answered once the agent is stored: a token that reached its host works.
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(201, std::move(body)));
  });
}

void HubApi::remove_agent(const std::shared_ptr<HttpExchange>& exchange, const std::string& name) {
  if (!agents_.exists(name)) {
    respond_error(exchange, 404, "not_found", "no agent named '" + name + "'");
    return;
  }
  const int ended = dispatch_.end_tasks_of_removed_agent(name);
  if (!agents_.remove(name)) {
    respond_error(exchange, 404, "not_found", "no agent named '" + name + "'");
    return;
  }
  core::log_info("api", "agent " + name + " removed; " + std::to_string(ended) + " task(s) ended");
  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", name);
  json.field("tasks_ended", static_cast<uint64_t>(ended));
  json.end_object();
  std::string body = json.str();
  store_.after_commit([this, exchange, name, body = std::move(body)]() mutable {
    // Its token no longer verifies; a connected channel goes now.
    channels_.close_agent(name, 1008, "agent removed");
    exchange->respond(json_response(200, std::move(body)));
  });
}

void HubApi::cancel(const std::shared_ptr<HttpExchange>& exchange, const std::string& task_id) {
  std::string reason = "requested by an operator";
  if (!exchange->request().body.empty()) {
    auto document = protocol::parse_json_object(exchange->request().body, "cancel");
    if (!document) {
      respond_error(exchange, 400, "invalid_field", document.error().message);
      return;
    }
    auto given = protocol::JsonObjectReader(*document, "cancel").optional_string("reason");
    if (!given) {
      respond_error(exchange, 400, "invalid_field", given.error().message);
      return;
    }
    if (*given && !(*given)->empty()) reason = **given;
  }
  auto task = dispatch_.cancel(task_id, reason);
  if (!task) {
    respond_error(exchange, task.error().code == "not_found" ? 404 : 409, task.error().code,
                  task.error().message);
    return;
  }
  protocol::JsonWriter json;
  write_task(json, *task, {});
  std::string body = json.str();
  store_.after_commit([exchange, body = std::move(body)]() mutable {
    exchange->respond(json_response(202, std::move(body)));
  });
}

void HubApi::list_agents(const std::shared_ptr<HttpExchange>& exchange) {
  const std::vector<AgentRecord> rows = agents_.list();
  protocol::JsonWriter json;
  json.begin_object();
  json.key("agents");
  json.begin_array();
  for (const auto& row : rows) {
    json.begin_object();
    json.field("name", row.name);
    json.field("connected", channels_.is_connected(row.name));
    std::string last_seen = row.last_seen_at;
    if (auto ms = leases_.last_seen_ms(row.name)) {
      last_seen =
          core::format_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms)));
    }
    json.field("last_seen_at", last_seen);
    json.field("version", row.version);
    json.field("created_at", row.created_at);
    json.key("labels");
    json.begin_object();
    for (const auto& [key, value] : row.labels)
      json.field(key, value);
    json.end_object();
    json.field("running_attempts",
               static_cast<uint64_t>(tasks_.active_attempts_of(row.name).size()));
    json.key("outbox");
    json.begin_object();
    json.field("rows", row.outbox_rows);
    json.field("bytes", row.outbox_bytes);
    json.field("reported_at", row.outbox_reported_at);
    json.end_object();
    json.end_object();
  }
  json.end_array();
  json.end_object();
  exchange->respond(json_response(200, json.str()));
}

void HubApi::close_streams() {
  auto streams = streams_;
  for (const auto& stream : streams)
    stream->close();
}

}  // namespace tether::hub
