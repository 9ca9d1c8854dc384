// AttemptSetup: what one attempt runs with besides its command, made before
// its init starts and undone after the init has finished: the user it runs
// as (a uid from the range comes back when this ends), its HOME and its
// cgroup (task_isolation.hpp).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/task_home.hpp"
#include "agent/task_init.hpp"
#include "agent/task_isolation.hpp"
#include "core/result.hpp"
#include "protocol/attempt_report.hpp"

namespace tether::agent {

class AttemptSetup {
 public:
  // `isolation` null: the task runs as this process, with its HOME, under the
  // subreaper alone (and cannot have limits). Errors (the message of a final
  // `failed`): "task_uid_range" (no uid free), "home", "cgroup",
  // "limit_unavailable" (a limit this agent cannot enforce: task_cgroups.hpp).
  static Result<std::unique_ptr<AttemptSetup>> prepare(TaskIsolation* isolation,
                                                       const std::string& attempt_id,
                                                       const protocol::TaskLimits& limits = {});
  AttemptSetup(const AttemptSetup&) = delete;
  AttemptSetup& operator=(const AttemptSetup&) = delete;
  // Gives the uid back; the home directory goes (TaskHome).
  ~AttemptSetup();

  // HOME, USER and LOGNAME for the task's environment (empty without isolation).
  std::map<std::string, std::string> environment() const;
  // The directory the task starts in when its spec names none: its home, or
  // empty (this process's).
  std::string default_directory() const { return home_ ? home_->path() : std::string(); }
  // The user, cgroup and home fields of the init's plan; the pointers are
  // into this object.
  void fill(TaskInitPlan& plan) const;
  // For the final.
  protocol::AttemptIsolation describe() const;

 private:
  AttemptSetup() = default;

  TaskIsolation* isolation_ = nullptr;
  TaskUser user_;
  std::optional<TaskHome> home_;
  std::string cgroup_;  // empty: none
  protocol::TaskLimits limits_;
};

}  // namespace tether::agent
