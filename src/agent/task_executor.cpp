#include "agent/task_executor.hpp"

#include <stdexcept>
#include <utility>

namespace tether::agent {

using protocol::AttemptStatus;
using protocol::FinalReport;

TaskExecutor::TaskExecutor(core::Loop& loop, ExecutorOptions options)
    : options_(options), slots_(loop, options.max_concurrent_tasks), runner_(loop, options.runner) {
  if (options.max_concurrent_tasks == 0) {
    throw std::invalid_argument("max_concurrent_tasks must be at least 1");
  }
}

core::Co<FinalReport> TaskExecutor::execute(protocol::TaskSpec task, AttemptSink& sink) {
  if (attempts_.count(task.attempt_id) != 0) {
    co_return final_without_process(AttemptStatus::kRejected,
                                    "attempt " + task.attempt_id + " is already running here");
  }
  if (!task.target.empty()) {
    if (auto holder = target_holders_.find(task.target); holder != target_holders_.end()) {
      co_return final_without_process(
          AttemptStatus::kRejected,
          "target '" + task.target + "' is held by attempt " + holder->second);
    }
    target_holders_.emplace(task.target, task.attempt_id);
  }
  auto& attempt = *attempts_.emplace(task.attempt_id, std::make_unique<Attempt>()).first->second;
  attempt.target = task.target;

  FinalReport report;
  auto slot = co_await slots_.acquire(attempt.cancel.token());
  if (!slot) {
    report = final_without_process(AttemptStatus::kCancelled, "cancelled before it started");
  } else {
    ++running_;
    report = co_await runner_.run(task, sink, attempt.cancel.token());
    --running_;
    slots_.release();
  }
  if (report.status == AttemptStatus::kCancelled && !attempt.cancel_reason.empty()) {
    report.error += " (reason: " + attempt.cancel_reason + ")";
  }
  if (!attempt.target.empty()) target_holders_.erase(attempt.target);
  attempts_.erase(task.attempt_id);
  co_return report;
}

bool TaskExecutor::cancel(const std::string& attempt_id, const std::string& reason) {
  auto it = attempts_.find(attempt_id);
  if (it == attempts_.end()) return false;
  if (!it->second->cancel.cancelled()) {
    it->second->cancel_reason = reason;
    it->second->cancel.cancel();
  }
  return true;
}

void TaskExecutor::cancel_all(const std::string& reason) {
  // cancel() never resumes anything inline, so the map is stable here.
  for (auto& [id, attempt] : attempts_) {
    if (!attempt->cancel.cancelled()) {
      attempt->cancel_reason = reason;
      attempt->cancel.cancel();
    }
  }
}

}  // namespace tether::agent
