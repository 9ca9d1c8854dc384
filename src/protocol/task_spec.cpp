#include "protocol/task_spec.hpp"

#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

bool is_env_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return false;
  }
  return true;
}

namespace {

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

Error invalid(const std::string& field, const std::string& reason) {
  return make_error(Errc::kInvalid, "invalid_field", "task." + field + ": " + reason);
}

// Names and sizes only: no message may quote a secret's value.
Result<void> validate_secrets(const TaskSpec& task) {
  if (task.secrets.size() > kMaxSecretEntries) {
    return invalid("secrets", "more than " + std::to_string(kMaxSecretEntries) + " entries");
  }
  size_t total = 0;
  for (const auto& [name, value] : task.secrets) {
    if (!is_env_name(name)) {
      return invalid("secrets",
                     "'" + name + "' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (task.env.count(name)) {
      return invalid("secrets." + name, "also set in env: a variable is in env or a secret");
    }
    if (has_nul(value)) return invalid("secrets." + name, "contains a NUL byte");
    if (value.size() > kMaxSecretBytes) {
      return invalid("secrets." + name,
                     "longer than " + std::to_string(kMaxSecretBytes) + " bytes");
    }
    total += value.size();
  }
  if (total > kMaxSecretTotalBytes) {
    return invalid("secrets", "more than " + std::to_string(kMaxSecretTotalBytes) +
                                  " bytes of values together");
  }
  return {};
}

}  // namespace

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string> TaskSpec::command_line() const {
  if (!uses_shell()) return argv;
  return {"/bin/sh", "-c", shell};
}

Result<void> validate_task(const TaskSpec& task) {
  if (!is_valid_id(task.task_id)) {
    return invalid("task_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  if (!is_valid_id(task.attempt_id)) {
    return invalid("attempt_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  if (task.argv.empty() == task.shell.empty()) {
    return invalid("command", "needs exactly one of argv (a non-empty array) or shell");
  }
  if (task.argv.size() > kMaxArgvEntries) {
    return invalid("command.argv", "more than " + std::to_string(kMaxArgvEntries) + " entries");
  }
  for (size_t i = 0; i < task.argv.size(); ++i) {
    if (has_nul(task.argv[i])) {
      return invalid("command.argv[" + std::to_string(i) + "]", "contains a NUL byte");
    }
  }
  if (!task.argv.empty() && task.argv[0].empty()) {
    return invalid("command.argv[0]", "the program name is empty");
  }
  if (has_nul(task.shell)) return invalid("command.shell", "contains a NUL byte");
  if (task.env.size() > kMaxEnvEntries) {
    return invalid("env", "more than " + std::to_string(kMaxEnvEntries) + " entries");
  }
  for (const auto& [name, value] : task.env) {
    if (!is_env_name(name)) {
      return invalid("env", "'" + name + "' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (has_nul(value)) return invalid("env." + name, "contains a NUL byte");
  }
  if (auto secrets = validate_secrets(task); !secrets) return secrets.error();
  if (!task.cwd.empty() && (task.cwd[0] != '/' || has_nul(task.cwd))) {
    return invalid("cwd", "must be an absolute path");
  }
  if (task.timeout_s > kMaxTimeoutSeconds) {
    return invalid("timeout_s", "at most " + std::to_string(kMaxTimeoutSeconds) + " (7 days)");
  }
  if (auto problem = target_problem(task.target); !problem.empty()) {
    return invalid("target", problem);
  }
  return validate_limits(task.limits);
}

Result<TaskSpec> decode_task(std::string_view json) {
  TETHER_TRY(document, parse_json_object(json, "task"));
  JsonObjectReader task(*document, "task");
  TaskSpec spec;

  TETHER_TRY(task_id, task.required_string("task_id"));
  spec.task_id = std::move(*task_id);
  TETHER_TRY(attempt_id, task.required_string("attempt_id"));
  spec.attempt_id = std::move(*attempt_id);

  if (auto body = read_task_body(task, spec); !body) return body.error();
  if (auto valid = validate_task(spec); !valid) return valid.error();
  return spec;
}

Result<void> read_command(const JsonObjectReader& command, TaskSpec& spec) {
  const bool has_argv = command.has("argv");
  const bool has_shell = command.has("shell");
  if (has_argv == has_shell) {
    return invalid("command", "needs exactly one of argv or shell");
  }
  if (has_argv) {
    TETHER_TRY(argv, command.required_array("argv"));
    if ((*argv)->Empty()) return invalid("command.argv", "must not be empty");
    size_t index = 0;
    for (const auto& entry : (*argv)->GetArray()) {
      if (!entry.IsString()) {
        return invalid("command.argv[" + std::to_string(index) + "]",
                       std::string("expected a string, got ") + json_type_name(entry));
      }
      spec.argv.emplace_back(entry.GetString(), entry.GetStringLength());
      ++index;
    }
    return {};
  }
  TETHER_TRY(shell, command.required_string("shell"));
  if (shell->empty()) return invalid("command.shell", "must not be empty");
  spec.shell = std::move(*shell);
  return {};
}

// An object of strings (env or secrets) into `into`; `field` names it in errors.
static Result<void> read_variables(const rapidjson::Value& object, const std::string& field,
                                   std::map<std::string, std::string>& into) {
  for (const auto& member : object.GetObject()) {
    const std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!member.value.IsString()) {
      return invalid(field + "." + name,
                     std::string("expected a string, got ") + json_type_name(member.value));
    }
    into[name] = std::string(member.value.GetString(), member.value.GetStringLength());
  }
  return {};
}

static Result<void> read_env(const rapidjson::Value& env, TaskSpec& spec) {
  return read_variables(env, "env", spec.env);
}

void write_command(JsonWriter& json, const TaskSpec& task) {
  json.begin_object();
  if (task.uses_shell()) {
    json.field("shell", task.shell);
  } else {
    json.key("argv");
    json.begin_array();
    for (const auto& arg : task.argv)
      json.string(arg);
    json.end_array();
  }
  json.end_object();
}

void write_env(JsonWriter& json, const TaskSpec& task) {
  json.begin_object();
  for (const auto& [name, value] : task.env)
    json.field(name, value);
  json.end_object();
}

void write_task_body(JsonWriter& json, const TaskSpec& task) {
  json.key("command");
  write_command(json, task);
  json.key("env");
  write_env(json, task);
  if (!task.secrets.empty()) {
    json.key("secrets");
    json.begin_object();
    for (const auto& [name, value] : task.secrets)
      json.field(name, value);
    json.end_object();
  }
  if (!task.cwd.empty()) json.field("cwd", task.cwd);
  json.field("timeout_s", task.timeout_s);
  if (!task.target.empty()) json.field("target", task.target);
  write_limits(json, task.limits);
}

Result<void> read_command_json(std::string_view command_json, std::string_view env_json,
                               TaskSpec& spec) {
  TETHER_TRY(command_doc, parse_json_object(command_json, "task.command"));
  if (auto read = read_command(JsonObjectReader(*command_doc, "task.command"), spec); !read) {
    return read.error();
  }
  TETHER_TRY(env_doc, parse_json_object(env_json, "task.env"));
  const rapidjson::Value& env = *env_doc;
  return read_env(env, spec);
}

Result<void> read_task_body(const JsonObjectReader& task, TaskSpec& spec) {
  TETHER_TRY(command_value, task.required_object("command"));
  if (auto read = read_command(JsonObjectReader(**command_value, task.path() + ".command"), spec);
      !read) {
    return read.error();
  }
  TETHER_TRY(env_value, task.optional_object("env"));
  if (*env_value) {
    if (auto read = read_env(**env_value, spec); !read) return read.error();
  }
  TETHER_TRY(secrets_value, task.optional_object("secrets"));
  if (*secrets_value) {
    if (auto read = read_variables(**secrets_value, "secrets", spec.secrets); !read) {
      return read.error();
    }
  }

  TETHER_TRY(cwd, task.optional_string("cwd"));
  if (*cwd) spec.cwd = std::move(**cwd);
  TETHER_TRY(timeout, task.optional_uint("timeout_s"));
  if (*timeout) spec.timeout_s = **timeout;
  TETHER_TRY(target, task.optional_string("target"));
  if (*target) spec.target = std::move(**target);
  TETHER_TRY(limits, read_limits(task));
  spec.limits = *limits;
  return {};
}

std::string command_json(const TaskSpec& task) {
  JsonWriter json;
  write_command(json, task);
  return json.str();
}

std::string env_json(const TaskSpec& task) {
  JsonWriter json;
  write_env(json, task);
  return json.str();
}

std::string encode_task(const TaskSpec& task, std::optional<uint64_t> lease_s) {
  JsonWriter json;
  json.begin_object();
  json.field("task_id", task.task_id);
  json.field("attempt_id", task.attempt_id);
  write_task_body(json, task);
  if (lease_s) json.field("lease_s", *lease_s);
  json.end_object();
  return json.str();
}

}  // namespace tether::protocol
