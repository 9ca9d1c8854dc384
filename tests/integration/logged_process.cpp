#include "logged_process.hpp"

#include <set>

#include <signal.h>

#include <catch2/catch.hpp>

#include "core/timer.hpp"

namespace tether::test {

LoggedProcess::LoggedProcess(core::Loop& loop) : loop_(loop), log_grew_(loop) {}

namespace {

std::set<LoggedProcess*>& live_processes() {
  static std::set<LoggedProcess*> processes;
  return processes;
}

}  // namespace

LoggedProcess::~LoggedProcess() {
  live_processes().erase(this);
  if (process_) process_->signal_group(SIGKILL);
}

void LoggedProcess::kill_all(core::Loop& loop) {
  for (LoggedProcess* process : live_processes()) {
    if (&process->loop_ == &loop && process->process_) {
      process->process_->signal_group(SIGKILL);
    }
  }
}

void LoggedProcess::start(std::vector<std::string> argv, std::vector<std::string> environment) {
  REQUIRE_FALSE(process_);
  core::SpawnOptions options;
  options.argv = std::move(argv);
  options.environment = std::move(environment);
  auto spawned = core::Process::spawn(loop_, options);
  INFO(options.argv[0]);
  REQUIRE(spawned.ok());
  process_ = std::move(*spawned);
  live_processes().insert(this);
  drains_ = std::make_unique<core::CoGroup>();
  drains_->spawn(drain(process_->stderr_reader()));
  drains_->spawn(drain(process_->stdout_reader()));
}

core::Co<void> LoggedProcess::drain(core::PipeReader& reader) {
  for (;;) {
    auto chunk = co_await reader.read();
    if (!chunk || chunk->end_of_stream) break;
    log_.append(chunk->bytes);
    log_grew_.notify_all();
  }
  log_grew_.notify_all();
}

core::Co<int> LoggedProcess::reap() {
  auto exited = co_await process_->wait_exit();
  REQUIRE(exited.ok());
  co_await drains_->join();
  const int code =
      exited->term_signal ? 128 + exited->term_signal : static_cast<int>(exited->exit_code);
  process_.reset();
  drains_.reset();
  co_return code;
}

core::Co<int> LoggedProcess::stop(int signum, uint64_t grace_ms) {
  if (!process_) co_return -1;
  process_->signal_group(signum);
  core::CancellationSource grace;
  core::Timer timer(loop_);
  timer.start(grace_ms, [&grace] { grace.cancel(); });
  auto exited = co_await process_->wait_exit(grace.token());
  timer.stop();
  if (!exited.ok()) {
    process_->signal_group(SIGKILL);
    log_ += "\n[test harness: no exit " + std::to_string(grace_ms) + " ms after signal " +
            std::to_string(signum) + "; killed]\n";
  }
  const int code = co_await reap();
  co_return code;
}

core::Co<int> LoggedProcess::wait_exit(uint64_t timeout_ms) {
  if (!process_) co_return -1;
  core::CancellationSource timeout;
  core::Timer timer(loop_);
  timer.start(timeout_ms, [&timeout] { timeout.cancel(); });
  auto exited = co_await process_->wait_exit(timeout.token());
  timer.stop();
  if (!exited.ok()) co_return -1;
  const int code = co_await reap();
  co_return code;
}

core::Co<bool> LoggedProcess::wait_for_log(std::string text, uint64_t timeout_ms, size_t from) {
  loop_.update_time();
  const uint64_t deadline = loop_.now_ms() + timeout_ms;
  for (;;) {
    if (log_.find(text, std::min(from, log_.size())) != std::string::npos) co_return true;
    loop_.update_time();
    if (loop_.now_ms() >= deadline) co_return false;
    co_await log_grew_.wait(deadline - loop_.now_ms());
  }
}

size_t LoggedProcess::count_in_log(const std::string& text) const {
  size_t count = 0;
  for (size_t at = log_.find(text); at != std::string::npos; at = log_.find(text, at + 1))
    ++count;
  return count;
}

}  // namespace tether::test
