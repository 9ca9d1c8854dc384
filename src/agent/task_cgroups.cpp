#include "agent/task_cgroups.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace tether::agent {

namespace {

// "0::/system.slice/tether-agent.service" in /proc/self/cgroup: the path in
// the unified (v2) hierarchy.
std::string own_cgroup_path() {
  std::ifstream file("/proc/self/cgroup");
  std::string line;
  while (std::getline(file, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

// The mount point of the cgroup2 file system (/proc/self/mountinfo: field 5
// is the mount point, the type follows " - "); empty if none.
std::string cgroup2_mount() {
  std::ifstream file("/proc/self/mountinfo");
  std::string line;
  while (std::getline(file, line)) {
    const size_t separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    if (line.compare(separator + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, separator));
    std::string field;
    std::vector<std::string> words;
    while (fields >> field)
      words.push_back(field);
    if (words.size() >= 5 && words[3] == "/") return words[4];
  }
  return {};
}

}  // namespace

TaskCgroups TaskCgroups::detect(bool enabled, std::string& notice) {
  TaskCgroups cgroups;
  if (!enabled) {
    notice = "cgroup = off: tasks are contained by a child subreaper only";
    return cgroups;
  }
  const std::string mount = cgroup2_mount();
  const std::string path = own_cgroup_path();
  if (mount.empty() || path.empty()) {
    notice = "no cgroup v2 hierarchy here: tasks are contained by a child subreaper only";
    return cgroups;
  }
  const std::string base = path == "/" ? mount : mount + path;
  if (::access(base.c_str(), W_OK | X_OK) != 0 ||
      ::access((base + "/cgroup.procs").c_str(), W_OK) != 0) {
    notice = "cgroup v2 is not delegated to this agent (" + base +
             " is not writable; systemd: Delegate=yes): tasks are contained by a child "
             "subreaper only";
    return cgroups;
  }
  cgroups.base_ = base;
  return cgroups;
}

Result<std::string> TaskCgroups::create(const std::string& attempt_id) const {
  const std::string path = base_ + "/tether-" + std::to_string(::getpid()) + "-" + attempt_id;
  if (::mkdir(path.c_str(), 0755) == 0) return path;
  if (errno == EEXIST && ::rmdir(path.c_str()) == 0 && ::mkdir(path.c_str(), 0755) == 0) {
    return path;
  }
  return make_error(Errc::kIo, "cgroup",
                    "cannot create the task's cgroup " + path + ": " + std::strerror(errno));
}

}  // namespace tether::agent
