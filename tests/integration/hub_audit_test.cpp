// The audit trail on a running hub (docs/operations.md, "The audit trail"):
// local commands, registrations, removals and refusals recorded with actor
// and address, read with `tether audit`; rows that cannot change; and the
// schema 3 -> 4 upgrade that turns unnamed admin tokens into named ones.
#include <filesystem>

#include "roles.hpp"

using namespace tether;
using namespace tether::test;

namespace {

core::Co<protocol::AuditPage> cli_audit(World& world, std::vector<std::string> args,
                                        std::string* err = nullptr) {
  args.insert(args.begin(), "audit");
  args.push_back("--json");
  auto run = co_await run_cli(world.loop, args, cli_environment(world, world.admin_token, "admin"));
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  if (err) *err = run.err;
  auto page = protocol::decode_audit_page(run.out);
  REQUIRE(page.ok());
  co_return std::move(*page);
}

}  // namespace

TEST_CASE(
    "the audit trail records local commands, registrations and removals; tether audit "
    "reads it",
    "[hub][audit]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const std::string registration = hub_command(
        {"registration-token", "create", "--labels", "role=web", "--data-dir", world.data_dir});
    Operator registrar(world.loop, world.pool, world.hub.url(), registration);
    auto registered =
        co_await registrar.request("POST", "/api/v1/agents/register", R"({"name":"edge-9"})");
    REQUIRE(registered.ok());
    CHECK(registered->status == 201);
    hub_command({"agent", "rotate", "edge-2", "--data-dir", world.data_dir});
    Operator as_agent(world.loop, world.pool, world.hub.url(), world.agent_token);
    auto forbidden = co_await as_agent.request("GET", "/api/v1/tasks");
    REQUIRE(forbidden.ok());
    CHECK(forbidden->status == 403);
    const auto admin_env = cli_environment(world, world.admin_token, "admin");
    const std::vector<std::string> remove_args = {"remove-agent", "edge-9"};
    auto removed = co_await run_cli(world.loop, remove_args, admin_env);
    CHECK(removed.exit_code == 0);

    const std::vector<std::string> table_args = {"audit"};
    auto table = co_await run_cli(world.loop, table_args, admin_env);
    CHECK(table.exit_code == 0);
    CHECK_THAT(table.out, Catch::StartsWith("ID ") && Catch::Contains("agent.register") &&
                              Catch::Contains(R"({"labels":{"role":"web"}})") &&
                              Catch::Contains("agent:edge-1") &&
                              Catch::Contains("this route needs an operator token"));

    // Local commands: the World's agents and admin token, then ours.
    const std::vector<std::string> by_local = {"--actor", local_actor_name()};
    auto local = co_await cli_audit(world, by_local);
    for (const auto& entry : local.entries) {
      CHECK(entry.source == "local");
      CHECK(entry.role == "local");
    }
    CHECK(entries_of(local, "agent.add", "allowed", "edge-1").size() == 1);
    CHECK(entries_of(local, "agent.add", "allowed", "edge-2").size() == 1);
    CHECK(entries_of(local, "token.create", "allowed").size() == 1);
    CHECK(entries_of(local, "registration_token.create", "allowed").size() == 1);
    CHECK(entries_of(local, "agent.rotate", "allowed", "edge-2").size() == 1);
    for (const auto& entry : local.entries)
      CHECK_THAT(entry.detail_json,
                 !Catch::Contains("tta_") && !Catch::Contains("tto_") && !Catch::Contains("ttr_"));

    const std::vector<std::string> by_register = {"--action", "agent.register"};
    auto registrations = co_await cli_audit(world, by_register);
    REQUIRE(registrations.entries.size() == 1);
    CHECK_THAT(registrations.entries[0].actor, Catch::StartsWith("reg-"));
    CHECK(registrations.entries[0].role == "registration");
    CHECK(registrations.entries[0].source == "127.0.0.1");
    CHECK(registrations.entries[0].target == "edge-9");
    const std::vector<std::string> by_remove = {"--action", "agent.remove", "--target", "edge-9"};
    auto removals = co_await cli_audit(world, by_remove);
    REQUIRE(removals.entries.size() == 1);
    CHECK(removals.entries[0].role == "admin");
    CHECK(removals.entries[0].source == "127.0.0.1");
    CHECK(removals.entries[0].detail_json == R"({"agent":"edge-9","tasks_ended":0})");
    const std::vector<std::string> by_agent_token = {"--actor", "agent:edge-1"};
    auto by_agent = co_await cli_audit(world, by_agent_token);
    REQUIRE(by_agent.entries.size() == 1);
    CHECK(by_agent.entries[0].action == "task.list");
    CHECK(by_agent.entries[0].outcome == "refused");

    // Paging: --limit, then --after where the first page ended.
    std::string more;
    const std::vector<std::string> two = {"--limit", "2"};
    auto first = co_await cli_audit(world, two, &more);
    REQUIRE(first.entries.size() == 2);
    CHECK_THAT(more, Catch::Contains("more entries follow; the next ones with --after " +
                                     std::to_string(first.entries[1].id)));
    const std::vector<std::string> after = {"--after", std::to_string(first.entries[1].id),
                                            "--limit", "1"};
    auto next = co_await cli_audit(world, after);
    REQUIRE(next.entries.size() == 1);
    CHECK(next.entries[0].id > first.entries[1].id);
    const std::vector<std::string> last_hour = {"--since", "1h"};
    auto recent = co_await cli_audit(world, last_hour);
    CHECK(recent.entries.size() == 8);  // the changes and the refusal above; reads are not audited
    const std::vector<std::string> in_future = {"--since", "2999-01-01"};
    auto future = co_await cli_audit(world, in_future);
    CHECK(future.entries.empty());

    const std::vector<std::string> bad_args = {"audit", "--since", "yesterday"};
    auto bad = co_await run_cli(world.loop, bad_args, admin_env);
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("--since: expected an age"));
    auto mistyped = co_await world.op().request("GET", "/api/v1/audit?actr=ci");
    REQUIRE(mistyped.ok());
    CHECK(mistyped->status == 400);
    CHECK_THAT(mistyped->body, Catch::Contains("actr: unknown parameter"));

    // Append-only, whoever asks: the database's own tool (sqlite3 on hub.db,
    // psql on PostgreSQL) cannot change a row.
    const std::string count = "SELECT count(*) FROM audit_log";
    const std::string rows = hub_sql(world.data_dir, count);
    const std::vector<std::string> changes = {"UPDATE audit_log SET actor = 'nobody'",
                                              "DELETE FROM audit_log"};
    for (const auto& change : changes) {
      const auto [status, output] = try_hub_sql(world.data_dir, change);
      CHECK(status != 0);
      CHECK_THAT(output, Catch::Contains("audit_log is append-only"));
    }
    CHECK(hub_sql(world.data_dir, count) == rows);
    CHECK(hub_sql(world.data_dir, "SELECT count(*) FROM audit_log WHERE actor = 'nobody'") ==
          "0\n");
  });
}

TEST_CASE("schema 3 -> 10: a version-3 hub.db's admin tokens become admin tokens named by their id",
          "[hub][audit][hub.db]") {
  // The token whose SHA-256 tests/integration/data/hub-v3.sql holds.
  const std::string v3_token = "tto_Wi1-tD2u7agHWzCQY1AHZVcIE4ACX1T4Kqc1VqzQ2EU";
  const std::string id = "op-" + protocol::sha256_hex(v3_token).substr(0, 12);
  TempDir dir;
  const std::string data_dir = dir.path() + "/hub";
  std::filesystem::create_directory(data_dir);
  const std::string database = data_dir + "/hub.db";
  const std::string fixture = env_path("TETHER_SOURCE_DIR") + "/tests/integration/data/hub-v3.sql";
  REQUIRE(shell_output("sqlite3 '" + database + "' < '" + fixture + "'").first == 0);
  REQUIRE(shell_output("sqlite3 '" + database + "' 'SELECT version FROM schema_version'").second ==
          "3\n");

  const std::string listed = hub_command({"token", "list", "--data-dir", data_dir});
  CHECK_THAT(listed, Catch::Matches("(.|\n)*" + id + " +" + id + " +admin +- (.|\n)*"));
  const auto query = [&](const std::string& sql) {
    return shell_output("sqlite3 '" + database + "' \"" + sql + "\" 2>&1").second;
  };
  CHECK(query("SELECT version FROM schema_version") == "11\n");
  CHECK(query("SELECT count(*) FROM browser_sessions") == "0\n");  // version 10
  CHECK(query("SELECT count(*) FROM runs") == "0\n");
  CHECK(query("SELECT count(*) FROM tasks WHERE run_id != '' OR held != 0") == "0\n");
  CHECK(query("SELECT count(*) FROM tasks WHERE selector != ''") == "0\n");
  CHECK(query("SELECT count(*) FROM agents WHERE reported_labels != ''") == "0\n");
  CHECK(query("SELECT count(*) FROM task_secrets") == "0\n");
  CHECK(query("SELECT DISTINCT limits_json FROM tasks") == "{}\n");
  CHECK_THAT(query("SELECT count(*) FROM admin_tokens"), Catch::Contains("no such table"));
  CHECK(query("SELECT name, role, agent_patterns FROM operator_tokens") == id + "|admin|\n");

  core::Loop loop;
  core::ThreadPool pool{2};
  HubProcess hub(loop, data_dir);
  auto scenario = [&]() -> core::Co<void> {
    co_await hub.start();
    Operator upgraded(loop, pool, hub.url(), v3_token);
    auto tasks = co_await upgraded.request("GET", "/api/v1/tasks");
    REQUIRE(tasks.ok());
    CHECK(tasks->status == 200);
    CHECK_THAT(tasks->body,
               Catch::Contains("t-2c71af80b9bec5d6") && Catch::Contains(R"("KEPT":"yes")"));
    auto page = co_await audit_page(upgraded, "");  // role admin: the trail is readable
    CHECK(entries_of(page, "token.list", "allowed").empty());
    // Revoked by its name, which is its id.
    hub_command({"token", "revoke", id, "--data-dir", data_dir});
    auto revoked = co_await upgraded.request("GET", "/api/v1/tasks");
    REQUIRE(revoked.ok());
    CHECK(revoked->status == 401);
    CHECK_THAT(revoked->body, Catch::Contains("operator token '" + id + "' was revoked at"));
  };
  std::exception_ptr failure;
  try {
    core::run_to_completion(loop, [&]() -> core::Co<void> {
      try {
        co_await scenario();
      } catch (...) {
        failure = std::current_exception();
      }
      co_await hub.stop(failure ? SIGKILL : SIGTERM);
      LoggedProcess::kill_all(loop);
    }());
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    std::fprintf(stderr, "---- tether-hub log ----\n%s------------------------\n",
                 hub.log().c_str());
    std::rethrow_exception(failure);
  }
}
