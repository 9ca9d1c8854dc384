// A hub named by a host name with several addresses, the first of which has
// nobody listening: on a stock Debian 12, "localhost" is ::1 and then
// 127.0.0.1, while the hub listens on 127.0.0.1. Every outgoing connection
// (the result channel, the long poll, the CLI) must try the next address.
#include <fstream>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE(
    "a hub name whose first address is dead: the agent's channel and polls and the CLI "
    "use the next one",
    "[agent][e2e]") {
  INFO("needs root for a private /etc/hosts (unshare --mount, mount --bind)");
  REQUIRE(hosts_override_available());
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  const std::string hosts = world.dir.path() + "/hosts";
  { std::ofstream(hosts) << "::1 localhost\n127.0.0.1 localhost\n"; }
  world.agent.use_hosts_file(hosts);
  world.run([&]() -> core::Co<void> {
    const std::string by_name = "http://localhost:" + std::to_string(world.hub.port());
    world.agent.set("hub_url", by_name);
    co_await world.agent.start();
    const bool connected = co_await world.agent.wait_for_log("connected to " + by_name, 20'000);
    INFO(world.agent.log());
    REQUIRE(connected);
    // The log says which address failed before the one that answered.
    CHECK_THAT(world.agent.log(), Catch::Contains("::1 failed"));

    const std::string id = co_await world.submit_shell("echo over the second address");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);

    const std::string token_file = world.dir.write_secret("admin.token", world.admin_token);
    const auto cli =
        run_program(with_hosts_file(hosts, {env_path("TETHER_CLI"), "--hub-url", by_name,
                                            "--token-file", token_file, "status", id}));
    CHECK(cli.exit_code == 0);
    CHECK_THAT(cli.out, Catch::Contains("succeeded"));
  });
}

// Plain http keeps the token on this host only if what the name resolves to
// is loopback: the name itself proves nothing.
TEST_CASE("plain http to a name is allowed by its addresses, not by how it looks", "[agent][e2e]") {
  INFO("needs root for a private /etc/hosts (unshare --mount, mount --bind)");
  REQUIRE(hosts_override_available());
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  // "localhost" pointed elsewhere (TEST-NET-1, RFC 5737), and a name that
  // starts like a loopback address but is just a name.
  const std::string hosts = world.dir.path() + "/hosts";
  { std::ofstream(hosts) << "192.0.2.10 localhost\n192.0.2.11 127.0.0.1.example.invalid\n"; }
  const std::string token_file = world.dir.write_secret("admin.token", world.admin_token);
  const std::string agent_token_file = world.dir.write_secret("agent.token", world.agent_token);
  const std::string port = "7070";  // nothing is reached: both refuse before connecting
  for (const std::string name : {"localhost", "127.0.0.1.example.invalid"}) {
    const std::string url = "http://" + name + ":" + port;
    const auto cli = run_program(with_hosts_file(hosts, {env_path("TETHER_CLI"), "--hub-url", url,
                                                         "--token-file", token_file, "tasks"}),
                                 true);
    INFO(cli.out);
    CHECK(cli.exit_code != 0);
    CHECK_THAT(cli.out, Catch::Contains("resolves to 192.0.2.1"));
    const auto agent =
        run_program(with_hosts_file(hosts, {env_path("TETHER_AGENT"), "run", "--hub-url", url,
                                            "--agent", "edge-1", "--token-file", agent_token_file}),
                    true);
    INFO(agent.out);
    CHECK(agent.exit_code == 2);
    CHECK_THAT(agent.out, Catch::Contains("resolves to 192.0.2.1"));
  }
}
