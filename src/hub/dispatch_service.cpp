#include "hub/dispatch_service.hpp"

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

Result<TaskRecord> DispatchService::submit(const protocol::SubmitRequest& request) {
  protocol::TaskSpec spec = request.spec;
  spec.task_id = "t-" + random_hex(8);
  spec.attempt_id = spec.task_id + "-a1";
  if (auto valid = protocol::validate_task(spec); !valid) return valid.error();
  if (!spec.target.empty() && request.reject_on_conflict) {
    if (auto holder = tasks_.active_task_with_target(request.agent, spec.target, false)) {
      return make_error(Errc::kState, "target_busy", *holder);
    }
  }
  TaskRecord task;
  task.id = spec.task_id;
  task.agent = request.agent;
  task.state = TaskState::kQueued;
  task.command_json = protocol::command_json(spec);
  task.env_json = protocol::env_json(spec);
  for (const auto& [name, value] : spec.secrets)
    task.secret_names.push_back(name);
  task.cwd = spec.cwd;
  task.timeout_s = spec.timeout_s;
  task.target = spec.target;
  task.limits = spec.limits;
  task.max_attempts = request.max_attempts;
  task.created_at = core::utc_now();
  task.updated_at = task.created_at;
  if (auto stored = secrets_.store(task.id, spec.secrets); !stored) return stored.error();
  transitions_.created(task);
  return task;
}

Result<TaskRecord> DispatchService::cancel(const std::string& task_id, const std::string& reason) {
  auto task = tasks_.find_task(task_id);
  if (!task) return make_error(Errc::kNotFound, "not_found", "no task '" + task_id + "'");
  if (is_terminal(task->state)) {
    return make_error(
        Errc::kState, "already_finished",
        "task " + task_id + " already ended as " + std::string(to_string(task->state)));
  }
  tasks_.set_cancel_requested(task->id, reason);
  task->cancel_requested = true;
  task->cancel_reason = reason;
  if (task->state == TaskState::kQueued) {
    transitions_.transition(*task, TaskState::kCancelled, "",
                            "cancelled before it was dispatched: " + reason);
    return *task;
  }
  transitions_.send_cancel_after_commit(task->agent, {{task->id, task->current_attempt}, reason});
  return *task;
}

int DispatchService::end_tasks_of_removed_agent(const std::string& agent) {
  const std::string note = "agent " + agent + " was removed";
  int ended = 0;
  for (const auto& attempt : tasks_.active_attempts_of(agent)) {
    auto task = tasks_.find_task(attempt.task_id);
    const bool active = task && !is_terminal(task->state);
    // No attempts are left on an agent that is gone: lost for good.
    transitions_.mark_lost(attempt, note);
    if (active) {
      transitions_.transition(*task, TaskState::kLost, attempt.id, note);
      ++ended;
    }
  }
  for (auto& task : tasks_.queued_tasks(agent)) {
    transitions_.transition(task, TaskState::kCancelled, "",
                            "cancelled before it was dispatched: " + note);
    ++ended;
  }
  return ended;
}

std::optional<protocol::TaskSpec> DispatchService::dispatch_next(const std::string& agent,
                                                                 const std::string& instance) {
  for (auto& task : tasks_.queued_tasks(agent)) {
    if (!task.target.empty() && tasks_.active_task_with_target(agent, task.target, true)) {
      continue;  // its target is held by a dispatched or running task
    }
    AttemptRecord attempt;
    attempt.number = task.attempts_made + 1;
    attempt.id = task.id + "-a" + std::to_string(attempt.number);
    attempt.task_id = task.id;
    attempt.agent = agent;
    attempt.state = AttemptState::kDispatched;
    attempt.dispatched_at = core::utc_now();
    attempt.dispatched_at_ms = wall_clock_ms();
    attempt.agent_instance = instance;
    auto spec = spec_for(task, attempt.id);
    if (!spec) {
      core::log_error("tasks", task.id + " cannot be dispatched: " + spec.error().message);
      continue;
    }
    auto secrets = secrets_.load(task.id);
    if (!secrets) {
      fail_undispatchable(task, secrets.error().message +
                                    ". Was secrets.key in the hub's data directory replaced? "
                                    "Submit the task again");
      continue;
    }
    spec->secrets = std::move(*secrets);
    tasks_.insert_attempt(attempt);
    tasks_.set_current_attempt(task.id, attempt.id, attempt.number);
    task.current_attempt = attempt.id;
    transitions_.transition(task, TaskState::kDispatched, attempt.id, "");
    return std::move(*spec);
  }
  return std::nullopt;
}

void DispatchService::fail_undispatchable(TaskRecord& task, const std::string& why) {
  core::log_error("tasks", task.id + " fails: it cannot be dispatched");
  transitions_.transition(task, TaskState::kFailed, "", "cannot be dispatched: " + why);
}

}  // namespace tether::hub
