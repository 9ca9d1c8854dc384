#include "protocol/run_api.hpp"

#include <set>

#include "protocol/selector.hpp"

namespace tether::protocol {

namespace {

Error invalid(const std::string& field, const std::string& reason) {
  return make_error(Errc::kInvalid, "invalid_field", "run." + field + ": " + reason);
}

// max_concurrency or max_errors: an integer, or a string "10" / "10%".
Result<std::optional<RunAmount>> read_amount(const JsonObjectReader& run, const char* field) {
  const rapidjson::Value* value = run.find(field);
  if (!value || value->IsNull()) return std::optional<RunAmount>();
  if (value->IsUint64()) return std::optional<RunAmount>(RunAmount{value->GetUint64(), false});
  if (!value->IsString()) {
    return invalid(field, std::string("expected a count or a percentage (\"10%\"), got ") +
                              json_type_name(*value));
  }
  TETHER_TRY(amount, parse_run_amount(
                         std::string_view(value->GetString(), value->GetStringLength()), field));
  return std::optional<RunAmount>(*amount);
}

Result<void> read_targets(const JsonObjectReader& run, RunRequest& request) {
  TETHER_TRY(selector, run.optional_string("selector"));
  const bool has_agents = run.has("agents");
  if (selector->has_value() == has_agents) {
    return invalid("selector",
                   "give exactly one of selector (agents whose labels match) or "
                   "agents (a list of names)");
  }
  if (*selector) {
    auto parsed = Selector::parse(**selector);
    if (!parsed) return invalid("selector", parsed.error().message);
    request.selector = parsed->text();
    return {};
  }
  TETHER_TRY(agents, run.required_array("agents"));
  std::set<std::string> seen;
  for (const auto& name : (*agents)->GetArray()) {
    if (!name.IsString() ||
        !is_valid_id(std::string_view(name.GetString(), name.GetStringLength()))) {
      return invalid("agents", "expected agent names (1 to 128 of A-Z a-z 0-9 . _ : -)");
    }
    const std::string text(name.GetString(), name.GetStringLength());
    if (!seen.insert(text).second) return invalid("agents", "'" + text + "' is named twice");
    request.agents.push_back(text);
  }
  if (request.agents.empty()) return invalid("agents", "is empty");
  if (request.agents.size() > kMaxRunAgents) {
    return invalid("agents", "more than " + std::to_string(kMaxRunAgents) + " names");
  }
  return {};
}

}  // namespace

uint64_t RunAmount::resolve(uint64_t total, bool at_least_one) const {
  uint64_t count = percent ? (total * value + 99) / 100 : value;
  if (at_least_one && count == 0) count = 1;
  return count;
}

std::string RunAmount::text() const {
  return std::to_string(value) + (percent ? "%" : "");
}

Result<RunAmount> parse_run_amount(std::string_view text, const std::string& field) {
  RunAmount amount;
  if (!text.empty() && text.back() == '%') {
    amount.percent = true;
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() > 12) {
    return invalid(field, "expected a count or a percentage (\"10%\")");
  }
  for (char c : text) {
    if (c < '0' || c > '9') return invalid(field, "expected a count or a percentage (\"10%\")");
    amount.value = amount.value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (amount.percent && amount.value > 100) return invalid(field, "a percentage above 100");
  return amount;
}

Result<RunRequest> decode_run_request(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "run"));
  static const std::set<std::string> kFields = {"selector",
                                                "agents",
                                                "command",
                                                "env",
                                                "secrets",
                                                "cwd",
                                                "timeout_s",
                                                "target",
                                                "limits",
                                                "max_concurrency",
                                                "max_errors",
                                                "canary",
                                                "offline_timeout_s",
                                                "cancel_on_error",
                                                "lost_is_error"};
  const rapidjson::Value& fields = *document;
  for (const auto& member : fields.GetObject()) {
    const std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!kFields.count(name)) return invalid(name, "unknown field");
  }
  JsonObjectReader run(*document, "run");
  RunRequest request;
  TETHER_TRY(targets, read_targets(run, request));
  request.spec.task_id = "r";  // validated as a task: placeholder ids
  request.spec.attempt_id = "r";
  TETHER_TRY(body_fields, read_task_body(run, request.spec));
  TETHER_TRY(valid, validate_task(request.spec));
  TETHER_TRY(concurrency, read_amount(run, "max_concurrency"));
  if (*concurrency) {
    if ((*concurrency)->value == 0) return invalid("max_concurrency", "must be at least 1");
    request.max_concurrency = **concurrency;
  }
  TETHER_TRY(errors, read_amount(run, "max_errors"));
  request.max_errors = *errors;
  TETHER_TRY(canary, run.optional_uint("canary"));
  request.canary = canary->value_or(0);
  if (request.canary > kMaxRunAgents) return invalid("canary", "more agents than a run can have");
  TETHER_TRY(offline, run.optional_uint("offline_timeout_s"));
  request.offline_timeout_s = offline->value_or(60);
  if (request.offline_timeout_s > kMaxOfflineTimeoutSeconds) {
    return invalid("offline_timeout_s", "at most " + std::to_string(kMaxOfflineTimeoutSeconds));
  }
  TETHER_TRY(cancel, run.optional_bool("cancel_on_error"));
  request.cancel_on_error = cancel->value_or(false);
  TETHER_TRY(lost, run.optional_bool("lost_is_error"));
  request.lost_is_error = lost->value_or(false);
  return request;
}

std::string encode_run_request(const RunRequest& request) {
  JsonWriter json;
  json.begin_object();
  if (request.selector.empty()) {
    json.key("agents");
    json.begin_array();
    for (const auto& name : request.agents)
      json.string(name);
    json.end_array();
  } else {
    json.field("selector", request.selector);
  }
  write_task_body(json, request.spec);
  json.field("max_concurrency", request.max_concurrency.text());
  if (request.max_errors) json.field("max_errors", request.max_errors->text());
  json.field("canary", request.canary);
  json.field("offline_timeout_s", request.offline_timeout_s);
  json.field("cancel_on_error", request.cancel_on_error);
  json.field("lost_is_error", request.lost_is_error);
  json.end_object();
  return json.str();
}

const std::vector<std::string>& run_task_states() {
  static const std::vector<std::string> states = {"queued", "dispatched", "running",   "succeeded",
                                                  "failed", "timed_out",  "cancelled", "rejected",
                                                  "lost",   "skipped"};
  return states;
}

bool is_terminal_run_state(std::string_view state) {
  return state == "succeeded" || state == "failed" || state == "stopped" || state == "cancelled";
}

bool is_run_state(std::string_view state) {
  return state == "running" || is_terminal_run_state(state);
}

namespace {

void write_text_or_null(JsonWriter& json, const char* name, const std::string& text) {
  json.key(name);
  if (text.empty()) {
    json.null();
  } else {
    json.string(text);
  }
}

void write_run_task(JsonWriter& json, const RunTaskView& task) {
  json.begin_object();
  json.field("agent", task.agent);
  json.field("task_id", task.task_id);
  json.field("state", task.state);
  json.field("exit_code", task.exit_code);
  json.field("stdout_bytes", task.stdout_bytes);
  json.field("stderr_bytes", task.stderr_bytes);
  write_text_or_null(json, "started_at", task.started_at);
  write_text_or_null(json, "finished_at", task.finished_at);
  write_text_or_null(json, "note", task.note);
  json.end_object();
}

Result<std::string> text_or_empty(const JsonObjectReader& object, const char* field) {
  TETHER_TRY(text, object.optional_string(field));
  return text->value_or("");
}

Result<RunTaskView> read_run_task(const JsonObjectReader& object) {
  RunTaskView task;
  TETHER_TRY(agent, object.required_string("agent"));
  task.agent = std::move(*agent);
  TETHER_TRY(id, object.required_string("task_id"));
  task.task_id = std::move(*id);
  TETHER_TRY(state, object.required_string("state"));
  task.state = std::move(*state);
  TETHER_TRY(exit_code, object.optional_int("exit_code"));
  task.exit_code = *exit_code;
  TETHER_TRY(out, object.optional_uint("stdout_bytes"));
  task.stdout_bytes = out->value_or(0);
  TETHER_TRY(err, object.optional_uint("stderr_bytes"));
  task.stderr_bytes = err->value_or(0);
  TETHER_TRY(started, text_or_empty(object, "started_at"));
  task.started_at = std::move(*started);
  TETHER_TRY(finished, text_or_empty(object, "finished_at"));
  task.finished_at = std::move(*finished);
  TETHER_TRY(note, text_or_empty(object, "note"));
  task.note = std::move(*note);
  return task;
}

}  // namespace

void write_run_view(JsonWriter& json, const RunView& run) {
  json.begin_object();
  json.field("id", run.id);
  json.field("state", run.state);
  write_text_or_null(json, "selector", run.selector);
  json.key("agents");
  json.begin_array();
  for (const auto& name : run.agents)
    json.string(name);
  json.end_array();
  json.key("command");
  json.raw(run.command_json.empty() ? "{}" : run.command_json);
  json.field("max_concurrency", run.max_concurrency);
  json.field("max_errors", run.max_errors);
  json.field("canary", run.canary);
  json.field("offline_timeout_s", run.offline_timeout_s);
  json.field("cancel_on_error", run.cancel_on_error);
  json.field("lost_is_error", run.lost_is_error);
  json.field("errors", run.errors);
  write_text_or_null(json, "stop_reason", run.stop_reason);
  json.field("created_at", run.created_at);
  write_text_or_null(json, "finished_at", run.finished_at);
  json.key("counts");
  json.begin_object();
  for (const auto& state : run_task_states()) {
    auto it = run.counts.find(state);
    json.field(state, it == run.counts.end() ? uint64_t{0} : it->second);
  }
  json.end_object();
  json.key("tasks");
  json.begin_array();
  for (const auto& task : run.tasks)
    write_run_task(json, task);
  json.end_array();
  json.end_object();
}

namespace {

Result<RunView> read_run_view(const JsonObjectReader& object) {
  RunView run;
  TETHER_TRY(id, object.required_string("id"));
  run.id = std::move(*id);
  TETHER_TRY(state, object.required_string("state"));
  run.state = std::move(*state);
  TETHER_TRY(selector, text_or_empty(object, "selector"));
  run.selector = std::move(*selector);
  if (object.has("agents")) {
    TETHER_TRY(agents, object.required_array("agents"));
    for (const auto& name : (*agents)->GetArray()) {
      if (name.IsString()) run.agents.emplace_back(name.GetString(), name.GetStringLength());
    }
  }
  TETHER_TRY(concurrency, object.optional_uint("max_concurrency"));
  run.max_concurrency = concurrency->value_or(0);
  TETHER_TRY(errors_allowed, object.optional_uint("max_errors"));
  run.max_errors = *errors_allowed;
  TETHER_TRY(canary, object.optional_uint("canary"));
  run.canary = canary->value_or(0);
  TETHER_TRY(offline, object.optional_uint("offline_timeout_s"));
  run.offline_timeout_s = offline->value_or(0);
  TETHER_TRY(cancel, object.optional_bool("cancel_on_error"));
  run.cancel_on_error = cancel->value_or(false);
  TETHER_TRY(lost, object.optional_bool("lost_is_error"));
  run.lost_is_error = lost->value_or(false);
  TETHER_TRY(errors, object.optional_uint("errors"));
  run.errors = errors->value_or(0);
  TETHER_TRY(reason, text_or_empty(object, "stop_reason"));
  run.stop_reason = std::move(*reason);
  TETHER_TRY(created, text_or_empty(object, "created_at"));
  run.created_at = std::move(*created);
  TETHER_TRY(finished, text_or_empty(object, "finished_at"));
  run.finished_at = std::move(*finished);
  TETHER_TRY(counts, object.optional_object("counts"));
  if (*counts) {
    JsonObjectReader reader(**counts, object.path() + ".counts");
    for (const auto& state : run_task_states()) {
      TETHER_TRY(count, reader.optional_uint(state.c_str()));
      run.counts[state] = count->value_or(0);
    }
  }
  if (object.has("tasks")) {
    TETHER_TRY(tasks, object.required_array("tasks"));
    size_t index = 0;
    for (const auto& item : (*tasks)->GetArray()) {
      const std::string path = object.path() + ".tasks[" + std::to_string(index++) + "]";
      if (!item.IsObject())
        return make_error(Errc::kProtocol, "invalid_field", path + ": expected an object");
      TETHER_TRY(task, read_run_task(JsonObjectReader(item, path)));
      run.tasks.push_back(std::move(*task));
    }
  }
  return run;
}

}  // namespace

Result<RunView> decode_run_view(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "run"));
  TETHER_TRY(run, read_run_view(JsonObjectReader(*document, "run")));
  const rapidjson::Value& root = *document;  // const: clang rejects the mutable iterator
  auto command = root.FindMember("command");
  if (command != root.MemberEnd() && command->value.IsObject()) {
    JsonWriter json;
    // Kept as the hub wrote it: {"argv":[...]} or {"shell":"..."}.
    TaskSpec spec;
    if (read_command(JsonObjectReader(command->value, "run.command"), spec)) {
      write_command(json, spec);
      run->command_json = json.str();
    }
  }
  return run;
}

Result<std::vector<RunView>> decode_run_list(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "answer"));
  JsonObjectReader answer(*document, "answer");
  TETHER_TRY(runs, answer.required_array("runs"));
  std::vector<RunView> views;
  size_t index = 0;
  for (const auto& item : (*runs)->GetArray()) {
    const std::string path = "answer.runs[" + std::to_string(index++) + "]";
    if (!item.IsObject())
      return make_error(Errc::kProtocol, "invalid_field", path + ": expected an object");
    TETHER_TRY(run, read_run_view(JsonObjectReader(item, path)));
    views.push_back(std::move(*run));
  }
  return views;
}

}  // namespace tether::protocol
