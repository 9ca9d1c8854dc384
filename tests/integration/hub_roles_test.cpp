// Operator roles on a running hub (docs/protocol.md 11.2): what a viewer
// and an operator limited by agent patterns may do, what they are refused
// (403, audited with their name and address), and the token commands.
#include "roles.hpp"

using namespace tether;
using namespace tether::test;

TEST_CASE("a viewer reads, never submits or cancels, and sees env names without values",
          "[hub][roles]") {
  World world;
  const std::string viewer_token = create_token(world, "dash", "viewer");
  world.run([&]() -> core::Co<void> {
    auto admin = world.op();
    Operator viewer(world.loop, world.pool, world.hub.url(), viewer_token);
    const std::string task_id =
        co_await admin.submit(submit_body("edge-1", R"(,"env":{"DB_PASSWORD":"hunter2"})"));

    auto shown = co_await viewer.request("GET", "/api/v1/tasks/" + task_id);
    REQUIRE(shown.ok());
    CHECK(shown->status == 200);
    CHECK_THAT(shown->body,
               Catch::Contains(R"("env":{"DB_PASSWORD":null})") && !Catch::Contains("hunter2"));
    auto listed = co_await viewer.request("GET", "/api/v1/tasks");
    REQUIRE(listed.ok());
    CHECK_THAT(listed->body, Catch::Contains(task_id) && !Catch::Contains("hunter2"));
    const std::string admin_view = co_await admin.task_json(task_id);
    CHECK_THAT(admin_view, Catch::Contains(R"("DB_PASSWORD":"hunter2")"));
    auto output =
        co_await viewer.request("GET", "/api/v1/tasks/" + task_id + "/output?stream=stdout");
    REQUIRE(output.ok());
    CHECK(output->status == 200);
    auto agents = co_await viewer.request("GET", "/api/v1/agents");
    REQUIRE(agents.ok());
    CHECK_THAT(agents->body, Catch::Contains("\"edge-1\"") && Catch::Contains("\"edge-2\""));

    const std::vector<std::pair<std::string, std::string>> refused = {
        {"POST", "/api/v1/tasks"},
        {"POST", "/api/v1/tasks/" + task_id + "/cancel"},
        {"DELETE", "/api/v1/agents/edge-2"},
        {"GET", "/api/v1/audit"},
    };
    for (const auto& [method, path] : refused) {
      auto reply = co_await viewer.request(method, path, submit_body("edge-1"));
      REQUIRE(reply.ok());
      INFO(method << " " << path << ": " << reply->body);
      CHECK(reply->status == 403);
      CHECK_THAT(reply->body, Catch::Contains(R"("code":"forbidden")") &&
                                  Catch::Contains("token 'dash' has role viewer"));
    }
    const std::string state = co_await admin.state_of(task_id);
    CHECK(state == "queued");  // the refused cancel changed nothing

    const std::vector<std::string> run_args = {"run", "--agent", "edge-1", "--", "true"};
    auto run = co_await run_cli(world.loop, run_args, cli_environment(world, viewer_token, "dash"));
    CHECK(run.exit_code == 3);
    CHECK_THAT(run.err, Catch::Contains("403") && Catch::Contains("may not submit"));

    // The trail: the admin's submit, without the env value; every refusal.
    auto submits = co_await audit_page(admin, "?action=task.submit");
    const auto allowed = entries_of(submits, "task.submit", "allowed", task_id);
    REQUIRE(allowed.size() == 1);
    CHECK(allowed[0].role == "admin");
    CHECK_THAT(allowed[0].actor, Catch::StartsWith("admin-"));
    CHECK(allowed[0].source == "127.0.0.1");
    CHECK_THAT(allowed[0].detail_json,
               Catch::Contains(R"("env_names":["DB_PASSWORD"])") && !Catch::Contains("hunter2"));
    auto by_viewer = co_await audit_page(admin, "?actor=dash");
    CHECK(by_viewer.entries.size() == 5);
    for (const auto& entry : by_viewer.entries) {
      CHECK(entry.outcome == "refused");
      CHECK(entry.role == "viewer");
      CHECK(entry.source == "127.0.0.1");
      CHECK_THAT(entry.reason, Catch::Contains("role viewer"));
    }
    CHECK(entries_of(by_viewer, "task.submit", "refused", "edge-1").size() == 2);
    CHECK(entries_of(by_viewer, "task.cancel", "refused", task_id).size() == 1);
    CHECK(entries_of(by_viewer, "agent.remove", "refused", "edge-2").size() == 1);
    CHECK(entries_of(by_viewer, "audit.read", "refused").size() == 1);
  });
}

TEST_CASE("an operator limited to agent patterns acts on and sees only those agents",
          "[hub][roles]") {
  World world;
  const std::string ops_token = create_token(world, "ops", "operator", "edge-1,web-*");
  world.run([&]() -> core::Co<void> {
    auto admin = world.op();
    Operator ops(world.loop, world.pool, world.hub.url(), ops_token);
    const std::string own =
        co_await ops.submit(submit_body("edge-1", R"(,"env":{"TOKEN_NAME":"visible"})"));
    const std::string other = co_await admin.submit(submit_body("edge-2"));

    auto elsewhere = co_await ops.request("POST", "/api/v1/tasks", submit_body("edge-2"));
    REQUIRE(elsewhere.ok());
    CHECK(elsewhere->status == 403);
    CHECK_THAT(elsewhere->body, Catch::Contains("may only act on agents matching edge-1,web-*") &&
                                    Catch::Contains("agent 'edge-2' matches none of them"));
    const std::string other_path = "/api/v1/tasks/" + other;
    const std::vector<std::string> reads = {other_path, other_path + "/output?stream=stdout",
                                            other_path + "/events?follow=0"};
    for (const std::string& path : reads) {
      auto read = co_await ops.request("GET", path);
      REQUIRE(read.ok());
      INFO(path << ": " << read->body);
      CHECK(read->status == 403);
      // The agent of a task it may not see is not named to it.
      CHECK_THAT(read->body,
                 Catch::Contains("the agent of task " + other) && !Catch::Contains("edge-2"));
    }
    auto cancel_other = co_await ops.request("POST", other_path + "/cancel");
    REQUIRE(cancel_other.ok());
    CHECK(cancel_other->status == 403);
    const std::string other_state = co_await admin.state_of(other);
    CHECK(other_state == "queued");

    auto tasks = co_await ops.request("GET", "/api/v1/tasks");
    REQUIRE(tasks.ok());
    CHECK_THAT(tasks->body, Catch::Contains(own) && !Catch::Contains(other) &&
                                Catch::Contains(R"("TOKEN_NAME":"visible")"));
    auto agents = co_await ops.request("GET", "/api/v1/agents");
    REQUIRE(agents.ok());
    CHECK_THAT(agents->body, Catch::Contains("\"edge-1\"") && !Catch::Contains("\"edge-2\""));
    auto remove = co_await ops.request("DELETE", "/api/v1/agents/edge-1");
    REQUIRE(remove.ok());
    CHECK(remove->status == 403);
    CHECK_THAT(remove->body, Catch::Contains("may not remove agents"));
    auto audit = co_await ops.request("GET", "/api/v1/audit");
    REQUIRE(audit.ok());
    CHECK(audit->status == 403);

    const auto environment = cli_environment(world, ops_token, "ops");
    const std::vector<std::string> list_args = {"tasks"};
    auto listed = co_await run_cli(world.loop, list_args, environment);
    CHECK(listed.exit_code == 0);
    CHECK_THAT(listed.out, Catch::Contains(own) && !Catch::Contains(other));
    const std::vector<std::string> agents_args = {"agents"};
    auto agent_rows = co_await run_cli(world.loop, agents_args, environment);
    CHECK_THAT(agent_rows.out, Catch::Contains("edge-1") && !Catch::Contains("edge-2"));
    const std::vector<std::string> cancel_args = {"cancel", own};
    auto cancelled = co_await run_cli(world.loop, cancel_args, environment);
    CHECK(cancelled.exit_code == 0);
    const std::string own_state = co_await admin.state_of(own);
    CHECK(own_state == "cancelled");

    auto trail = co_await audit_page(admin, "?actor=ops");
    INFO(protocol::encode_audit_page(trail));
    for (const auto& entry : trail.entries) {
      CHECK(entry.role == "operator");
      CHECK(entry.source == "127.0.0.1");
    }
    CHECK(entries_of(trail, "task.submit", "allowed", own).size() == 1);
    const auto refused_submit = entries_of(trail, "task.submit", "refused", "edge-2");
    REQUIRE(refused_submit.size() == 1);
    CHECK_THAT(refused_submit[0].reason, Catch::Contains("edge-1,web-*"));
    CHECK(entries_of(trail, "task.read", "refused", other).size() == 3);
    CHECK(entries_of(trail, "task.cancel", "refused", other).size() == 1);
    CHECK(entries_of(trail, "agent.remove", "refused", "edge-1").size() == 1);
    CHECK(entries_of(trail, "audit.read", "refused").size() == 1);
    const auto cancel = entries_of(trail, "task.cancel", "allowed", own);
    REQUIRE(cancel.size() == 1);
    CHECK_THAT(cancel[0].detail_json, Catch::Contains(R"("agent":"edge-1")"));
    CHECK(trail.entries.size() == 9);
  });
}

TEST_CASE("tether-hub token create, list and revoke: bad input names the field, changes nothing",
          "[hub][roles]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/hub";
  auto hub = [&](std::vector<std::string> args) {
    std::string command = "'" + hub_binary() + "'";
    for (const auto& arg : args)
      command += " '" + arg + "'";
    return shell_output(command + " " + hub_data_dir_words(data_dir) + " 2>&1");
  };
  hub_command({"token", "create", "--name", "ci", "--role", "operator", "--agents", "web-*",
               "--data-dir", data_dir});
  const auto [listed_status, before] = hub({"token", "list"});
  CHECK(listed_status == 0);
  CHECK_THAT(before, Catch::Matches("ID +NAME +ROLE +AGENTS +CREATED +REVOKED\nop-[0-9a-f]{12} +ci "
                                    "+operator +web-\\* +[0-9T:.Z-]+ +-\n"));
  struct Bad {
    std::vector<std::string> args;
    int status;
    const char* message;
  };
  const Bad bad[] = {
      {{"token", "create", "--name", "ci", "--role", "viewer"},
       1,
       "--name: a token named 'ci' exists already"},
      {{"token", "create", "--name", "c i", "--role", "viewer"}, 2, "--name: 'c i' must be"},
      {{"token", "create", "--name", "op-0123456789ab", "--role", "viewer"},
       2,
       "form of a token id"},
      {{"token", "create", "--name", "x", "--role", "root"},
       2,
       "--role: expected admin, operator or viewer, got 'root'"},
      {{"token", "create", "--role", "viewer"}, 2, "--name is required"},
      {{"token", "create", "--name", "x"}, 2, "--role is required"},
      {{"token", "create", "--name", "x", "--role", "viewer", "--agents", "web-*"},
       2,
       "--agents: agent patterns limit role operator only"},
      {{"token", "create", "--name", "x", "--role", "operator", "--agents", "web-*,"},
       2,
       "--agents: pattern ''"},
      {{"token", "list", "--role", "admin"}, 2, "go with token create"},
      {{"agent", "add", "edge-9", "--name", "x"}, 2, "go with token create"},
      {{"token", "revoke", "nobody"}, 1, "no operator token 'nobody'"},
  };
  const std::string count_audit = "SELECT count(*) FROM audit_log";
  const std::string audit_before = hub_sql(data_dir, count_audit);
  for (const auto& [args, status, message] : bad) {
    const auto [got_status, output] = hub(args);
    INFO(output);
    CHECK(got_status == status);
    CHECK_THAT(output, Catch::Contains(message));
  }
  CHECK(hub({"token", "list"}).second == before);
  CHECK(hub_sql(data_dir, count_audit) == audit_before);

  const std::string id = before.substr(before.find("op-"), 15);
  CHECK(hub({"token", "revoke", id}).first == 0);  // by id (or by name)
  const auto [again_status, again] = hub({"token", "revoke", "ci"});
  CHECK(again_status == 1);
  CHECK_THAT(again, Catch::Contains("operator token 'ci' (" + id + ") was revoked already"));
  CHECK_THAT(hub({"token", "list"}).second, Catch::Matches("(.|\n)*operator +web-\\* +[0-9T:.Z-]+ +"
                                                           "[0-9]{4}-[0-9T:.Z-]+\n"));
  const auto [made_status, admin] = hub({"token", "admin"});
  CHECK(made_status == 0);
  CHECK_THAT(hub({"token", "list"}).second,
             Catch::Matches("(.|\n)*admin-[0-9a-f]{12} +admin(.|\n)*"));
}
