#include "protocol/operator_api.hpp"

#include <set>

#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/selector.hpp"

namespace tether::protocol {

Result<SubmitRequest> decode_submit(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "task"));
  static const std::set<std::string> kFields = {
      "agent",  "command",     "env",          "secrets", "cwd",     "timeout_s",
      "target", "on_conflict", "max_attempts", "limits",  "selector"};
  const rapidjson::Value& fields = *document;  // const: clang 14 rejects the mutable iterator
  for (const auto& member : fields.GetObject()) {
    const std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!kFields.count(name))
      return make_error(Errc::kInvalid, "invalid_field", "task." + name + ": unknown field");
  }
  JsonObjectReader task(*document, "task");
  SubmitRequest request;
  TETHER_TRY(agent, task.optional_string("agent"));
  TETHER_TRY(selector, task.optional_string("selector"));
  if (agent->has_value() == selector->has_value()) {
    return task.field_error("agent",
                            "give exactly one of agent (a name) or selector (a pool "
                            "task: any agent whose labels match)");
  }
  if (*agent) {
    if (!is_valid_id(**agent)) {
      return task.field_error("agent", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    }
    request.agent = std::move(**agent);
  } else {
    auto parsed = Selector::parse(**selector);
    if (!parsed) return task.field_error("selector", parsed.error().message);
    request.selector = parsed->text();
  }
  if (auto body_fields = read_task_body(task, request.spec); !body_fields) {
    return body_fields.error();
  }
  TETHER_TRY(on_conflict, task.optional_string("on_conflict"));
  const std::string policy = on_conflict->value_or("queue");
  if (policy != "queue" && policy != "reject") {
    return task.field_error("on_conflict", "expected \"queue\" or \"reject\"");
  }
  request.reject_on_conflict = policy == "reject";
  if (request.reject_on_conflict && !request.selector.empty()) {
    return task.field_error("on_conflict",
                            "\"reject\" needs an agent: a pool task holds no agent's target "
                            "until one takes it");
  }
  TETHER_TRY(max_attempts, task.optional_uint("max_attempts"));
  const uint64_t attempts = max_attempts->value_or(1);
  if (attempts < 1 || attempts > kMaxAttempts) {
    return make_error(Errc::kInvalid, "invalid_field",
                      "task.max_attempts: must be from 1 to " + std::to_string(kMaxAttempts));
  }
  request.max_attempts = static_cast<int>(attempts);
  return request;
}

std::string encode_submit(const SubmitRequest& request) {
  JsonWriter json;
  json.begin_object();
  if (request.selector.empty()) {
    json.field("agent", request.agent);
  } else {
    json.field("selector", request.selector);
  }
  write_task_body(json, request.spec);
  json.field("on_conflict", request.reject_on_conflict ? "reject" : "queue");
  json.field("max_attempts", static_cast<uint64_t>(request.max_attempts));
  json.end_object();
  return json.str();
}

namespace {

void null_or(JsonWriter& json, const char* name, const std::string& text) {
  if (text.empty()) {
    json.key(name);
    json.null();
  } else {
    json.field(name, text);
  }
}

void write_attempt_view(JsonWriter& json, const AttemptView& attempt) {
  json.begin_object();
  json.field("id", attempt.id);
  json.field("number", attempt.number);
  json.field("state", attempt.state);
  json.field("dispatched_at", attempt.dispatched_at);
  json.field("started_at", attempt.started_at);
  json.field("finished_at", attempt.finished_at);
  if (!attempt.lost_reason.empty()) json.field("lost_reason", attempt.lost_reason);
  json.end_object();
}

// A string member that may be absent or null (both read as empty).
Result<std::string> text_or_null(const JsonObjectReader& object, const char* field) {
  TETHER_TRY(text, object.optional_string(field));
  return text->value_or("");
}

// The stored env object, or its names with null values when they are
// withheld (an env the hub stored that does not parse shows as {}).
void write_env_view(JsonWriter& json, const TaskView& task) {
  if (!task.env_values_withheld) {
    json.raw(task.env_json);
    return;
  }
  json.begin_object();
  if (auto env = parse_json_object(task.env_json, "env")) {
    const rapidjson::Value& names = *env;  // const: clang 14 rejects the mutable iterator
    for (const auto& member : names.GetObject()) {
      json.key(std::string_view(member.name.GetString(), member.name.GetStringLength()));
      json.null();
    }
  }
  json.end_object();
}

}  // namespace

void write_task_view(JsonWriter& json, const TaskView& task) {
  json.begin_object();
  json.field("id", task.id);
  json.field("agent", task.agent);
  if (!task.selector.empty()) json.field("selector", task.selector);
  json.field("state", task.state);
  json.key("command");
  json.raw(task.command_json);
  json.key("env");
  write_env_view(json, task);
  json.key("secrets");
  json.begin_array();
  for (const auto& name : task.secret_names)
    json.string(name);
  json.end_array();
  json.field("cwd", task.cwd);
  json.field("timeout_s", task.timeout_s);
  json.field("target", task.target);
  json.key("limits");
  json.raw(limits_json(task.limits));
  json.field("max_attempts", task.max_attempts);
  json.field("attempts_made", task.attempts_made);
  null_or(json, "current_attempt", task.current_attempt);
  json.field("cancel_requested", task.cancel_requested);
  json.field("output_verified", task.output_verified);
  null_or(json, "verification_error", task.verification_error);
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
  for (const auto& attempt : task.attempts)
    write_attempt_view(json, attempt);
  json.end_array();
  json.end_object();
}

namespace {

Result<DecodedTask> read_task_view(const JsonObjectReader& object) {
  DecodedTask decoded;
  TaskView& task = decoded.task;
  TETHER_TRY(id, object.required_string("id"));
  task.id = std::move(*id);
  TETHER_TRY(agent, object.required_string("agent"));
  task.agent = std::move(*agent);
  TETHER_TRY(state, object.required_string("state"));
  task.state = std::move(*state);
  TETHER_TRY(selector, text_or_null(object, "selector"));
  task.selector = std::move(*selector);
  TETHER_TRY(created, text_or_null(object, "created_at"));
  task.created_at = std::move(*created);
  TETHER_TRY(updated, text_or_null(object, "updated_at"));
  task.updated_at = std::move(*updated);
  TETHER_TRY(problem, text_or_null(object, "verification_error"));
  task.verification_error = std::move(*problem);
  TETHER_TRY(verified, object.optional_bool("output_verified"));
  task.output_verified = *verified;
  TETHER_TRY(command, object.optional_object("command"));
  if (*command) {
    TETHER_TRY(read, read_command(JsonObjectReader(**command, object.path() + ".command"),
                                  decoded.command));
  }
  if (object.has("secrets")) {
    TETHER_TRY(secrets, object.required_array("secrets"));
    for (const auto& name : (*secrets)->GetArray()) {
      if (!name.IsString()) {
        return object.field_error("secrets", "expected an array of names (strings)");
      }
      task.secret_names.emplace_back(name.GetString(), name.GetStringLength());
    }
  }
  TETHER_TRY(limits, read_limits(object));
  task.limits = *limits;
  TETHER_TRY(final_object, object.optional_object("final"));
  if (*final_object) {
    TETHER_TRY(report,
               read_final_fields(JsonObjectReader(**final_object, object.path() + ".final")));
    decoded.final_report = std::move(*report);
  }
  return decoded;
}

// The objects of `field`, an array, each read by `read_one`.
template <class T, class Read>
Result<std::vector<T>> read_objects(const JsonObjectReader& object, const char* field,
                                    Read read_one) {
  TETHER_TRY(array, object.required_array(field));
  std::vector<T> items;
  size_t index = 0;
  for (const auto& item : (*array)->GetArray()) {
    const std::string path = object.path() + "." + field + "[" + std::to_string(index++) + "]";
    if (!item.IsObject()) {
      return make_error(Errc::kProtocol, "invalid_field", path + ": expected an object");
    }
    TETHER_TRY(one, read_one(JsonObjectReader(item, path)));
    items.push_back(std::move(*one));
  }
  return items;
}

Result<AgentView> read_agent_view(const JsonObjectReader& object) {
  AgentView agent;
  TETHER_TRY(name, object.required_string("name"));
  agent.name = std::move(*name);
  TETHER_TRY(connected, object.optional_bool("connected"));
  agent.connected = connected->value_or(false);
  TETHER_TRY(seen, text_or_null(object, "last_seen_at"));
  agent.last_seen_at = std::move(*seen);
  TETHER_TRY(version, text_or_null(object, "version"));
  agent.version = std::move(*version);
  TETHER_TRY(created, text_or_null(object, "created_at"));
  agent.created_at = std::move(*created);
  TETHER_TRY(running, object.optional_uint("running_attempts"));
  agent.running_attempts = running->value_or(0);
  TETHER_TRY(labels, read_labels(object, "labels"));
  agent.labels = std::move(*labels);
  TETHER_TRY(reported, read_labels(object, "reported_labels"));
  agent.reported_labels = std::move(*reported);
  TETHER_TRY(hub_labels, read_labels(object, "hub_labels"));
  agent.hub_labels = std::move(*hub_labels);
  TETHER_TRY(outbox, object.optional_object("outbox"));
  if (*outbox) {
    JsonObjectReader depth(**outbox, object.path() + ".outbox");
    TETHER_TRY(rows, depth.optional_uint("rows"));
    agent.outbox_rows = *rows;
    TETHER_TRY(bytes, depth.optional_uint("bytes"));
    agent.outbox_bytes = *bytes;
    TETHER_TRY(reported, text_or_null(depth, "reported_at"));
    agent.outbox_reported_at = std::move(*reported);
  }
  return agent;
}

}  // namespace

Result<DecodedTask> decode_task_view(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "task"));
  return read_task_view(JsonObjectReader(*document, "task"));
}

Result<std::vector<DecodedTask>> decode_task_list(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "answer"));
  return read_objects<DecodedTask>(JsonObjectReader(*document, "answer"), "tasks", read_task_view);
}

void write_agent_view(JsonWriter& json, const AgentView& agent) {
  json.begin_object();
  json.field("name", agent.name);
  json.field("connected", agent.connected);
  json.field("last_seen_at", agent.last_seen_at);
  json.field("version", agent.version);
  json.field("created_at", agent.created_at);
  json.key("labels");
  write_labels(json, agent.labels);
  json.key("reported_labels");
  write_labels(json, agent.reported_labels);
  json.key("hub_labels");
  write_labels(json, agent.hub_labels);
  json.field("running_attempts", agent.running_attempts);
  json.key("outbox");
  json.begin_object();
  json.field("rows", agent.outbox_rows);
  json.field("bytes", agent.outbox_bytes);
  json.field("reported_at", agent.outbox_reported_at);
  json.end_object();
  json.end_object();
}

Result<std::vector<AgentView>> decode_agent_list(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "answer"));
  return read_objects<AgentView>(JsonObjectReader(*document, "answer"), "agents", read_agent_view);
}

std::string status_event_json(const std::string& task_id, std::string_view state,
                              const std::string& attempt_id, const std::string& note,
                              const std::string& at) {
  JsonWriter json;
  json.begin_object();
  json.field("task_id", task_id);
  json.field("state", state);
  if (attempt_id.empty()) {
    json.key("attempt_id");
    json.null();
  } else {
    json.field("attempt_id", attempt_id);
  }
  json.field("at", at);
  if (!note.empty()) json.field("note", note);
  json.end_object();
  return json.str();
}

std::string final_event_json(const std::string& attempt_id, const FinalReport& report,
                             bool verified, const std::string& verification_error) {
  JsonWriter json;
  json.begin_object();
  json.field("attempt_id", attempt_id);
  write_final_fields(json, report);
  json.field("output_verified", verified);
  if (verification_error.empty()) {
    json.key("verification_error");
    json.null();
  } else {
    json.field("verification_error", verification_error);
  }
  json.end_object();
  return json.str();
}

}  // namespace tether::protocol
