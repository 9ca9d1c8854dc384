#include "agent/task_isolation.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "agent/task_home.hpp"
#include "core/log.hpp"

namespace tether::agent {

namespace {

// The default home root is inside the state directory, so a task's user must
// be able to pass through it (search permission for others; it still cannot
// list it, and the outbox files are not readable by others).
Result<void> let_tasks_pass(const std::string& state_dir) {
  if (::mkdir(state_dir.c_str(), 0711) != 0 && errno != EEXIST) {
    return make_error(Errc::kIo, "state_dir",
                      "cannot create state directory '" + state_dir + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(state_dir.c_str(), &info) != 0) {
    return make_error(Errc::kIo, "state_dir",
                      "state directory '" + state_dir + "': " + std::strerror(errno));
  }
  // Files an earlier version left readable by others stop being so.
  for (const char* name : {"/outbox.db", "/outbox.db-wal", "/outbox.db-shm", "/status.sock"}) {
    struct stat file {};
    const std::string path = state_dir + name;
    if (::stat(path.c_str(), &file) == 0 && (file.st_mode & 0007) != 0)
      ::chmod(path.c_str(), file.st_mode & 07770);
  }
  if ((info.st_mode & S_IXOTH) != 0) return {};
  if (::chmod(state_dir.c_str(), (info.st_mode & 07777) | S_IXOTH) != 0) {
    return make_error(Errc::kIo, "state_dir",
                      "cannot let tasks pass through '" + state_dir +
                          "' to their homes: " + std::strerror(errno));
  }
  core::log_info("agent", "state_dir " + state_dir +
                              ": search permission added for others, so tasks reach their "
                              "homes in it (they cannot list it or read the outbox)");
  return {};
}

}  // namespace

Result<std::shared_ptr<TaskIsolation>> TaskIsolation::from_config(const AgentConfig& config) {
  auto isolation = std::make_shared<TaskIsolation>();
  TaskUsersSettings settings;
  settings.run_as = config.run_as;
  settings.run_as_explicit = config.origins.count("run_as") != 0;
  settings.uid_first = config.task_uid_first;
  settings.uid_last = config.task_uid_last;
  settings.max_concurrent_tasks = config.max_concurrent_tasks;
  std::string users_notice;
  TETHER_TRY(users, TaskUsers::resolve(settings, users_notice));
  isolation->users = std::move(*users);
  if (!users_notice.empty()) core::log_warning("agent", users_notice);

  std::string cgroup_notice;
  isolation->cgroups = TaskCgroups::detect(config.cgroup, cgroup_notice);
  if (!cgroup_notice.empty()) core::log_warning("agent", cgroup_notice);

  isolation->home_root =
      config.task_home_root.empty() ? config.state_dir + "/homes" : config.task_home_root;
  if (config.task_home_root.empty()) {
    if (isolation->users.switches_user()) {
      TETHER_TRY(passable, let_tasks_pass(config.state_dir));
    } else if (::mkdir(config.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error(
          Errc::kIo, "state_dir",
          "cannot create state directory '" + config.state_dir + "': " + std::strerror(errno));
    }
  }
  TETHER_TRY(root, TaskHome::prepare_root(isolation->home_root, isolation->users.typical()));
  core::log_info("agent", "tasks run as " + isolation->users.describe() + ", each in " +
                              (isolation->cgroups.available()
                                   ? "a cgroup of its own under " + isolation->cgroups.base()
                                   : std::string("the subreaper's care (no cgroup)")) +
                              ", with a home under " + isolation->home_root);
  return isolation;
}

}  // namespace tether::agent
