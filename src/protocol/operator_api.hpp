// The operator API's request and event shapes (docs/protocol.md 11).
//
// POST /api/v1/tasks takes a SubmitRequest; the events of
// GET /api/v1/tasks/{id}/events carry status and final payloads built here.
// The CLI writes what the hub reads with the same code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/labels.hpp"
#include "protocol/task_spec.hpp"

namespace tether::protocol {

// max_attempts of a task: 1 (the default) to this many attempts.
inline constexpr uint64_t kMaxAttempts = 100;

struct SubmitRequest {
  // Exactly one of the two: the agent that runs the task, or a selector
  // (selector.hpp, docs/protocol.md 11.4): a pool task, taken by the first
  // agent whose labels match that asks for work. `selector` is kept in its
  // canonical text (Selector::text()).
  std::string agent;
  std::string selector;
  TaskSpec spec;                    // task_id and attempt_id are ignored
  bool reject_on_conflict = false;  // on_conflict "reject" (else "queue")
  int max_attempts = 1;
};

// {agent | selector, command, env, secrets, cwd, timeout_s, target, limits,
// on_conflict, max_attempts}; secrets' values are in spec.secrets. A pool
// task (selector) takes no on_conflict "reject": no agent holds its target
// until one takes it.
// Unknown fields are an error here (unlike in frames): an operator's typo
// must not silently drop a setting. Errors are "invalid_field" and name the
// field ("task.max_attempts: must be from 1 to 100").
Result<SubmitRequest> decode_submit(std::string_view body);
std::string encode_submit(const SubmitRequest& request);

// One attempt in a task's answer.
struct AttemptView {
  std::string id;
  int number = 1;
  std::string state;  // dispatched, running, finished or lost
  std::string dispatched_at, started_at, finished_at;
  std::string lost_reason;  // empty unless lost
};

// A task as GET /api/v1/tasks/{id} answers it (and each task of GET
// /api/v1/tasks, without attempts). command, env and final are JSON the hub
// stores as written (command_json and env_json of TaskSpec, a final report).
// Of the task's secrets only their names are ever shown: "secrets": [names].
struct TaskView {
  std::string id, agent, state;  // agent: "" for a pool task no agent has taken yet
  std::string selector;          // a pool task's selector; "" otherwise
  std::string command_json, env_json;
  // For viewers: env is written with each value null ({"DB_PASSWORD":null}).
  bool env_values_withheld = false;
  std::vector<std::string> secret_names;
  std::string cwd;
  uint64_t timeout_s = 0;
  std::string target;
  TaskLimits limits;  // "limits": {} when none
  int max_attempts = 1;
  int attempts_made = 0;
  std::string current_attempt;  // empty: none (null)
  bool cancel_requested = false;
  std::optional<bool> output_verified;
  std::string verification_error;  // empty: none (null)
  std::string final_json;          // empty: none yet (null)
  std::string created_at, updated_at;
  std::vector<AttemptView> attempts;
};
void write_task_view(JsonWriter& json, const TaskView& task);
// The answer read back, with its final decoded (`final_report`); errors
// name the field. Unknown fields are ignored (a newer hub may add some).
struct DecodedTask {
  TaskView task;
  TaskSpec command;  // argv or shell, from task.command_json
  std::optional<FinalReport> final_report;
};
Result<DecodedTask> decode_task_view(std::string_view json);
// GET /api/v1/tasks: {"tasks": [task, ...]}.
Result<std::vector<DecodedTask>> decode_task_list(std::string_view json);

// An agent as GET /api/v1/agents lists it: {"agents": [agent, ...]}.
struct AgentView {
  std::string name;
  bool connected = false;
  std::string last_seen_at;  // empty: never
  std::string version;       // what its last agent.hello said; empty: none yet
  std::string created_at;
  Labels labels;           // in effect: reported_labels with hub_labels over them
  Labels reported_labels;  // what the agent's hello said
  Labels hub_labels;       // the hub's own (registration token, tether-hub agent label)
  uint64_t running_attempts = 0;
  std::optional<uint64_t> outbox_rows, outbox_bytes;  // its last hello's report
  std::string outbox_reported_at;
};
void write_agent_view(JsonWriter& json, const AgentView& agent);
Result<std::vector<AgentView>> decode_agent_list(std::string_view json);

// The payload of a status event: {task_id, state, attempt_id (or null), at, note?};
// `at` is UTC text (core::utc_now()).
std::string status_event_json(const std::string& task_id, std::string_view state,
                              const std::string& attempt_id, const std::string& note,
                              const std::string& at);
// The payload of a final event: the attempt's final report fields, with
// output_verified and verification_error (null when verified).
std::string final_event_json(const std::string& attempt_id, const FinalReport& report,
                             bool verified, const std::string& verification_error);

}  // namespace tether::protocol
