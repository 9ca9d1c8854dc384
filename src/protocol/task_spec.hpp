// A task as the control plane hands it to an agent:
//   {task_id, attempt_id, command: {argv: [...]} | {shell: "..."}, env,
//    secrets, cwd, timeout_s, target, limits}
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/task_limits.hpp"
#include "protocol/task_target.hpp"

namespace tether::protocol {

// Limits that keep a hostile or broken task from exhausting the agent.
inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxArgvEntries = 4096;
inline constexpr size_t kMaxEnvEntries = 1024;
// Secrets (docs/protocol.md 3): the agent looks for every value in the
// task's output, so their number and size bound the work and memory of that.
inline constexpr size_t kMaxSecretEntries = 64;
inline constexpr size_t kMaxSecretBytes = 16 << 10;       // one value
inline constexpr size_t kMaxSecretTotalBytes = 64 << 10;  // all values of a task
inline constexpr uint64_t kMaxTimeoutSeconds = 7 * 24 * 3600;

struct TaskSpec {
  std::string task_id;
  std::string attempt_id;
  // Exactly one of the two: argv runs a program directly; shell runs
  // `/bin/sh -c shell`.
  std::vector<std::string> argv;
  std::string shell;
  std::map<std::string, std::string> env;
  // Environment variables whose values are secret: never logged, never
  // shown, redacted from the output. A name is in env or here, not both.
  std::map<std::string, std::string> secrets;
  std::string cwd;         // empty: the agent's working directory
  uint64_t timeout_s = 0;  // 0: no timeout
  std::string target;      // task_target.hpp; empty: no exclusivity
  TaskLimits limits;       // task_limits.hpp; none: no limit

  bool uses_shell() const { return argv.empty(); }
  // The argv that is actually executed.
  std::vector<std::string> command_line() const;
};

// Checks a task built in code (by the CLI or `tether-agent exec`) with the
// same rules decode_task applies; the error names the offending field.
Result<void> validate_task(const TaskSpec& task);

// Unknown fields are ignored so that newer control planes can add optional
// ones; every known field is checked. Errors name the field ("task.cwd: ...").
Result<TaskSpec> decode_task(std::string_view json);

// With `lease_s`, the body a hub sends to an agent (docs/protocol.md 3).
std::string encode_task(const TaskSpec& task, std::optional<uint64_t> lease_s = std::nullopt);

// Reads command, env, secrets, cwd, timeout_s, target and limits from `object` into `spec`
// (no validation beyond types; call validate_task after). Shared with the
// hub's task submission, which wraps the same fields.
Result<void> read_task_body(const JsonObjectReader& object, TaskSpec& spec);

// The task's fields as JSON (docs/protocol.md 3): "command" is {"argv": [...]}
// or {"shell": "..."}, "env" an object of strings. write_task_body writes the
// members command, env, secrets (when there are any: their values), cwd,
// timeout_s, target and limits (when any is set) into an open object: the body of a task sent to an
// agent and of a task submitted by an operator.
void write_command(JsonWriter& json, const TaskSpec& task);
void write_env(JsonWriter& json, const TaskSpec& task);
void write_task_body(JsonWriter& json, const TaskSpec& task);
// The command and env objects alone, as the hub stores them.
std::string command_json(const TaskSpec& task);
std::string env_json(const TaskSpec& task);
// A command object ({"argv": [...]} or {"shell": "..."}) into `spec`.
Result<void> read_command(const JsonObjectReader& command, TaskSpec& spec);
// Reads them back into `spec` (argv or shell, env); errors name the field.
Result<void> read_command_json(std::string_view command_json, std::string_view env_json,
                               TaskSpec& spec);

// Identifier rule for task, attempt and agent ids: 1..128 of [A-Za-z0-9._:-].
bool is_valid_id(std::string_view id);
// The rule for env and secret names: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view name);

}  // namespace tether::protocol
