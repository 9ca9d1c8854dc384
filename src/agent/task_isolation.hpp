// TaskIsolation: how tasks are kept apart from the agent and from each other,
// decided once at start (agent_daemon, exec_command) and used for every
// attempt by the AttemptRunner. docs/operations.md, "Task isolation".
#pragma once

#include <memory>
#include <string>

#include "agent/agent_config.hpp"
#include "agent/task_cgroups.hpp"
#include "agent/task_users.hpp"
#include "core/result.hpp"

namespace tether::agent {

struct TaskIsolation {
  TaskUsers users = TaskUsers::as_self();     // who each attempt runs as
  TaskCgroups cgroups = TaskCgroups::none();  // none: the subreaper alone
  // Where each attempt's HOME is made (task_home.hpp); empty: tasks keep
  // their user's own HOME (unit tests only).
  std::string home_root;

  // From agent.conf (run_as, task_uid_range, cgroup, task_home_root): users
  // resolved, cgroups detected, the home root prepared (task_home.hpp). Says
  // once, as warnings, what is weaker than the default (tasks as the agent
  // itself, no cgroup) and logs what was chosen. Errors name the key
  // ("run_as", "task_uid_range", "task_home_root").
  static Result<std::shared_ptr<TaskIsolation>> from_config(const AgentConfig& config);
};

}  // namespace tether::agent
