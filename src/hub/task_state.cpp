#include "hub/task_state.hpp"

namespace tether::hub {

std::string_view to_string(TaskState state) {
  switch (state) {
    case TaskState::kQueued:
      return "queued";
    case TaskState::kDispatched:
      return "dispatched";
    case TaskState::kRunning:
      return "running";
    case TaskState::kSucceeded:
      return "succeeded";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kTimedOut:
      return "timed_out";
    case TaskState::kCancelled:
      return "cancelled";
    case TaskState::kLost:
      return "lost";
    case TaskState::kRejected:
      return "rejected";
    case TaskState::kSkipped:
      return "skipped";
  }
  return "queued";
}

std::optional<TaskState> parse_task_state(std::string_view text) {
  for (auto state :
       {TaskState::kQueued, TaskState::kDispatched, TaskState::kRunning, TaskState::kSucceeded,
        TaskState::kFailed, TaskState::kTimedOut, TaskState::kCancelled, TaskState::kLost,
        TaskState::kRejected, TaskState::kSkipped}) {
    if (to_string(state) == text) return state;
  }
  return std::nullopt;
}

bool is_terminal(TaskState state) {
  return state != TaskState::kQueued && state != TaskState::kDispatched &&
         state != TaskState::kRunning;
}

bool is_active(TaskState state) {
  return !is_terminal(state);
}

bool is_legal_transition(TaskState from, TaskState to) {
  switch (from) {
    case TaskState::kQueued:
      // failed: it cannot be dispatched (its secrets do not decrypt).
      return to == TaskState::kDispatched || to == TaskState::kCancelled ||
             to == TaskState::kFailed || to == TaskState::kSkipped;
    case TaskState::kDispatched:
      return to == TaskState::kRunning || to == TaskState::kQueued ||
             (is_terminal(to) && to != TaskState::kSkipped);
    case TaskState::kRunning:
      return to == TaskState::kQueued ||
             (is_terminal(to) && to != TaskState::kRejected && to != TaskState::kSkipped);
    default:
      return false;  // terminal states never change
  }
}

TaskState state_for(protocol::AttemptStatus status) {
  switch (status) {
    case protocol::AttemptStatus::kSucceeded:
      return TaskState::kSucceeded;
    case protocol::AttemptStatus::kFailed:
      return TaskState::kFailed;
    case protocol::AttemptStatus::kTimedOut:
      return TaskState::kTimedOut;
    case protocol::AttemptStatus::kCancelled:
      return TaskState::kCancelled;
    case protocol::AttemptStatus::kRejected:
      return TaskState::kRejected;
    case protocol::AttemptStatus::kLost:
      return TaskState::kLost;
  }
  return TaskState::kFailed;
}

}  // namespace tether::hub
