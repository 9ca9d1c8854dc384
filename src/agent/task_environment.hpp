// What a task starts with besides its command: its environment and its
// working directory.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

// The environment every task starts from: PATH, HOME and LANG, never the
// agent's own variables (its token file path, its proxy settings, ...). The
// task's env is applied on top.
std::map<std::string, std::string> base_task_environment();
// base_task_environment(), then `identity` (HOME, USER and LOGNAME of the
// attempt's user, attempt_setup.hpp), then the task's env and secrets on
// top, as NAME=VALUE entries.
std::vector<std::string> task_environment(const protocol::TaskSpec& task,
                                          const std::map<std::string, std::string>& identity = {});
// The task's cwd (empty: the agent's) exists, is a directory and can be
// entered. Errors: "bad_cwd", naming the directory and why.
Result<void> check_working_directory(const std::string& cwd);

}  // namespace tether::agent
