// RunCoordinator: what a fan-out run does next (docs/protocol.md 11.5). A
// run is a task per agent, created at once and held; the coordinator
// releases them for dispatch in creation order (connected agents first) so
// that at most max_concurrency are released and not yet ended; with a
// canary, only the first `canary` tasks until all of them have succeeded.
// Past max_errors (failed, timed_out and rejected tasks; lost ones too with
// lost_is_error), or when a canary does not succeed, the run stops: tasks
// not yet released end `skipped`, running ones go on unless cancel_on_error.
// A released task whose agent stays offline for offline_timeout_s ends
// `skipped`. When every task has ended the run ends: succeeded, failed,
// stopped or cancelled.
//
// Every decision is taken in advance(), inside the turn of the change that
// prompted it (a submit, a cancel, the periodic sweep; for tasks ending,
// once per turn just before it commits), and
// every state change goes through TaskTransitions. With several hubs on one
// database, advance() locks the run's row first (RunRepository::lock), so
// the hubs decide for a run one at a time, each on what the other committed;
// "connected agents first" looks at this hub's channels only (an order, not
// a rule), while the offline sweep asks set_online's test.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/commit_batch.hpp"
#include "core/result.hpp"
#include "hub/agent_directory.hpp"
#include "hub/dispatch_service.hpp"
#include "hub/run_repository.hpp"
#include "hub/task_transitions.hpp"
#include "protocol/run_api.hpp"

namespace tether::hub {

class RunCoordinator {
 public:
  RunCoordinator(RunRepository& runs, TaskRepository& tasks, AgentDirectory& agents,
                 DispatchService& dispatch, TaskTransitions& transitions)
      : runs_(runs),
        tasks_(tasks),
        agents_(agents),
        dispatch_(dispatch),
        transitions_(transitions),
        ended_(runs.store(), [this](std::vector<std::string> ended) { decide_ended(ended); }) {}

  // The agents `request` targets, by name: those whose labels match its
  // selector, or the names it gives. Errors: "invalid_field" (a named agent
  // does not exist; no agent matches).
  Result<std::vector<std::string>> targets(const protocol::RunRequest& request);
  // Creates the run and its tasks (held), then releases the first ones.
  // Errors: those of DispatchService::submit (the first task's).
  Result<RunRecord> create(const protocol::RunRequest& request,
                           const std::vector<std::string>& agents, const std::string& created_by);
  // Tasks not yet released end `skipped`, the others are cancelled; the run
  // ends `cancelled` once they have. Errors: "not_found", "already_finished".
  Result<RunRecord> cancel(const std::string& run_id, const std::string& reason);
  // TaskTransitions: a task of the run ended. The run decides just before
  // the turn commits (once for all its tasks that ended in the turn).
  void task_ended(const std::string& run_id);
  // Offline timeouts of every running run (the hub's periodic timer), and
  // the decisions that failed at a commit, taken again.
  void sweep(int64_t now_ms);
  // Whether an agent counts as online for the offline sweep (default: a
  // channel open to this hub; Hub asks LeaseKeeper::online, which knows the
  // other hubs' agents too).
  void set_online(std::function<bool(const std::string& agent)> online) {
    online_ = std::move(online);
  }
  // The view the API answers; `with_tasks`: each agent's task too.
  protocol::RunView view(const RunRecord& run, bool with_tasks);

 private:
  bool online(const std::string& agent) const {
    return online_ ? online_(agent) : transitions_.is_connected(agent);
  }
  std::function<bool(const std::string& agent)> online_;
  void advance(const std::string& run_id);
  void advance_once(const std::string& run_id);
  using RunCounts = std::map<std::pair<TaskState, bool>, uint64_t>;  // RunRepository::counts_of
  // Past a threshold: the reason, or "". `canaries`: the first run.canary tasks.
  std::string stop_reason_for(const RunRecord& run, const RunCounts& counts,
                              const std::vector<RunTaskRow>& canaries) const;
  void skip_held(const std::vector<RunTaskRow>& rows, const std::string& note);
  void release_next(const RunRecord& run, const RunCounts& counts,
                    const std::vector<RunTaskRow>& canaries);
  void finish_if_done(const RunRecord& run, const RunCounts& counts);

  RunRepository& runs_;
  TaskRepository& tasks_;
  AgentDirectory& agents_;
  DispatchService& dispatch_;
  TaskTransitions& transitions_;
  // Runs advance() is deciding for: a task it ends re-enters task_ended().
  std::set<std::string> advancing_;
  bool again_ = false;
  // At the commit: advance() for each run a task of which ended in the turn.
  void decide_ended(const std::vector<std::string>& ended);
  core::CommitBatch<std::string> ended_;  // runs with a task ended in the committing turn
  std::set<std::string> undecided_;       // decisions that failed, for the next sweep
};

// What counts toward max_errors.
bool counts_as_error(TaskState state, bool lost_is_error);

}  // namespace tether::hub
