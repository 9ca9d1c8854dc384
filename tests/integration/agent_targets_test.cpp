// Hierarchical targets end to end (docs/protocol.md 3): the real hub and the
// real agent run a task whose target is a sibling of a running one at once,
// keep one whose target is an ancestor queued, and start it as soon as the
// holder ends, not when the agent's parked poll happens to end.
#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE("a sibling target runs alongside; an ancestor waits and starts once the child ends",
          "[agent][e2e][targets]") {
  AgentWorld world;
  // A parked poll lasts a minute: the waiting task starts within the test's
  // wait only if the end of the holder wakes the poll.
  world.agent.set("poll_wait_s", "60");
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string web =
        co_await world.submit_shell("echo web; sleep 600", R"("target":"app/web")");
    const bool web_running = co_await op.wait_for_output(web, "stdout", 4, 20'000);
    REQUIRE(web_running);
    // app/db does not conflict with app/web: it runs to its end meanwhile.
    const std::string db = co_await world.submit_shell("echo db", R"("target":"app/db")");
    const FinalView db_final = co_await world.final_of(db, "succeeded", 20'000);
    CHECK(db_final.exit_code == 0);

    // "app" conflicts with app/web and waits; a task without a target
    // submitted after it goes past it.
    const std::string app = co_await world.submit_shell("echo app", R"("target":"app")");
    const std::string free_task = co_await world.submit_shell("echo free");
    const FinalView free_final = co_await world.final_of(free_task, "succeeded", 20'000);
    CHECK(free_final.exit_code == 0);
    const std::string app_state = co_await op.state_of(app);
    CHECK(app_state == "queued");
    const std::string web_state = co_await op.state_of(web);
    CHECK(web_state == "running");

    auto cancelled = co_await op.request("POST", "/api/v1/tasks/" + web + "/cancel",
                                         R"({"reason":"app/web is done"})");
    REQUIRE(cancelled.ok());
    CHECK(cancelled->status == 202);
    const FinalView web_final = co_await world.final_of(web, "cancelled", 20'000);
    CHECK(web_final.status == "cancelled");
    // Well within the parked poll's minute.
    const FinalView app_final = co_await world.final_of(app, "succeeded", 15'000);
    CHECK(app_final.exit_code == 0);
    const std::string app_out = co_await op.output(app, "stdout");
    CHECK(app_out == "app\n");
  });
}
