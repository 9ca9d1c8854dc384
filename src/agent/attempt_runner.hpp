// AttemptRunner: runs one task attempt as a child process and reports it.
//
//   the attempt's user, home and cgroup (task_isolation.hpp)
//   -> spawn (own process group, clean environment, stdin on /dev/null)
//   -> started report
//   -> stdout and stderr captured concurrently into output chunks
//   -> timeout or cancel: SIGTERM to the group, SIGKILL after the grace period
//   -> after exit, drain both pipes until end of stream or the drain timeout;
//      a descendant still holding a pipe then gets its group killed
//   -> final report with status, exit code or signal, and per-stream byte
//      counts and SHA-256.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/attempt_sink.hpp"
#include "agent/output_chunker.hpp"
#include "agent/task_init_program.hpp"
#include "agent/task_isolation.hpp"
#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/loop.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

struct RunnerOptions {
  ChunkerOptions chunker;
  uint64_t kill_grace_ms = 10'000;
  uint64_t drain_timeout_ms = 2'000;
  size_t read_buffer_bytes = 64 * 1024;
  // Shared by every attempt (a uid range hands out uids); null: tasks run as
  // this process, contained by the subreaper, with their user's HOME.
  std::shared_ptr<TaskIsolation> isolation;
  // The task init program each attempt starts (task_init.hpp).
  std::string task_init_program = default_task_init_program();
};

// A final report for an attempt that never ran (rejected, cancelled while
// queued, or unable to start).
protocol::FinalReport final_without_process(protocol::AttemptStatus status, std::string error);

class AttemptRunner {
 public:
  AttemptRunner(core::Loop& loop, RunnerOptions options) : loop_(loop), options_(options) {}

  // `cancel` ends the attempt as cancelled (SIGTERM, grace, SIGKILL).
  core::Co<protocol::FinalReport> run(const protocol::TaskSpec& task, AttemptSink& sink,
                                      core::CancellationToken cancel);

  const RunnerOptions& options() const { return options_; }

 private:
  core::Loop& loop_;
  RunnerOptions options_;
};

}  // namespace tether::agent
