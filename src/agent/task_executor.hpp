// TaskExecutor: admits attempts and runs them through an AttemptRunner.
//
//   - at most max_concurrent_tasks run at once; later ones wait for a slot in
//     arrival order (the agent's poller only asks for work when a slot is free,
//     so in practice nothing waits long);
//   - two attempts with conflicting targets (protocol/task_target.hpp: equal,
//     or one an ancestor of the other, "app" and "app/web") are never admitted
//     together: the later one is rejected at once, naming the targets and
//     the attempt that holds the other;
//   - cancel(attempt_id, reason) reaches an attempt whether it is waiting for
//     a slot or running.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "agent/attempt_runner.hpp"
#include "core/semaphore.hpp"

namespace tether::agent {

struct ExecutorOptions {
  size_t max_concurrent_tasks = 4;
  RunnerOptions runner;
};

class TaskExecutor {
 public:
  TaskExecutor(core::Loop& loop, ExecutorOptions options);
  TaskExecutor(const TaskExecutor&) = delete;
  TaskExecutor& operator=(const TaskExecutor&) = delete;

  // Runs `task` and returns its final report. `sink` must outlive the call.
  core::Co<protocol::FinalReport> execute(protocol::TaskSpec task, AttemptSink& sink);

  // False if no such attempt is admitted. The reason goes into the final's error.
  bool cancel(const std::string& attempt_id, const std::string& reason);
  void cancel_all(const std::string& reason);

  size_t admitted() const { return attempts_.size(); }
  size_t running() const { return running_; }
  size_t free_slots() const { return slots_.available(); }
  const ExecutorOptions& options() const { return options_; }

 private:
  struct Attempt {
    std::string target;  // empty: holds nothing
    core::CancellationSource cancel;
    std::string cancel_reason;
  };

  // Why an attempt with `target` may not be admitted now (it conflicts with
  // an admitted attempt's target, docs/protocol.md 3), for its final's
  // error; empty when it may.
  std::string target_refusal(const std::string& target) const;

  ExecutorOptions options_;
  core::AsyncSemaphore slots_;
  AttemptRunner runner_;
  // Admitted attempts by id; their targets are held from admission to the end.
  std::unordered_map<std::string, std::unique_ptr<Attempt>> attempts_;
  size_t running_ = 0;
};

}  // namespace tether::agent
