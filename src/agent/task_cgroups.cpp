#include "agent/task_cgroups.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace tether::agent {

namespace {

// The controllers limits use, and the limit that needs each.
struct LimitController {
  const char* controller;
  const char* limit;
};
constexpr LimitController kLimitControllers[] = {
    {"memory", "memory_max"}, {"cpu", "cpu_max"}, {"pids", "pids_max"}};

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

// The whitespace-separated words of a file (cgroup.controllers,
// cgroup.subtree_control, cgroup.procs); empty if it cannot be read.
std::vector<std::string> words_of(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> words;
  std::string word;
  while (file >> word)
    words.push_back(word);
  return words;
}

// Writes `text` into the cgroup file `path` in one write(2), as the kernel
// wants. O_CREAT only matters for a plain directory standing in for a cgroup
// (tests): cgroupfs files exist. Returns 0 or an errno.
int write_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int error = written == static_cast<ssize_t>(text.size()) ? 0 : (written < 0 ? errno : EIO);
  ::close(fd);
  return error;
}

std::string controller_list(const std::set<std::string>& controllers) {
  std::string text;
  for (const auto& name : controllers)
    text += (text.empty() ? "" : " ") + name;
  return text.empty() ? "none" : text;
}

// Enables the controllers limits need for BASE's children, moving the agent
// into BASE/agent first where it is alone in BASE (the header says why).
// Returns what could not be done, for the start notice; empty: all done.
std::string enable_limit_controllers(const std::string& base, bool base_is_root) {
  std::set<std::string> offered;
  for (const auto& name : words_of(base + "/cgroup.controllers"))
    offered.insert(name);
  std::string wanted;
  std::string missing;
  for (const auto& entry : kLimitControllers) {
    if (offered.count(entry.controller)) {
      wanted += std::string(wanted.empty() ? "" : " ") + "+" + entry.controller;
    } else {
      missing += std::string(missing.empty() ? "" : ", ") + entry.limit;
    }
  }
  std::string problems;
  if (!missing.empty()) {
    problems = "cgroup " + base + " offers no controller for " + missing +
               " (cgroup.controllers: " + controller_list(offered) + ")";
  }
  if (wanted.empty()) return problems;
  if (!base_is_root) {
    const std::vector<std::string> members = words_of(base + "/cgroup.procs");
    if (members.size() == 1 && members[0] == std::to_string(::getpid())) {
      const std::string leaf = base + "/agent";
      if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
        return "cannot create " + leaf + " to move the agent into: " + std::strerror(errno);
      }
      if (int error = write_file(leaf + "/cgroup.procs", std::to_string(::getpid())); error) {
        return "cannot move the agent into " + leaf + ": " + std::strerror(error);
      }
    }
  }
  // One controller per write: one the kernel refuses does not stop the others.
  for (const auto& entry : kLimitControllers) {
    if (!offered.count(entry.controller)) continue;
    const int error =
        write_file(base + "/cgroup.subtree_control", std::string("+") + entry.controller);
    if (error) {
      problems += std::string(problems.empty() ? "" : "; ") + "cannot enable the " +
                  entry.controller + " controller in " + base +
                  "/cgroup.subtree_control: " + std::strerror(error) +
                  (error == EBUSY ? " (other processes live in that cgroup)" : "");
    }
  }
  return problems;
}

}  // namespace

TaskCgroups TaskCgroups::at(std::string base) {
  TaskCgroups cgroups;
  for (const auto& name : words_of(base + "/cgroup.subtree_control"))
    cgroups.controllers_.insert(name);
  cgroups.base_ = std::move(base);
  return cgroups;
}

TaskCgroups TaskCgroups::detect(bool enabled, std::string& notice) {
  if (!enabled) {
    notice = "cgroup = off: tasks are contained by a child subreaper only";
    return none("cgroup = off in agent.conf");
  }
  const std::string mount = cgroup2_mount();
  const std::string path = own_cgroup_path();
  if (mount.empty() || path.empty()) {
    notice = "no cgroup v2 hierarchy here: tasks are contained by a child subreaper only";
    return none("this host has no cgroup v2 hierarchy");
  }
  const std::string base = path == "/" ? mount : mount + path;
  if (::access(base.c_str(), W_OK | X_OK) != 0 ||
      ::access((base + "/cgroup.procs").c_str(), W_OK) != 0) {
    notice = "cgroup v2 is not delegated to this agent (" + base +
             " is not writable; systemd: Delegate=yes): tasks are contained by a child "
             "subreaper only";
    return none("cgroup v2 is not delegated to this agent (" + base + " is not writable)");
  }
  const std::string problems = enable_limit_controllers(base, path == "/");
  if (!problems.empty()) notice = "task limits: " + problems;
  return at(base);
}

Result<void> TaskCgroups::check(const protocol::TaskLimits& limits) const {
  for (const auto& entry : kLimitControllers) {
    const std::string limit = entry.limit;
    const bool asked = (limit == "memory_max" && limits.memory_max) ||
                       (limit == "cpu_max" && limits.cpu_max_hundredths) ||
                       (limit == "pids_max" && limits.pids_max);
    if (!asked) continue;
    const std::string field = "task.limits." + limit;
    if (!available()) {
      return make_error(Errc::kState, "limit_unavailable",
                        field + ": this agent cannot enforce it: " + unavailable_ +
                            " (docs/operations.md, Cgroups)");
    }
    if (!controllers_.count(entry.controller)) {
      return make_error(Errc::kState, "limit_unavailable",
                        field + ": this agent cannot enforce it: the " + entry.controller +
                            " controller is not enabled in " + base_ +
                            "/cgroup.subtree_control (enabled: " + controller_list(controllers_) +
                            "; docs/operations.md, Cgroups)");
    }
  }
  return {};
}

Result<std::string> TaskCgroups::create(const std::string& attempt_id,
                                        const protocol::TaskLimits& limits) const {
  TETHER_TRY(allowed, check(limits));
  const std::string path = base_ + "/tether-" + std::to_string(::getpid()) + "-" + attempt_id;
  const bool made =
      ::mkdir(path.c_str(), 0755) == 0 ||
      (errno == EEXIST && ::rmdir(path.c_str()) == 0 && ::mkdir(path.c_str(), 0755) == 0);
  if (!made) {
    return make_error(Errc::kIo, "cgroup",
                      "cannot create the task's cgroup " + path + ": " + std::strerror(errno));
  }
  struct Setting {
    const char* limit;
    std::string file;
    std::string value;
  };
  std::vector<Setting> settings;
  if (limits.memory_max) {
    settings.push_back({"memory_max", "memory.max", std::to_string(*limits.memory_max)});
    // Without this the task would swap past memory_max instead of being held to it.
    if (::access((path + "/memory.swap.max").c_str(), F_OK) == 0) {
      settings.push_back({"memory_max", "memory.swap.max", "0"});
    }
  }
  if (limits.cpu_max_hundredths) {
    // cpu.max is "QUOTA PERIOD" in µs: a hundredth of a CPU is 1000 µs per 100 ms.
    settings.push_back(
        {"cpu_max", "cpu.max", std::to_string(*limits.cpu_max_hundredths * 1000u) + " 100000"});
  }
  if (limits.pids_max)
    settings.push_back({"pids_max", "pids.max", std::to_string(*limits.pids_max)});
  for (const auto& setting : settings) {
    if (int error = write_file(path + "/" + setting.file, setting.value); error) {
      ::rmdir(path.c_str());
      return make_error(Errc::kState, "limit_unavailable",
                        std::string("task.limits.") + setting.limit + ": cannot write '" +
                            setting.value + "' to " + path + "/" + setting.file + ": " +
                            std::strerror(error));
    }
  }
  return path;
}

}  // namespace tether::agent
