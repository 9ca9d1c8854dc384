#include "core/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

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
  return make_error(kind, name ? name : "E" + std::to_string(error), what + ": " + message);
}

// A descriptor that stays open until the end of this scope.
struct OwnedFd {
  int fd = -1;
  OwnedFd() = default;
  explicit OwnedFd(int value) : fd(value) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int release() { return std::exchange(fd, -1); }
};

// Everything the child needs, prepared before the fork: between fork and
// exec only async-signal-safe calls are allowed.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* working_directory = nullptr;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int control_fd = -1;  // -1: none
  int error_fd = -1;    // close-on-exec: reports errno if exec fails
  void (*child_main)(void*) = nullptr;
  void* child_context = nullptr;
};

// Closes every descriptor from `first` to `last` (inclusive).
void close_from(unsigned first, unsigned last) {
  if (first > last) return;
  if (::syscall(SYS_close_range, first, last, 0) == 0) return;
  // Kernels before 5.9: one at a time, up to the usual hard limit.
  for (unsigned fd = first; fd <= last && fd < (1u << 20); ++fd)
    ::close(static_cast<int>(fd));
}

[[noreturn]] void fail_in_child(int error_fd, int error) {
  ssize_t ignored = ::write(error_fd, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void run_child(const ChildPlan& plan) {
  // A task with SIGPIPE ignored behaves differently in a pipeline; the
  // parent blocked every signal around the fork.
  reset_signals_in_child();

  ::setsid();
  // Move what we keep above the standard descriptors first, so that a
  // pipe that happens to be fd 0 to 3 is not overwritten by another dup2.
  const int out = ::fcntl(plan.stdout_fd, F_DUPFD_CLOEXEC, 10);
  const int err = ::fcntl(plan.stderr_fd, F_DUPFD_CLOEXEC, 10);
  const int control = plan.control_fd >= 0 ? ::fcntl(plan.control_fd, F_DUPFD_CLOEXEC, 10) : -1;
  const int report = ::fcntl(plan.error_fd, F_DUPFD_CLOEXEC, 10);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || report < 0 || null < 0 || (plan.control_fd >= 0 && control < 0)) {
    fail_in_child(report >= 0 ? report : plan.error_fd, errno);
  }
  if (::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0 ||
      (control >= 0 && ::dup2(control, 3) < 0)) {
    fail_in_child(report, errno);
  }
  // Nothing else: whatever this process had open, close-on-exec or not.
  const unsigned first = control >= 0 ? 4 : 3;
  close_from(first, static_cast<unsigned>(report) - 1);
  close_from(static_cast<unsigned>(report) + 1, ~0u);
  if (plan.working_directory && ::chdir(plan.working_directory) != 0) {
    fail_in_child(report, errno);
  }
  if (plan.child_main) {
    ::close(report);  // the parent reads end of file: started
    plan.child_main(plan.child_context);
    ::_exit(127);
  }
  ::execve(plan.path, plan.argv, plan.envp);
  fail_in_child(report, errno);
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

void reset_signals_in_child() {
  for (int signum = 1; signum < NSIG; ++signum) {
    if (signum == SIGKILL || signum == SIGSTOP) continue;
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    ::sigaction(signum, &action, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

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
    if (directory.empty()) directory = ".";
    const std::string candidate = directory + "/" + program;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) != 0) continue;
    if (S_ISREG(info.st_mode) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    found_unusable = true;
  }
  return errno_error(found_unusable ? EACCES : ENOENT, "cannot start '" + program + "'");
}

namespace {

// Forks with every signal blocked (no handler of ours may run in the child
// before it has reset them) and runs `plan` in the child. The pid, or -1
// with errno set.
pid_t fork_child(const ChildPlan& plan) {
  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) run_child(plan);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = fork_error;
  return pid;
}

// Waits for the child's report: end of file when its exec (or child_main)
// has begun, four bytes (an errno) if it failed, and then the child is
// reaped. 0 when it began.
int exec_error(pid_t pid, int report_fd) {
  int child_error = 0;
  ssize_t got;
  do {
    got = ::read(report_fd, &child_error, sizeof child_error);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof child_error)) return 0;
  int ignored;
  while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
  }
  return child_error;
}

}  // namespace

Result<std::unique_ptr<Process>> Process::spawn(Loop& loop, const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return make_error(Errc::kInvalid, "invalid_argument", "no program to run: argv is empty");
  }
  // child_main runs instead of argv: nothing to look up.
  Result<std::string> path = options.argv[0];
  if (!options.child_main)
    path = find_program(options.argv[0], variable(options.environment, "PATH"));
  if (!path) return path.error();
  auto args = c_string_array(options.argv);
  auto env = c_string_array(options.environment);

  int out_fds[2];
  int err_fds[2];
  int report_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  OwnedFd out_read(out_fds[0]), out_write(out_fds[1]);
  if (::pipe2(err_fds, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  OwnedFd err_read(err_fds[0]), err_write(err_fds[1]);
  if (::pipe2(report_fds, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  OwnedFd report_read(report_fds[0]), report_write(report_fds[1]);
  OwnedFd control_parent, control_child;
  if (options.control_socket) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return errno_error(errno, "cannot make a control socket");
    }
    control_parent.fd = pair[0];
    control_child.fd = pair[1];
  }

  ChildPlan plan;
  plan.path = path->c_str();
  plan.argv = args.data();
  plan.envp = env.data();
  plan.working_directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  plan.stdout_fd = out_write.fd;
  plan.stderr_fd = err_write.fd;
  plan.control_fd = control_child.fd;
  plan.error_fd = report_write.fd;
  plan.child_main = options.child_main;
  plan.child_context = options.child_context;

  const pid_t pid = fork_child(plan);
  if (pid < 0) return errno_error(errno, "cannot start '" + options.argv[0] + "'");

  out_write.reset();
  err_write.reset();
  report_write.reset();
  control_child.reset();
  if (const int child_error = exec_error(pid, report_read.fd); child_error != 0) {
    return errno_error(child_error, "cannot start '" + options.argv[0] + "'");
  }

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
    process->control_fd_ = control_parent.fd;
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
