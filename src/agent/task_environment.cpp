#include "agent/task_environment.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tether::agent {

namespace {

std::string home_directory() {
  if (const passwd* entry = getpwuid(geteuid()); entry && entry->pw_dir && *entry->pw_dir) {
    return entry->pw_dir;
  }
  return "/";
}

}  // namespace

std::map<std::string, std::string> base_task_environment() {
  return {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", home_directory()},
      {"LANG", "C.UTF-8"},
  };
}

std::vector<std::string> task_environment(const protocol::TaskSpec& task,
                                          const std::map<std::string, std::string>& identity) {
  auto variables = base_task_environment();
  for (const auto& [name, value] : identity)
    variables[name] = value;
  for (const auto& [name, value] : task.env)
    variables[name] = value;
  for (const auto& [name, value] : task.secrets)
    variables[name] = value;
  std::vector<std::string> environment;
  environment.reserve(variables.size());
  for (const auto& [name, value] : variables)
    environment.push_back(name + "=" + value);
  return environment;
}

Result<void> check_working_directory(const std::string& cwd) {
  if (cwd.empty()) return {};
  struct stat info {};
  if (::stat(cwd.c_str(), &info) != 0) {
    return make_error(Errc::kInvalid, "bad_cwd",
                      "working directory '" + cwd + "' cannot be used: " + std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode)) {
    return make_error(Errc::kInvalid, "bad_cwd",
                      "working directory '" + cwd + "' is not a directory");
  }
  if (::access(cwd.c_str(), X_OK) != 0) {
    return make_error(Errc::kInvalid, "bad_cwd",
                      "working directory '" + cwd + "' cannot be entered: " + std::strerror(errno));
  }
  return {};
}

}  // namespace tether::agent
