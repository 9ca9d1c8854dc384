// Fan-out runs (docs/protocol.md 11.5): one command for every agent a
// selector (or a list of names) picks, one task per agent, released by the
// hub under a concurrency limit, an error threshold and an optional canary.
//
//   POST /api/v1/runs           RunRequest -> 201 RunView
//   GET  /api/v1/runs           {"runs": [RunView without tasks...]}
//   GET  /api/v1/runs/{id}      RunView
//   POST /api/v1/runs/{id}/cancel
//   GET  /api/v1/runs/{id}/events   SSE: every event of its tasks (11.1) and
//                                   "run" events; resumable with Last-Event-ID
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
#include "protocol/task_spec.hpp"

namespace tether::protocol {

inline constexpr size_t kMaxRunAgents = 10000;  // agents one run may name or select
inline constexpr uint64_t kMaxOfflineTimeoutSeconds = 24 * 3600;

// A count ("10") or a percentage of the run's agents ("10%"), as
// max_concurrency and max_errors take it. In JSON: a non-negative integer
// or a string of digits, optionally ending in '%'.
struct RunAmount {
  uint64_t value = 0;
  bool percent = false;

  // The count for a run of `total` agents: a percentage is rounded up and,
  // for max_concurrency (`at_least_one`), never below 1.
  uint64_t resolve(uint64_t total, bool at_least_one) const;
  std::string text() const;  // "10" or "10%"
  bool operator==(const RunAmount&) const = default;
};
// Errors ("invalid_field") name `field`: a percentage above 100, no digits.
Result<RunAmount> parse_run_amount(std::string_view text, const std::string& field);

struct RunRequest {
  // Exactly one: the agents whose labels match (canonical text), or names.
  std::string selector;
  std::vector<std::string> agents;
  TaskSpec spec;                         // command, env, secrets, cwd, timeout_s, target, limits
  RunAmount max_concurrency{100, true};  // tasks dispatched or running at once
  std::optional<RunAmount> max_errors;   // errors allowed; nothing: no threshold
  uint64_t canary = 0;                   // agents that run first, alone; all must succeed
  uint64_t offline_timeout_s = 60;       // how long a released task waits for its agent
  bool cancel_on_error = false;          // past max_errors, also cancel running tasks
  bool lost_is_error = false;            // count `lost` toward max_errors
};

// Unknown fields are refused (an operator's typo must not drop a setting);
// errors ("invalid_field") name the field ("run.max_errors: ...").
Result<RunRequest> decode_run_request(std::string_view body);
std::string encode_run_request(const RunRequest& request);

// One agent's task in a run.
struct RunTaskView {
  std::string agent;
  std::string task_id;
  std::string state;  // a task state (queued ... lost) or "skipped"
  std::optional<int64_t> exit_code;
  uint64_t stdout_bytes = 0, stderr_bytes = 0;
  std::string started_at, finished_at;  // "" until then
  std::string note;                     // why it was skipped, lost or failed; "" otherwise
};

// Run states: "running", then one of "succeeded" (every task succeeded),
// "failed" (every task ended, not all succeeded), "stopped" (max_errors
// exceeded or a canary did not succeed: tasks not yet released were
// skipped), "cancelled" (an operator cancelled it).
struct RunView {
  std::string id, state;
  std::string selector;             // "" when agents were named
  std::vector<std::string> agents;  // the names given; empty for a selector
  std::string command_json;         // {"argv":[...]} or {"shell":"..."}
  uint64_t max_concurrency = 0;     // resolved to a count
  std::optional<uint64_t> max_errors;
  uint64_t canary = 0;
  uint64_t offline_timeout_s = 0;
  bool cancel_on_error = false;
  bool lost_is_error = false;
  uint64_t errors = 0;      // what counts toward max_errors so far
  std::string stop_reason;  // why it stopped or was cancelled; "" otherwise
  std::string created_at, finished_at;
  std::map<std::string, uint64_t> counts;  // tasks per state, every state listed
  std::vector<RunTaskView> tasks;          // by agent name; empty in a list
};
void write_run_view(JsonWriter& json, const RunView& run);
// Errors name the field; unknown fields are ignored (a newer hub may add some).
Result<RunView> decode_run_view(std::string_view body);
Result<std::vector<RunView>> decode_run_list(std::string_view body);

// Every task state a run counts, in the order views list them.
const std::vector<std::string>& run_task_states();
bool is_terminal_run_state(std::string_view state);
// running, or a terminal state (docs/protocol.md 11.5).
bool is_run_state(std::string_view state);

}  // namespace tether::protocol
