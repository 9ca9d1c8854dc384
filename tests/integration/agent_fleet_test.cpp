// Fleet use with real agents (issue [5/8]; docs/cli.md "Fleets"): labels
// from agent.conf reach the hub in the hello, `tether agents --selector`
// picks agents by them, and `tether run --any` hands a task to an agent
// whose labels match.
#include <sys/stat.h>

#include <filesystem>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE("labels from agent.conf, tether agents --selector and tether run --any",
          "[agent][e2e][fleet]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  const std::string db_token =
      hub_command({"agent", "add", "edge-2", "--data-dir", world.data_dir});
  const std::string db_dir = world.dir.path() + "/edge-2";
  std::filesystem::create_directory(db_dir);
  ::chmod(db_dir.c_str(), 0711);
  AgentProcess db(world.loop, db_dir, "edge-2", db_token);
  world.run([&]() -> core::Co<void> {
    world.agent.set("labels", "role=web, region=eu");
    co_await world.agent.start();
    db.set("hub_url", world.hub.url());
    db.set("labels", "role=db, region=eu");
    co_await db.start();
    const bool web_connected = co_await world.agent.wait_for_log("connected to", 10'000);
    const bool db_connected = co_await db.wait_for_log("connected to", 10'000);
    REQUIRE(web_connected);
    REQUIRE(db_connected);

    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    const std::vector<std::string> agents_args = {"agents", "--selector", "region=eu,role!=web"};
    auto agents = co_await run_cli(world.loop, agents_args, environment);
    INFO(agents.out << agents.err);
    CHECK(agents.exit_code == 0);
    CHECK_THAT(agents.out, Catch::Matches("(.|\n)*\nedge-2 +yes .*region=eu,role=db\n"));
    CHECK_THAT(agents.out, !Catch::Contains("edge-1"));
    const std::vector<std::string> bad_args = {"agents", "--selector", "role in web"};
    auto bad = co_await run_cli(world.loop, bad_args, environment);
    CHECK(bad.exit_code == 3);
    CHECK_THAT(bad.err, Catch::Contains("selector: at column 9: expected ("));

    const std::vector<std::string> run_args = {"run", "--any", "role=db", "--", "echo", "pooled"};
    auto run = co_await run_cli(world.loop, run_args, environment);
    INFO(run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out == "pooled\n");
    const std::string ran_on =
        sqlite_query(world.hub_db(), "SELECT agent || ' ' || selector || ' ' || state FROM tasks");
    CHECK(ran_on == "edge-2 role=db succeeded");
    const std::vector<std::string> neither = {"run", "--", "true"};
    auto refused = co_await run_cli(world.loop, neither, environment);
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.err, Catch::Contains("give --agent NAME, or --any SELECTOR"));
    (void)co_await db.stop(SIGTERM);
  });
}
