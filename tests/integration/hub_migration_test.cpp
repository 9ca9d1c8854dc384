// `tether-hub migrate --from sqlite:PATH --to postgresql://...` against a
// real hub's hub.db and a real postgresql-15 (docs/operations.md, "Moving a
// hub to PostgreSQL"): every row copied, bytes and order kept, one
// transaction, and its refusals.
#include "test_postgres.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;
using protocol::TaskFinal;

namespace {

// A hub.db with a finished task (output with every byte value, in two
// frames), a queued one, agents, tokens and audit entries.
void fill_hub(World& world, std::string& finished_task) {
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    finished_task = spec.task_id;
    std::string bytes;
    for (int i = 0; i < 256; ++i)
      bytes.push_back(static_cast<char>(i));
    agent.send(output(spec, StreamName::kStdout, 1, 0, bytes));
    agent.send(output(spec, StreamName::kStdout, 2, 256, "line\n"));
    co_await acks_through(agent, StreamName::kStdout, 2);
    agent.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, bytes + "line\n", "")});
    auto ack = expect<protocol::Ack>(co_await agent.receive());
    CHECK(ack.verified == true);
    co_await op.submit(submit_body("edge-2"));
    agent.close();
  });
}

std::string sqlite3(const std::string& database, const std::string& sql) {
  auto [status, out] = shell_output("sqlite3 '" + database + "' \"" + sql + "\" 2>&1");
  INFO(sql << "\n" << out);
  REQUIRE(status == 0);
  return out;
}

std::pair<int, std::string> migrate(const std::string& from, const std::string& to,
                                    const std::string& password_file) {
  return shell_output(
      "'" + hub_binary() + "' migrate --from 'sqlite:" + from + "' --to '" + to + "'" +
      (password_file.empty() ? "" : " --to-password-file '" + password_file + "'") + " 2>&1");
}

}  // namespace

TEST_CASE("migrate copies every row of hub.db into PostgreSQL, bytes and order kept",
          "[postgres][migrate]") {
  TestPostgres server;
  World world;
  std::string task_id;
  fill_hub(world, task_id);
  const std::string database = world.data_dir + "/hub.db";

  auto [status, out] = migrate(world.data_dir, server.url(), server.password_file());
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("copied " + world.data_dir + "/hub.db (schema 11) to " + server.url()) !=
        std::string::npos);
  CHECK(server.psql("SELECT version FROM schema_version") == "11\n");

  for (const char* table :
       {"agents", "agent_labels", "registration_tokens", "operator_tokens", "audit_log", "runs",
        "tasks", "attempts", "task_secrets", "events", "browser_sessions"}) {
    INFO(table);
    CHECK(server.psql(std::string("SELECT count(*) FROM ") + table) ==
          sqlite3(database, std::string("SELECT count(*) FROM ") + table));
    // The same columns on both (pg_hub_schema.hpp): a column added to one
    // schema and not the other fails here.
    CHECK(server.psql(std::string("SELECT column_name FROM information_schema.columns WHERE "
                                  "table_name = '") +
                      table + "' AND column_name != 'rowid' ORDER BY column_name") ==
          sqlite3(database, std::string("SELECT name FROM pragma_table_info('") + table +
                                "') ORDER BY name"));
  }
  CHECK(server.psql("SELECT count(*) FROM events") != "0\n");
  // Output bytes, exactly (hex on both sides), and the order lists use.
  CHECK(server.psql("SELECT id, seq, upper(encode(data, 'hex')) FROM events "
                    "WHERE data IS NOT NULL ORDER BY id") ==
        sqlite3(database,
                "SELECT id, seq, hex(data) FROM events WHERE data IS NOT NULL ORDER BY id"));
  CHECK(server.psql("SELECT id, state, agent FROM tasks ORDER BY created_at, rowid") ==
        sqlite3(database, "SELECT id, state, agent FROM tasks ORDER BY created_at, rowid"));
  CHECK(server.psql("SELECT state, output_verified FROM tasks WHERE id = '" + task_id + "'") ==
        "succeeded|1\n");

  // New rows continue after the copied ids; the audit trail stays append-only.
  const std::string highest = server.psql("SELECT max(id) FROM audit_log");
  const std::string next = server.psql(
      "INSERT INTO audit_log (at, actor, role, source, action, outcome) VALUES "
      "('2026-12-01T00:00:00.000Z', 'test', 'admin', 'local', 'test', 'allowed') RETURNING id");
  CHECK(std::stoll(next) == std::stoll(highest) + 1);
  auto [update_status, update_out] = server.try_psql("UPDATE audit_log SET actor = 'x'");
  CHECK(update_status != 0);
  CHECK(update_out.find("append-only") != std::string::npos);

  // Into a database that already holds a Tether schema: refused, untouched.
  auto [again_status, again_out] = migrate(world.data_dir, server.url(), server.password_file());
  CHECK(again_status == 1);
  CHECK(again_out.find("already holds a Tether schema (version 11)") != std::string::npos);
  CHECK(server.psql("SELECT count(*) FROM audit_log") ==
        std::to_string(std::stoll(sqlite3(database, "SELECT count(*) FROM audit_log")) + 1) + "\n");
}

TEST_CASE("migrate: nothing is left behind when it fails; bad flags name themselves",
          "[postgres][migrate]") {
  TestPostgres server;
  World world;
  std::string task_id;
  fill_hub(world, task_id);

  // A table in the way: the schema cannot be made, and nothing is kept.
  server.psql("CREATE TABLE events (unrelated int)");
  auto [status, out] = migrate(world.data_dir, server.url(), server.password_file());
  INFO(out);
  CHECK(status == 1);
  CHECK(out.find("--to:") != std::string::npos);
  CHECK(server.psql("SELECT to_regclass('schema_version') IS NULL AND "
                    "to_regclass('agents') IS NULL") == "t\n");

  // A password in the URI would be in argv: refused before connecting.
  const std::string with_password = "postgresql://tether:" + server.password() +
                                    "@127.0.0.1:" + std::to_string(server.port()) + "/tether";
  auto [uri_status, uri_out] = migrate(world.data_dir, with_password, "");
  CHECK(uri_status == 2);
  CHECK(uri_out.find("--to: the URI holds a password") != std::string::npos);
  CHECK(uri_out.find(server.password()) == std::string::npos);

  const std::string wrong = world.dir.write_secret("wrong-password", "not-it\n");
  auto [auth_status, auth_out] = migrate(world.data_dir, server.url(), wrong);
  CHECK(auth_status == 1);
  CHECK(auth_out.find("--to: PostgreSQL: ") != std::string::npos);
  CHECK(auth_out.find("password authentication failed") != std::string::npos);
  CHECK(auth_out.find("not-it") == std::string::npos);

  auto [missing_status, missing_out] =
      migrate(world.dir.path() + "/nothing-here", server.url(), server.password_file());
  CHECK(missing_status == 2);
  CHECK(missing_out.find("--from: no such file or directory") != std::string::npos);
}
