#include "agent/attempt_runner.hpp"

#include "agent/task_environment.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/attempt_launch.hpp"
#include "agent/attempt_limits.hpp"
#include "agent/attempt_setup.hpp"
#include "agent/stream_capture.hpp"
#include "agent/task_init.hpp"
#include "agent/task_init_events.hpp"
#include "agent/task_init_plan.hpp"
#include "core/co_group.hpp"
#include "core/notification.hpp"
#include "core/owned_fd.hpp"
#include "core/process.hpp"
#include "core/timer.hpp"
#include "core/wall_clock.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

namespace {

using protocol::AttemptStatus;
using protocol::FinalReport;

// After the kill that follows the drain timeout, how long to wait for the
// pipes to close before we stop reading anyway (the init kills every process
// of the task, so this only matters if the kernel is slow to tear them down).
constexpr uint64_t kAfterKillDrainMs = 500;
// How long the init may take to sweep up once the attempt is over.
constexpr uint64_t kFinishMs = 5000;

enum class StopReason { kNone, kTimedOut, kCancelled };

struct Supervision {
  StopReason reason = StopReason::kNone;
  bool killed_after_grace = false;
};

// What the task's init has said so far (task_init.hpp).
struct InitState {
  std::optional<TaskInitEvent> start;  // started or failed
  std::optional<core::ExitStatus> exit;
  std::vector<TaskInitEvent> signalled;  // in the order the commands were sent
  std::vector<TaskInitEvent> limited;    // limits the kernel enforced
  bool done = false;
  bool gone = false;  // its control socket closed: the init has exited
};

std::string signal_name(int signum) {
  const char* abbrev = sigabbrev_np(signum);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signum);
}

std::string errno_text(int error) {
  std::string text = std::strerror(error);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  const char* name = strerrorname_np(error);
  return text + " (" + (name ? name : std::to_string(error)) + ")";
}

// Reads the init's events until it closes its end.
core::Co<void> read_init_events(core::Process& init, InitState& state,
                                core::CancellationSource& exited, core::Notification& changed) {
  std::string buffered;
  for (;;) {
    auto chunk = co_await init.control_reader().read();
    if (!chunk || chunk->end_of_stream) break;
    buffered.append(chunk->bytes);
    for (size_t newline = buffered.find('\n'); newline != std::string::npos;
         newline = buffered.find('\n')) {
      auto event = parse_task_init_line(std::string_view(buffered).substr(0, newline));
      buffered.erase(0, newline + 1);
      if (!event) continue;
      switch (event->kind) {
        case TaskInitEvent::Kind::kStarted:
        case TaskInitEvent::Kind::kFailed:
          state.start = std::move(*event);
          break;
        case TaskInitEvent::Kind::kExited:
          state.exit = core::ExitStatus{event->exit_code, event->signal};
          exited.cancel();
          break;
        case TaskInitEvent::Kind::kSignalled:
          state.signalled.push_back(std::move(*event));
          break;
        case TaskInitEvent::Kind::kLimited:
          state.limited.push_back(std::move(*event));
          break;
        case TaskInitEvent::Kind::kDone:
          state.done = true;
          break;
      }
      changed.notify_all();
    }
  }
  state.gone = true;
  exited.cancel();
  changed.notify_all();
}

// Watches for the timeout or a cancel while the command runs, then stops
// every process of the task through its init: SIGTERM, and SIGKILL if the
// command has not exited after the grace.
core::Co<void> supervise(core::Loop& loop, core::Process& init, uint64_t timeout_ms,
                         uint64_t grace_ms, core::CancellationToken cancel,
                         core::CancellationToken exited, Supervision& out,
                         std::vector<std::string>& sent) {
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
  if (init.control_write("term\n")) sent.push_back("term");
  auto grace = co_await core::sleep_for(loop, grace_ms, exited);
  if (grace.ok()) {
    if (init.control_write("kill\n")) sent.push_back("kill");
    out.killed_after_grace = true;
  }
}

// Captures both streams; `done` fires once both have ended.
core::Co<void> capture_streams(StreamCapture& out, StreamCapture& err, core::CancellationToken stop,
                               core::CancellationSource& done) {
  core::CoGroup group;
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
core::Co<bool> wait_for_streams_end(core::Loop& loop, const StreamCapture& out,
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

namespace {

// "N process(es): a (pid 1), b (pid 2), ..." for a final's error.
std::string processes_text(const TaskInitEvent& event) {
  std::string text = std::to_string(event.count) + (event.count == 1 ? " process" : " processes");
  for (size_t i = 0; i < event.names.size(); ++i)
    text += (i == 0 ? ": " : ", ") + event.names[i];
  if (static_cast<size_t>(event.count) > event.names.size()) text += ", ...";
  return text;
}

// Why the command could not start, naming the step (task_init.hpp).
std::string start_failure_text(const TaskInitEvent& failed,
                               const protocol::AttemptIsolation& isolation) {
  if (failed.stage == "cgroup") return "cannot join its cgroup: " + errno_text(failed.error);
  if (failed.stage == "plan") {
    return "the task's init (tether-task-init) could not read the plan this agent gave it, "
           "so it is from another version of Tether: " +
           errno_text(failed.error);
  }
  if (failed.stage == "cwd") {
    return "cannot enter its working directory as " + isolation.user + ": " +
           errno_text(failed.error);
  }
  if (failed.stage == "user") {
    return "cannot switch to user " + isolation.user + " (uid " + std::to_string(isolation.uid) +
           "): " + errno_text(failed.error);
  }
  return errno_text(failed.error);
}

// How the attempt ended, for its final: what the pipes did after the
// command exited.
struct Drain {
  bool pipe_held = false;        // still open after the drain timeout
  bool gave_up_reading = false;  // and after the kill
};

// Status, exit code or signal, and the error's notes, in the order they happened.
void describe_end(FinalReport& report, const InitState& state, const Supervision& supervision,
                  const std::vector<std::string>& sent, const Drain& drain,
                  const RunnerOptions& options, uint64_t timeout_s) {
  std::vector<std::string> notes;
  const core::ExitStatus status = state.exit ? *state.exit : core::ExitStatus{-1, 0};
  if (status.term_signal != 0) {
    report.signal = status.term_signal;
  } else {
    report.exit_code = status.exit_code;
  }
  switch (supervision.reason) {
    case StopReason::kTimedOut:
      report.status = AttemptStatus::kTimedOut;
      notes.push_back("timed out after " + std::to_string(timeout_s) + " s");
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
  if (!state.exit) {
    notes.push_back("the task's init process ended before the command did (killed from outside?)");
  }
  // What had to be stopped, in the order it was asked for.
  for (size_t i = 0; i < state.signalled.size() && i < sent.size(); ++i) {
    const TaskInitEvent& event = state.signalled[i];
    if (event.count == 0) continue;
    const std::string& why = sent[i];
    if (why == "term") {
      notes.push_back("SIGTERM sent to " + processes_text(event));
    } else if (why == "kill") {
      notes.push_back("still running " + std::to_string(options.kill_grace_ms) +
                      " ms after SIGTERM; killed with SIGKILL: " + processes_text(event));
    } else if (why == "drain") {
      notes.push_back(
          "the output pipes were still open " + std::to_string(options.drain_timeout_ms) +
          " ms after the command exited (the drain timeout); killed " + processes_text(event));
    } else {
      notes.push_back("left running when the task ended, and killed: " + processes_text(event));
    }
  }
  if (supervision.killed_after_grace && state.signalled.size() < 2 && state.exit &&
      supervision.reason != StopReason::kNone) {
    // The command exited between the SIGKILL order and its report.
    notes.push_back("still running " + std::to_string(options.kill_grace_ms) +
                    " ms after SIGTERM; SIGKILL sent");
  }
  if (drain.pipe_held && drain.gave_up_reading) {
    notes.push_back("the pipes stayed open even then; stopped reading");
  }
  for (size_t i = 0; i < notes.size(); ++i) {
    report.error += (i == 0 ? "" : "; ") + notes[i];
  }
}

// The command is gone, but other processes of the task may still hold the
// pipes. They get the drain timeout to finish writing; then the init kills
// them all, and if the pipes stay open even then, reading stops.
core::Co<void> drain_streams(core::Loop& loop, core::Process& init, const StreamCapture& out,
                             const StreamCapture& err, uint64_t drain_timeout_ms,
                             core::CancellationSource& stop_reading,
                             core::CancellationToken streams_done, std::vector<std::string>& sent,
                             Drain& drain) {
  const bool ended = co_await wait_for_streams_end(loop, out, err, drain_timeout_ms, streams_done);
  if (ended) co_return;
  drain.pipe_held = true;
  if (init.control_write("kill\n")) sent.push_back("drain");
  const bool ended_after_kill =
      co_await wait_for_streams_end(loop, out, err, kAfterKillDrainMs, streams_done);
  if (!ended_after_kill) {
    drain.gave_up_reading = true;
    stop_reading.cancel();
  }
}

// The attempt is over: nothing of the task may outlive it. The init kills
// what is left and exits; an init that hangs is killed with its group.
core::Co<void> finish_init(core::Loop& loop, core::Process& init, const InitState& state,
                           core::Notification& init_changed, std::vector<std::string>& sent) {
  if (init.control_write("finish\n")) sent.push_back("finish");
  loop.update_time();
  const uint64_t finish_by = loop.now_ms() + kFinishMs;
  while (!state.done && !state.gone) {
    loop.update_time();
    if (loop.now_ms() >= finish_by) break;
    (void)co_await init_changed.wait(finish_by - loop.now_ms());
  }
  if (!state.gone && !state.done) init.signal_group(SIGKILL);
  auto init_exit = co_await init.wait_exit();
  (void)init_exit;
}

}  // namespace

core::Co<FinalReport> AttemptRunner::run(const protocol::TaskSpec& task, AttemptSink& sink,
                                         core::CancellationToken cancel) {
  auto setup = AttemptSetup::prepare(options_.isolation.get(), task.attempt_id, task.limits);
  if (!setup) co_return final_without_process(AttemptStatus::kFailed, setup.error().message);
  auto launch = prepare_launch(task, **setup);
  if (!launch) co_return final_without_process(AttemptStatus::kFailed, launch.error().message);
  const std::vector<std::string>& argv = launch->argv;
  const std::string cwd = task.cwd.empty() ? (*setup)->default_directory() : task.cwd;
  auto spawned = start_task_init(loop_, *launch, cwd, **setup, options_.task_init_program,
                                 options_.read_buffer_bytes);
  if (!spawned) co_return final_without_process(AttemptStatus::kFailed, spawned.error().message);
  core::Process& init = **spawned;

  InitState state;
  core::Notification init_changed(loop_);
  core::CancellationSource exited;
  core::CoGroup init_events;
  init_events.spawn(read_init_events(init, state, exited, init_changed));
  while (!state.start && !state.gone)
    (void)co_await init_changed.wait();

  FinalReport report;
  report.started_at = core::utc_now();
  if (!state.start || state.start->kind == TaskInitEvent::Kind::kFailed) {
    const std::string why = state.start ? start_failure_text(*state.start, (*setup)->describe())
                                        : "the task's init process ended at once";
    auto closed = co_await init.wait_exit();
    (void)closed;
    co_await init_events.join();
    co_return final_without_process(AttemptStatus::kFailed,
                                    "cannot start '" + argv.at(0) + "': " + why);
  }
  sink.on_started(protocol::StartedReport{state.start->pid, report.started_at}, init.pid());

  StreamCapture out(loop_, init.stdout_reader(), protocol::StreamName::kStdout, options_.chunker,
                    sink, task.secrets);
  StreamCapture err(loop_, init.stderr_reader(), protocol::StreamName::kStderr, options_.chunker,
                    sink, task.secrets);
  core::CancellationSource stop_reading;
  core::CancellationSource streams_done;
  Supervision supervision;
  std::vector<std::string> sent;  // commands to the init, in order

  core::CoGroup group;
  group.spawn(capture_streams(out, err, stop_reading.token(), streams_done));
  group.spawn(supervise(loop_, init, task.timeout_s * 1000, options_.kill_grace_ms, cancel,
                        exited.token(), supervision, sent));
  while (!state.exit && !state.gone)
    (void)co_await init_changed.wait();

  Drain drain;
  co_await drain_streams(loop_, init, out, err, options_.drain_timeout_ms, stop_reading,
                         streams_done.token(), sent, drain);
  co_await group.join();
  co_await finish_init(loop_, init, state, init_changed, sent);
  co_await init_events.join();

  report.finished_at = core::utc_now();
  report.stdout_summary = out.summary();
  report.stderr_summary = err.summary();
  if (!task.secrets.empty()) {
    report.redactions = protocol::RedactionCounts{out.redactions(), err.redactions()};
  }

  describe_end(report, state, supervision, sent, drain, options_, task.timeout_s);
  report_enforced_limits(report, state.limited, task.limits);
  report.isolation = (*setup)->describe();
  for (const auto* capture : {&out, &err}) {
    if (capture->read_error()) {
      report.error += (report.error.empty() ? "" : "; ") + capture->read_error()->message;
    }
  }
  co_return report;
}

}  // namespace tether::agent
