// Process: a child leading its own session and process group, with stdin on
// /dev/null and stdout and stderr on pipes read as PipeReaders.
//
// What the child gets, and nothing else:
// - fds 0, 1 and 2 (and 3, the control socket, and 4 when asked for): every other
//   descriptor of this process is closed in the child, whether or not it was
//   marked close-on-exec (one inherited from whoever started us, a library's
//   socket, a pipe another thread is creating right now);
// - stdout and stderr are pipes (pipe(2)), not sockets: /dev/stdout and
//   /dev/stderr can be opened, as programs expect;
// - every signal at its default disposition and none blocked (this process
//   ignores SIGPIPE; a child must not inherit that);
// - exactly `environment`, nothing inherited.
//
// The child is started with posix_spawn (glibc's: a CLONE_VM|CLONE_VFORK
// child that execs at once), not fork(): a fork copies this process's page
// tables on the calling thread and makes every page it writes afterwards a
// copy-on-write fault, which 200 tasks starting at once paid on the agent's
// loop (issue [6/8]). A failed exec is reported by spawn() itself. Its exit
// is watched through a pidfd (Linux 5.3+) on the loop; nothing else reaps it.
#pragma once

#include <uv.h>

#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/pipe_reader.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

struct SpawnOptions {
  // argv[0] is looked up in the PATH of `environment` (as execvp would, in
  // this process, before the fork).
  std::vector<std::string> argv;
  // "NAME=value" entries: the child's whole environment, nothing inherited.
  std::vector<std::string> environment;
  // Empty: the parent's working directory.
  std::string working_directory;
  size_t read_buffer_bytes = 64 * 1024;
  // A socketpair between parent and child: fd 3 in the child, and
  // Process::control_reader() / control_write() here.
  bool control_socket = false;
  // With control_socket, a descriptor of this process the child gets as its
  // fd 4 (a copy: the caller keeps and closes its own); -1: none.
  int fd4 = -1;
};

struct ExitStatus {
  int64_t exit_code = 0;
  int term_signal = 0;  // 0 unless a signal ended the child
};

// Looks `program` up in `path_variable` (colon-separated) unless it holds a
// slash. Errors: "ENOENT", "EACCES" (found, not executable).
Result<std::string> find_program(const std::string& program, const std::string& path_variable);

class Process {
 public:
  // Errors carry the errno name in `code` ("ENOENT", "EACCES", ...) and a
  // message naming the program.
  static Result<std::unique_ptr<Process>> spawn(Loop& loop, const SpawnOptions& options);

  // Only spawn() can make the key, so only spawn() constructs.
  class ConstructionKey {
    friend class Process;
    ConstructionKey() = default;
  };
  Process(Loop& loop, ConstructionKey) : loop_(loop) {}
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // A child that is still running is killed (SIGKILL to its group) and
  // reaped: a Process never outlives its owner silently.
  ~Process();

  int pid() const { return pid_; }
  Loop& loop() const { return loop_; }
  bool exited() const { return exit_status_.has_value(); }
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }

  // Sends `signum` to every member of the child's process group. Returns 0, or
  // a negative errno (-ESRCH once the group is empty).
  int signal_group(int signum) const;

  class ExitAwaiter {
   public:
    ExitAwaiter(Process& process, CancellationToken token)
        : process_(process), token_(std::move(token)) {}
    ExitAwaiter(const ExitAwaiter&) = delete;
    ExitAwaiter& operator=(const ExitAwaiter&) = delete;
    bool await_ready() const noexcept { return process_.watch_closed_ || token_.cancelled(); }
    void await_suspend(std::coroutine_handle<> awaiting);
    Result<ExitStatus> await_resume();

   private:
    Process& process_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
  };

  // Resumes once the child has exited, been reaped, and its watch handle is
  // closed. Cancelling stops the wait only; the child keeps running.
  ExitAwaiter wait_exit(CancellationToken token = CancellationToken()) {
    return ExitAwaiter(*this, std::move(token));
  }

  PipeReader& stdout_reader() { return *stdout_reader_; }
  PipeReader& stderr_reader() { return *stderr_reader_; }
  // With SpawnOptions::control_socket: what the child writes on its fd 3...
  PipeReader& control_reader() { return *control_reader_; }
  // ...and a line to it (small, at once; false if the child is gone).
  bool control_write(std::string_view bytes);

 private:
  static void on_readable(uv_poll_t* handle, int status, int events);
  static void on_watch_closed(void* self);
  void reap(bool block);

  Loop& loop_;
  UvHandle<uv_poll_t> watch_;
  int pidfd_ = -1;
  int control_fd_ = -1;  // owned by control_reader_'s handle
  int pid_ = 0;
  std::optional<ExitStatus> exit_status_;
  bool watch_closed_ = false;
  std::coroutine_handle<> waiter_;
  std::unique_ptr<PipeReader> stdout_reader_;
  std::unique_ptr<PipeReader> stderr_reader_;
  std::unique_ptr<PipeReader> control_reader_;
};

}  // namespace tether::core
