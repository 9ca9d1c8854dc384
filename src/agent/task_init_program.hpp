// Where tether-task-init (task_init.hpp) is: the program the agent starts
// for every attempt.
#pragma once

#include <string>

namespace tether::agent {

// The tether-task-init next to this process's executable, if there is one
// (a build tree, or a package that puts both in one directory); otherwise
// the installed one, LIBEXECDIR/tether/tether-task-init of the build's
// configuration, whether or not it exists (starting a task then fails with
// an error that names it).
std::string default_task_init_program();

}  // namespace tether::agent
