// RunRepository: the `runs` table of hub.db, and the run columns of `tasks`
// (run_id, held, released_at_ms), and the only code that reads or writes
// them. A run's state is changed only by RunCoordinator.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hub/hub_store.hpp"
#include "hub/task_state.hpp"

namespace tether::hub {

struct RunRecord {
  std::string id;
  std::string state = "running";  // running, succeeded, failed, stopped, cancelled
  std::string selector;           // canonical text; "" when agents were named
  std::vector<std::string> agents;
  std::string command_json;
  uint64_t max_concurrency = 1;        // resolved count
  std::optional<uint64_t> max_errors;  // resolved count; nothing: no threshold
  uint64_t canary = 0;
  uint64_t offline_timeout_s = 60;
  bool cancel_on_error = false;
  bool lost_is_error = false;
  bool cancelled = false;   // an operator cancelled it
  std::string stop_reason;  // why it stopped or was cancelled; "" while it goes on
  std::string created_by;
  std::string created_at;
  std::string finished_at;
};

// One task of a run, as the run needs it: in creation order, which is the
// order tasks are released in.
struct RunTaskRow {
  std::string task_id;
  std::string agent;
  TaskState state = TaskState::kQueued;
  bool held = true;  // not released yet
  std::optional<int64_t> released_at_ms;
  std::string final_json;
  std::string note;  // why it was skipped or cancelled (tasks.cancel_reason)
  std::string updated_at;
};

class RunRepository {
 public:
  explicit RunRepository(core::SqlStore& store) : store_(store) {}
  // The store the runs are in (RunCoordinator decides at its commits).
  core::SqlStore& store() { return store_; }

  void insert(const RunRecord& run);
  std::optional<RunRecord> find(const std::string& id);
  // Locks run `id` until this turn commits, so that one hub at a time
  // decides what it does next (PostgreSQL: SELECT ... FOR UPDATE, waiting
  // for another hub's turn that holds it; on SQLite the turn's transaction
  // holds the whole database). Throws as SqlStore::begin_write.
  void lock(const std::string& id);
  // Newest first, at most `limit`.
  // Newest first; `state` empty for all; `before` a run's id: the page below
  // it (empty: the first page).
  std::vector<RunRecord> list(const std::string& state, const std::string& before, int limit);
  // The ids of runs still running.
  std::vector<std::string> running_ids();
  void set_stop_reason(const std::string& id, const std::string& reason, bool cancelled);
  void finish(const std::string& id, const std::string& state);
  // The run's tasks in creation order, every field read (for its view).
  std::vector<RunTaskRow> tasks_of(const std::string& run_id);
  // The same rows with only what RunCoordinator decides on: task_id, agent,
  // state, held, released_at_ms (final_json, note and updated_at empty);
  // the first `limit` of them (0: all), or with `held_queued_only`, the first
  // of those still held and queued (the next to release).
  std::vector<RunTaskRow> decision_rows(const std::string& run_id, uint64_t limit = 0,
                                        bool held_queued_only = false);
  // How many of the run's tasks are in each state, released or not: what a
  // decision at every task end needs, without reading every row (a run of a
  // thousand tasks would read a million rows over its task ends).
  std::map<std::pair<TaskState, bool /*held*/>, uint64_t> counts_of(const std::string& run_id);
  // Marks a held task released (dispatch may take it) at `now_ms`.
  void release(const std::string& task_id, int64_t now_ms);

 private:
  core::SqlStore& store_;
};

}  // namespace tether::hub
