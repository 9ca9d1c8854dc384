// tether-hub serve --database postgresql://... as an operator runs it: the
// flags, two hubs serving one database, a PostgreSQL restart survived. The
// hub's whole suite also runs on PostgreSQL (meson test hub-postgres).
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "protocol/json_reader.hpp"
#include "world.hpp"

namespace tether::test {
namespace {

using protocol::AttemptStatus;
using protocol::StreamName;

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
  // The problem, and where the usage is; not the whole usage.
  CHECK_THAT(said, Catch::Contains("tether-hub --help") && !Catch::Contains("usage:"));
  const std::string password_file = dir.path() + "/password";
  { std::ofstream(password_file) << "pw\n"; }
  ::chmod(password_file.c_str(), 0644);
  auto [readable, said_file] =
      shell_output("'" + hub_binary() + "' serve --data-dir '" + dir.path() +
                   "/hub' --database postgresql://tether@127.0.0.1/x --database-password-file '" +
                   password_file + "' 2>&1");
  CHECK(readable == 2);
  CHECK_THAT(said_file, Catch::Contains("--database-password-file: password file '") &&
                            Catch::Contains("0644"));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/hub"));
}

TEST_CASE(
    "serve --database with --sync is refused: PostgreSQL's own setting decides, nothing started",
    "[postgres][hub]") {
  TempDir dir;
  for (const char* mode : {"full", "normal"}) {
    auto [status, said] =
        shell_output("'" + hub_binary() + "' serve --data-dir '" + dir.path() + "/hub' --sync " +
                     mode + " --database postgresql://tether@127.0.0.1/x 2>&1");
    CHECK(status == 2);
    CHECK_THAT(said, Catch::Contains("--sync applies to hub.db only") &&
                         Catch::Contains("synchronous_commit"));
  }
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/hub"));
  // Without --database it is hub.db's setting, as before.
  auto [status, said] = shell_output("'" + hub_binary() + "' serve --data-dir '" + dir.path() +
                                     "/hub' --sync sometimes 2>&1");
  CHECK(status == 2);
  CHECK_THAT(said, Catch::Contains("--sync: expected normal or full"));
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

TEST_CASE("serve on PostgreSQL survives a PostgreSQL restart with every task", "[postgres][hub]") {
  HubsOnPostgres on_postgres;
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string before = co_await op.submit(submit_body("edge-1"));

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

namespace {

// What an SSE viewer received, written on a pool thread.
struct Viewed {
  std::mutex mutex;
  std::vector<cli::SseEvent> events;
  // Events of `type` whose data holds `text`.
  size_t count(const std::string& type, const std::string& text = "") {
    std::lock_guard lock(mutex);
    return static_cast<size_t>(std::count_if(events.begin(), events.end(), [&](const auto& e) {
      return e.type == type && e.data.find(text) != std::string::npos;
    }));
  }
};

// Waits until `viewed` holds an event of `type` with `text`; false after 10 s.
core::Co<bool> viewer_got(core::Loop& loop, Viewed& viewed, std::string type, std::string text) {
  for (int i = 0; i < 500 && viewed.count(type, text) == 0; ++i) {
    auto waited = co_await core::sleep_for(loop, 20);
    (void)waited;
  }
  co_return viewed.count(type, text) > 0;
}

}  // namespace

TEST_CASE(
    "Two hubs serve one PostgreSQL database: a task submitted on B wakes the agent on A, its "
    "output on A reaches a viewer on B live, and when A is killed the agent goes on on B and "
    "its final verifies",
    "[postgres][hub]") {
  HubsOnPostgres on_postgres;
  World world;  // its hub is A
  // B: the same data directory (so the same database and secrets.key).
  HubProcess hub_b(world.loop, world.data_dir);
  world.run([&]() -> core::Co<void> {
    co_await hub_b.start();
    Operator op_b(world.loop, world.pool, hub_b.url(), world.admin_token);
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    // A stores that it sees the agent, for B's leases (within a lease check, 1 s).
    bool stored_seen = false;
    for (int i = 0; i < 100 && !stored_seen; ++i) {
      stored_seen = hub_sql(world.data_dir,
                            "SELECT count(*) FROM agents WHERE name = 'edge-1' "
                            "AND seen_at_ms IS NOT NULL") == "1\n";
      if (stored_seen) break;
      auto waited = co_await core::sleep_for(world.loop, 50);
      (void)waited;
    }
    CHECK(stored_seen);

    // Submitted on B, the task wakes the agent's channel on A at once.
    const std::string task_id = co_await op_b.submit(submit_body("edge-1"));
    for (int i = 0; i < 20 && agent.wakes() == 0; ++i) {
      auto frame = co_await agent.receive(500);  // skips the wake, counting it
      REQUIRE_FALSE(frame.ok());                 // nothing else comes
    }
    CHECK(agent.wakes() == 1);
    auto spec = co_await dispatch(agent);
    REQUIRE(spec.task_id == task_id);
    co_await start(agent, spec);

    // A viewer on B follows the task from now on.
    auto viewed = std::make_shared<Viewed>();
    core::CoGroup viewers;
    auto collect = [viewed](const cli::SseEvent& event) {
      std::lock_guard lock(viewed->mutex);
      viewed->events.push_back(event);
      return false;  // until the task ends
    };
    auto follow = [&]() -> core::Co<void> {
      const bool wanted = co_await op_b.wait_for_event(task_id, collect, 60'000, true);
      CHECK_FALSE(wanted);  // it ends with the task
    };
    viewers.spawn(follow());
    // Live from here on: the viewer has had its replay, up to "running".
    const bool replayed = co_await viewer_got(world.loop, *viewed, "status", "running");
    REQUIRE(replayed);
    const std::string head = "one\n", middle = "two\n", tail = "three\n";
    agent.send(output(spec, StreamName::kStdout, 1, 0, head));
    co_await acks_through(agent, StreamName::kStdout, 1);
    const bool live = co_await viewer_got(world.loop, *viewed, "output", head.substr(0, 3));
    CHECK(live);  // while the task runs: only the notice from A brings it

    // A dies with the attempt running; the agent's next channel is on B.
    co_await world.hub.stop(SIGKILL);
    agent.close();
    ScriptedAgent on_b(world.loop, world.pool, *world.ws, hub_b.url(), "edge-1", world.agent_token);
    protocol::AgentHello hello;
    hello.version = "test";
    hello.running = {{spec.task_id, spec.attempt_id}};
    auto ack = co_await on_b.connect_and_hello(hello);
    uint64_t next_seq = 0;
    for (const auto& point : ack.resume)
      if (point.stream == StreamName::kStdout) next_seq = point.next_seq;
    CHECK(next_seq == 2);
    on_b.send(output(spec, StreamName::kStdout, 2, head.size(), middle));
    on_b.send(output(spec, StreamName::kStdout, 3, head.size() + middle.size(), tail));
    co_await acks_through(on_b, StreamName::kStdout, 3);
    on_b.send(
        protocol::TaskFinal{{spec.task_id, spec.attempt_id},
                            final_for(AttemptStatus::kSucceeded, 0, head + middle + tail, "")});
    auto final_ack = expect<protocol::Ack>(co_await on_b.receive());
    CHECK(final_ack.acked == protocol::AckedKind::kFinal);
    co_await viewers.join();
    CHECK(co_await op_b.state_of(task_id) == "succeeded");
    CHECK(co_await op_b.output(task_id, "stdout") == head + middle + tail);

    // The viewer saw every event once, in id order, the output whole.
    std::string seen_output;
    std::vector<uint64_t> ids;
    for (const auto& event : viewed->events) {
      if (!event.id.empty()) ids.push_back(std::stoull(event.id));
      if (event.type != "output") continue;
      auto json = protocol::parse_json_object(event.data, "event");
      REQUIRE(json.ok());
      seen_output += (*json)["data"].GetString();  // text: no base64
    }
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
    CHECK(seen_output == head + middle + tail);
    on_b.close();
    co_await hub_b.stop(SIGTERM);
  });
}

}  // namespace tether::test
