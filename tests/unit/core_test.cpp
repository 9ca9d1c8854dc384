// The reactor: Task, CoGroup, timers, off-loop work, processes, pipes,
// signals, the semaphore, and cancellation reaching each pending await.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/co_group.hpp"
#include "core/crash_report.hpp"
#include "core/offload.hpp"
#include "core/proc_info.hpp"
#include "core/process.hpp"
#include "core/resolver.hpp"
#include "core/run.hpp"
#include "core/semaphore.hpp"
#include "core/signal_set.hpp"
#include "core/timer.hpp"

using namespace tether;
using namespace tether::core;

namespace {

Co<int> leaf(int value) {
  co_return value;
}

Co<int> chain(int depth) {
  if (depth == 0) co_return co_await leaf(1);
  co_return 1 + co_await chain(depth - 1);
}

Co<int> sum_many(int count) {
  // Symmetric transfer: a million completed awaits in a row must not grow the stack.
  int total = 0;
  for (int i = 0; i < count; ++i)
    total += co_await leaf(1);
  co_return total;
}

// Counts the uv handles alive on a loop, apart from the loop's own wake-up
// handle: proves awaiters close what they open.
int open_handles(Loop& loop) {
  int count = 0;
  uv_walk(
      loop.get(),
      [](uv_handle_t* handle, void* arg) {
        if (!uv_is_closing(handle) && uv_handle_get_type(handle) != UV_ASYNC) {
          ++*static_cast<int*>(arg);
        }
      },
      &count);
  return count;
}

}  // namespace

TEST_CASE("Task returns values through nested awaits", "[core]") {
  Loop loop;
  REQUIRE(run_to_completion(loop, chain(1000)) == 1001);
  REQUIRE(run_to_completion(loop, sum_many(1'000'000)) == 1'000'000);
}

TEST_CASE("Task propagates an exception to its awaiter", "[core]") {
  Loop loop;
  auto thrower = []() -> Co<int> {
    throw std::runtime_error("boom");
    co_return 0;
  };
  auto catcher = [&]() -> Co<std::string> {
    try {
      co_await thrower();
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what());
    }
    co_return std::string("no exception");
  };
  REQUIRE(run_to_completion(loop, catcher()) == "boom");
}

TEST_CASE("run_to_completion reports a task that can never finish", "[core]") {
  Loop loop;
  CancellationSource never;
  auto stuck = [&]() -> Co<void> { co_await until_cancelled(loop, never.token()); };
  REQUIRE_THROWS_AS(run_to_completion(loop, stuck()), std::logic_error);
  never.cancel();  // lets the suspended frame finish so nothing leaks
  loop.run();
}

TEST_CASE("sleep_for waits on the loop clock and closes its timer", "[core]") {
  Loop loop;
  auto body = [&]() -> Co<uint64_t> {
    loop.update_time();
    const uint64_t before = loop.now_ms();
    auto slept = co_await sleep_for(loop, 30);
    REQUIRE(slept.ok());
    REQUIRE(open_handles(loop) == 0);
    co_return loop.now_ms() - before;
  };
  REQUIRE(run_to_completion(loop, body()) >= 30);
}

TEST_CASE("cancellation reaches a pending sleep and closes its handle", "[core]") {
  Loop loop;
  CancellationSource source;
  auto sleeper = [&]() -> Co<Result<void>> {
    co_return co_await sleep_for(loop, 60'000, source.token());
  };
  auto canceller = [&]() -> Co<void> {
    auto slept = co_await sleep_for(loop, 5);
    REQUIRE(slept.ok());
    source.cancel();
  };
  auto body = [&]() -> Co<bool> {
    CoGroup group;
    Result<void> outcome = make_error(Errc::kState, "unset", "");
    auto run_sleeper = [&]() -> Co<void> { outcome = co_await sleeper(); };
    group.spawn(run_sleeper());
    group.spawn(canceller());
    co_await group.join();
    REQUIRE(open_handles(loop) == 0);
    co_return outcome.is_cancelled();
  };
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(run_to_completion(loop, body()));
  REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("an already-cancelled token completes an await without suspending", "[core]") {
  Loop loop;
  CancellationSource source;
  source.cancel();
  auto body = [&]() -> Co<bool> {
    auto slept = co_await sleep_for(loop, 60'000, source.token());
    co_return slept.is_cancelled();
  };
  REQUIRE(run_to_completion(loop, body()));
}

TEST_CASE("CoGroup joins children that finish in any order", "[core]") {
  Loop loop;
  std::vector<int> finished;
  auto child = [&](int id, uint64_t ms) -> Co<void> {
    auto slept = co_await sleep_for(loop, ms);
    REQUIRE(slept.ok());
    finished.push_back(id);
  };
  auto body = [&]() -> Co<void> {
    CoGroup group;
    group.spawn(child(1, 30));
    group.spawn(child(2, 1));
    group.spawn(child(3, 15));
    REQUIRE(group.pending() == 3);
    co_await group.join();
    REQUIRE(group.pending() == 0);
  };
  run_to_completion(loop, body());
  REQUIRE(finished == std::vector<int>{2, 3, 1});
}

TEST_CASE("run_off_loop runs work on a pool thread and resumes on the loop", "[core]") {
  Loop loop;
  ThreadPool pool(2);
  const auto loop_thread = std::this_thread::get_id();
  auto body = [&]() -> Co<void> {
    std::function<Result<std::thread::id>()> work = [] {
      return Result<std::thread::id>(std::this_thread::get_id());
    };
    auto worker = co_await run_off_loop<std::thread::id>(loop, pool, work);
    REQUIRE(worker.ok());
    REQUIRE(*worker != loop_thread);
    REQUIRE(std::this_thread::get_id() == loop_thread);
  };
  run_to_completion(loop, body());
}

TEST_CASE("cancelling run_off_loop abandons a blocked job", "[core]") {
  Loop loop;
  ThreadPool pool(1);
  auto release = std::make_shared<std::atomic<bool>>(false);
  CancellationSource source;
  auto body = [&]() -> Co<void> {
    std::function<Result<int>()> blocked = [release] {
      while (!release->load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return Result<int>(7);
    };
    CoGroup group;
    Result<int> outcome = 0;
    auto waiter = [&]() -> Co<void> {
      outcome = co_await run_off_loop<int>(loop, pool, blocked, source.token());
    };
    auto canceller = [&]() -> Co<void> {
      auto slept = co_await sleep_for(loop, 10);
      REQUIRE(slept.ok());
      source.cancel();
    };
    group.spawn(waiter());
    group.spawn(canceller());
    co_await group.join();
    REQUIRE(outcome.is_cancelled());
  };
  run_to_completion(loop, body());
  release->store(true);  // the pool's destructor joins the now-finished worker
}

TEST_CASE("AsyncSemaphore admits at most N holders, first come first served", "[core]") {
  Loop loop;
  AsyncSemaphore semaphore(loop, 2);
  int holding = 0;
  int peak = 0;
  std::vector<int> order;
  auto worker = [&](int id) -> Co<void> {
    auto permit = co_await semaphore.acquire();
    REQUIRE(permit.ok());
    order.push_back(id);
    peak = std::max(peak, ++holding);
    auto slept = co_await sleep_for(loop, 5);
    REQUIRE(slept.ok());
    --holding;
    semaphore.release();
  };
  auto body = [&]() -> Co<void> {
    CoGroup group;
    for (int i = 0; i < 6; ++i)
      group.spawn(worker(i));
    co_await group.join();
  };
  run_to_completion(loop, body());
  REQUIRE(peak == 2);
  REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4, 5});
  REQUIRE(semaphore.available() == 2);
}

TEST_CASE("cancelling a semaphore wait leaves the queue intact", "[core]") {
  Loop loop;
  AsyncSemaphore semaphore(loop, 1);
  CancellationSource source;
  auto body = [&]() -> Co<void> {
    auto first = co_await semaphore.acquire();
    REQUIRE(first.ok());
    CoGroup group;
    bool cancelled = false;
    auto waiter = [&]() -> Co<void> {
      auto permit = co_await semaphore.acquire(source.token());
      cancelled = permit.is_cancelled();
    };
    group.spawn(waiter());
    REQUIRE(semaphore.waiting() == 1);
    source.cancel();
    co_await group.join();
    REQUIRE(cancelled);
    REQUIRE(semaphore.waiting() == 0);
    semaphore.release();
    REQUIRE(semaphore.available() == 1);
  };
  run_to_completion(loop, body());
}

TEST_CASE("SignalSet delivers a signal to a waiting coroutine", "[core]") {
  Loop loop;
  SignalSet signals(loop, {SIGUSR1});
  auto body = [&]() -> Co<int> {
    auto raiser = [&]() -> Co<void> {
      auto slept = co_await sleep_for(loop, 5);
      REQUIRE(slept.ok());
      ::kill(::getpid(), SIGUSR1);
    };
    CoGroup group;
    group.spawn(raiser());
    auto received = co_await signals.next();
    co_await group.join();
    co_return received.ok() ? *received : -1;
  };
  REQUIRE(run_to_completion(loop, body()) == SIGUSR1);
}

TEST_CASE("SignalSet counts a signal that arrives while nobody waits", "[core]") {
  Loop loop;
  SignalSet signals(loop, {SIGUSR2});
  ::kill(::getpid(), SIGUSR2);
  auto body = [&]() -> Co<int> {
    auto slept = co_await sleep_for(loop, 1);
    REQUIRE(slept.ok());  // let the loop observe the signal
    auto received = co_await signals.next();
    co_return received.ok() ? *received : -1;
  };
  REQUIRE(run_to_completion(loop, body()) == SIGUSR2);
}

TEST_CASE("Process reports exit codes and signals, reading its pipes to the end", "[core]") {
  Loop loop;
  auto body = [&]() -> Co<void> {
    SpawnOptions options;
    options.argv = {"/bin/sh", "-c", "printf hello; printf oops >&2; exit 3"};
    options.environment = {"PATH=/usr/bin:/bin"};
    auto process = Process::spawn(loop, options);
    REQUIRE(process.ok());
    std::string out;
    std::string err;
    auto drain = [&](PipeReader& reader, std::string& into) -> Co<void> {
      for (;;) {
        auto chunk = co_await reader.read();
        REQUIRE(chunk.ok());
        if (chunk->end_of_stream) break;
        into.append(chunk->bytes);
      }
    };
    CoGroup group;
    group.spawn(drain((*process)->stdout_reader(), out));
    group.spawn(drain((*process)->stderr_reader(), err));
    auto status = co_await (*process)->wait_exit();
    co_await group.join();
    REQUIRE(status.ok());
    REQUIRE(status->exit_code == 3);
    REQUIRE(status->term_signal == 0);
    REQUIRE(out == "hello");
    REQUIRE(err == "oops");
    REQUIRE((*process)->stdout_reader().closed());
    REQUIRE(open_handles(loop) == 0);

    SpawnOptions sleeper;
    sleeper.argv = {"/bin/sleep", "30"};
    auto killed = Process::spawn(loop, sleeper);
    REQUIRE(killed.ok());
    REQUIRE((*killed)->signal_group(SIGKILL) == 0);
    auto killed_status = co_await (*killed)->wait_exit();
    REQUIRE(killed_status.ok());
    REQUIRE(killed_status->term_signal == SIGKILL);
  };
  run_to_completion(loop, body());
}

TEST_CASE("Process::spawn fails cleanly for a missing program", "[core]") {
  Loop loop;
  SpawnOptions options;
  options.argv = {"/nonexistent/program"};
  auto process = Process::spawn(loop, options);
  REQUIRE_FALSE(process.ok());
  REQUIRE(process.error().code == "ENOENT");
  REQUIRE(process.error().message.find("/nonexistent/program") != std::string::npos);
}

TEST_CASE("the child leads its own process group and session", "[core]") {
  Loop loop;
  auto body = [&]() -> Co<void> {
    SpawnOptions options;
    // Prints its pid, process group and session id (fields 5 and 6 of /proc/PID/stat).
    options.argv = {"/bin/sh", "-c", "echo $$ $(cut -d' ' -f5,6 /proc/$$/stat)"};
    options.environment = {"PATH=/usr/bin:/bin"};
    auto process = Process::spawn(loop, options);
    REQUIRE(process.ok());
    std::string out;
    for (;;) {
      auto chunk = co_await (*process)->stdout_reader().read();
      REQUIRE(chunk.ok());
      if (chunk->end_of_stream) break;
      out.append(chunk->bytes);
    }
    auto exited = co_await (*process)->wait_exit();
    REQUIRE(exited.ok());
    int pid = 0, pgid = 0, sid = 0;
    REQUIRE(std::sscanf(out.c_str(), "%d %d %d", &pid, &pgid, &sid) == 3);
    REQUIRE(pid == (*process)->pid());
    REQUIRE(pgid == pid);
    REQUIRE(sid == pid);
  };
  run_to_completion(loop, body());
}

TEST_CASE("cancelling a pipe read closes the pipe before resuming", "[core]") {
  Loop loop;
  CancellationSource source;
  auto body = [&]() -> Co<void> {
    SpawnOptions options;
    options.argv = {"/bin/sleep", "30"};
    auto process = Process::spawn(loop, options);
    REQUIRE(process.ok());
    auto canceller = [&]() -> Co<void> {
      auto slept = co_await sleep_for(loop, 5);
      REQUIRE(slept.ok());
      source.cancel();
    };
    CoGroup group;
    group.spawn(canceller());
    auto chunk = co_await (*process)->stdout_reader().read(source.token());
    REQUIRE(chunk.is_cancelled());
    REQUIRE((*process)->stdout_reader().closed());
    co_await group.join();
    (*process)->signal_group(SIGKILL);
    auto exited = co_await (*process)->wait_exit();
    REQUIRE(exited.ok());
  };
  run_to_completion(loop, body());
}

TEST_CASE("plain text goes to loopback addresses only, decided on each address", "[core]") {
  for (const char* loopback : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"}) {
    INFO(loopback);
    CHECK(core::is_loopback_address(loopback));
  }
  for (const char* other : {"128.0.0.1", "10.0.0.1", "::2", "::ffff:10.0.0.1", "localhost",
                            "127.0.0.1.example.invalid", "127.evil", "", "0.0.0.0"}) {
    INFO(other);
    CHECK_FALSE(core::is_loopback_address(other));
  }
  using core::PlainTextPolicy;
  // A name that answers with a loopback and another address (rebinding, or
  // a hostile resolver) is only ever connected to on the loopback one.
  auto mixed = core::permitted_addresses("hub", false, PlainTextPolicy::kLoopbackOnly,
                                         {"192.0.2.1", "127.0.0.1", "2001:db8::1"});
  REQUIRE(mixed.ok());
  CHECK(*mixed == std::vector<std::string>{"127.0.0.1"});
  auto remote = core::permitted_addresses("hub", false, PlainTextPolicy::kLoopbackOnly,
                                          {"192.0.2.1", "2001:db8::1"});
  REQUIRE_FALSE(remote.ok());
  CHECK(remote.error().code == "plain_not_loopback");
  CHECK_THAT(remote.error().message, Catch::Contains("'hub' resolves to 192.0.2.1, 2001:db8::1"));
  // TLS, or plain text the operator allowed: every address.
  CHECK(core::permitted_addresses("hub", true, PlainTextPolicy::kLoopbackOnly, {"192.0.2.1"})
            ->size() == 1);
  CHECK(
      core::permitted_addresses("hub", false, PlainTextPolicy::kAnywhere, {"192.0.2.1"})->size() ==
      1);
  auto unresolved = core::check_plain_text_allowed("127.0.0.1.example.invalid", false,
                                                   PlainTextPolicy::kLoopbackOnly);
  REQUIRE_FALSE(unresolved.ok());
  CHECK_THAT(unresolved.error().message, Catch::Contains("127.0.0.1.example.invalid"));
  CHECK(core::check_plain_text_allowed("127.0.0.1", false, PlainTextPolicy::kLoopbackOnly).ok());
}

// A daemon that dies of a bug says which: the cause, the exception in
// flight, the stack. (Run in a child process, which it kills.)
TEST_CASE("std::terminate leaves a report naming the cause and the stack", "[core]") {
  auto report_of = [](void (*crash)()) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::dup2(pipe_fds[1], STDERR_FILENO);
      core::install_crash_report("test-daemon");
      crash();
      ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
      text.append(buffer, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
    return text;
  };
  const std::string group = report_of([] {
    auto never = []() -> core::Co<void> { co_await std::suspend_always(); };
    auto* leaked = new core::CoGroup();
    leaked->spawn(never());
    delete leaked;  // with a child still running
  });
  CHECK_THAT(group, Catch::StartsWith("test-daemon: fatal: std::terminate: a CoGroup was "
                                      "destroyed while its children were running"));
  CHECK_THAT(group, Catch::Contains("no exception in flight"));
  CHECK_THAT(group, Catch::Contains("core_test") || Catch::Contains("unit-tests"));
  const std::string escaped = report_of([] {
    auto failing = []() -> core::Co<void> {
      throw std::runtime_error("the bug");
      co_return;
    };
    core::start_detached(failing());
  });
  CHECK_THAT(escaped, Catch::Contains("an exception escaped a detached coroutine"));
  CHECK_THAT(escaped, Catch::Contains("the bug"));
}

// /proc/PID/stat of a process that ends while it is read answers "no such
// process" (ESRCH from read): that must be an empty answer, never an
// exception (one unwound an attempt's coroutine in a burst of short tasks).
TEST_CASE("process_start_ticks answers for live, ending and reaped processes, never throws",
          "[core]") {
  const auto mine = core::process_start_ticks(::getpid());
  REQUIRE(mine.has_value());
  CHECK(*mine > 0);
  CHECK_FALSE(core::boot_id().empty());
  for (int i = 0; i < 300; ++i) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    // Racing the child's exit and, below, its reaping.
    std::optional<uint64_t> ticks;
    REQUIRE_NOTHROW(ticks = core::process_start_ticks(child));
    if (ticks) CHECK(*ticks >= *mine);
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK_FALSE(core::process_start_ticks(child).has_value());
  }
}

TEST_CASE("errors carry one kind of a closed set; context keeps kind and code", "[core]") {
  auto missing = core::find_program("tether-no-such-program", "/usr/bin:/bin");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == Errc::kNotFound);
  CHECK(missing.error().code == "ENOENT");
  const Error wrapped =
      with_context(missing.error(), "starting the task: " + missing.error().message);
  CHECK(wrapped.kind == Errc::kNotFound);
  CHECK(wrapped.code == "ENOENT");
  CHECK(wrapped.message.rfind("starting the task: ", 0) == 0);
  CHECK(cancelled_error().kind == Errc::kCancelled);
  CHECK(to_string(Errc::kUnreachable) == "unreachable");
}
