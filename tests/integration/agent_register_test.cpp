// An edge host joins a hub the way docs/operations.md says: a registration
// token made on the hub, `tether-agent register` on the host (the shipped
// agent.conf, updated in place), then the agent runs tasks. And what an
// operator does with credentials afterwards: list, revoke, rotate.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

unsigned mode_of(const std::string& path) {
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

std::string whoami() {
  return std::to_string(::geteuid()) == "0" ? "root" : "";
}

}  // namespace

TEST_CASE("an edge host registers in one command and its agent runs a task", "[agent][e2e]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  const std::string dir = world.dir.path();
  const std::string registration = dir + "/registration.token";
  REQUIRE(run_program({env_path("TETHER_HUB"), "registration-token", "create", "--data-dir",
                       world.data_dir, "--expires", "1h", "--labels", "role=web,region=eu",
                       "--output", registration})
              .exit_code == 0);
  CHECK(mode_of(registration) == 0600);
  // Labels are checked when the token is made, and named when wrong.
  const auto bad_labels = run_program({env_path("TETHER_HUB"), "registration-token", "create",
                                       "--data-dir", world.data_dir, "--labels", "role=web,region"},
                                      true);
  CHECK(bad_labels.exit_code == 2);
  CHECK_THAT(bad_labels.out, Catch::Contains("label 'region': expected key=value"));
  // The shipped agent.conf, with its state directory moved into the test's.
  const std::string config = dir + "/agent.conf";
  {
    std::string shipped = read_file(env_path("TETHER_SOURCE_DIR") + "/packaging/agent.conf");
    const std::string state = "state_dir = /var/lib/tether";
    REQUIRE(shipped.find(state) != std::string::npos);
    shipped.replace(shipped.find(state), state.size(), "state_dir = " + dir + "/state7");
    std::ofstream(config) << shipped;
  }
  const std::string token_file = dir + "/agent.token";
  world.run([&]() -> core::Co<void> {
    std::vector<std::string> argv = {env_path("TETHER_AGENT"),
                                     "register",
                                     "--hub-url",
                                     world.hub.url(),
                                     "--registration-token-file",
                                     registration,
                                     "--name",
                                     "edge-7",
                                     "--config",
                                     config,
                                     "--token-file",
                                     token_file};
    if (!whoami().empty()) argv.insert(argv.end(), {"--user", whoami()});
    const auto registered = run_program(argv, true);
    INFO(registered.out);
    REQUIRE(registered.exit_code == 0);
    CHECK_THAT(registered.out, Catch::Contains("registered as edge-7"));
    CHECK(mode_of(token_file) == 0600);
    const std::string updated = read_file(config);
    CHECK_THAT(updated, Catch::Contains("\nhub_url = " + world.hub.url() + "\n"));
    CHECK_THAT(updated, Catch::Contains("\nagent = edge-7\n"));
    CHECK_THAT(updated, Catch::Contains("\ntoken_file = " + token_file + "\n"));
    CHECK_THAT(updated, Catch::Contains("# ca_file = /etc/tether/hub-ca.pem"));  // untouched

    // The agent starts from that file alone and works.
    LoggedProcess agent(world.loop);
    agent.start({env_path("TETHER_AGENT"), "run", "--config", config}, {"PATH=/usr/bin:/bin"});
    const bool started = co_await agent.wait_for_log("agent edge-7 for", 10'000);
    INFO(agent.log());
    REQUIRE(started);
    auto op = world.op();
    const std::string id = co_await op.submit(
        R"({"agent":"edge-7","command":{"argv":["sh","-c","echo registered"]}})");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    // It carries the registration token's labels.
    const std::string token_file_admin = world.dir.write_secret("admin.token", world.admin_token);
    const auto agents = run_program({env_path("TETHER_CLI"), "--hub-url", world.hub.url(),
                                     "--token-file", token_file_admin, "agents"});
    CHECK_THAT(agents.out, Catch::Contains("region=eu,role=web"));
    auto listing = co_await op.request("GET", "/api/v1/agents");
    REQUIRE(listing.ok());
    CHECK_THAT(listing->body, Catch::Contains(R"("labels":{"region":"eu","role":"web"})"));

    // A second registration of the same name is refused, and nothing is
    // written over the working token.
    const std::string before = read_file(token_file);
    const auto again = run_program(argv, true);
    CHECK(again.exit_code == 1);
    CHECK_THAT(again.out, Catch::Contains("already exists"));
    CHECK(read_file(token_file) == before);
    co_await agent.stop(SIGTERM);
    // The line docs/operations.md quotes, word for word.
    CHECK_THAT(agent.log(), Catch::Contains("received SIGTERM; shutting down"));
  });
}

TEST_CASE("registration tokens expire and can be revoked; refusals say which, and write nothing",
          "[agent][e2e]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  const std::string dir = world.dir.path();
  world.run([&]() -> core::Co<void> {
    auto attempt = [&](const std::string& registration, const std::string& name) {
      std::vector<std::string> argv = {env_path("TETHER_AGENT"),
                                       "register",
                                       "--hub-url",
                                       world.hub.url(),
                                       "--registration-token-file",
                                       registration,
                                       "--name",
                                       name,
                                       "--config",
                                       dir + "/" + name + ".conf",
                                       "--token-file",
                                       dir + "/" + name + ".token"};
      if (!whoami().empty()) argv.insert(argv.end(), {"--user", whoami()});
      return run_program(argv, true);
    };
    const std::string revoked = dir + "/revoked.token";
    REQUIRE(run_program({env_path("TETHER_HUB"), "registration-token", "create", "--data-dir",
                         world.data_dir, "--output", revoked})
                .exit_code == 0);
    const auto listed = run_program(
        {env_path("TETHER_HUB"), "registration-token", "list", "--data-dir", world.data_dir});
    const size_t at = listed.out.find("reg-");
    REQUIRE(at != std::string::npos);
    const std::string id = listed.out.substr(at, 16);
    REQUIRE(run_program({env_path("TETHER_HUB"), "registration-token", "revoke", id, "--data-dir",
                         world.data_dir})
                .exit_code == 0);
    auto refused = attempt(revoked, "edge-8");
    CHECK(refused.exit_code == 1);
    CHECK_THAT(refused.out, Catch::Contains(id + " was revoked"));
    CHECK(::access((dir + "/edge-8.token").c_str(), F_OK) != 0);
    CHECK(::access((dir + "/edge-8.conf").c_str(), F_OK) != 0);

    // Expiry, by the clock: a token that expired a second after it was made.
    const std::string expired = dir + "/expired.token";
    REQUIRE(run_program({env_path("TETHER_HUB"), "registration-token", "create", "--data-dir",
                         world.data_dir, "--expires", "1s", "--output", expired})
                .exit_code == 0);
    (void)co_await core::sleep_for(world.loop, 1'500);
    auto late = attempt(expired, "edge-9");
    CHECK(late.exit_code == 1);
    CHECK_THAT(late.out, Catch::Contains("expired at"));
    // A token that is no registration token at all.
    const std::string bogus = world.dir.write_secret("bogus.token", "ttr_not-a-real-token");
    auto unknown = attempt(bogus, "edge-9");
    CHECK(unknown.exit_code == 1);
    CHECK_THAT(unknown.out, Catch::Contains("unknown registration token"));
    // Registration tokens register agents only: not an operator's key.
    const auto misuse = run_program(
        {env_path("TETHER_CLI"), "--hub-url", world.hub.url(), "--token-file", bogus, "tasks"},
        true);
    CHECK(misuse.exit_code != 0);
  });
}

TEST_CASE("operator and agent tokens: written 0600 with --output, listed, revoked, rotated",
          "[agent][e2e]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  const std::string dir = world.dir.path();
  world.run([&]() -> core::Co<void> {
    // The documented way to hand a token over makes a file the CLI accepts
    // (a `> file` redirect made it 0644, which the CLI refuses).
    const std::string op_token = dir + "/operator.token";
    REQUIRE(run_program({env_path("TETHER_HUB"), "token", "admin", "--data-dir", world.data_dir,
                         "--output", op_token})
                .exit_code == 0);
    CHECK(mode_of(op_token) == 0600);
    auto tasks = [&] {
      return run_program(
          {env_path("TETHER_CLI"), "--hub-url", world.hub.url(), "--token-file", op_token, "tasks"},
          true);
    };
    CHECK(tasks().exit_code == 0);
    const auto listed =
        run_program({env_path("TETHER_HUB"), "token", "list", "--data-dir", world.data_dir});
    // Two operator tokens: the world's and this one; revoke the newest.
    const size_t last = listed.out.rfind("op-");
    REQUIRE(last != std::string::npos);
    CHECK(listed.out.find("op-") != last);
    const std::string id = listed.out.substr(last, 15);
    REQUIRE(
        run_program({env_path("TETHER_HUB"), "token", "revoke", id, "--data-dir", world.data_dir})
            .exit_code == 0);
    const auto revoked = tasks();
    CHECK(revoked.exit_code != 0);
    CHECK_THAT(revoked.out, Catch::Contains("401"));
    CHECK(run_program({env_path("TETHER_HUB"), "token", "revoke", id, "--data-dir", world.data_dir})
              .exit_code == 1);

    // Agents: listed; a rotated token replaces the old at once.
    const auto agents =
        run_program({env_path("TETHER_HUB"), "agent", "list", "--data-dir", world.data_dir});
    CHECK_THAT(agents.out, Catch::Contains("edge-1"));
    const std::string agent_token = dir + "/edge-1.token";
    REQUIRE(run_program({env_path("TETHER_HUB"), "agent", "rotate", "edge-1", "--data-dir",
                         world.data_dir, "--output", agent_token})
                .exit_code == 0);
    CHECK(mode_of(agent_token) == 0600);
    world.agent.set("token_file", agent_token);
    co_await world.agent.start();
    const std::string id_run = co_await world.submit_shell("echo rotated");
    const FinalView final_view = co_await world.final_of(id_run, "succeeded", 20'000);
    CHECK(final_view.verified);
  });
}
