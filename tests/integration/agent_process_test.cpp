// What a task sees of its process under the real agent: exactly fds 0, 1 and
// 2 (never one the agent inherited or opened itself, such as its long-poll
// socket), pipes for stdout and stderr, and every process it starts stopped
// on timeout, whatever process group it moved to.

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE("a task under the real agent has fds 0, 1, 2 only, as pipes, whatever the agent holds",
          "[agent][e2e]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  world.agent.inherit_descriptor(9, world.dir.path() + "/inherited.log");
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    // While this runs the agent holds its long poll's socket and the
    // channel's, the outbox, the status socket and fd 9.
    const std::string id = co_await world.submit_shell(
        shell_quote(writer_binary()) + " fds; echo x > /dev/stdout; echo y | tee /dev/stderr");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    const std::string out = co_await world.op().output(id, "stdout");
    CHECK(out == "0 1 2\nstdout pipe\nstderr pipe\nx\ny\n");
    const std::string err = co_await world.op().output(id, "stderr");
    CHECK(err == "y\n");
  });
}

TEST_CASE("a timed-out task's background job in its own process group is stopped and named",
          "[agent][e2e]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::string id = co_await world.submit_shell(
        "bash -c 'set -m; sleep 300 >/dev/null 2>&1 & echo $!; sleep 300'", R"("timeout_s":2)");
    const FinalView final_view = co_await world.final_of(id, "timed_out", 30'000);
    const std::string out = co_await world.op().output(id, "stdout");
    REQUIRE_FALSE(out.empty());
    const int background = std::stoi(out);
    CHECK(process_dies(background));
    CHECK_THAT(final_view.error, Catch::Contains("timed out after 2 s") &&
                                     Catch::Contains("(pid " + std::to_string(background) + ")"));
  });
}
