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
#pragma once

#include <string>

#include "core/result.hpp"

namespace tether::agent {

class TaskCgroups {
 public:
  // Looks for the agent's own cgroup in a cgroup2 mount (/proc/self/cgroup,
  // /proc/self/mountinfo) and checks the agent may create cgroups below it.
  // `notice` says why not, when not (said once at start).
  static TaskCgroups detect(bool enabled, std::string& notice);
  // No cgroups: the subreaper alone.
  static TaskCgroups none() { return TaskCgroups(); }

  bool available() const { return !base_.empty(); }
  // The directory attempts' cgroups are created in, e.g.
  // /sys/fs/cgroup/system.slice/tether-agent.service.
  const std::string& base() const { return base_; }

  // Creates the cgroup for one attempt: BASE/tether-PID-ATTEMPT_ID. A
  // leftover of the same name that is empty is reused. Errors: "cgroup"
  // (mkdir failed: the message names the directory and errno).
  Result<std::string> create(const std::string& attempt_id) const;

 private:
  std::string base_;
};

}  // namespace tether::agent
