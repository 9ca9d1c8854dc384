// The agent's outbox shared with other processes: an operator's sqlite3, or
// a task that can open the file (only with run_as = root: tether-task
// cannot, agent_isolation_test.cpp). A write lock held elsewhere makes output
// wait; it never stops the agent or costs another task its output.
#include <fstream>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE("a task holding the outbox's write lock delays output; the agent and other tasks go on",
          "[agent][e2e]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  world.agent.set("run_as", "root");  // tasks that may open the outbox
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    // A task that streams before, during and after the lock.
    const std::vector<std::string> paced = {"paced", "11", "2000", "100", "30"};
    const std::string streaming = co_await world.submit_shell(writer_command(paced));
    const bool flowing = co_await world.op().wait_for_output(streaming, "stdout", 1, 20'000);
    REQUIRE(flowing);

    // The other holds BEGIN IMMEDIATE on the outbox until the test lets go.
    const std::string release = world.dir.path() + "/release";
    const std::string locker = co_await world.submit_shell(
        "sqlite3 '" + world.agent.outbox_path() +
        "' '.timeout 10000' 'BEGIN IMMEDIATE;' \".system echo locked; while [ ! -e '" + release +
        "' ]; do sleep 0.01; done\" 'COMMIT;'");
    const bool waiting = co_await world.agent.wait_for_log("writes wait for it", 20'000);
    REQUIRE(waiting);
    { std::ofstream(release) << "\n"; }

    const FinalView locked = co_await world.final_of(locker, "succeeded", 30'000);
    CHECK(locked.verified);
    const std::string said = co_await world.op().output(locker, "stdout");
    CHECK(said == "locked\n");
    const FinalView streamed = co_await world.final_of(streaming, "succeeded", 60'000);
    const Digest expected = generated_digest(paced);
    CHECK(streamed.out.bytes == expected.bytes);
    CHECK(streamed.out.sha256 == expected.sha256);
    CHECK(streamed.verified);
    CHECK(world.agent.process().running());
    CHECK_THAT(world.agent.log(), Catch::Contains("writable again"));
  });
}
