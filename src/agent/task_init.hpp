// The task init: a minimal init process for one attempt, between the agent
// and the task's command, like tini or dumb-init for a container.
//
// It is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a descendant of
// the command whose parent exits is re-parented to it, not to pid 1. So
// every process the task ever started stays in its subtree, whatever process
// group or session it moved to (`set -m`, setsid, a double fork), and can be
// found through /proc and killed on timeout, cancel, or when the task ends.
// Where the agent has cgroup v2 delegated, the command also joins the
// attempt's own cgroup before exec, and a kill goes through cgroup.kill too
// (task_cgroups.hpp); the command runs as the task's user with no
// capabilities (task_confinement.hpp).
//
// It is a program of its own, tether-task-init (task_init_main.cpp), that
// the agent starts with posix_spawn for each attempt, handing it the
// attempt's TaskInitPlan on fd 4 (task_init_plan.hpp). It used to be a fork
// of the agent that never exec'd: each fork copied the agent's page tables
// on its loop thread and shared its memory copy-on-write, so 200 attempts
// starting made the agent fault on every page it wrote, and 200 running
// inits held 295 MiB of private copies of the agent's pages (issue [6/8]).
// Its code still makes system calls only (no allocation after the plan is
// read), as it did in a fork.
//
// Line protocol on its fd 3 (a socketpair), ASCII, one event or command per
// line:
//   init -> agent   started PID            the command runs (PID: its pid)
//                   failed ERRNO STAGE     the command could not start: STAGE
//                                          is exec, cgroup (joining it), user
//                                          (switching to the task's user), cwd
//                                          (entering its directory) or plan
//                                          (fd 4 held no plan this init reads)
//                   exited CODE SIGNAL     the command ended (one is 0)
//                   signalled SIGNAL N [NAME:PID]...
//                                          what a term or kill reached: N
//                                          processes (at most 16 named)
//                   limited LIMIT N        the kernel enforced a limit of the
//                                          task (protocol/task_limits.hpp) N
//                                          times: memory_max (processes its
//                                          OOM killer ended) or pids_max
//                                          (forks refused); sent before done
//                   done                   no process of the task is left
//   agent -> init   term                   SIGTERM to every process of the task
//                   kill                   SIGKILL to every process of the task,
//                                          until none is left
//                   finish                 the attempt is over: kill what is
//                                          left, then done
// When the agent goes away (end of file on fd 3) it kills everything and
// exits: a task never outlives its agent.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace tether::agent {

// What the init needs, prepared in the agent: the command's resolved path,
// argv and environment as execve takes them.
struct TaskInitPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  // The attempt's cgroup directory (task_cgroups.hpp), or null: the command
  // joins it before exec; the init kills through it (cgroup.kill) and
  // removes it when the attempt ends.
  const char* cgroup = nullptr;
  // Read the cgroup's memory.events oom_kill / pids.events max before it
  // goes, and report them ("limited"): the task had memory_max / pids_max.
  bool watch_memory = false;
  bool watch_pids = false;
  // The directory the command starts in, entered as the task's user (its
  // home is 0700, the agent may not enter it); null: the init's.
  const char* cwd = nullptr;
  // The task's home: emptied, as the task's user, when the attempt ends (the
  // agent then removes the directory itself).
  const char* home = nullptr;
  // The command runs as this user (task_users.hpp): groups, gid, uid set
  // between fork and exec. Either way it starts with no capabilities and
  // with no_new_privs unless it runs as root.
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
};

// The init's main, in tether-task-init, with fd 3 the agent's control
// socket and fds 1 and 2 the command's output pipes. A null `plan` (fd 4 held
// none this init can read) answers "failed EPROTO plan" and exits.
[[noreturn]] void run_task_init(const TaskInitPlan* plan);

}  // namespace tether::agent
