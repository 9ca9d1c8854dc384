// tether-hub serve --database postgresql://... as an operator runs it: the
// flags, one serving hub per database, a PostgreSQL restart survived. The
// hub's whole suite also runs on PostgreSQL (meson test hub-postgres).
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "world.hpp"

namespace tether::test {
namespace {

// GETs `target` until it answers 200 (a request that meets the connection a
// restart closed gets 503: the hub connects again for the next one).
core::Co<int> get_until_ok(Operator& op, std::string target, int tries) {
  int status = 0;
  for (int attempt = 0; attempt < tries && status != 200; ++attempt) {
    auto reply = co_await op.request("GET", target);
    REQUIRE(reply.ok());
    status = reply->status;
  }
  co_return status;
}

}  // namespace

TEST_CASE(
    "serve --database: a password in the URI or a readable password file is refused, "
    "nothing started",
    "[postgres][hub]") {
  TempDir dir;
  auto [in_uri, said] = shell_output("'" + hub_binary() + "' serve --data-dir '" + dir.path() +
                                     "/hub' --database 'postgresql://tether:s3cret-pw@127.0.0.1/x' "
                                     "2>&1");
  CHECK(in_uri == 2);
  CHECK_THAT(said, Catch::Contains("--database"));
  CHECK_THAT(said, !Catch::Contains("s3cret-pw"));
  const std::string password_file = dir.path() + "/password";
  { std::ofstream(password_file) << "pw\n"; }
  ::chmod(password_file.c_str(), 0644);
  auto [readable, said_file] =
      shell_output("'" + hub_binary() + "' serve --data-dir '" + dir.path() +
                   "/hub' --database postgresql://tether@127.0.0.1/x --database-password-file '" +
                   password_file + "' 2>&1");
  CHECK(readable == 2);
  CHECK_THAT(said_file, Catch::Contains("--database-password-file") && Catch::Contains("0644"));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/hub"));
}

TEST_CASE("serve --database without a password says where one comes from", "[postgres][hub]") {
  HubsOnPostgres on_postgres;
  TempDir dir;
  const auto database = hub_database_args(dir.path() + "/hub");
  REQUIRE(database.size() == 4);
  // No password file, no PGPASSWORD, no ~/.pgpass: libpq's own words, and ours.
  auto [status, said] = shell_output(
      "env -u PGPASSWORD HOME='" + dir.path() + "' '" + hub_binary() + "' serve --data-dir '" +
      dir.path() + "/hub' --listen 127.0.0.1:0 --database '" + database[1] + "' 2>&1");
  CHECK(status == 1);
  CHECK_THAT(
      said, Catch::Contains("no password supplied") && Catch::Contains("--database-password-file"));
}

TEST_CASE(
    "serve on PostgreSQL: a second hub on the database is refused, the first serves on "
    "and survives a PostgreSQL restart with every task",
    "[postgres][hub]") {
  HubsOnPostgres on_postgres;
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string before = co_await op.submit(submit_body("edge-1"));

    auto [second, said] =
        shell_output("timeout 20 '" + hub_binary() + "' serve " +
                     hub_data_dir_words(world.data_dir) + " --listen 127.0.0.1:0 2>&1");
    CHECK(second == 1);
    CHECK_THAT(said, Catch::Contains("another tether-hub is serving"));
    CHECK_THAT(said, !Catch::Contains("password"));

    HubsOnPostgres::restart_server();
    const int status = co_await get_until_ok(op, "/api/v1/tasks/" + before, 3);
    CHECK(status == 200);
    CHECK(world.hub.running());
    // The task stored before the restart is dispatched after it, and one
    // submitted now follows it.
    const std::string after = co_await op.submit(submit_body("edge-1"));
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    auto first = co_await dispatch(agent);
    CHECK(first.task_id == before);
    auto next = co_await dispatch(agent);
    CHECK(next.task_id == after);
    CHECK(co_await op.state_of(before) == "dispatched");
    // The hub logged the new connection.
    CHECK_THAT(world.hub.log(), Catch::Contains("connected again"));
    agent.close();
  });
}

}  // namespace tether::test
