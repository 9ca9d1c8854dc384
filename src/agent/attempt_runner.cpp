#include "agent/attempt_runner.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/stream_capture.hpp"
#include "core/process.hpp"
#include "core/task_group.hpp"
#include "core/timer.hpp"
#include "core/wall_clock.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

namespace {

using protocol::AttemptStatus;
using protocol::FinalReport;

// After SIGKILL to the group, how long to wait for the pipes to close before
// we stop reading anyway: a descendant that left the group (setsid) is out of
// our reach and must not hold the attempt open forever.
constexpr uint64_t kAfterKillDrainMs = 500;

enum class StopReason { kNone, kTimedOut, kCancelled };

struct Supervision {
  StopReason reason = StopReason::kNone;
  bool killed_after_grace = false;
};

std::string home_directory() {
  if (const passwd* entry = getpwuid(geteuid()); entry && entry->pw_dir && *entry->pw_dir) {
    return entry->pw_dir;
  }
  return "/";
}

Result<void> check_working_directory(const std::string& cwd) {
  if (cwd.empty()) return {};
  struct stat info {};
  if (::stat(cwd.c_str(), &info) != 0) {
    return make_error("bad_cwd",
                      "working directory '" + cwd + "' cannot be used: " + std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode)) {
    return make_error("bad_cwd", "working directory '" + cwd + "' is not a directory");
  }
  if (::access(cwd.c_str(), X_OK) != 0) {
    return make_error("bad_cwd",
                      "working directory '" + cwd + "' cannot be entered: " + std::strerror(errno));
  }
  return {};
}

std::string signal_name(int signum) {
  const char* abbrev = sigabbrev_np(signum);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signum);
}

// Watches for the timeout or a cancel while the child runs, then stops it:
// SIGTERM to its group, and SIGKILL if it has not exited after the grace.
core::Task<void> supervise(core::Loop& loop, core::Process& process, uint64_t timeout_ms,
                           uint64_t grace_ms, core::CancellationToken cancel,
                           core::CancellationToken exited, Supervision& out) {
  core::CancellationSource wake;
  core::CancellationRegistration on_cancel(cancel, [&wake] { wake.cancel(); });
  core::CancellationRegistration on_exit(exited, [&wake] { wake.cancel(); });
  if (timeout_ms > 0) {
    auto slept = co_await core::sleep_for(loop, timeout_ms, wake.token());
    if (slept.ok()) out.reason = StopReason::kTimedOut;
  } else {
    co_await core::until_cancelled(loop, wake.token());
  }
  if (exited.cancelled()) co_return;
  if (out.reason == StopReason::kNone) out.reason = StopReason::kCancelled;
  process.signal_group(SIGTERM);
  auto grace = co_await core::sleep_for(loop, grace_ms, exited);
  if (grace.ok()) {
    process.signal_group(SIGKILL);
    out.killed_after_grace = true;
  }
}

// Captures both streams; `done` fires once both have ended.
core::Task<void> capture_streams(StreamCapture& out, StreamCapture& err,
                                 core::CancellationToken stop, core::CancellationSource& done) {
  core::TaskGroup group;
  group.spawn(out.run(stop));
  group.spawn(err.run(stop));
  co_await group.join();
  done.cancel();
}

protocol::StreamSummary empty_summary() {
  protocol::StreamSummary summary;
  summary.sha256 = protocol::sha256_hex({});
  return summary;
}

// Waits up to `budget_ms` for both streams to end; true when they did. Time
// in which a capture is paused for room in the outbox does not count: the
// pipe is full because we stopped reading, not because a descendant holds it.
core::Task<bool> wait_for_streams_end(core::Loop& loop, const StreamCapture& out,
                                      const StreamCapture& err, uint64_t budget_ms,
                                      core::CancellationToken streams_done) {
  uint64_t left = budget_ms;
  while (left > 0) {
    const uint64_t step = std::min<uint64_t>(left, 100);
    auto slept = co_await core::sleep_for(loop, step, streams_done);
    if (!slept.ok()) co_return true;
    if (!out.waiting_for_room() && !err.waiting_for_room()) left -= step;
  }
  co_return streams_done.cancelled();
}

}  // namespace

std::map<std::string, std::string> base_task_environment() {
  return {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", home_directory()},
      {"LANG", "C.UTF-8"},
  };
}

std::vector<std::string> task_environment(const protocol::TaskSpec& task) {
  auto variables = base_task_environment();
  for (const auto& [name, value] : task.env)
    variables[name] = value;
  std::vector<std::string> environment;
  environment.reserve(variables.size());
  for (const auto& [name, value] : variables)
    environment.push_back(name + "=" + value);
  return environment;
}

FinalReport final_without_process(AttemptStatus status, std::string error) {
  FinalReport report;
  report.status = status;
  report.started_at = core::utc_now();
  report.finished_at = report.started_at;
  report.stdout_summary = empty_summary();
  report.stderr_summary = empty_summary();
  report.error = std::move(error);
  return report;
}

core::Task<FinalReport> AttemptRunner::run(const protocol::TaskSpec& task, AttemptSink& sink,
                                           core::CancellationToken cancel) {
  if (auto cwd = check_working_directory(task.cwd); !cwd) {
    co_return final_without_process(AttemptStatus::kFailed, cwd.error().message);
  }
  core::SpawnOptions spawn;
  spawn.argv = task.command_line();
  spawn.environment = task_environment(task);
  spawn.working_directory = task.cwd;
  spawn.read_buffer_bytes = options_.read_buffer_bytes;
  auto spawned = core::Process::spawn(loop_, spawn);
  if (!spawned) {
    co_return final_without_process(AttemptStatus::kFailed,
                                    spawned.error().message + " (" + spawned.error().code + ")");
  }
  core::Process& process = **spawned;

  FinalReport report;
  report.started_at = core::utc_now();
  sink.on_started(protocol::StartedReport{process.pid(), report.started_at});

  StreamCapture out(loop_, process.stdout_reader(), protocol::StreamName::kStdout, options_.chunker,
                    sink);
  StreamCapture err(loop_, process.stderr_reader(), protocol::StreamName::kStderr, options_.chunker,
                    sink);
  core::CancellationSource stop_reading;
  core::CancellationSource streams_done;
  core::CancellationSource exited;
  Supervision supervision;

  core::TaskGroup group;
  group.spawn(capture_streams(out, err, stop_reading.token(), streams_done));
  group.spawn(supervise(loop_, process, task.timeout_s * 1000, options_.kill_grace_ms, cancel,
                        exited.token(), supervision));

  auto exit_status = co_await process.wait_exit();
  exited.cancel();

  // The child is gone, but its descendants may still hold the pipes. Give them
  // the drain timeout to finish writing, then kill the group.
  bool pipe_held = false;
  bool gave_up_reading = false;
  const bool ended = co_await wait_for_streams_end(loop_, out, err, options_.drain_timeout_ms,
                                                   streams_done.token());
  if (!ended) {
    pipe_held = true;
    process.signal_group(SIGKILL);
    const bool ended_after_kill =
        co_await wait_for_streams_end(loop_, out, err, kAfterKillDrainMs, streams_done.token());
    if (!ended_after_kill) {
      gave_up_reading = true;
      stop_reading.cancel();
    }
  }
  co_await group.join();

  report.finished_at = core::utc_now();
  report.stdout_summary = out.summary();
  report.stderr_summary = err.summary();

  std::vector<std::string> notes;
  const core::ExitStatus status = exit_status ? *exit_status : core::ExitStatus{-1, 0};
  if (status.term_signal != 0) {
    report.signal = status.term_signal;
  } else {
    report.exit_code = status.exit_code;
  }
  switch (supervision.reason) {
    case StopReason::kTimedOut:
      report.status = AttemptStatus::kTimedOut;
      notes.push_back("timed out after " + std::to_string(task.timeout_s) + " s");
      break;
    case StopReason::kCancelled:
      report.status = AttemptStatus::kCancelled;
      notes.push_back("cancelled");
      break;
    case StopReason::kNone:
      report.status = (status.term_signal == 0 && status.exit_code == 0) ? AttemptStatus::kSucceeded
                                                                         : AttemptStatus::kFailed;
      if (status.term_signal != 0) notes.push_back("killed by " + signal_name(status.term_signal));
      break;
  }
  if (supervision.killed_after_grace) {
    notes.push_back("still running " + std::to_string(options_.kill_grace_ms) +
                    " ms after SIGTERM; process group killed with SIGKILL");
  }
  if (pipe_held) {
    notes.push_back(
        "a descendant kept the output pipes open after the process exited; its process "
        "group was killed after the " +
        std::to_string(options_.drain_timeout_ms) + " ms drain timeout");
  }
  if (gave_up_reading) {
    notes.push_back(
        "the pipes stayed open even then (a descendant left the process group); "
        "stopped reading");
  }
  for (const auto* capture : {&out, &err}) {
    if (capture->read_error()) notes.push_back(capture->read_error()->message);
  }
  for (size_t i = 0; i < notes.size(); ++i) {
    report.error += (i == 0 ? "" : "; ") + notes[i];
  }
  co_return report;
}

}  // namespace tether::agent
