#include "cli/run_exit_status.hpp"

namespace tether::cli {

int run_exit_status(const protocol::RunView& run) {
  // No task: nothing ran, which a script must not take for success.
  if (run.tasks.empty()) return kExitRunIncomplete;
  bool some_failed = false;
  for (const auto& task : run.tasks) {
    if (task.state == "succeeded") continue;
    if (task.state == "failed" || task.state == "timed_out" || task.state == "cancelled" ||
        task.state == "rejected") {
      some_failed = true;
      continue;
    }
    // skipped, lost, or a state that is not an end (queued ... running).
    return kExitRunIncomplete;
  }
  return some_failed ? kExitRunSomeFailed : 0;
}

}  // namespace tether::cli
