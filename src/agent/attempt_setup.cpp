#include "agent/attempt_setup.hpp"

#include <unistd.h>

namespace tether::agent {

Result<std::unique_ptr<AttemptSetup>> AttemptSetup::prepare(TaskIsolation* isolation,
                                                            const std::string& attempt_id,
                                                            const protocol::TaskLimits& limits) {
  std::unique_ptr<AttemptSetup> setup(new AttemptSetup());
  setup->limits_ = limits;
  // Before a uid or a home is taken: a limit that cannot hold fails the attempt first.
  const TaskCgroups unisolated = TaskCgroups::none("this agent runs tasks without isolation");
  TETHER_TRY(enforceable, (isolation ? isolation->cgroups : unisolated).check(limits));
  if (!isolation) {
    setup->user_ = TaskUsers::as_self().acquire().value();
    return setup;
  }
  auto user = isolation->users.acquire();
  if (!user) {
    return make_error(Errc::kBusy, "task_uid_range",
                      "every uid of task_uid_range is held by a running attempt");
  }
  setup->isolation_ = isolation;
  setup->user_ = std::move(*user);
  if (!isolation->home_root.empty()) {
    TETHER_TRY(home, TaskHome::create(isolation->home_root, attempt_id, setup->user_));
    setup->home_.emplace(std::move(*home));
  }
  if (isolation->cgroups.available()) {
    TETHER_TRY(cgroup, isolation->cgroups.create(attempt_id, limits));
    setup->cgroup_ = std::move(*cgroup);
  }
  return setup;
}

AttemptSetup::~AttemptSetup() {
  // The init removed the cgroup; one left behind (an init killed from
  // outside) goes now if it is empty.
  if (!cgroup_.empty()) ::rmdir(cgroup_.c_str());
  if (isolation_) isolation_->users.release(user_);
}

std::map<std::string, std::string> AttemptSetup::environment() const {
  if (!isolation_) return {};
  std::map<std::string, std::string> variables = {{"USER", user_.name}, {"LOGNAME", user_.name}};
  if (home_) variables["HOME"] = home_->path();
  return variables;
}

void AttemptSetup::fill(TaskInitPlan& plan) const {
  plan.cgroup = cgroup_.empty() ? nullptr : cgroup_.c_str();
  plan.watch_memory = limits_.memory_max.has_value();
  plan.watch_pids = limits_.pids_max.has_value();
  plan.home = home_ ? home_->path().c_str() : nullptr;
  plan.switch_user = user_.switch_user;
  plan.uid = user_.uid;
  plan.gid = user_.gid;
  plan.groups = user_.groups.data();
  plan.group_count = user_.groups.size();
}

protocol::AttemptIsolation AttemptSetup::describe() const {
  return protocol::AttemptIsolation{user_.name, static_cast<int64_t>(user_.uid),
                                    cgroup_.empty() ? "subreaper" : "cgroup"};
}

}  // namespace tether::agent
