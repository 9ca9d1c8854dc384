// TaskCgroups: a cgroup v2 directory per attempt, where the agent's own cgroup
// is delegated to it (systemd `Delegate=yes`, or a root agent on a host with
// a cgroup2 mount). docs/operations.md "Cgroups".
//
// The attempt's command joins its cgroup before its first instruction (the
// task's init writes it into cgroup.procs between fork and exec), so every
// process the task ever starts is in it, whatever it does with setsid or
// setpgid. Timeout, cancel and the attempt's end kill the whole cgroup
// (cgroup.kill, Linux 5.14), and the init removes it when it is empty.
// Where no cgroup v2 is writable (a v1-only host, an unprivileged agent, or
// `cgroup = off`), the init's child subreaper does the containment alone
// (task_init.hpp), and the final says which mechanism was used.
//
// Task limits (protocol/task_limits.hpp) need the memory, cpu and pids
// controllers enabled for the attempts' cgroups: at start the agent writes
// them into BASE/cgroup.subtree_control. Cgroup v2 lets a cgroup other than
// the root hand controllers to its children only when no process lives in
// it ("no internal processes", Documentation/admin-guide/cgroup-v2.rst 2-4),
// so an agent that is alone in BASE (as under systemd) first moves itself
// into the leaf BASE/agent.
#pragma once

#include <set>
#include <string>

#include "core/result.hpp"
#include "protocol/task_limits.hpp"

namespace tether::agent {

class TaskCgroups {
 public:
  // Looks for the agent's own cgroup in a cgroup2 mount (/proc/self/cgroup,
  // /proc/self/mountinfo) and checks the agent may create cgroups below it;
  // then enables the controllers limits need, as above. `notice` says what
  // is missing, when something is (said once at start).
  static TaskCgroups detect(bool enabled, std::string& notice);
  // No cgroups: the subreaper alone; `why` is what a task asking for a
  // limit is told.
  static TaskCgroups none(std::string why = "cgroups are off") {
    TaskCgroups cgroups;
    cgroups.unavailable_ = std::move(why);
    return cgroups;
  }
  // Cgroups below `base`, an existing directory, with the controllers its
  // cgroup.subtree_control lists (no move, no change): for tests on a plain
  // directory, and for detect.
  static TaskCgroups at(std::string base);

  bool available() const { return !base_.empty(); }
  // The directory attempts' cgroups are created in, e.g.
  // /sys/fs/cgroup/system.slice/tether-agent.service.
  const std::string& base() const { return base_; }
  // Controllers enabled for the attempts' cgroups ("memory", "cpu", ...).
  const std::set<std::string>& controllers() const { return controllers_; }

  // Whether every limit `limits` sets can be enforced here. Errors
  // ("limit_unavailable") name the limit ("task.limits.memory_max: ...") and
  // say what is missing.
  Result<void> check(const protocol::TaskLimits& limits) const;

  // Creates the cgroup for one attempt, BASE/tether-PID-ATTEMPT_ID, and
  // writes its limits: memory.max (and memory.swap.max 0 where swap is
  // accounted), cpu.max as "QUOTA 100000" (µs per 100 ms), pids.max. A
  // leftover of the same name that is empty is reused. Errors: "cgroup"
  // (mkdir failed: the message names the directory and errno),
  // "limit_unavailable" (from check, or a limit file the kernel refused;
  // the cgroup is removed again).
  Result<std::string> create(const std::string& attempt_id,
                             const protocol::TaskLimits& limits = {}) const;

 private:
  std::string base_;
  std::set<std::string> controllers_;
  std::string unavailable_;  // why there are no cgroups, when there are none
};

}  // namespace tether::agent
