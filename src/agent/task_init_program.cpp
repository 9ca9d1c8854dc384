#include "agent/task_init_program.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace tether::agent {

std::string default_task_init_program() {
  char self[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) {
    std::string beside(self, static_cast<size_t>(length));
    beside.erase(beside.rfind('/') + 1);
    beside += "tether-task-init";
    if (::access(beside.c_str(), X_OK) == 0) return beside;
  }
  return TETHER_TASK_INIT_INSTALLED;
}

Result<void> check_task_init_program(const std::string& program) {
  if (::access(program.c_str(), X_OK) == 0) return {};
  return make_error(Errc::kNotFound, "task_init_missing",
                    "cannot run " + program + ", the task init every task starts through (" +
                        std::strerror(errno) + "): reinstall tether-agent");
}

}  // namespace tether::agent
