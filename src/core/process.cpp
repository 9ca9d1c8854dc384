#include "core/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/owned_fd.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace tether::core {

namespace {

// Builds the NULL-terminated char* array execve wants; the strings stay
// owned by the caller's vector.
std::vector<char*> c_string_array(const std::vector<std::string>& strings) {
  std::vector<char*> array;
  array.reserve(strings.size() + 1);
  for (const auto& s : strings)
    array.push_back(const_cast<char*>(s.c_str()));
  array.push_back(nullptr);
  return array;
}

Error errno_error(int error, const std::string& what) {
  const char* name = strerrorname_np(error);
  std::string message = std::strerror(error);
  if (!message.empty()) message[0] = static_cast<char>(std::tolower(message[0]));
  const Errc kind = error == ENOENT                     ? Errc::kNotFound
                    : error == EACCES || error == EPERM ? Errc::kUnauthorized
                                                        : Errc::kIo;
  // append, not "E" + ...: GCC 12 at -O3 warns (-Wrestrict) on that falsely.
  std::string code = name ? std::string(name) : std::string("E").append(std::to_string(error));
  return make_error(kind, std::move(code), what + ": " + message);
}

void close_fd_after_handle(void* context) {
  ::close(static_cast<int>(reinterpret_cast<intptr_t>(context)));
}

std::unique_ptr<PipeReader> reader_for(Loop& loop, int fd, size_t buffer_bytes) {
  UvHandle<uv_pipe_t> pipe;
  uv_pipe_init(loop.get(), pipe.get(), 0);
  pipe.mark_initialized();
  uv_pipe_open(pipe.get(), fd);  // takes the descriptor and makes it non-blocking
  return std::make_unique<PipeReader>(std::move(pipe), buffer_bytes);
}

std::string variable(const std::vector<std::string>& environment, const std::string& name) {
  const std::string prefix = name + "=";
  for (const auto& entry : environment) {
    if (entry.rfind(prefix, 0) == 0) return entry.substr(prefix.size());
  }
  return {};
}

}  // namespace

Result<std::string> find_program(const std::string& program, const std::string& path_variable) {
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), F_OK) != 0)
      return errno_error(errno, "cannot start '" + program + "'");
    return program;
  }
  const std::string path = path_variable.empty() ? "/usr/bin:/bin" : path_variable;
  bool found_unusable = false;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t colon = path.find(':', start);
    std::string directory =
        path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    start = colon == std::string::npos ? path.size() + 1 : colon + 1;
    if (directory.empty()) directory.assign(1, '.');  // not = ".": GCC 12 -O3 -Wrestrict
    const std::string candidate = directory + "/" + program;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) != 0) continue;
    if (S_ISREG(info.st_mode) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    found_unusable = true;
  }
  return errno_error(found_unusable ? EACCES : ENOENT, "cannot start '" + program + "'");
}

namespace {

// A descriptor of this process at 10 or above (the original is closed), so
// that no dup2 into the child's 0 to 4 can overwrite another one's source.
Result<void> raise_fd(OwnedFd& fd) {
  if (fd.get() >= 10) return {};
  const int raised = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 10);
  if (raised < 0) return errno_error(errno, "cannot move a descriptor");
  fd.reset(raised);
  return {};
}

// posix_spawn's file actions and attributes, destroyed with this scope.
struct SpawnPlan {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  SpawnPlan() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  SpawnPlan(const SpawnPlan&) = delete;
  SpawnPlan& operator=(const SpawnPlan&) = delete;
  ~SpawnPlan() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
};

// Starts `path` as described in process.hpp: glibc's posix_spawn (a
// CLONE_VM|CLONE_VFORK child: no copy of our page tables, and exec errors
// come back as its result). `fds` are the child's 1, 2, 3 and 4 (-1: none).
// 0 and the pid, or an errno.
int spawn_child(const char* path, char* const* argv, char* const* envp,
                const char* working_directory, const int (&fds)[4], pid_t& pid) {
  SpawnPlan plan;
  posix_spawn_file_actions_addopen(&plan.actions, 0, "/dev/null", O_RDONLY, 0);
  int next = 1;
  for (const int fd : fds) {
    if (fd < 0) break;
    posix_spawn_file_actions_adddup2(&plan.actions, fd, next++);
  }
  // Nothing else: whatever this process has open, close-on-exec or not.
  posix_spawn_file_actions_addclosefrom_np(&plan.actions, next);
  if (working_directory) posix_spawn_file_actions_addchdir_np(&plan.actions, working_directory);
  // Every signal at its default disposition (this process ignores SIGPIPE)
  // and none blocked; a session and process group of its own.
  sigset_t all;
  sigset_t none;
  ::sigfillset(&all);
  ::sigemptyset(&none);
  posix_spawnattr_setsigdefault(&plan.attributes, &all);
  posix_spawnattr_setsigmask(&plan.attributes, &none);
  posix_spawnattr_setflags(&plan.attributes,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  return ::posix_spawn(&pid, path, &plan.actions, &plan.attributes, argv, envp);
}

}  // namespace

Result<std::unique_ptr<Process>> Process::spawn(Loop& loop, const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return make_error(Errc::kInvalid, "invalid_argument", "no program to run: argv is empty");
  }
  auto path = find_program(options.argv[0], variable(options.environment, "PATH"));
  if (!path) return path.error();
  auto args = c_string_array(options.argv);
  auto env = c_string_array(options.environment);

  int out_fds[2];
  int err_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  OwnedFd out_read(out_fds[0]), out_write(out_fds[1]);
  if (::pipe2(err_fds, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  OwnedFd err_read(err_fds[0]), err_write(err_fds[1]);
  OwnedFd control_parent, control_child;
  if (options.control_socket) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return errno_error(errno, "cannot make a control socket");
    }
    control_parent.reset(pair[0]);
    control_child.reset(pair[1]);
  }
  OwnedFd handed;
  if (options.fd4 >= 0) {
    handed.reset(::fcntl(options.fd4, F_DUPFD_CLOEXEC, 10));
    if (handed.get() < 0) return errno_error(errno, "cannot pass a descriptor");
  }
  for (OwnedFd* fd : {&out_write, &err_write, &control_child}) {
    if (fd->get() < 0) continue;
    if (auto raised = raise_fd(*fd); !raised) return raised.error();
  }

  const int child_fds[4] = {out_write.get(), err_write.get(), control_child.get(),
                            control_child.get() >= 0 ? handed.get() : -1};
  pid_t pid = 0;
  const char* directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  if (const int error =
          spawn_child(path->c_str(), args.data(), env.data(), directory, child_fds, pid);
      error != 0) {
    return errno_error(error, "cannot start '" + options.argv[0] + "'");
  }
  out_write.reset();
  err_write.reset();
  control_child.reset();

  auto process = std::make_unique<Process>(loop, ConstructionKey());
  process->pid_ = pid;
  process->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (process->pidfd_ < 0) {
    const int error = errno;
    ::kill(-pid, SIGKILL);
    int ignored;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    process->pid_ = 0;
    return errno_error(error, "cannot watch '" + options.argv[0] + "' (pidfd_open)");
  }
  uv_poll_init(loop.get(), process->watch_.get(), process->pidfd_);
  process->watch_.mark_initialized();
  process->watch_.get()->data = process.get();
  uv_poll_start(process->watch_.get(), UV_READABLE, &Process::on_readable);
  process->stdout_reader_ = reader_for(loop, out_read.release(), options.read_buffer_bytes);
  process->stderr_reader_ = reader_for(loop, err_read.release(), options.read_buffer_bytes);
  if (options.control_socket) {
    process->control_fd_ = control_parent.get();
    process->control_reader_ = reader_for(loop, control_parent.release(), 4096);
  }
  return process;
}

Process::~Process() {
  if (pid_ > 0 && !exit_status_) {
    ::kill(-pid_, SIGKILL);
    reap(true);
  }
  if (watch_.is_open() && !watch_closed_) {
    uv_poll_stop(watch_.get());
    watch_.close(&close_fd_after_handle, reinterpret_cast<void*>(static_cast<intptr_t>(pidfd_)));
  } else if (pidfd_ >= 0 && !watch_closed_) {
    ::close(pidfd_);
  }
}

bool Process::control_write(std::string_view bytes) {
  if (control_fd_ < 0 || !control_reader_ || control_reader_->closed()) return false;
  const ssize_t n = ::send(control_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == static_cast<ssize_t>(bytes.size());
}

int Process::signal_group(int signum) const {
  if (pid_ <= 0) return -ESRCH;
  return ::kill(-pid_, signum) == 0 ? 0 : -errno;
}

void Process::reap(bool block) {
  if (exit_status_ || pidfd_ < 0) return;
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_), &info,
                  WEXITED | (block ? 0 : WNOHANG));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    exit_status_ = ExitStatus{-1, 0};  // reaped elsewhere: nothing to know
    return;
  }
  if (info.si_pid == 0) return;  // not yet (WNOHANG)
  if (info.si_code == CLD_EXITED) {
    exit_status_ = ExitStatus{info.si_status, 0};
  } else {
    exit_status_ = ExitStatus{0, info.si_status};
  }
}

void Process::on_readable(uv_poll_t* handle, int, int) {
  auto* self = static_cast<Process*>(handle->data);
  self->reap(false);
  if (!self->exit_status_) return;
  uv_poll_stop(handle);
  self->watch_.close(&Process::on_watch_closed, self);
}

void Process::on_watch_closed(void* self) {
  auto* process = static_cast<Process*>(self);
  ::close(process->pidfd_);
  process->pidfd_ = -1;
  process->watch_closed_ = true;
  if (process->waiter_) std::exchange(process->waiter_, {}).resume();
}

void Process::ExitAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  process_.waiter_ = awaiting;
  registration_.emplace(token_, [this] {
    auto waiter = std::exchange(process_.waiter_, {});
    if (waiter) process_.loop_.defer([waiter] { waiter.resume(); });
  });
}

Result<ExitStatus> Process::ExitAwaiter::await_resume() {
  registration_.reset();
  if (process_.watch_closed_ && process_.exit_status_) return *process_.exit_status_;
  if (process_.watch_closed_)
    return make_error(Errc::kState, "not_started", "the process never started");
  return cancelled_error();
}

}  // namespace tether::core
