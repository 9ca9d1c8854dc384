#include "agent/attempt_limits.hpp"

namespace tether::agent {

void report_enforced_limits(protocol::FinalReport& report,
                            const std::vector<TaskInitEvent>& limited,
                            const protocol::TaskLimits& limits) {
  std::string notes;
  for (const auto& event : limited) {
    std::string note;
    if (event.limit == "memory_max" && limits.memory_max) {
      report.limit_exceeded = "memory_max";
      note = "killed for memory: the kernel's OOM killer ended " + std::to_string(event.times) +
             (event.times == 1 ? " process" : " processes") + " of the task at memory_max (" +
             protocol::format_byte_size(*limits.memory_max) + ")";
    } else if (event.limit == "pids_max" && limits.pids_max) {
      note = "pids_max (" + std::to_string(*limits.pids_max) + ") refused " +
             std::to_string(event.times) + (event.times == 1 ? " fork" : " forks");
    }
    if (!note.empty()) notes += (notes.empty() ? "" : "; ") + note;
  }
  if (notes.empty()) return;
  report.error = notes + (report.error.empty() ? "" : "; " + report.error);
}

}  // namespace tether::agent
