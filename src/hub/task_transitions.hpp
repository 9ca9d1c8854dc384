// TaskTransitions: the one place a task's state changes.
//
// transition() checks a change against the legal transitions
// (task_state.hpp), writes it, stores a status event and publishes it to
// live viewers once the turn has committed. A task's first state (queued)
// is set by created(). No other code writes a task's state; DispatchService
// (operator commands), AgentFrameService (agent frames) and LeaseKeeper
// (leases) all come here.
//
// What must reach agents (a cancel, a wake for a queued task or a freed
// target) goes out through the AgentNotifier after the turn has committed,
// never before. With other hubs on the database (set_peers), it goes to
// them too, in the turn's transaction, and so do the events for viewers
// (peer_bus.hpp).
//
// A task that reaches a terminal state has its secrets deleted here, in the
// same write: no attempt can follow, so nothing will need them.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/output_ledger.hpp"
#include "hub/peer_bus.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_secrets.hpp"
#include "protocol/frames.hpp"

namespace tether::hub {

// Callbacks into the parts that talk to agents.
struct AgentNotifier {
  std::function<bool(const std::string& agent)> is_connected;
  std::function<void(const std::string& agent, const protocol::TaskCancel& cancel)> send_cancel;
  // Wake a poll or send hub.wake; agent "": a pool task was queued.
  std::function<void(const std::string& agent)> task_queued;
};

class TaskTransitions {
 public:
  TaskTransitions(core::SqlStore& store, TaskRepository& tasks, TaskSecrets& secrets,
                  EventLog& events, EventHub& viewers, OutputLedger& ledger)
      : store_(store),
        tasks_(tasks),
        secrets_(secrets),
        events_(events),
        viewers_(viewers),
        ledger_(ledger) {}

  void set_notifier(AgentNotifier notifier) { notifier_ = std::move(notifier); }
  // The other hubs on the database (nullptr: none, as on SQLite).
  void set_peers(PeerBus* peers) { peers_ = peers; }
  bool is_connected(const std::string& agent) const {
    return notifier_.is_connected && notifier_.is_connected(agent);
  }

  // Stores a new task, queued. Its agent's poll is woken after commit.
  void created(const TaskRecord& task);
  // Moves `task` to `to`; throws std::logic_error for an illegal change (a
  // bug: callers check first). `note` goes into the status event and the log.
  // A terminal `to` deletes the task's secrets, and wakes the agent's poll
  // when the task had a target (a task waiting for it may go now).
  void transition(TaskRecord& task, TaskState to, const std::string& attempt_id,
                  const std::string& note);
  // Queues `task` again (its attempt ended without a result) and wakes its agent.
  void requeue(TaskRecord& task, const std::string& attempt_id, const std::string& note);
  // Records the attempt lost (its output state is forgotten); its task is
  // the caller's to move.
  void mark_lost(const AttemptRecord& attempt, const std::string& reason);
  // Declares an attempt lost and queues its task again if attempts are left
  // (always, within kMaxRetractions, when `counts` is false).
  void lose_attempt(const AttemptRecord& attempt, const std::string& reason, bool counts = true);
  // A dispatch that never reached the agent (its poll's connection closed
  // before the answer was out, or a new run of the agent does not hold it):
  // the attempt is retracted and the task queued again at once. It does not
  // use up one of max_attempts (up to kMaxRetractions times per task).
  void retract_dispatch(const std::string& attempt_id, const std::string& reason);
  static constexpr int kMaxRetractions = 10;
  // Sends `cancel` to `agent` once the turn has committed.
  void send_cancel_after_commit(const std::string& agent, const protocol::TaskCancel& cancel);
  void publish_after_commit(std::shared_ptr<const StoredEvent> event);
  void wake_after_commit(const std::string& agent);

  // A run's state changed (RunCoordinator): its "run" event is stored and
  // published like a task's status (docs/protocol.md 11.5).
  void run_changed(const std::string& run_id, std::string_view state, const std::string& note);
  // Called in the same turn whenever a task of a run reaches a terminal
  // state (RunCoordinator decides what the run does next).
  void set_on_run_task_ended(std::function<void(const std::string& run_id)> handler) {
    on_run_task_ended_ = std::move(handler);
  }

 private:
  std::function<void(const std::string& run_id)> on_run_task_ended_;

  core::SqlStore& store_;
  TaskRepository& tasks_;
  TaskSecrets& secrets_;
  EventLog& events_;
  EventHub& viewers_;
  OutputLedger& ledger_;
  AgentNotifier notifier_;
  PeerBus* peers_ = nullptr;
};

}  // namespace tether::hub
