// What a task's init says to the agent, parsed: one line of the init's line
// protocol (task_init.hpp) at a time, in the agent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::agent {

struct TaskInitEvent {
  enum class Kind { kStarted, kFailed, kExited, kSignalled, kLimited, kDone };
  Kind kind = Kind::kDone;
  int pid = 0;                     // started
  int error = 0;                   // failed: errno
  std::string stage;               // failed: "exec", "cgroup", "user", "cwd", "plan"
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
