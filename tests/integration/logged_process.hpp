// LoggedProcess: a child process whose stdout and stderr are drained
// continuously into one log, so a test can await a line ("listening on",
// "connected to") as an event instead of sleeping, and print the log when
// it fails.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/co.hpp"
#include "core/co_group.hpp"
#include "core/notification.hpp"
#include "core/process.hpp"

namespace tether::test {

class LoggedProcess {
 public:
  explicit LoggedProcess(core::Loop& loop);
  // A child still running is killed with its process group.
  ~LoggedProcess();

  // Starts `argv` with exactly `environment`; REQUIREs that it spawned.
  void start(std::vector<std::string> argv, std::vector<std::string> environment);
  // Sends `signum` to the child's process group and waits for the exit;
  // after `grace_ms` without one, SIGKILL (a test must not hang on a child
  // that ignores the signal). Returns the exit code, or 128 + the signal
  // that ended it.
  core::Co<int> stop(int signum, uint64_t grace_ms = 15'000);
  // SIGKILL to every child a LoggedProcess on `loop` still runs: the
  // teardown of a failed test, so that pipes close and the loop ends
  // instead of waiting for a child the test meant to stop later.
  static void kill_all(core::Loop& loop);
  // Waits for the child to exit on its own; -1 after `timeout_ms`.
  core::Co<int> wait_exit(uint64_t timeout_ms);
  // Waits until the log holds `text` after its first `from` bytes; false
  // after `timeout_ms`.
  core::Co<bool> wait_for_log(std::string text, uint64_t timeout_ms, size_t from = 0);
  // How often `text` occurs in the log.
  size_t count_in_log(const std::string& text) const;

  const std::string& log() const { return log_; }
  bool running() const { return process_ != nullptr; }
  int pid() const { return process_ ? process_->pid() : 0; }

 private:
  core::Co<void> drain(core::PipeReader& reader);
  core::Co<int> reap();

  core::Loop& loop_;
  std::unique_ptr<core::Process> process_;
  std::unique_ptr<core::CoGroup> drains_;
  core::Notification log_grew_;
  std::string log_;
};

}  // namespace tether::test
