#include "agent/task_home.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/log.hpp"

namespace tether::agent {

namespace {

// Whether `user` may search (pass through) a directory with `info`.
bool may_pass(const struct stat& info, const TaskUser& user) {
  if (info.st_uid == user.uid) return (info.st_mode & S_IXUSR) != 0;
  bool in_group = info.st_gid == user.gid;
  for (gid_t group : user.groups)
    in_group = in_group || info.st_gid == group;
  return (info.st_mode & (in_group ? S_IXGRP : S_IXOTH)) != 0;
}

// The first directory from / down to `root` that `user` cannot pass (/
// itself too: a root directory of mode 0700, as an unpacked chroot may
// have, keeps a task from finding even /bin/sh).
Result<void> check_reachable(const std::string& root, const TaskUser& user) {
  for (size_t end = 0;; end = root.find('/', end + 1)) {
    const std::string directory = end == 0 ? std::string("/") : root.substr(0, end);
    struct stat info {};
    if (::stat(directory.c_str(), &info) == 0 && !may_pass(info, user)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
      return make_error(Errc::kInvalid, "task_home_root",
                        "task_home_root: tasks (user " + user.name + ") cannot reach " + root +
                            ": " + directory + " is mode " + mode +
                            "; give others search permission (chmod o+x) or set "
                            "task_home_root elsewhere");
    }
    if (end == std::string::npos) return {};
  }
}

}  // namespace

Result<void> TaskHome::prepare_root(const std::string& root, const TaskUser& user) {
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return make_error(Errc::kIo, "task_home_root",
                      "task_home_root: cannot create " + root + ": " + std::strerror(errno));
  }
  if (::chmod(root.c_str(), 0711) != 0) {
    return make_error(
        Errc::kIo, "task_home_root",
        "task_home_root: cannot set mode 0711 on " + root + ": " + std::strerror(errno));
  }
  if (DIR* directory = ::opendir(root.c_str())) {
    while (const dirent* entry = ::readdir(directory)) {
      if (std::strncmp(entry->d_name, "attempt-", 8) == 0)
        ::rmdir((root + "/" + entry->d_name).c_str());
    }
    ::closedir(directory);
  }
  if (!user.switch_user || root.empty() || root[0] != '/') return {};
  return check_reachable(root, user);
}

Result<TaskHome> TaskHome::create(const std::string& root, const std::string& attempt_id,
                                  const TaskUser& user) {
  // The prefix keeps an id such as ".." a plain name.
  std::string path = root + "/attempt-" + attempt_id;
  if (::mkdir(path.c_str(), 0700) != 0 &&
      !(errno == EEXIST && ::rmdir(path.c_str()) == 0 && ::mkdir(path.c_str(), 0700) == 0)) {
    return make_error(Errc::kIo, "home",
                      "cannot create the task's home " + path + ": " + std::strerror(errno));
  }
  TaskHome home(std::move(path));
  if (user.switch_user && ::chown(home.path_.c_str(), user.uid, user.gid) != 0) {
    return make_error(Errc::kIo, "home",
                      "cannot give the task's home " + home.path_ + " to " + user.name + ": " +
                          std::strerror(errno));
  }
  return home;
}

TaskHome::~TaskHome() {
  if (path_.empty()) return;
  if (::rmdir(path_.c_str()) != 0 && errno != ENOENT) {
    core::log_warning(
        "agent", "the task's home " + path_ + " could not be removed: " + std::strerror(errno));
  }
}

}  // namespace tether::agent
