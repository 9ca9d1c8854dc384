// Task execution end to end, in process: real children, real pipes, the real
// runner and executor. Each case checks what the issue promises, byte-exact.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "agent/task_executor.hpp"
#include "core/co_group.hpp"
#include "core/run.hpp"
#include "protocol/utf8.hpp"
#include "support.hpp"

using namespace tether;
using namespace tether::agent;
using protocol::AttemptStatus;
using protocol::FinalReport;
using protocol::TaskSpec;
using test::CollectingSink;

namespace {

TaskSpec make_task(std::string id, std::vector<std::string> argv) {
  TaskSpec task;
  task.task_id = id;
  task.attempt_id = id + "-a1";
  task.argv = std::move(argv);
  return task;
}

TaskSpec shell_task(std::string id, std::string script) {
  TaskSpec task;
  task.task_id = id;
  task.attempt_id = id + "-a1";
  task.shell = std::move(script);
  return task;
}

core::Co<FinalReport> execute(TaskExecutor& executor, TaskSpec task, AttemptSink& sink) {
  co_return co_await executor.execute(std::move(task), sink);
}

FinalReport run_one(TaskSpec task, CollectingSink& sink,
                    ExecutorOptions options = test::executor_options()) {
  core::Loop loop;
  TaskExecutor executor(loop, options);
  return core::run_to_completion(loop, execute(executor, std::move(task), sink));
}

// Waits up to five seconds for `pid` to die. A pidfd becomes readable when
// the process exits, so this waits for the event itself, not for a guess: a
// killed process closes its pipes a moment before it is reported as exited.
bool process_dies(int pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;  // already gone (and reaped)
  pollfd watch{pidfd, POLLIN, 0};
  const int ready = ::poll(&watch, 1, 5000);
  ::close(pidfd);
  return ready == 1;
}

std::string expected_sha256(const std::string& generator_args) {
  const std::string line =
      test::shell_output("'" + test::test_writer() + "' " + generator_args + " | sha256sum");
  return line.substr(0, 64);
}

uint64_t expected_size(const std::string& generator_args) {
  return std::stoull(
      test::shell_output("'" + test::test_writer() + "' " + generator_args + " | wc -c"));
}

}  // namespace

TEST_CASE("200 MB of output arrives exactly, matching sha256sum of the generator",
          "[runner][slow]") {
  CollectingSink sink;
  sink.keep_bytes = false;
  const uint64_t total = 200ull * 1000 * 1000;
  auto final_report =
      run_one(make_task("big", {test::test_writer(), "random", "7", std::to_string(total)}), sink);
  REQUIRE(sink.violations.empty());
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(final_report.exit_code == 0);
  CHECK(final_report.error.empty());
  CHECK(sink.out.total == total);
  CHECK(final_report.stdout_summary.bytes == total);
  const std::string expected = expected_sha256("random 7 " + std::to_string(total));
  CHECK(sink.out.digest.hex_digest() == expected);
  CHECK(final_report.stdout_summary.sha256 == expected);
  CHECK(final_report.stderr_summary.bytes == 0);
}

TEST_CASE("UTF-8 text is never split inside a character", "[runner]") {
  CollectingSink sink(64 * 1024);
  sink.keep_chunks = true;
  sink.keep_bytes = false;
  const uint64_t total = 20ull * 1000 * 1000;
  auto final_report =
      run_one(make_task("text", {test::test_writer(), "utf8", "3", std::to_string(total)}), sink);
  REQUIRE(sink.violations.empty());
  CHECK(final_report.stdout_summary.bytes == expected_size("utf8 3 " + std::to_string(total)));
  CHECK(final_report.stdout_summary.sha256 == expected_sha256("utf8 3 " + std::to_string(total)));
  size_t invalid = 0;
  for (const auto& chunk : sink.out.chunk_data)
    invalid += !protocol::is_valid_utf8(chunk);
  CHECK(invalid == 0);
  CHECK(sink.out.chunks > 100);
}

TEST_CASE("binary and invalid UTF-8 output passes through exactly", "[runner]") {
  CollectingSink sink;
  // Every byte value, then a truncated sequence at the very end of the stream.
  auto final_report = run_one(
      shell_task("bin",
                 "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); "
                 "done; printf '\\303\\050\\355\\240\\200\\360'"),
      sink);
  REQUIRE(sink.violations.empty());
  std::string expected;
  for (int i = 0; i < 256; ++i)
    expected.push_back(static_cast<char>(i));
  expected += "\xC3\x28\xED\xA0\x80\xF0";
  CHECK(sink.out.bytes == expected);
  CHECK(final_report.stdout_summary.sha256 == protocol::sha256_hex(expected));
  CHECK(final_report.status == AttemptStatus::kSucceeded);
}

TEST_CASE("a single 50 MB line passes", "[runner]") {
  CollectingSink sink;
  sink.keep_bytes = false;
  const uint64_t total = 50ull * 1000 * 1000;
  auto final_report =
      run_one(make_task("line", {test::test_writer(), "longline", std::to_string(total)}), sink);
  REQUIRE(sink.violations.empty());
  CHECK(final_report.stdout_summary.bytes == total);
  CHECK(final_report.stdout_summary.sha256 == expected_sha256("longline " + std::to_string(total)));
  CHECK(sink.out.chunks >= total / (64 * 1024));
}

TEST_CASE("sparse lines are each framed within 20 ms of being written", "[runner]") {
  CollectingSink sink;
  sink.keep_chunks = true;
  auto final_report =
      run_one(make_task("sparse", {test::test_writer(), "lines", "15", "50"}), sink);
  REQUIRE(sink.violations.empty());
  REQUIRE(final_report.status == AttemptStatus::kSucceeded);
  // Lines 50 ms apart each come out alone, as soon as they are read.
  REQUIRE(sink.out.chunk_data.size() == 15);
  for (size_t i = 0; i < sink.out.chunk_data.size(); ++i) {
    const uint64_t written_ns = std::stoull(sink.out.chunk_data[i]);
    const uint64_t framed_ns = sink.out.emitted_at_ns[i];
    INFO("line " << i);
    CHECK(framed_ns >= written_ns);
    CHECK(framed_ns - written_ns <= 20'000'000);
  }
}

TEST_CASE("stdout and stderr interleave without loss", "[runner]") {
  CollectingSink sink;
  auto final_report = run_one(make_task("mix", {test::test_writer(), "interleave", "20000"}), sink);
  REQUIRE(sink.violations.empty());
  std::string expected_out;
  std::string expected_err;
  for (int i = 0; i < 20000; ++i) {
    expected_out += "out " + std::to_string(i) + "\n";
    expected_err += "err " + std::to_string(i) + "\n";
  }
  CHECK(sink.out.bytes == expected_out);
  CHECK(sink.err.bytes == expected_err);
  CHECK(final_report.stderr_summary.sha256 == protocol::sha256_hex(expected_err));
}

TEST_CASE("exit codes and signals end up in the final", "[runner]") {
  CollectingSink sink;
  auto failed = run_one(make_task("code", {test::test_writer(), "exit", "42"}), sink);
  CHECK(failed.status == AttemptStatus::kFailed);
  CHECK(failed.exit_code == 42);
  CHECK_FALSE(failed.signal);

  CollectingSink sink2;
  auto signalled = run_one(shell_task("sig", "kill -SEGV $$"), sink2);
  CHECK(signalled.status == AttemptStatus::kFailed);
  CHECK(signalled.signal == SIGSEGV);
  CHECK_FALSE(signalled.exit_code);
  CHECK_THAT(signalled.error, Catch::Contains("SIGSEGV"));
}

TEST_CASE("a task starts with a clean environment and default signal handling", "[runner]") {
  ::setenv("TETHER_AGENT_SECRET", "must-not-leak", 1);
  ::signal(SIGPIPE, SIG_IGN);  // as in the agent; children must not inherit it
  CollectingSink sink;
  auto task = shell_task("env", "env | sort; grep SigIgn /proc/self/status");
  task.env["EXTRA"] = "1";
  auto final_report = run_one(task, sink);
  ::signal(SIGPIPE, SIG_DFL);
  REQUIRE(final_report.status == AttemptStatus::kSucceeded);
  std::istringstream lines(sink.out.bytes);
  std::vector<std::string> names;
  std::string sig_ignored;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("SigIgn:", 0) == 0) {
      sig_ignored = line;
      continue;
    }
    names.push_back(line.substr(0, line.find('=')));
  }
  // sh itself adds PWD (and may add SHLVL); everything else is ours.
  std::vector<std::string> allowed = {"EXTRA", "HOME", "LANG", "PATH", "PWD", "SHLVL", "_"};
  for (const auto& name : names) {
    INFO(name);
    CHECK(std::find(allowed.begin(), allowed.end(), name) != allowed.end());
  }
  CHECK(std::find(names.begin(), names.end(), "EXTRA") != names.end());
  CHECK(sink.out.bytes.find("must-not-leak") == std::string::npos);
  CHECK_THAT(sig_ignored, Catch::Matches("SigIgn:\\s+0+"));
}

TEST_CASE("a timeout kills the whole group, even a grandchild that ignores SIGTERM", "[runner]") {
  CollectingSink sink;
  ExecutorOptions options = test::executor_options();
  options.runner.kill_grace_ms = 300;
  // The shell and its background sleep both ignore SIGTERM; only SIGKILL ends them.
  auto task = shell_task("slow", "trap '' TERM; sleep 60 & echo $!; wait; wait");
  task.timeout_s = 1;
  auto final_report = run_one(task, sink, options);
  CHECK(final_report.status == AttemptStatus::kTimedOut);
  CHECK_THAT(final_report.error, Catch::Contains("timed out after 1 s"));
  CHECK_THAT(final_report.error, Catch::Contains("SIGKILL"));
  CHECK(final_report.signal == SIGKILL);
  const int grandchild = std::stoi(sink.out.bytes);
  CHECK(process_dies(grandchild));
}

TEST_CASE("cancel stops a running task and its process group", "[runner]") {
  core::Loop loop;
  ExecutorOptions options = test::executor_options();
  options.runner.kill_grace_ms = 300;
  TaskExecutor executor(loop, options);
  // Cancels as soon as the task's first output arrives: an event, not a sleep.
  struct CancellingSink : CollectingSink {
    TaskExecutor* executor = nullptr;
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      CollectingSink::on_output(std::move(chunk), digest);
      executor->cancel("cancel-a1", "operator asked");
    }
  } sink;
  sink.executor = &executor;
  auto task = shell_task("cancel", "trap '' TERM; sleep 60 & echo $!; wait; wait");
  auto final_report = core::run_to_completion(loop, execute(executor, task, sink));
  CHECK(final_report.status == AttemptStatus::kCancelled);
  CHECK_THAT(final_report.error, Catch::Contains("operator asked"));
  CHECK_THAT(final_report.error, Catch::Contains("SIGKILL"));
  CHECK(process_dies(std::stoi(sink.out.bytes)));
  CHECK_FALSE(executor.cancel("cancel-a1", "again"));  // gone once finished
}

TEST_CASE("a task that honours SIGTERM is not SIGKILLed", "[runner]") {
  core::Loop loop;
  TaskExecutor executor(loop, test::executor_options());
  struct CancellingSink : CollectingSink {
    TaskExecutor* executor = nullptr;
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      CollectingSink::on_output(std::move(chunk), digest);
      executor->cancel("polite-a1", "test");
    }
  } sink;
  sink.executor = &executor;
  auto task = shell_task("polite",
                         "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
  auto final_report = core::run_to_completion(loop, execute(executor, task, sink));
  CHECK(final_report.status == AttemptStatus::kCancelled);
  CHECK(final_report.error.find("SIGKILL") == std::string::npos);
  CHECK_THAT(sink.out.bytes, Catch::Contains("bye"));
}

TEST_CASE("output written by a grandchild after the parent exits is still read", "[runner]") {
  CollectingSink sink;
  auto final_report = run_one(shell_task("late", "(sleep 0.3; echo late) & echo early"), sink);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(sink.out.bytes == "early\nlate\n");
  CHECK(final_report.error.empty());
}

TEST_CASE("a process on its way out when the pipes close is neither killed nor reported",
          "[runner]") {
  // It closes the pipes at once and ends 50 ms later by itself: the kind of
  // process the grandchild above is between its last write and its exit.
  CollectingSink sink;
  auto final_report =
      run_one(shell_task("leaving", "(exec >&- 2>&-; sleep 0.05) & echo started"), sink);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(sink.out.bytes == "started\n");
  CHECK(final_report.error.empty());
}

TEST_CASE("a grandchild holding the pipe is killed after the drain timeout", "[runner]") {
  CollectingSink sink;
  ExecutorOptions options = test::executor_options();
  options.runner.drain_timeout_ms = 300;
  auto final_report = run_one(shell_task("held", "sleep 60 & echo $!"), sink, options);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(final_report.exit_code == 0);
  const int pid = std::stoi(sink.out.bytes);
  CHECK_THAT(final_report.error, Catch::Contains("output pipes were still open") &&
                                     Catch::Contains("300 ms") &&
                                     Catch::Contains("sleep (pid " + std::to_string(pid) + ")"));
  CHECK(process_dies(pid));
}

TEST_CASE("a descendant in a session of its own is killed like any other", "[runner]") {
  CollectingSink sink;
  ExecutorOptions options = test::executor_options();
  options.runner.drain_timeout_ms = 200;
  auto final_report = run_one(shell_task("escaped", "setsid sleep 30 & echo $!"), sink, options);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  const int pid = std::stoi(sink.out.bytes);
  CHECK_THAT(final_report.error, Catch::Contains("sleep (pid " + std::to_string(pid) + ")"));
  CHECK(final_report.error.find("stopped reading") == std::string::npos);
  CHECK(process_dies(pid));
}

TEST_CASE("a task has exactly fds 0, 1 and 2, and its stdout and stderr are pipes", "[runner]") {
  // As if the agent had been started with `9>>somefile`: a descriptor
  // without close-on-exec, inherited by this process.
  char path[] = "/tmp/tether-test-inherited-XXXXXX";
  const int inherited = ::mkstemp(path);
  REQUIRE(inherited >= 0);
  REQUIRE((::fcntl(inherited, F_GETFD) & FD_CLOEXEC) == 0);
  CollectingSink sink;
  auto final_report = run_one(make_task("fds", {test::test_writer(), "fds"}), sink);
  ::close(inherited);
  ::unlink(path);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(sink.out.bytes == "0 1 2\nstdout pipe\nstderr pipe\n");
}

TEST_CASE("a task can open /dev/stdout and /dev/stderr", "[runner]") {
  CollectingSink sink;
  auto final_report =
      run_one(shell_task("devfd", "echo x > /dev/stdout; echo y | tee /dev/stderr"), sink);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(sink.out.bytes == "x\ny\n");
  CHECK(sink.err.bytes == "y\n");
}

TEST_CASE("on timeout every descendant dies, whatever group it moved to, and the final names them",
          "[runner]") {
  CollectingSink sink;
  ExecutorOptions options = test::executor_options();
  options.runner.kill_grace_ms = 2000;
  // The reported case: bash with job control puts the background job in a
  // process group of its own; only the foreground group used to be killed.
  auto task =
      make_task("jobs", {"bash", "-c", "set -m; sleep 300 >/dev/null 2>&1 & echo $!; sleep 300"});
  task.timeout_s = 1;
  auto final_report = run_one(task, sink, options);
  CHECK(final_report.status == AttemptStatus::kTimedOut);
  const int background = std::stoi(sink.out.bytes);
  CHECK(process_dies(background));
  CHECK_THAT(final_report.error,
             Catch::Contains("timed out after 1 s") && Catch::Contains("SIGTERM sent to") &&
                 Catch::Contains("sleep (pid " + std::to_string(background) + ")"));
}

TEST_CASE("on cancel a double-forked daemon in its own session dies too", "[runner]") {
  core::Loop loop;
  TaskExecutor executor(loop, test::executor_options());
  struct CancellingSink : CollectingSink {
    TaskExecutor* executor = nullptr;
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      CollectingSink::on_output(std::move(chunk), digest);
      if (out.bytes.find('\n') != std::string::npos) executor->cancel("daemon-a1", "stop");
    }
  } sink;
  sink.executor = &executor;
  // The daemon's parent exits at once: it is an orphan in a new session,
  // with no link to the task's process group or session.
  auto task = shell_task(
      "daemon", "(setsid sh -c 'sleep 300 & echo $!' >&2 &) ; sleep 0.2; echo go; sleep 300");
  auto final_report = core::run_to_completion(loop, execute(executor, task, sink));
  CHECK(final_report.status == AttemptStatus::kCancelled);
  REQUIRE_FALSE(sink.err.bytes.empty());
  const int daemon = std::stoi(sink.err.bytes);
  CHECK(process_dies(daemon));
  CHECK_THAT(final_report.error, Catch::Contains("sleep (pid " + std::to_string(daemon) + ")"));
}

TEST_CASE("a process left running when the task ends is killed, and the final says so",
          "[runner]") {
  CollectingSink sink;
  auto final_report = run_one(
      shell_task("leftover", "setsid sleep 300 >/dev/null 2>&1 </dev/null & echo $!"), sink);
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  const int pid = std::stoi(sink.out.bytes);
  CHECK(process_dies(pid));
  // Named by pid: it may still be setsid, about to exec sleep, when it is killed.
  CHECK_THAT(final_report.error, Catch::Contains("left running when the task ended") &&
                                     Catch::Contains("(pid " + std::to_string(pid) + ")"));
}

TEST_CASE("a command that cannot start gets a final with a clear error", "[runner]") {
  SECTION("missing program") {
    CollectingSink sink;
    auto final_report = run_one(make_task("enoent", {"/no/such/program", "x"}), sink);
    CHECK(final_report.status == AttemptStatus::kFailed);
    CHECK_FALSE(final_report.exit_code);
    CHECK_THAT(final_report.error,
               Catch::Contains("/no/such/program") && Catch::Contains("ENOENT"));
    CHECK(sink.started_count == 0);
    CHECK(final_report.stdout_summary.sha256 == protocol::sha256_hex(""));
  }
  SECTION("not executable") {
    char path[] = "/tmp/tether-test-noexec-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    ::chmod(path, 0644);
    CollectingSink sink;
    auto final_report = run_one(make_task("eacces", {path}), sink);
    ::unlink(path);
    CHECK(final_report.status == AttemptStatus::kFailed);
    CHECK_THAT(final_report.error, Catch::Contains("EACCES"));
  }
  SECTION("missing working directory") {
    CollectingSink sink;
    auto task = make_task("badcwd", {"/bin/true"});
    task.cwd = "/no/such/dir";
    auto final_report = run_one(task, sink);
    CHECK(final_report.status == AttemptStatus::kFailed);
    CHECK_THAT(final_report.error, Catch::Contains("working directory '/no/such/dir'"));
  }
  SECTION("working directory is a file") {
    CollectingSink sink;
    auto task = make_task("filecwd", {"/bin/true"});
    task.cwd = "/etc/hostname";
    auto final_report = run_one(task, sink);
    CHECK(final_report.status == AttemptStatus::kFailed);
    CHECK_THAT(final_report.error, Catch::Contains("is not a directory"));
  }
}

TEST_CASE("200 tasks run concurrently, each output exact", "[runner]") {
  core::Loop loop;
  ExecutorOptions options = test::executor_options();
  options.max_concurrent_tasks = 200;
  TaskExecutor executor(loop, options);
  constexpr int kTasks = 200;
  constexpr uint64_t kBytes = 50'000;
  std::vector<std::unique_ptr<CollectingSink>> sinks;
  std::vector<FinalReport> finals(kTasks);
  size_t peak_running = 0;
  auto one = [&](int i) -> core::Co<void> {
    auto task = make_task("many" + std::to_string(i), {test::test_writer(), "random",
                                                       std::to_string(i), std::to_string(kBytes)});
    finals[static_cast<size_t>(i)] =
        co_await executor.execute(task, *sinks[static_cast<size_t>(i)]);
  };
  auto body = [&]() -> core::Co<void> {
    core::CoGroup group;
    for (int i = 0; i < kTasks; ++i) {
      sinks.push_back(std::make_unique<CollectingSink>());
      group.spawn(one(i));
      peak_running = std::max(peak_running, executor.running());
    }
    co_await group.join();
  };
  core::run_to_completion(loop, body());
  CHECK(peak_running == kTasks);
  CHECK(executor.admitted() == 0);
  for (int i = 0; i < kTasks; ++i) {
    const auto& sink = *sinks[static_cast<size_t>(i)];
    const auto& final_report = finals[static_cast<size_t>(i)];
    INFO("task " << i);
    REQUIRE(sink.violations.empty());
    CHECK(final_report.status == AttemptStatus::kSucceeded);
    CHECK(final_report.stdout_summary.bytes == kBytes);
    CHECK(final_report.stdout_summary.sha256 == sink.out.digest.hex_digest());
  }
  // Spot-check a few against the generator itself.
  for (int i : {0, 99, 199}) {
    CHECK(finals[static_cast<size_t>(i)].stdout_summary.sha256 ==
          expected_sha256("random " + std::to_string(i) + " " + std::to_string(kBytes)));
  }
}

TEST_CASE("max_concurrent_tasks bounds how many run at once", "[runner]") {
  core::Loop loop;
  ExecutorOptions options = test::executor_options();
  options.max_concurrent_tasks = 4;
  TaskExecutor executor(loop, options);
  size_t peak = 0;
  int completed = 0;
  struct PeakSink : CollectingSink {
    TaskExecutor* executor = nullptr;
    size_t* peak = nullptr;
    void on_started(const protocol::StartedReport& started, int group) override {
      CollectingSink::on_started(started, group);
      *peak = std::max(*peak, executor->running());
    }
  };
  std::vector<std::unique_ptr<PeakSink>> sinks;
  auto one = [&](int i) -> core::Co<void> {
    auto final_report = co_await executor.execute(
        shell_task("bounded" + std::to_string(i), "echo " + std::to_string(i)),
        *sinks[static_cast<size_t>(i)]);
    completed += final_report.status == AttemptStatus::kSucceeded;
  };
  auto body = [&]() -> core::Co<void> {
    core::CoGroup group;
    for (int i = 0; i < 40; ++i) {
      sinks.push_back(std::make_unique<PeakSink>());
      sinks.back()->executor = &executor;
      sinks.back()->peak = &peak;
      group.spawn(one(i));
    }
    CHECK(executor.running() == 4);
    co_await group.join();
  };
  core::run_to_completion(loop, body());
  CHECK(peak == 4);
  CHECK(completed == 40);
}

TEST_CASE("tasks with the same target never overlap", "[runner]") {
  core::Loop loop;
  TaskExecutor executor(loop, test::executor_options());
  struct GateSink : CollectingSink {
    std::function<void()> on_first_output;
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      CollectingSink::on_output(std::move(chunk), digest);
      if (on_first_output) std::exchange(on_first_output, nullptr)();
    }
  };
  GateSink holder_sink;
  CollectingSink rejected_sink;
  CollectingSink other_sink;
  CollectingSink after_sink;
  FinalReport holder_final;
  FinalReport rejected_final;
  FinalReport other_final;
  FinalReport after_final;

  auto holder = shell_task("holder", "echo holding; sleep 60");
  holder.target = "deploy/web";
  auto second = shell_task("second", "echo should-not-run");
  second.target = "deploy/web";
  auto other = shell_task("other", "echo other-target");
  other.target = "deploy/db";
  auto after = shell_task("after", "echo after");
  after.target = "deploy/web";

  auto run_holder = [&]() -> core::Co<void> {
    holder_final = co_await executor.execute(holder, holder_sink);
  };
  // Once the holder is running, try the same target, then another target,
  // then release the holder.
  auto contender = [&]() -> core::Co<void> {
    rejected_final = co_await executor.execute(second, rejected_sink);
    other_final = co_await executor.execute(other, other_sink);
    executor.cancel("holder-a1", "test done");
  };
  auto body = [&]() -> core::Co<void> {
    core::CoGroup group;
    holder_sink.on_first_output = [&] { group.spawn(contender()); };
    group.spawn(run_holder());
    co_await group.join();
    after_final = co_await executor.execute(after, after_sink);
  };
  core::run_to_completion(loop, body());
  CHECK(rejected_final.status == AttemptStatus::kRejected);
  CHECK_THAT(rejected_final.error, Catch::Contains("held by attempt holder-a1"));
  CHECK(rejected_sink.started_count == 0);
  CHECK(other_final.status == AttemptStatus::kSucceeded);
  CHECK(other_sink.out.bytes == "other-target\n");
  CHECK(holder_final.status == AttemptStatus::kCancelled);
  CHECK(after_final.status == AttemptStatus::kSucceeded);
  CHECK(after_sink.out.bytes == "after\n");
}

namespace {

// What run_while_held saw.
struct HeldRun {
  FinalReport holder;
  std::vector<FinalReport> others;
  std::vector<std::string> outputs;  // the stdout of each of the others
};

// Runs `holder` (a task that prints a line, then waits to be cancelled) and,
// once its output shows it running, each of `others` in turn to its end;
// then cancels the holder.
HeldRun run_while_held(TaskSpec holder, const std::vector<TaskSpec>& others) {
  core::Loop loop;
  TaskExecutor executor(loop, test::executor_options());
  struct GateSink : CollectingSink {
    std::function<void()> on_first_output;
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      CollectingSink::on_output(std::move(chunk), digest);
      if (on_first_output) std::exchange(on_first_output, nullptr)();
    }
  };
  GateSink holder_sink;
  HeldRun run;
  auto run_holder = [&]() -> core::Co<void> {
    run.holder = co_await executor.execute(holder, holder_sink);
  };
  auto contender = [&]() -> core::Co<void> {
    for (const auto& other : others) {
      CollectingSink sink;
      FinalReport report = co_await executor.execute(other, sink);
      run.others.push_back(std::move(report));
      run.outputs.push_back(sink.out.bytes);
    }
    executor.cancel(holder.attempt_id, "test done");
  };
  auto body = [&]() -> core::Co<void> {
    core::CoGroup group;
    holder_sink.on_first_output = [&] { group.spawn(contender()); };
    group.spawn(run_holder());
    co_await group.join();
  };
  core::run_to_completion(loop, body());
  return run;
}

TaskSpec targeted(std::string id, std::string target) {
  auto task = shell_task(id, "echo " + id);
  task.target = std::move(target);
  return task;
}

}  // namespace

TEST_CASE(
    "targets are hierarchical: an ancestor or descendant of a held target is rejected, "
    "a sibling runs alongside",
    "[runner][targets]") {
  SECTION("app/web is rejected while app runs, naming both targets") {
    auto holder = shell_task("app", "echo holding; sleep 60");
    holder.target = "app";
    const auto run =
        run_while_held(holder, {targeted("web", "app/web"), targeted("deep", "app/web/x"),
                                targeted("application", "application")});
    REQUIRE(run.others.size() == 3);
    CHECK(run.others[0].status == AttemptStatus::kRejected);
    CHECK(run.others[0].error ==
          "target 'app/web' conflicts with target 'app' held by attempt app-a1");
    CHECK(run.others[1].status == AttemptStatus::kRejected);
    CHECK_THAT(run.others[1].error, Catch::Contains("'app/web/x' conflicts with target 'app'"));
    CHECK(run.others[2].status == AttemptStatus::kSucceeded);  // not below "app"
    CHECK(run.outputs[2] == "application\n");
    CHECK(run.holder.status == AttemptStatus::kCancelled);
  }
  SECTION("app/db runs to its end while app/web runs; app is rejected, naming app/web") {
    auto holder = shell_task("web", "echo holding; sleep 60");
    holder.target = "app/web";
    const auto run = run_while_held(holder, {targeted("db", "app/db"), targeted("app", "app")});
    REQUIRE(run.others.size() == 2);
    CHECK(run.others[0].status == AttemptStatus::kSucceeded);
    CHECK(run.outputs[0] == "db\n");
    CHECK(run.others[1].status == AttemptStatus::kRejected);
    CHECK(run.others[1].error ==
          "target 'app' conflicts with target 'app/web' held by attempt web-a1");
    // The holder was still running all along: cancelled, not finished.
    CHECK(run.holder.status == AttemptStatus::kCancelled);
  }
}

TEST_CASE("cancelling an attempt that waits for a slot never starts it", "[runner]") {
  core::Loop loop;
  ExecutorOptions options = test::executor_options();
  options.max_concurrent_tasks = 1;
  TaskExecutor executor(loop, options);
  CollectingSink first_sink;
  CollectingSink queued_sink;
  FinalReport first_final;
  FinalReport queued_final;
  auto first = shell_task("first", "echo running; sleep 60");
  auto queued = shell_task("queued", "echo never");
  auto run_first = [&]() -> core::Co<void> {
    first_final = co_await executor.execute(first, first_sink);
  };
  auto run_queued = [&]() -> core::Co<void> {
    queued_final = co_await executor.execute(queued, queued_sink);
  };
  auto body = [&]() -> core::Co<void> {
    core::CoGroup group;
    group.spawn(run_first());
    group.spawn(run_queued());
    CHECK(executor.admitted() == 2);
    CHECK(executor.running() == 1);
    CHECK(executor.cancel("queued-a1", "no longer needed"));
    CHECK(executor.cancel("first-a1", "done"));
    co_await group.join();
  };
  core::run_to_completion(loop, body());
  CHECK(queued_final.status == AttemptStatus::kCancelled);
  CHECK_THAT(queued_final.error, Catch::Contains("before it started"));
  CHECK(queued_sink.started_count == 0);
  CHECK(first_final.status == AttemptStatus::kCancelled);
}

TEST_CASE("the drain timeout does not run while the agent itself stopped reading", "[runner]") {
  // A sink with no room for a second after the first chunk, as an outbox
  // waiting for space: the child exits meanwhile with its last bytes still in
  // the pipe. Those bytes are ours to read, not a descendant's to hold.
  struct GatedSink : CollectingSink {
    explicit GatedSink(core::Loop& loop) : loop(loop), gate(loop) {}
    core::Loop& loop;
    core::Notification gate;
    uint64_t closed_at_ms = 0;
    bool accepting_output() const override {
      if (out.chunks == 0) return true;
      loop.update_time();
      return loop.now_ms() >= closed_at_ms + 1000;
    }
    core::Notification* room() override { return &gate; }
    void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& digest) override {
      if (out.chunks == 0) {
        loop.update_time();
        closed_at_ms = loop.now_ms();
      }
      CollectingSink::on_output(std::move(chunk), digest);
    }
  };
  core::Loop loop;
  GatedSink sink(loop);
  ExecutorOptions options = test::executor_options();
  options.runner.drain_timeout_ms = 300;
  TaskExecutor executor(loop, options);
  auto final_report = core::run_to_completion(
      loop, execute(executor,
                    shell_task("gated",
                               "echo first; sleep 0.2; head -c 60000 /dev/zero | tr '\\0' x; "
                               "sleep 0.2; head -c 60000 /dev/zero | tr '\\0' y"),
                    sink));
  CHECK(final_report.status == AttemptStatus::kSucceeded);
  CHECK(final_report.error.empty());
  CHECK(sink.out.total == 6 + 120000);
  CHECK(final_report.stdout_summary.bytes == 6 + 120000);
}
