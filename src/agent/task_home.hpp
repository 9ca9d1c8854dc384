// TaskHome: the HOME of one attempt, a directory of its own owned by the
// task's user (mode 0700), never the agent's state directory. The task's
// init empties it as the task's user when the attempt ends
// (task_confinement.hpp); this object then removes the directory itself.
#pragma once

#include <string>

#include "agent/task_users.hpp"
#include "core/result.hpp"

namespace tether::agent {

class TaskHome {
 public:
  // Makes `root` (mode 0711: tasks may pass through, not list it) if needed,
  // and removes the empty homes a previous run left (an agent that was
  // killed). Checks that `user` (any uid of a range: as "others") may pass
  // through every directory above it. Errors: "task_home_root", naming the
  // directory and errno, or the directory the user cannot pass and its mode.
  static Result<void> prepare_root(const std::string& root, const TaskUser& user);

  // Creates ROOT/attempt-ATTEMPT_ID, mode 0700, owned by `user` (a leftover of
  // the same name is reused if empty). Errors: "home", naming the directory.
  static Result<TaskHome> create(const std::string& root, const std::string& attempt_id,
                                 const TaskUser& user);

  TaskHome(TaskHome&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TaskHome& operator=(TaskHome&&) = delete;
  TaskHome(const TaskHome&) = delete;
  // Removes the directory; one the init could not empty stays (and a warning
  // is logged).
  ~TaskHome();

  const std::string& path() const { return path_; }

 private:
  explicit TaskHome(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace tether::agent
