// Running a hub: TLS end to end, the plain-HTTP rule, registering agents on
// a running hub, and the CLI's read commands.
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>

#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;

namespace {

// Runs a shell command, returning its exit status and combined output.
std::pair<int, std::string> shell(const std::string& command) {
  return shell_output(command + " 2>&1");
}

}  // namespace

TEST_CASE("TLS: verified HTTPS and WSS with the right CA, refused without it", "[tls]") {
  TempDir certs_dir;
  TestCertificates certs(certs_dir.path());
  World world({"--tls-cert", certs.cert, "--tls-key", certs.key});
  world.run([&]() -> core::Co<void> {
    CHECK_THAT(world.hub.url(), Catch::StartsWith("https://"));
    Operator trusting(world.loop, world.pool, world.hub.url(), world.admin_token, certs.ca);
    auto agents = co_await trusting.request("GET", "/api/v1/agents");
    REQUIRE(agents.ok());
    CHECK(agents->status == 200);
    // Verification is on: the system store alone does not know our test CA.
    Operator doubting(world.loop, world.pool, world.hub.url(), world.admin_token);
    auto refused = co_await doubting.request("GET", "/api/v1/agents");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "http_connect");
    // In words: what failed, why, and what to check (not httplib's
    // "SSLServerVerification").
    CHECK_THAT(refused.error().message, Catch::Contains("TLS certificate is not trusted"));
    CHECK_THAT(refused.error().message, Catch::Contains("issuer certificate"));
    CHECK_THAT(refused.error().message, Catch::Contains("ca_file"));

    core::WebSocketClientOptions with_ca;
    with_ca.ca_file = certs.ca;
    auto secure_client = core::WebSocketClient::create(world.loop, with_ca);
    REQUIRE(secure_client.ok());
    ScriptedAgent agent(world.loop, world.pool, **secure_client, world.hub.url(), "edge-1",
                        world.agent_token);
    auto ack = co_await agent.connect_and_hello();
    CHECK(ack.version == TETHER_VERSION);
    ScriptedAgent untrusting(world.loop, world.pool, *world.ws, world.hub.url(), "edge-1",
                             world.agent_token);
    auto not_connected = co_await untrusting.connect();
    REQUIRE_FALSE(not_connected.ok());
    CHECK_THAT(not_connected.error().message, Catch::Contains("not trusted"));
    CHECK_THAT(not_connected.error().message, !Catch::Contains("lib(0)"));

    const std::string token_file = world.dir.write_secret("admin.token", world.admin_token);
    const std::vector<std::string> args = {"--ca-file", certs.ca, "agents"};
    const std::vector<std::string> environment = {"TETHER_HUB_URL=" + world.hub.url(),
                                                  "TETHER_TOKEN_FILE=" + token_file};
    auto run = co_await run_cli(world.loop, args, environment);
    CHECK(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Contains("edge-1"));
    agent.close();
    secure_client->reset();
  });
}

TEST_CASE("plain HTTP is refused off loopback unless asked for", "[hub]") {
  TempDir dir;
  auto [status, output] =
      shell("'" + hub_binary() + "' serve --data-dir '" + dir.path() + "/hub' --listen 0.0.0.0:0");
  CHECK(status == 1);
  CHECK_THAT(output, Catch::Contains("refusing plain HTTP on 0.0.0.0:0"));
  CHECK_THAT(output, Catch::Contains("--insecure-listen"));
  auto [bad_status, bad_output] =
      shell("'" + hub_binary() + "' serve --data-dir '" + dir.path() + "/hub' --listen nowhere");
  CHECK(bad_status == 1);
  CHECK_THAT(bad_output, Catch::Contains("--listen 'nowhere'"));
}

TEST_CASE("--listen takes a name: localhost is bound at its loopback address", "[hub]") {
  World world({"--listen", "localhost:0"});  // the later --listen wins
  world.run([&]() -> core::Co<void> {
    CHECK_THAT(world.hub.log(), Catch::Contains("listening on http://127.0.0.1:"));
    auto op = world.op();
    auto listing = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listing.ok());
    CHECK(listing->status == 200);
  });
}

TEST_CASE("agents added while the hub runs can work at once; rotation revokes", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const std::string token = hub_command({"agent", "add", "edge-3", "--data-dir", world.data_dir});
    ScriptedAgent newcomer(world.loop, world.pool, *world.ws, world.hub.url(), "edge-3", token);
    auto first = co_await newcomer.poll(0);
    REQUIRE(first.ok());
    CHECK(first->status == 204);
    const std::string rotated =
        hub_command({"agent", "rotate", "edge-3", "--data-dir", world.data_dir});
    CHECK(rotated != token);
    auto revoked = co_await newcomer.poll(0);
    REQUIRE(revoked.ok());
    CHECK(revoked->status == 401);
    auto renewed = co_await newcomer.poll(0, rotated);
    REQUIRE(renewed.ok());
    CHECK(renewed->status == 204);
  });
}

TEST_CASE("tether logs, status, tasks and agents show what the hub holds", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    co_await agent.connect_and_hello();
    auto spec = co_await dispatch(agent);
    agent.send(protocol::TaskStarted{{spec.task_id, spec.attempt_id}, {5, core::utc_now()}});
    agent.send(protocol::TaskOutput{{spec.task_id, spec.attempt_id},
                                    {StreamName::kStdout, 1, 0, "out\n"}});
    agent.send(protocol::TaskOutput{{spec.task_id, spec.attempt_id},
                                    {StreamName::kStderr, 1, 0, "err\n"}});
    agent.send(protocol::TaskFinal{{spec.task_id, spec.attempt_id},
                                   final_for(AttemptStatus::kSucceeded, 0, "out\n", "err\n")});
    const bool finished = co_await op.wait_for_state(task_id, "succeeded", 10000);
    REQUIRE(finished);

    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    const std::vector<std::string> logs_args = {"logs", task_id};
    auto logs = co_await run_cli(world.loop, logs_args, environment);
    CHECK(logs.exit_code == 0);
    CHECK(logs.out == "out\n");
    CHECK(logs.err == "err\n");

    const std::vector<std::string> status_args = {"status", task_id};
    auto status = co_await run_cli(world.loop, status_args, environment);
    CHECK(status.exit_code == 0);
    CHECK_THAT(status.out, Catch::Contains("succeeded") && Catch::Contains("verified  yes") &&
                               Catch::Contains(protocol::sha256_hex("out\n")));
    const std::vector<std::string> json_args = {"status", task_id, "--json"};
    auto json = co_await run_cli(world.loop, json_args, environment);
    CHECK_THAT(json.out, Catch::Contains(R"("state":"succeeded")"));

    const std::vector<std::string> tasks_args = {"tasks", "--state", "succeeded"};
    auto tasks = co_await run_cli(world.loop, tasks_args, environment);
    CHECK(tasks.exit_code == 0);
    CHECK_THAT(tasks.out, Catch::Contains(task_id) && Catch::Contains("true"));

    const std::vector<std::string> agents_args = {"agents"};
    auto agents = co_await run_cli(world.loop, agents_args, environment);
    CHECK(agents.exit_code == 0);
    CHECK_THAT(agents.out, Catch::Matches("(.|\n)*edge-1 +yes(.|\n)*"));
    CHECK_THAT(agents.out, Catch::Matches("(.|\n)*edge-2 +no(.|\n)*"));

    const std::vector<std::string> missing_args = {"status", "t-nonexistent"};
    auto missing = co_await run_cli(world.loop, missing_args, environment);
    CHECK(missing.exit_code == 3);
    CHECK_THAT(missing.err, Catch::Contains("404") && Catch::Contains("no task"));
    agent.close();
  });
}

TEST_CASE("the harness: a test that fails with children still running ends at once", "[harness]") {
  World world;
  LoggedProcess lingering(world.loop);
  auto failing = [&]() -> core::Co<void> {
    // A child the test would have stopped later, had it not failed first.
    lingering.start({"/bin/sleep", "600"}, {"PATH=/usr/bin:/bin"});
    co_await world.hub.wait_for_log("listening", 1000);
    throw std::runtime_error("a deliberate failure");
  };
  // Without the teardown stopping `lingering`, its pipes keep the loop
  // running and this never returns (how a failed nginx test hung for 20 min).
  REQUIRE_THROWS_WITH(world.run(failing), "a deliberate failure");
  CHECK(::kill(lingering.pid(), 0) != 0);  // gone, and reaped
}

TEST_CASE("an agent removed: its tasks end, its token and channel stop working", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto running = co_await started_task(op, agent);
    const std::string queued = co_await op.submit(submit_body("edge-1"));
    const std::string other = co_await op.submit(submit_body("edge-2"));

    const std::string token_file = world.dir.write_secret("admin.token", world.admin_token);
    const std::vector<std::string> environment = {"TETHER_HUB_URL=" + world.hub.url(),
                                                  "TETHER_TOKEN_FILE=" + token_file};
    const std::vector<std::string> remove = {"remove-agent", "edge-1"};
    auto removed = co_await run_cli(world.loop, remove, environment);
    INFO(removed.err);
    CHECK(removed.exit_code == 0);
    CHECK_THAT(removed.out, Catch::Contains("removed agent edge-1; 2 task(s) ended"));

    const std::string running_state = co_await op.state_of(running.task_id);
    CHECK(running_state == "lost");
    const std::string running_json = co_await op.task_json(running.task_id);
    CHECK_THAT(running_json, Catch::Contains("agent edge-1 was removed"));
    const std::string queued_state = co_await op.state_of(queued);
    CHECK(queued_state == "cancelled");
    const std::string other_state = co_await op.state_of(other);
    CHECK(other_state == "queued");  // another agent's task is untouched
    // The channel is closed, and the token no longer opens one or polls.
    auto closed = co_await agent.receive();
    CHECK_FALSE(closed.ok());
    auto again = world.agent();
    auto refused = co_await again.connect();
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::StartsWith("401"));
    auto listing = co_await op.request("GET", "/api/v1/agents");
    REQUIRE(listing.ok());
    CHECK_THAT(listing->body, !Catch::Contains("\"edge-1\""));
    auto unknown = co_await run_cli(world.loop, remove, environment);
    CHECK(unknown.exit_code != 0);
    CHECK_THAT(unknown.err, Catch::Contains("no agent named 'edge-1'"));
  });
}
