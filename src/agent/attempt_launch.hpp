// Starting one attempt: what it runs (its argv, environment and the program
// found on its PATH) and the task's init that runs it (task_init.hpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/attempt_setup.hpp"
#include "core/loop.hpp"
#include "core/process.hpp"
#include "core/result.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

struct Launch {
  std::vector<std::string> argv;
  std::vector<std::string> environment;
  std::string program;  // argv[0] found on the PATH of `environment`
};

// The launch of `task` as `setup` prepared it. Errors (a working directory
// or program that is not there) are the message of a final `failed`.
Result<Launch> prepare_launch(const protocol::TaskSpec& task, const AttemptSetup& setup);

// Starts `init_program` (tether-task-init) with the attempt's plan on its fd
// 4: it runs `launch` in `cwd` (empty: the init's) as `setup` says and reaches
// every process the task starts, wherever it moves. Its stdout and stderr
// readers read `read_buffer_bytes` at a time. Errors (the init cannot be
// started: its errno name in parentheses) are the message of a final `failed`.
Result<std::unique_ptr<core::Process>> start_task_init(core::Loop& loop, const Launch& launch,
                                                       const std::string& cwd,
                                                       const AttemptSetup& setup,
                                                       const std::string& init_program,
                                                       size_t read_buffer_bytes);

}  // namespace tether::agent
