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
// It runs in a fork of the agent that never execs (Process::child_main), so
// it only makes async-signal-safe calls: system calls, no allocation.
//
// Line protocol on its fd 3 (a socketpair), ASCII, one event or command per
// line:
//   init -> agent   started PID            the command runs (PID: its pid)
//                   failed ERRNO STAGE     the command could not start: STAGE
//                                          is exec, cgroup (joining it), user
//                                          (switching to the task's user) or
//                                          cwd (entering its directory)
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

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::agent {

// What the init needs, prepared in the agent before the fork: the command's
// resolved path, argv and environment as execve takes them.
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

// The init's main (Process::child_main); `plan` is a TaskInitPlan*.
[[noreturn]] void run_task_init(void* plan);

struct TaskInitEvent {
  enum class Kind { kStarted, kFailed, kExited, kSignalled, kLimited, kDone };
  Kind kind = Kind::kDone;
  int pid = 0;                     // started
  int error = 0;                   // failed: errno
  std::string stage;               // failed: "exec", "cgroup", "user" or "cwd"
  int64_t exit_code = 0;           // exited
  int signal = 0;                  // exited (0: not by a signal), signalled
  int count = 0;                   // signalled: how many processes
  std::vector<std::string> names;  // signalled: "NAME (pid PID)", at most 16
  std::string limit;               // limited: "memory_max" or "pids_max"
  int64_t times = 0;               // limited
};

// One line from the init, without its newline; nothing if malformed.
std::optional<TaskInitEvent> parse_task_init_line(std::string_view line);

}  // namespace tether::agent
