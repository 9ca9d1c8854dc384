// TaskUsers: which user each task attempt runs as (issue [4/8], docs/operations.md
// "Task users").
//
// The agent never runs a task as itself when it can do otherwise:
// - `run_as` (default `tether-task`): every attempt runs as that user, with its
//   primary group and supplementary groups (getgrouplist(3));
// - `task_uid_range = FIRST-LAST`: each running attempt gets a uid of its own
//   from the range, with the same number as its only group (like systemd's
//   DynamicUser), so concurrent tasks cannot read each other's /proc entries
//   or signal each other. A uid returns to the range when its attempt ends.
// Switching user needs CAP_SETUID and CAP_SETGID, killing the task's
// processes CAP_KILL, and handing a task its home CAP_CHOWN. An agent without
// them (a developer's laptop) runs tasks as itself and says so once at start;
// with an explicit `run_as` it refuses to start instead.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace tether::agent {

// One attempt's identity, ready for the task's init to switch to (it only
// makes system calls after the fork, so everything is resolved here).
struct TaskUser {
  bool switch_user = false;  // false: the task runs as the agent itself
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (setgroups(2))
  std::string name;           // USER and LOGNAME; "uid-N" for a range uid
};

struct TaskUsersSettings {
  std::string run_as = "tether-task";
  bool run_as_explicit = false;  // set in agent.conf or by flag
  uint32_t uid_first = 0;        // task_uid_range; 0: no range
  uint32_t uid_last = 0;
  uint64_t max_concurrent_tasks = 1;
};

class TaskUsers {
 public:
  // Decides how tasks run, from the settings and this process's capabilities.
  // `notice` is set when the agent must say something once at start (tasks run
  // as the agent itself, or as root). Errors (code "run_as" or
  // "task_uid_range"): an unknown user, an explicit run_as the agent cannot
  // switch to, a range that is malformed, holds uid 0 or an existing user's
  // uid, or is smaller than max_concurrent_tasks.
  static Result<TaskUsers> resolve(const TaskUsersSettings& settings, std::string& notice);
  // Tasks run as this process's own user (`tether-agent exec`, tests).
  static TaskUsers as_self();

  // The identity for a new attempt; with a uid range, a uid no running attempt
  // holds (nothing when every uid is taken, which max_concurrent_tasks rules
  // out). Give it back with release().
  std::optional<TaskUser> acquire();
  void release(const TaskUser& user);

  // "tether-task (uid 998)", "a uid of its own from 61184-61439", or "the
  // agent's own user (uid 1000)": for the start log.
  std::string describe() const;
  bool switches_user() const { return base_.switch_user; }
  // Who tasks run as, for checks made once at start: the run_as user, or for
  // a range its first uid with no group of its own.
  const TaskUser& typical() const { return base_; }

 private:
  TaskUser base_;  // the run_as user, or the agent itself
  uint32_t uid_first_ = 0;
  uint32_t uid_last_ = 0;
  std::set<uint32_t> in_use_;
};

// Whether this process has every capability tasks of another user need
// (CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN) in its effective set.
bool can_run_tasks_as_others();

// Parses "FIRST-LAST" (decimal uids, FIRST <= LAST). Errors: "invalid".
Result<std::pair<uint32_t, uint32_t>> parse_uid_range(const std::string& text);

}  // namespace tether::agent
