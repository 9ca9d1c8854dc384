#include "agent/task_executor.hpp"

#include <stdexcept>
#include <utility>

#include "protocol/task_target.hpp"

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
  if (auto refusal = target_refusal(task.target); !refusal.empty()) {
    co_return final_without_process(AttemptStatus::kRejected, refusal);
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
  attempts_.erase(task.attempt_id);
  co_return report;
}

std::string TaskExecutor::target_refusal(const std::string& target) const {
  // A scan, not an index: an agent admits at most max_concurrent_tasks
  // attempts at a time in practice (its poller asks for work only when a
  // slot is free), so there are only a handful of held targets to compare.
  for (const auto& [attempt_id, held] : attempts_) {
    if (!protocol::targets_conflict(target, held->target)) continue;
    if (held->target == target) return "target '" + target + "' is held by attempt " + attempt_id;
    return "target '" + target + "' conflicts with target '" + held->target + "' held by attempt " +
           attempt_id;
  }
  return {};
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
