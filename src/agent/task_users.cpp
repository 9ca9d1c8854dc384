#include "agent/task_users.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>

namespace tether::agent {

namespace {

std::string user_name(uid_t uid) {
  if (const passwd* entry = ::getpwuid(uid); entry && entry->pw_name) return entry->pw_name;
  return "uid-" + std::to_string(uid);
}

TaskUser self_user() {
  TaskUser user;
  user.uid = ::geteuid();
  user.gid = ::getegid();
  user.name = user_name(user.uid);
  return user;
}

// The named user with its primary and supplementary groups.
Result<TaskUser> named_user(const std::string& name) {
  const passwd* entry = ::getpwnam(name.c_str());
  if (!entry) {
    return make_error(Errc::kInvalid, "run_as",
                      "run_as: there is no user '" + name +
                          "' on this host; create it (useradd --system --no-create-home "
                          "--shell /usr/sbin/nologin " +
                          name + ") or set run_as in agent.conf");
  }
  TaskUser user;
  user.switch_user = true;
  user.uid = entry->pw_uid;
  user.gid = entry->pw_gid;
  user.name = entry->pw_name;
  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  if (::getgrouplist(entry->pw_name, entry->pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count));
    ::getgrouplist(entry->pw_name, entry->pw_gid, groups.data(), &count);
  }
  groups.resize(static_cast<size_t>(count));
  user.groups = std::move(groups);
  return user;
}

Result<void> check_range(uint32_t first, uint32_t last, uint64_t max_concurrent) {
  if (first == 0) {
    return make_error(Errc::kInvalid, "task_uid_range",
                      "task_uid_range: must not hold uid 0 (root)");
  }
  if (uint64_t{last} - first + 1 < max_concurrent) {
    return make_error(Errc::kInvalid, "task_uid_range",
                      "task_uid_range: holds " + std::to_string(uint64_t{last} - first + 1) +
                          " uids, fewer than max_concurrent_tasks (" +
                          std::to_string(max_concurrent) + ")");
  }
  for (uint64_t uid = first; uid <= last; ++uid) {
    if (const passwd* entry = ::getpwuid(static_cast<uid_t>(uid))) {
      return make_error(Errc::kInvalid, "task_uid_range",
                        "task_uid_range: uid " + std::to_string(uid) + " belongs to user '" +
                            entry->pw_name + "'; the range must hold no existing user");
    }
  }
  return {};
}

}  // namespace

bool can_run_tasks_as_others() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  const uint32_t effective = data[0].effective;
  for (int capability : {CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN}) {
    if ((effective & (1u << capability)) == 0) return false;
  }
  return true;
}

Result<std::pair<uint32_t, uint32_t>> parse_uid_range(const std::string& text) {
  const size_t dash = text.find('-');
  uint32_t first = 0;
  uint32_t last = 0;
  const char* end = text.data() + text.size();
  if (dash != std::string::npos) {
    auto a = std::from_chars(text.data(), text.data() + dash, first);
    auto b = std::from_chars(text.data() + dash + 1, end, last);
    if (a.ec == std::errc() && a.ptr == text.data() + dash && b.ec == std::errc() && b.ptr == end &&
        dash > 0 && first <= last) {
      return std::make_pair(first, last);
    }
  }
  return make_error(Errc::kInvalid, "invalid",
                    "expected FIRST-LAST, two uids with FIRST <= LAST, e.g. 61184-61439");
}

Result<TaskUsers> TaskUsers::resolve(const TaskUsersSettings& settings, std::string& notice) {
  TaskUsers users;
  const TaskUser self = self_user();
  const bool range = settings.uid_first != 0 || settings.uid_last != 0;
  if (!can_run_tasks_as_others()) {
    const std::string why = "this agent runs as " + self.name + " (uid " +
                            std::to_string(self.uid) +
                            ") without CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN";
    if (range) return make_error(Errc::kInvalid, "task_uid_range", "task_uid_range: " + why);
    if (settings.run_as_explicit) {
      auto named = named_user(settings.run_as);
      if (!named) return named.error();
      if (named->uid != self.uid) return make_error(Errc::kInvalid, "run_as", "run_as: " + why);
    }
    notice = "tasks run as this agent's own user: " + why +
             " (docs/operations.md, Task users); they can read its token and outbox";
    users.base_ = self;
    return users;
  }
  if (range) {
    TETHER_TRY(checked,
               check_range(settings.uid_first, settings.uid_last, settings.max_concurrent_tasks));
    users.uid_first_ = settings.uid_first;
    users.uid_last_ = settings.uid_last;
    users.base_.switch_user = true;
    users.base_.uid = settings.uid_first;
    users.base_.gid = settings.uid_first;
    users.base_.name = "uid-" + std::to_string(settings.uid_first);
    return users;
  }
  auto named = named_user(settings.run_as);
  if (!named) return named.error();
  if (named->uid == self.uid) {
    notice = "tasks run as this agent's own user (run_as = " + named->name +
             "): they can read its token and outbox";
    users.base_ = self;
    return users;
  }
  if (named->uid == 0) {
    notice = "tasks run as root (run_as = " + named->name +
             "): they can read the agent's token and outbox and do anything on this host";
  }
  users.base_ = std::move(*named);
  return users;
}

TaskUsers TaskUsers::as_self() {
  TaskUsers users;
  users.base_ = self_user();
  return users;
}

std::optional<TaskUser> TaskUsers::acquire() {
  if (uid_first_ == 0) return base_;
  for (uint64_t uid = uid_first_; uid <= uid_last_; ++uid) {
    if (in_use_.count(static_cast<uint32_t>(uid)) != 0) continue;
    in_use_.insert(static_cast<uint32_t>(uid));
    TaskUser user;
    user.switch_user = true;
    user.uid = static_cast<uid_t>(uid);
    user.gid = static_cast<gid_t>(uid);
    user.name = "uid-" + std::to_string(uid);
    return user;
  }
  return std::nullopt;
}

void TaskUsers::release(const TaskUser& user) {
  if (uid_first_ != 0) in_use_.erase(static_cast<uint32_t>(user.uid));
}

std::string TaskUsers::describe() const {
  if (uid_first_ != 0) {
    return "a uid of its own from " + std::to_string(uid_first_) + "-" + std::to_string(uid_last_);
  }
  if (!base_.switch_user) {
    return "the agent's own user " + base_.name + " (uid " + std::to_string(base_.uid) + ")";
  }
  return base_.name + " (uid " + std::to_string(base_.uid) + ")";
}

}  // namespace tether::agent
