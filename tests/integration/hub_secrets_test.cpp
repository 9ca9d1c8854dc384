// Task secrets at the hub: `tether run --secret` and the operator API in,
// sealed in hub.db with the key file the hub makes, out only to the agent
// the attempt is dispatched to, deleted when the task ends; the key file's
// rules; and a hub whose key was replaced failing the tasks it cannot read
// instead of crashing.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;

namespace {

constexpr const char* kPassword = "pa55-needle-8e1d2c";
constexpr const char* kFileSecret = "file-needle-31b7aa";

std::string hub_db_bytes(const World& world) {
  std::string bytes;
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream file(world.data_dir + "/hub.db" + suffix, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  return bytes;
}

std::vector<std::string> cli_environment(World& world) {
  return {"TETHER_HUB_URL=" + world.hub.url(),
          "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token),
          std::string("DB_PASSWORD=") + kPassword};
}

// `sqlite3 -readonly hub.db SQL` (the operator's tool), or psql when the
// hub is on PostgreSQL, without its newline.
std::string hub_query(const World& world, const std::string& sql) {
  std::string out = hub_sql(world.data_dir, sql);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

std::pair<int, std::string> serve_once(const std::string& data_dir) {
  return shell_output("timeout 10 '" + hub_binary() + "' serve " + hub_data_dir_words(data_dir) +
                      " --listen 127.0.0.1:0 2>&1");
}

}  // namespace

TEST_CASE("secrets from tether run reach only the dispatched task; hub.db holds them sealed",
          "[hub][secrets][hub.db]") {
  World world;
  world.run([&]() -> core::Co<void> {
    struct stat key {};
    REQUIRE(::stat((world.data_dir + "/secrets.key").c_str(), &key) == 0);
    CHECK((key.st_mode & 07777) == 0600);
    CHECK(key.st_size == 32);
    CHECK_THAT(world.hub.log(), Catch::Contains("made a new key for task secrets"));

    const std::string file = world.dir.write_secret("file.secret", kFileSecret);
    const std::vector<std::string> args = {
        "run",   "--agent",    "edge-1", "--secret", "DB_PASSWORD", "--secret", "FILE_KEY=@" + file,
        "--env", "STAGE=prod", "--",     "env"};
    auto cli = start_cli(world.loop, args, cli_environment(world));
    CliRun run;
    core::CoGroup readers;
    readers.spawn(read_all(cli->stdout_reader(), run.out));
    readers.spawn(read_all(cli->stderr_reader(), run.err));

    auto agent = world.agent();
    co_await agent.connect_and_hello();
    auto spec = co_await dispatch(agent, 10);
    CHECK(spec.secrets == std::map<std::string, std::string>{{"DB_PASSWORD", kPassword},
                                                             {"FILE_KEY", kFileSecret}});
    CHECK(spec.env == std::map<std::string, std::string>{{"STAGE", "prod"}});

    auto op = world.op();
    const std::string view = co_await op.task_json(spec.task_id);
    CHECK_THAT(view, Catch::Contains(R"("secrets":["DB_PASSWORD","FILE_KEY"])"));
    CHECK(hub_query(world, "SELECT count(*) FROM task_secrets WHERE length(nonce) = 12") == "2");
    const std::string raw = hub_db_bytes(world);
    CHECK(raw.find(kPassword) == std::string::npos);
    CHECK(raw.find(kFileSecret) == std::string::npos);

    co_await start(agent, spec);
    auto report = final_for(AttemptStatus::kSucceeded, 0, "", "");
    report.redactions = protocol::RedactionCounts{0, 0};
    agent.send(protocol::TaskFinal{{spec.task_id, spec.attempt_id}, report},
               protocol::final_message_id(spec.attempt_id));
    co_await finish_cli(*cli, readers, run);
    CHECK(run.exit_code == 0);
    CHECK(hub_query(world, "SELECT count(*) FROM task_secrets") == "0");
    auto reply = co_await op.request("GET", "/api/v1/tasks/" + spec.task_id + "/events?follow=0");
    REQUIRE(reply.ok());
    CHECK_THAT(reply->body, Catch::Contains(R"("redactions":{"stdout":0,"stderr":0})"));
    for (const std::string& text : {view, reply->body, run.out, run.err, world.hub.log()}) {
      CHECK(text.find(kPassword) == std::string::npos);
      CHECK(text.find(kFileSecret) == std::string::npos);
    }
    agent.close();
  });
}

TEST_CASE("a secret's value on the command line, or a name in env and secrets, is refused",
          "[hub][secrets][cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const auto environment = cli_environment(world);
    struct Case {
      std::vector<std::string> args;
      const char* expected;
    };
    const Case cases[] = {
        {{"run", "--agent", "edge-1", "--secret", std::string("DB_PASSWORD=") + kPassword, "--",
          "true"},
         "--secret DB_PASSWORD=...: a value on the command line would be visible"},
        {{"run", "--agent", "edge-1", "--secret", "NOT_SET", "--", "true"},
         "NOT_SET is not set in tether's environment"},
        {{"run", "--agent", "edge-1", "--secret", "BAD-NAME", "--", "true"},
         "--secret BAD-NAME: not a valid variable name"},
        {{"run", "--agent", "edge-1", "--env", "DB_PASSWORD=x", "--secret", "DB_PASSWORD", "--",
          "true"},
         "--secret DB_PASSWORD: also given with --env"},
    };
    for (const auto& c : cases) {
      auto run = co_await run_cli(world.loop, c.args, environment);
      INFO(run.err);
      CHECK(run.exit_code == 2);
      CHECK_THAT(run.err, Catch::Contains(c.expected));
      CHECK(run.err.find(kPassword) == std::string::npos);
    }
    // The operator API says the same of a name in both, naming the field.
    auto op = world.op();
    auto both = co_await op.request(
        "POST", "/api/v1/tasks",
        submit_body("edge-1", R"(,"env":{"PW":"a"},"secrets":{"PW":"hidden-value"})"));
    REQUIRE(both.ok());
    CHECK(both->status == 400);
    CHECK_THAT(both->body, Catch::Contains("task.secrets.PW: also set in env"));
    CHECK(both->body.find("hidden-value") == std::string::npos);
    auto listed = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listed.ok());
    CHECK_THAT(listed->body, Catch::Contains(R"({"tasks":[]})"));
  });
}

TEST_CASE(
    "a key file others may read or of the wrong size stops the hub; a replaced key fails "
    "the queued tasks it cannot read",
    "[hub][secrets]") {
  World world;
  const std::string key_path = world.data_dir + "/secrets.key";
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string task_id = co_await op.submit(
        submit_body("edge-1", R"(,"secrets":{"DB_PASSWORD":"pa55-needle-8e1d2c"})"));
    const std::string plain_id = co_await op.submit(submit_body("edge-1"));
    co_await world.hub.stop(SIGTERM);
    // The key is lost; the hub makes a new one and says what that means.
    std::filesystem::remove(key_path);
    const size_t from = world.hub.log().size();
    co_await world.hub.start();
    const bool warned =
        co_await world.hub.wait_for_log("holds the secrets of 1 task(s)", 5000, from);
    CHECK(warned);
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    // Its poll gets the task without secrets; the one with them has failed.
    auto spec = co_await dispatch(agent);
    CHECK(spec.task_id == plain_id);
    const std::string view = co_await op.task_json(task_id);
    CHECK_THAT(view, Catch::Contains(R"("state":"failed")"));
    auto events = co_await op.request("GET", "/api/v1/tasks/" + task_id + "/events?follow=0");
    REQUIRE(events.ok());
    CHECK_THAT(events->body, Catch::Contains("cannot be dispatched: secret DB_PASSWORD of task") &&
                                 Catch::Contains("secrets.key"));
    CHECK(hub_query(world, "SELECT count(*) FROM task_secrets") == "0");
    CHECK(world.hub.running());
    agent.close();
  });

  ::chmod(key_path.c_str(), 0640);
  auto [readable_status, readable] = serve_once(world.data_dir);
  CHECK(readable_status == 1);
  CHECK_THAT(readable, Catch::Contains("key file '" + key_path + "' has mode 0640") &&
                           Catch::Contains("chmod 600"));
  ::chmod(key_path.c_str(), 0600);
  std::filesystem::resize_file(key_path, 16);
  auto [short_status, truncated] = serve_once(world.data_dir);
  CHECK(short_status == 1);
  CHECK_THAT(truncated, Catch::Contains("is 16 bytes; a key is 32 bytes"));
}
