// DispatchService: what operators ask of tasks, and handing tasks to agents.
//
// Submit and cancel (the operator API), ending the tasks of a removed agent,
// and choosing the next task for an agent's long poll (docs/protocol.md 3),
// with targets exclusive per agent: no two tasks of an agent with
// conflicting targets (protocol/task_target.hpp) are dispatched or running
// at once. Every state change goes through TaskTransitions.
#pragma once

#include <optional>
#include <string>

#include "core/result.hpp"
#include "hub/agent_directory.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_secrets.hpp"
#include "hub/task_transitions.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/selector.hpp"

namespace tether::hub {

class DispatchService {
 public:
  DispatchService(TaskRepository& tasks, AgentDirectory& agents, TaskSecrets& secrets,
                  TaskTransitions& transitions)
      : tasks_(tasks), agents_(agents), secrets_(secrets), transitions_(transitions) {}

  // Errors: "target_busy" with on_conflict reject, when a queued, dispatched
  // or running task of the agent holds a conflicting target (the message is
  // the oldest such task's id), "invalid_field" (the spec's field),
  // "seal_failed". The agent's existence is the
  // caller's to check. The spec's secrets are stored sealed (TaskSecrets);
  // the record holds their names.
  // With `run_id`, the task belongs to that run and is held: it is not
  // dispatched until RunCoordinator releases it.
  Result<TaskRecord> submit(const protocol::SubmitRequest& request, const std::string& run_id = "");
  // Queued tasks end at once; dispatched and running ones get task.cancel
  // after commit. Errors: "not_found", "already_finished".
  Result<TaskRecord> cancel(const std::string& task_id, const std::string& reason);
  // The agent is being removed: its queued tasks end `cancelled`, its
  // dispatched and running ones `lost`, each with the note "agent NAME was
  // removed" (no retry: there is no agent to retry on). How many ended.
  int end_tasks_of_removed_agent(const std::string& agent);
  // The next task for `agent`'s poll, as a new attempt (dispatched), with
  // its secrets' values; `instance` is the agent process that polled (empty
  // if it did not say), remembered with the attempt. A queued task whose
  // secrets do not decrypt with this hub's key fails instead, saying why.
  // Pool tasks (a selector, no agent) whose selector matches the agent's
  // labels in effect (AgentDirectory) are candidates with the agent's own, in
  // the same queue order; the one dispatched becomes the agent's.
  // The next task is the oldest queued one whose target (if any) conflicts
  // with no dispatched or running task's, nor with an older queued task's
  // (docs/protocol.md 3): conflicting tasks start in submission order.
  std::optional<protocol::TaskSpec> dispatch_next(const std::string& agent,
                                                  const std::string& instance);
  // The selectors of queued pool tasks, parsed (PollWaiters: which parked
  // agents may take one).
  std::vector<protocol::Selector> queued_pool_selectors();
  // See TaskTransitions::retract_dispatch.
  void retract_dispatch(const std::string& attempt_id, const std::string& reason) {
    transitions_.retract_dispatch(attempt_id, reason);
  }

 private:
  // Fails a queued task that cannot be dispatched, saying `why`.
  void fail_undispatchable(TaskRecord& task, const std::string& why);

  TaskRepository& tasks_;
  AgentDirectory& agents_;
  TaskSecrets& secrets_;
  TaskTransitions& transitions_;
};

}  // namespace tether::hub
