// Task states and which changes between them are legal.
//
//   queued -> dispatched -> running -> succeeded | failed | timed_out |
//                                      cancelled | lost | rejected
//
// plus: queued -> cancelled (cancelled before dispatch); queued -> failed
// (it cannot be dispatched: its secrets do not decrypt); dispatched -> a
// terminal state (a final without task.started: could not start, rejected);
// dispatched | running -> queued (the attempt was lost and the task has
// attempts left); queued -> skipped (a run's task the run did not release:
// it stopped, was cancelled, or the agent stayed offline). Terminal states
// never change.
#pragma once

#include <optional>
#include <string_view>

#include "protocol/attempt_report.hpp"

namespace tether::hub {

enum class TaskState {
  kQueued,
  kDispatched,
  kRunning,
  kSucceeded,
  kFailed,
  kTimedOut,
  kCancelled,
  kLost,
  kRejected,
  kSkipped,
};

std::string_view to_string(TaskState state);
std::optional<TaskState> parse_task_state(std::string_view text);
bool is_terminal(TaskState state);
bool is_active(TaskState state);  // queued, dispatched or running
bool is_legal_transition(TaskState from, TaskState to);
TaskState state_for(protocol::AttemptStatus status);

}  // namespace tether::hub
