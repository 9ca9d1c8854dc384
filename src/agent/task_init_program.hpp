// Where tether-task-init (task_init.hpp) is: the program the agent starts
// for every attempt.
#pragma once

#include <string>

#include "core/result.hpp"

namespace tether::agent {

// The tether-task-init next to this process's executable, if there is one
// (a build tree, or a package that puts both in one directory); otherwise
// the installed one, LIBEXECDIR/tether/tether-task-init of the build's
// configuration, whether or not it exists (starting a task then fails with
// an error that names it).
std::string default_task_init_program();

// Whether `program` can be run: every task starts through it, so an agent
// without it could only fail them. The error names it and says why
// (code "task_init_missing").
Result<void> check_task_init_program(const std::string& program);

}  // namespace tether::agent
