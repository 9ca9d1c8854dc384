#include "hub/task_transitions.hpp"

#include <stdexcept>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/operator_api.hpp"

namespace tether::hub {

void TaskTransitions::publish_after_commit(std::shared_ptr<const StoredEvent> event) {
  if (peers_) {
    peers_->publish(std::move(event));  // this hub's viewers too, in commit order
    return;
  }
  store_.after_commit([this, event = std::move(event)] { viewers_.publish(event); });
}

void TaskTransitions::wake_after_commit(const std::string& agent) {
  if (peers_) peers_->wake(agent);
  store_.after_commit([this, agent] {
    if (notifier_.task_queued) notifier_.task_queued(agent);
  });
}

void TaskTransitions::send_cancel_after_commit(const std::string& agent,
                                               const protocol::TaskCancel& cancel) {
  // The agent's channel may be on another hub: it sends the cancel there.
  if (peers_) peers_->cancel(agent, cancel);
  store_.after_commit([this, agent, cancel] {
    if (notifier_.send_cancel) notifier_.send_cancel(agent, cancel);
  });
}

void TaskTransitions::created(const TaskRecord& task) {
  tasks_.insert_task(task);
  const std::string_view queued = to_string(TaskState::kQueued);
  publish_after_commit(events_.append_status(
      task.id, "", queued, protocol::status_event_json(task.id, queued, "", "", core::utc_now())));
  core::log_info("tasks",
                 task.id + (task.agent.empty() ? " queued for any agent matching " + task.selector
                                               : " queued for agent " + task.agent));
  // A run's task is held: its agent is woken when the run releases it.
  if (!task.held) wake_after_commit(task.agent);
}

void TaskTransitions::transition(TaskRecord& task, TaskState to, const std::string& attempt_id,
                                 const std::string& note) {
  if (!is_legal_transition(task.state, to)) {
    throw std::logic_error("illegal task transition " + std::string(to_string(task.state)) +
                           " -> " + std::string(to_string(to)) + " for " + task.id);
  }
  tasks_.write_task_state(task.id, to);
  task.state = to;
  // Secrets are stored with their names (submit): a task without names has none.
  if (is_terminal(to) && !task.secret_names.empty()) secrets_.erase(task.id);
  // Its target is free now: a task of the agent that waits for it (one with
  // a conflicting target, queued later) may go at once, not at the next poll.
  if (is_terminal(to) && !task.target.empty()) wake_after_commit(task.agent);
  publish_after_commit(events_.append_status(
      task.id, attempt_id, to_string(to),
      protocol::status_event_json(task.id, to_string(to), attempt_id, note, core::utc_now())));
  core::log_info("tasks", task.id + " " + std::string(to_string(to)) +
                              (attempt_id.empty() ? "" : " (" + attempt_id + ")") +
                              (note.empty() ? "" : ": " + note));
  if (is_terminal(to) && !task.run_id.empty() && on_run_task_ended_) {
    on_run_task_ended_(task.run_id);
  }
}

void TaskTransitions::run_changed(const std::string& run_id, std::string_view state,
                                  const std::string& note) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("run_id", run_id);
  json.field("state", state);
  if (!note.empty()) json.field("note", note);
  json.field("at", core::utc_now());
  json.end_object();
  publish_after_commit(events_.append_run(run_id, state, json.str()));
  core::log_info("runs", run_id + " " + std::string(state) + (note.empty() ? "" : ": " + note));
}

void TaskTransitions::requeue(TaskRecord& task, const std::string& attempt_id,
                              const std::string& note) {
  transition(task, TaskState::kQueued, attempt_id, note);
  // A pool task goes back to the pool: any agent that matches may take the
  // next attempt, not only the one that lost the last.
  if (!task.selector.empty()) {
    tasks_.assign_agent(task.id, "");
    task.agent.clear();
  }
  wake_after_commit(task.agent);
}

void TaskTransitions::mark_lost(const AttemptRecord& attempt, const std::string& reason) {
  tasks_.mark_attempt_lost(attempt.id, reason);
  ledger_.forget(attempt.id);
}

void TaskTransitions::lose_attempt(const AttemptRecord& attempt, const std::string& reason,
                                   bool counts) {
  mark_lost(attempt, reason);
  auto task = tasks_.find_task(attempt.task_id);
  if (!task || is_terminal(task->state)) return;
  const int allowed = counts ? task->max_attempts : task->max_attempts + kMaxRetractions;
  if (task->attempts_made < allowed) {
    requeue(*task, attempt.id, "attempt lost (" + reason + "); queued again");
  } else {
    transition(*task, TaskState::kLost, attempt.id, reason);
  }
}

void TaskTransitions::retract_dispatch(const std::string& attempt_id, const std::string& reason) {
  auto attempt = tasks_.find_attempt(attempt_id);
  // Only an attempt the agent cannot have started: once task.started came,
  // it ran, and only its final or the lease ends it.
  if (!attempt || attempt->state != AttemptState::kDispatched) return;
  lose_attempt(*attempt, reason, false);
}

}  // namespace tether::hub
