// TaskRepository: tasks and attempts in hub.db, as records.
//
// Plain reads and writes only. Deciding what may change is TaskTransitions'
// job; the state column in particular is written by TaskTransitions::transition
// and nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hub/hub_store.hpp"
#include "hub/task_state.hpp"
#include "protocol/task_spec.hpp"

namespace tether::hub {

struct TaskRecord {
  std::string id;
  std::string agent;  // "" for a pool task no agent has taken yet
  // A pool task's selector (canonical text, protocol/selector.hpp); "" for a
  // task submitted for one agent. Kept after an agent takes it: a retry
  // goes back to the pool.
  std::string selector;
  std::string run_id;  // the fan-out run it belongs to; "" for none
  bool held = false;   // a run's task its run has not released: not dispatched
  TaskState state = TaskState::kQueued;
  std::string command_json;  // {"argv":[...]} or {"shell":"..."}
  std::string env_json;      // {"NAME":"value",...}
  // The names of its secrets (their values are TaskSecrets', sealed).
  std::vector<std::string> secret_names;
  std::string cwd;
  uint64_t timeout_s = 0;
  std::string target;
  protocol::TaskLimits limits;  // tasks.limits_json
  int max_attempts = 1;
  int attempts_made = 0;
  std::string current_attempt;
  bool cancel_requested = false;
  std::string cancel_reason;
  std::string final_json;
  std::optional<bool> output_verified;
  std::string verification_error;
  std::string created_at;
  std::string updated_at;
};

// A task and the target it holds (protocol/task_target.hpp).
struct TargetHolder {
  std::string task_id;
  std::string target;
};

enum class AttemptState { kDispatched, kRunning, kFinished, kLost };
std::string_view to_string(AttemptState state);

struct AttemptRecord {
  std::string id;
  std::string task_id;
  std::string agent;
  int number = 1;
  AttemptState state = AttemptState::kDispatched;
  std::string dispatched_at;
  int64_t dispatched_at_ms = 0;
  std::string started_at;
  std::string finished_at;
  int pid = 0;
  std::string final_json;
  std::string final_fingerprint;
  std::string lost_reason;
  std::string agent_instance;  // empty if the poll did not say
};

class TaskRepository {
 public:
  explicit TaskRepository(core::SqlStore& store) : store_(store) {}

  void insert_task(const TaskRecord& task);
  std::optional<TaskRecord> find_task(const std::string& id);
  // Newest first; `state` empty for all; `before` a task's id: only tasks
  // listed after it (the next page), empty for the first page. With
  // `visible`, only the tasks of the agents it accepts (up to `limit` of those).
  std::vector<TaskRecord> list_tasks(
      const std::string& state, const std::string& before, int limit,
      const std::function<bool(const std::string& agent)>& visible = nullptr);
  // Queued tasks of an agent, oldest first.
  // `with_pool`: also the queued pool tasks (agent ''), whatever their selector.
  std::vector<TaskRecord> queued_tasks(const std::string& agent, bool with_pool = false);
  // Claims queued task `id` for a dispatch in this turn's write transaction:
  // false if it is no longer queued, or if another hub on the database holds
  // it in a transaction still open (PostgreSQL: SELECT ... FOR UPDATE SKIP
  // LOCKED; the row stays locked until this turn commits, so no other hub can
  // dispatch it too). On SQLite the transaction holds the whole database.
  // Throws as SqlStore::begin_write.
  bool claim_queued(const std::string& id);
  // Claims attempt `id`, dispatched or running, to end it in this turn (a
  // lease ran out): false if it has ended, or if another hub holds it in a
  // transaction still open (as claim_queued), so an attempt is declared lost
  // once whichever hubs check its lease.
  bool claim_active_attempt(const std::string& id);
  // The distinct selectors of queued pool tasks.
  std::vector<std::string> queued_pool_selectors();
  // The agent that takes a pool task ("" hands it back to the pool).
  void assign_agent(const std::string& id, const std::string& agent);
  // The tasks of `agent` with a non-empty target in state dispatched or
  // running, and with `with_queued` in state queued too; oldest first. Which
  // of them conflict with a target is protocol::targets_conflict's to say.
  std::vector<TargetHolder> target_holders(const std::string& agent, bool with_queued);
  // The writes below read nothing back: each is SqlStore::execute_later
  // (on PostgreSQL sent with the next statement; an error is the entry
  // point's all the same).
  void write_task_state(const std::string& id, TaskState state);
  void set_current_attempt(const std::string& id, const std::string& attempt_id, int attempts_made);
  void set_cancel_requested(const std::string& id, const std::string& reason);
  void set_final(const std::string& id, const std::string& final_json, std::optional<bool> verified,
                 const std::string& verification_error);

  void insert_attempt(const AttemptRecord& attempt);
  std::optional<AttemptRecord> find_attempt(const std::string& id);
  // The attempt and its task (none if the task is gone) in one read.
  std::optional<std::pair<AttemptRecord, std::optional<TaskRecord>>> find_attempt_with_task(
      const std::string& id);
  std::vector<AttemptRecord> attempts_of(const std::string& task_id);
  std::vector<AttemptRecord> active_attempts();
  std::vector<AttemptRecord> active_attempts_of(const std::string& agent);
  void mark_attempt_running(const std::string& id, int pid, const std::string& started_at);
  void mark_attempt_finished(const std::string& id, const std::string& final_json,
                             const std::string& fingerprint, const std::string& finished_at);
  void mark_attempt_lost(const std::string& id, const std::string& reason);

 private:
  // Claims row `id` with `row_locked` (SELECT ... FOR UPDATE SKIP LOCKED)
  // where other hubs write at once, else with `database_locked` (the same
  // read without the clause, which SQLite does not know).
  bool claim(const char* row_locked, const char* database_locked, const std::string& id);

  core::SqlStore& store_;
};

// The TaskSpec an agent receives for an attempt of `task`.
Result<protocol::TaskSpec> spec_for(const TaskRecord& task, const std::string& attempt_id);

}  // namespace tether::hub
