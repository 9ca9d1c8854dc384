#include "agent/attempt_launch.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/task_environment.hpp"
#include "agent/task_init_plan.hpp"
#include "core/owned_fd.hpp"

namespace tether::agent {

Result<Launch> prepare_launch(const protocol::TaskSpec& task, const AttemptSetup& setup) {
  if (auto cwd = check_working_directory(task.cwd); !cwd) return cwd.error();
  Launch launch{task.command_line(), task_environment(task, setup.environment()), {}};
  std::string path_variable;
  for (const auto& entry : launch.environment) {
    if (entry.rfind("PATH=", 0) == 0) path_variable = entry.substr(5);
  }
  auto program = core::find_program(launch.argv.at(0), path_variable);
  if (!program) {
    return with_context(program.error(),
                        program.error().message + " (" + program.error().code + ")");
  }
  launch.program = std::move(*program);
  return launch;
}

namespace {

// The plan's bytes in an unnamed memory file, for the init's fd 4.
Result<core::OwnedFd> plan_memfd(const std::string& bytes) {
  const auto failed = [](const char* call) {
    return make_error(Errc::kIo, "plan_not_written",
                      std::string("cannot hand the task's init its plan (") + call +
                          "): " + std::strerror(errno));
  };
  core::OwnedFd file(::memfd_create("tether-task-init-plan", MFD_CLOEXEC));
  if (file.get() < 0) return failed("memfd_create");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(file.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return failed("write");
    written += static_cast<size_t>(n);
  }
  return file;
}

}  // namespace

Result<std::unique_ptr<core::Process>> start_task_init(core::Loop& loop, const Launch& launch,
                                                       const std::string& cwd,
                                                       const AttemptSetup& setup,
                                                       const std::string& init_program,
                                                       size_t read_buffer_bytes) {
  std::vector<char*> argv_pointers;
  for (const auto& arg : launch.argv)
    argv_pointers.push_back(const_cast<char*>(arg.c_str()));
  argv_pointers.push_back(nullptr);
  std::vector<char*> env_pointers;
  for (const auto& entry : launch.environment)
    env_pointers.push_back(const_cast<char*>(entry.c_str()));
  env_pointers.push_back(nullptr);
  TaskInitPlan plan;
  plan.path = launch.program.c_str();
  plan.argv = argv_pointers.data();
  plan.envp = env_pointers.data();
  plan.cwd = cwd.empty() ? nullptr : cwd.c_str();
  setup.fill(plan);
  auto plan_file = plan_memfd(encode_task_init_plan(plan));
  if (!plan_file) return plan_file.error();
  core::SpawnOptions spawn;
  spawn.argv = {init_program};
  spawn.read_buffer_bytes = read_buffer_bytes;
  spawn.control_socket = true;
  spawn.fd4 = plan_file->get();
  auto spawned = core::Process::spawn(loop, spawn);
  if (!spawned) {
    return with_context(spawned.error(),
                        spawned.error().message + " (" + spawned.error().code + ")");
  }
  return std::move(*spawned);
}

}  // namespace tether::agent
