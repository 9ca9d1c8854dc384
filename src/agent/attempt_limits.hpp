// What the kernel enforced of an attempt's limits (protocol/task_limits.hpp),
// as its task's init reported it ("limited" lines, task_init_events.hpp), put into
// the attempt's final (docs/protocol.md 4.1, limit_exceeded).
#pragma once

#include <vector>

#include "agent/task_init_events.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/task_limits.hpp"

namespace tether::agent {

// Notes first in report.error (they are why the rest happened): processes
// the OOM killer ended at memory_max, which also sets limit_exceeded to
// "memory_max", and forks pids_max refused. Events for a limit the task did
// not set are ignored.
void report_enforced_limits(protocol::FinalReport& report,
                            const std::vector<TaskInitEvent>& limited,
                            const protocol::TaskLimits& limits);

}  // namespace tether::agent
