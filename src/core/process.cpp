#include "core/process.hpp"

#include <signal.h>

#include <cerrno>
#include <string>
#include <utility>

namespace tether::core {

namespace {

// Builds the NULL-terminated char* array libuv wants; the strings stay owned
// by the caller's vector.
std::vector<char*> c_string_array(const std::vector<std::string>& strings) {
  std::vector<char*> array;
  array.reserve(strings.size() + 1);
  for (const auto& s : strings)
    array.push_back(const_cast<char*>(s.c_str()));
  array.push_back(nullptr);
  return array;
}

}  // namespace

Result<std::unique_ptr<Process>> Process::spawn(Loop& loop, const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return make_error("invalid_argument", "no program to run: argv is empty");
  }
  auto process = std::make_unique<Process>(loop, ConstructionKey());

  UvHandle<uv_pipe_t> out_pipe;
  UvHandle<uv_pipe_t> err_pipe;
  uv_pipe_init(loop.get(), out_pipe.get(), 0);
  out_pipe.mark_initialized();
  uv_pipe_init(loop.get(), err_pipe.get(), 0);
  err_pipe.mark_initialized();

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for an ignored stdin
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = out_pipe.stream();
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = err_pipe.stream();

  auto args = c_string_array(options.argv);
  auto env = c_string_array(options.environment);

  uv_process_options_t uv_options{};
  uv_options.exit_cb = &Process::on_exit;
  uv_options.file = args[0];
  uv_options.args = args.data();
  uv_options.env = env.data();
  uv_options.cwd = options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  // DETACHED makes the child call setsid(): it leads a new session and process
  // group whose id is its pid, so signal_group reaches every descendant that
  // did not leave the group on purpose.
  uv_options.flags = UV_PROCESS_DETACHED;
  uv_options.stdio_count = 3;
  uv_options.stdio = stdio;

  if (int rc = uv_spawn(loop.get(), process->handle_.get(), &uv_options); rc != 0) {
    // libuv requires closing the handle even when spawn failed.
    process->handle_.mark_initialized();
    process->handle_closed_ = true;
    return make_error(uv_err_name(rc),
                      "cannot start '" + options.argv[0] + "': " + uv_strerror(rc));
  }
  process->handle_.mark_initialized();
  process->handle_.get()->data = process.get();
  process->pid_ = process->handle_.get()->pid;
  process->stdout_reader_ =
      std::make_unique<PipeReader>(std::move(out_pipe), options.read_buffer_bytes);
  process->stderr_reader_ =
      std::make_unique<PipeReader>(std::move(err_pipe), options.read_buffer_bytes);
  return process;
}

Process::~Process() {
  if (pid_ > 0 && !exit_status_) ::kill(-pid_, SIGKILL);
}

int Process::signal_group(int signum) const {
  if (pid_ <= 0) return -ESRCH;
  return ::kill(-pid_, signum) == 0 ? 0 : -errno;
}

void Process::on_exit(uv_process_t* handle, int64_t exit_status, int term_signal) {
  auto* self = static_cast<Process*>(handle->data);
  self->exit_status_ = ExitStatus{exit_status, term_signal};
  self->handle_.close(&Process::on_closed, self);
}

void Process::on_closed(void* self) {
  auto* process = static_cast<Process*>(self);
  process->handle_closed_ = true;
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
  if (process_.handle_closed_ && process_.exit_status_) return *process_.exit_status_;
  if (process_.handle_closed_) return make_error("not_started", "the process never started");
  return cancelled_error();
}

}  // namespace tether::core
