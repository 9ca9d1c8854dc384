// The system calls that confine one task, for the task's init (task_init.hpp):
// joining the attempt's cgroup, switching to the task's user without any
// capability, killing through the cgroup, and emptying the task's home.
//
// Everything here runs in a fork of the multi-threaded agent, so it is
// async-signal-safe: raw system calls, static buffers, no allocation. The
// user switch uses the raw syscalls, not glibc's wrappers, which would try
// to reach the agent's other threads (they do not exist in the fork).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "agent/task_init.hpp"

namespace tether::agent::confinement {

// Writes this process into `cgroup`/cgroup.procs. Returns 0 or an errno.
int join_cgroup(const char* cgroup);

// The output pipes (fds 1 and 2) to the plan's user, then setgroups,
// setresgid and setresuid to it (if it switches);
// then no ambient, permitted, effective or inheritable capability and
// no_new_privs, unless the result is root (run_as = root). Returns 0 or an
// errno.
int drop_privileges(const TaskInitPlan& plan);

// Up to `capacity` pids listed in `cgroup`/cgroup.procs; returns how many.
int cgroup_pids(const char* cgroup, int* pids, int capacity);

// Writes "1" to `cgroup`/cgroup.kill: SIGKILL to every process in it, at
// once. Returns false where the kernel has no cgroup.kill (before 5.14).
bool kill_cgroup(const char* cgroup);

// The count after `key` in the flat-keyed file `cgroup`/`file` ("oom_kill 2"
// in memory.events, "max 5" in pids.events: cgroup-v2.rst, "Format"), or -1
// where the file or the key is missing.
int64_t cgroup_event_count(const char* cgroup, const char* file, const char* key);

// Removes the (empty) cgroup directory, retrying while processes that were
// killed are still leaving it (at most about a second).
void remove_cgroup(const char* cgroup);

// Removes everything below `directory` (not the directory itself): files,
// links and directories, at most 64 levels deep, without following links.
// Run as the task's user: it owns what is there.
void empty_directory(const char* directory);

}  // namespace tether::agent::confinement
