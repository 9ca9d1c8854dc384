// Process: a child started with libuv, leading its own process group, with its
// stdout and stderr as PipeReaders and stdin on /dev/null.
//
// Signals go to the whole group: a shell's children (and theirs) would
// otherwise survive the shell and keep our pipes open.
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
  // argv[0] is looked up in the PATH of `environment`.
  std::vector<std::string> argv;
  // "NAME=value" entries: the child's whole environment, nothing inherited.
  std::vector<std::string> environment;
  // Empty: the parent's working directory.
  std::string working_directory;
  size_t read_buffer_bytes = 64 * 1024;
};

struct ExitStatus {
  int64_t exit_code = 0;
  int term_signal = 0;  // 0 unless a signal ended the child
};

class Process {
 public:
  // Errors carry libuv's code in `code` ("ENOENT", "EACCES", ...) and a message
  // naming the program.
  static Result<std::unique_ptr<Process>> spawn(Loop& loop, const SpawnOptions& options);

  // Only spawn() can make the key, so only spawn() constructs.
  class ConstructionKey {
    friend class Process;
    ConstructionKey() = default;
  };
  Process(Loop& loop, ConstructionKey) : loop_(loop) {}
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // A child that is still running is killed (SIGKILL to its group): a Process
  // never outlives its owner silently. Destroy a Process only before it was
  // seen to exit or after wait_exit() returned, never in between.
  ~Process();

  int pid() const { return pid_; }
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
    bool await_ready() const noexcept { return process_.handle_closed_ || token_.cancelled(); }
    void await_suspend(std::coroutine_handle<> awaiting);
    Result<ExitStatus> await_resume();

   private:
    Process& process_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
  };

  // Resumes once the child has exited and its process handle is closed.
  // Cancelling stops the wait only; the child keeps running.
  ExitAwaiter wait_exit(CancellationToken token = CancellationToken()) {
    return ExitAwaiter(*this, std::move(token));
  }

  PipeReader& stdout_reader() { return *stdout_reader_; }
  PipeReader& stderr_reader() { return *stderr_reader_; }

 private:
  static void on_exit(uv_process_t* handle, int64_t exit_status, int term_signal);
  static void on_closed(void* self);

  Loop& loop_;
  UvHandle<uv_process_t> handle_;
  int pid_ = 0;
  std::optional<ExitStatus> exit_status_;
  bool handle_closed_ = false;
  std::coroutine_handle<> waiter_;
  std::unique_ptr<PipeReader> stdout_reader_;
  std::unique_ptr<PipeReader> stderr_reader_;
};

}  // namespace tether::core
