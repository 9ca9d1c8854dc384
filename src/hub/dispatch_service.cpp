#include "hub/dispatch_service.hpp"

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "hub/held_targets.hpp"
#include "hub/tokens.hpp"
#include "protocol/task_target.hpp"

namespace tether::hub {

Result<TaskRecord> DispatchService::submit(const protocol::SubmitRequest& request,
                                           const std::string& run_id) {
  protocol::TaskSpec spec = request.spec;
  spec.task_id = "t-" + random_hex(8);
  spec.attempt_id = spec.task_id + "-a1";
  if (auto valid = protocol::validate_task(spec); !valid) return valid.error();
  if (!spec.target.empty() && request.reject_on_conflict) {
    // One query, then the holders in age order: the oldest one is named.
    for (const auto& holder : tasks_.target_holders(request.agent, true)) {
      if (protocol::targets_conflict(spec.target, holder.target)) {
        return make_error(Errc::kState, "target_busy", holder.task_id);
      }
    }
  }
  TaskRecord task;
  task.id = spec.task_id;
  task.agent = request.agent;  // "" for a pool task
  task.selector = request.selector;
  task.run_id = run_id;
  task.held = !run_id.empty();
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
  // A queued task waits while its target conflicts with that of a task
  // dispatched or running, or of an older task still queued: tasks with
  // conflicting targets start in the order they were submitted (a queued
  // "app" is not overtaken by each "app/web" submitted after it), the others
  // in queue order as soon as their targets are free.
  HeldTargets held;
  // Read at the first queued task with a target: a task without one never
  // conflicts, and most have none.
  bool holders_read = false;
  std::optional<protocol::Labels> labels;  // read at the first pool task
  for (auto& task : tasks_.queued_tasks(agent, true)) {
    if (task.agent.empty()) {
      if (!labels) labels = agents_.labels_of(agent);
      auto selector = protocol::Selector::parse(task.selector);
      if (!selector || !selector->matches(*labels)) continue;  // not this agent's to take
    }
    if (!task.target.empty() && !holders_read) {
      for (const auto& holder : tasks_.target_holders(agent, false))
        held.add(holder.target);
      holders_read = true;
    }
    if (held.conflicts(task.target)) {
      held.add(task.target);
      continue;
    }
    // Another hub on the database may be dispatching it this very turn (a
    // pool task, or the agent polling there too): whoever claims it first
    // dispatches it; the other passes over it, its target held as if it
    // were dispatched (it is, or is about to be).
    if (!tasks_.claim_queued(task.id)) {
      held.add(task.target);
      continue;
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
      held.add(task.target);  // still queued: it keeps its place
      continue;
    }
    // A task without secret names has no stored secrets (both are written
    // by submit, together): nothing to read.
    using Secrets = std::map<std::string, std::string>;
    auto secrets = task.secret_names.empty() ? Result<Secrets>(Secrets{}) : secrets_.load(task.id);
    if (!secrets) {
      fail_undispatchable(task, secrets.error().message +
                                    ". Was secrets.key in the hub's data directory replaced? "
                                    "Submit the task again");
      continue;
    }
    spec->secrets = std::move(*secrets);
    if (task.agent.empty()) {
      tasks_.assign_agent(task.id, agent);
      task.agent = agent;
      core::log_info("tasks", task.id + " taken from the pool (" + task.selector + ") by " + agent);
    }
    tasks_.insert_attempt(attempt);
    tasks_.set_current_attempt(task.id, attempt.id, attempt.number);
    task.current_attempt = attempt.id;
    transitions_.transition(task, TaskState::kDispatched, attempt.id, "");
    return std::move(*spec);
  }
  return std::nullopt;
}

std::vector<protocol::Selector> DispatchService::queued_pool_selectors() {
  std::vector<protocol::Selector> selectors;
  for (const auto& text : tasks_.queued_pool_selectors()) {
    if (auto selector = protocol::Selector::parse(text)) selectors.push_back(std::move(*selector));
  }
  return selectors;
}

void DispatchService::fail_undispatchable(TaskRecord& task, const std::string& why) {
  core::log_error("tasks", task.id + " fails: it cannot be dispatched");
  transitions_.transition(task, TaskState::kFailed, "", "cannot be dispatched: " + why);
}

}  // namespace tether::hub
