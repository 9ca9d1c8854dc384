// A TaskInitPlan on its way from the agent to tether-task-init (the task's
// init as a program of its own, task_init.hpp): the agent writes it into a
// memfd that the init gets as its fd 4 (kTaskInitPlanFd) and reads once, at
// start.
//
// Format: NUL-terminated strings and nothing else, in this order:
//   "tether-task-init-plan 1"       (kTaskInitPlanMagic: the format's version)
//   "path" PATH
//   "argv" N ARG1 ... ARGN          (N >= 1)
//   "envp" N ENTRY1 ... ENTRYN      ("NAME=value")
//   "cgroup" DIR                    (optional, as each of the next four)
//   "cwd" DIR
//   "home" DIR
//   "watch" MEMORY PIDS             ("0" or "1" each)
//   "user" UID GID N GID1 ... GIDN  (present: switch_user)
//   "end"
// Numbers are decimal. An init that reads anything else (an agent and an
// init of different versions, after an upgrade) refuses to start the task.
#pragma once

#include <string>

#include "agent/task_init.hpp"

namespace tether::agent {

inline constexpr const char kTaskInitPlanMagic[] = "tether-task-init-plan 1";
inline constexpr int kTaskInitPlanFd = 4;

// The bytes of `plan` in the format above.
std::string encode_task_init_plan(const TaskInitPlan& plan);

// Reads a plan in the format above from `bytes` (`size` of them, which it
// keeps and points into: they must outlive `plan`). Allocates the argv,
// envp and groups arrays with malloc: release_task_init_plan frees them
// (the init never does; it exits). False if the bytes are not such a plan,
// with nothing left allocated. `plan` is reset first, either way.
bool decode_task_init_plan(char* bytes, size_t size, TaskInitPlan& plan);
void release_task_init_plan(TaskInitPlan& plan);

}  // namespace tether::agent
