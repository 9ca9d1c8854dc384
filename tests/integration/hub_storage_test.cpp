// hub.db shared with other processes (docs/operations.md: `tether-hub agent
// add` and `token admin` are safe while the hub runs; operators read it with
// sqlite3): what the hub reads is never an old snapshot, and a lock held
// elsewhere delays work but never crashes the hub or loses an acked frame.
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;

namespace {

core::Co<int> status_of(Operator& op, std::string method, std::string target,
                        std::string body = std::string()) {
  auto reply = co_await op.request(std::move(method), std::move(target), std::move(body));
  REQUIRE(reply.ok());
  co_return reply->status;
}

}  // namespace

TEST_CASE("after reads, tokens added or rotated by another process work at once", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    // `tether status ID`: a lookup by key reads one row and stops.
    const int shown = co_await status_of(op, "GET", "/api/v1/tasks/" + task_id);
    CHECK(shown == 200);

    const std::string token = hub_command({"agent", "add", "edge-3", "--data-dir", world.data_dir});
    ScriptedAgent newcomer(world.loop, world.pool, *world.ws, world.hub.url(), "edge-3", token);
    auto first = co_await newcomer.poll(0);
    REQUIRE(first.ok());
    CHECK(first->status == 204);

    const std::string admin = hub_command({"token", "admin", "--data-dir", world.data_dir});
    Operator second(world.loop, world.pool, world.hub.url(), admin);
    const int listed = co_await status_of(second, "GET", "/api/v1/tasks");
    CHECK(listed == 200);

    const std::string rotated =
        hub_command({"agent", "rotate", "edge-3", "--data-dir", world.data_dir});
    auto revoked = co_await newcomer.poll(0);
    REQUIRE(revoked.ok());
    CHECK(revoked->status == 401);
    auto renewed = co_await newcomer.poll(0, rotated);
    REQUIRE(renewed.ok());
    CHECK(renewed->status == 204);
    // Writes go through (a kept snapshot made every write 503 "database is locked").
    const int submitted =
        co_await status_of(second, "POST", "/api/v1/tasks", submit_body("edge-3"));
    CHECK(submitted == 201);
  });
}

TEST_CASE("after an event replay stopped at its page size, a new admin token works", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    // More events than one replay page (256): the page read stops at its limit.
    constexpr uint64_t kFrames = 300;
    for (uint64_t seq = 1; seq <= kFrames; ++seq)
      agent.send(output(spec, StreamName::kStdout, seq, seq - 1, "x"));
    co_await acks_through(agent, StreamName::kStdout, kFrames);
    auto replay =
        co_await op.request("GET", "/api/v1/tasks/" + task_id + "/events?follow=0&output=1");
    REQUIRE(replay.ok());
    CHECK(replay->status == 200);

    const std::string admin = hub_command({"token", "admin", "--data-dir", world.data_dir});
    Operator second(world.loop, world.pool, world.hub.url(), admin);
    const int shown = co_await status_of(second, "GET", "/api/v1/tasks/" + task_id);
    CHECK(shown == 200);
    agent.close();
  });
}

TEST_CASE(
    "another process holding hub.db's write lock delays frames and requests, never "
    "crashes the hub or loses an acked byte",
    "[hub][hub.db]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;

    LockHolder holder(world.loop, world.data_dir + "/hub.db");
    co_await holder.lock();
    // Frames arrive while the hub cannot write: they wait, in order.
    std::string expected;
    for (uint64_t seq = 1; seq <= 50; ++seq) {
      const std::string line = "line " + std::to_string(seq) + "\n";
      agent.send(output(spec, StreamName::kStdout, seq, expected.size(), line));
      expected += line;
    }
    // The hub still answers (reads need no write lock)...
    const int health = co_await status_of(op, "GET", "/healthz");
    CHECK(health == 200);
    const int shown = co_await status_of(op, "GET", "/api/v1/tasks/" + task_id);
    CHECK(shown == 200);
    // ...and a write submitted now completes once the lock is gone.
    core::CoGroup pending;
    int submitted = 0;
    auto late_submit = [&]() -> core::Co<void> {
      const std::string body = submit_body("edge-2");
      const int status = co_await status_of(op, "POST", "/api/v1/tasks", body);
      submitted = status;
    };
    pending.spawn(late_submit());
    co_await holder.release();

    co_await acks_through(agent, StreamName::kStdout, 50);
    co_await pending.join();
    CHECK(submitted == 201);
    CHECK(world.hub.running());
    auto stored = co_await stored_output(op, task_id, "stdout");
    CHECK(stored == expected);
    agent.close();
  });
}

TEST_CASE("tokens made over and over while an agent streams: the hub keeps every frame", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    std::string expected;
    uint64_t seq = 0;
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < 20; ++i) {
        const std::string line = std::string(200, static_cast<char>('a' + round % 26)) + "\n";
        agent.send(output(spec, StreamName::kStdout, ++seq, expected.size(), line));
        expected += line;
      }
      // An operator looks, then a writer in another process (it blocks
      // this loop, not the hub's) commits before the next frames.
      const int shown = co_await status_of(op, "GET", "/api/v1/tasks/" + task_id);
      CHECK(shown == 200);
      (void)hub_command({"token", "admin", "--data-dir", world.data_dir});
    }
    co_await acks_through(agent, StreamName::kStdout, seq);
    agent.send(protocol::TaskFinal{{spec.task_id, spec.attempt_id},
                                   final_for(AttemptStatus::kSucceeded, 0, expected, "")},
               protocol::final_message_id(spec.attempt_id));
    auto final_ack = expect<protocol::Ack>(co_await agent.receive());
    CHECK(final_ack.verified == true);
    CHECK(world.hub.running());
    auto stored = co_await stored_output(op, task_id, "stdout");
    CHECK(stored == expected);
    agent.close();
  });
}
