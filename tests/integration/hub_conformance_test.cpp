// Conformance: a real tether-hub process driven by scripted agents over a
// real WebSocket and real HTTP, checking docs/protocol.md rule by rule.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/offload.hpp"
#include "protocol/base64.hpp"
#include "protocol/json_reader.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::Ack;
using protocol::AckedKind;
using protocol::AttemptStatus;
using protocol::ErrorFrame;
using protocol::StreamName;
using protocol::TaskFinal;
using protocol::TaskOutput;
using protocol::TaskStarted;

namespace {

core::Co<rapidjson::Document> task_json(Operator& op, const std::string& task_id) {
  auto reply = co_await op.request("GET", "/api/v1/tasks/" + task_id);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  auto document = protocol::parse_json_object(reply->body, "task");
  REQUIRE(document.ok());
  co_return std::move(*document);
}

}  // namespace

TEST_CASE("the next frame is stored and acked; duplicates are acked again, never stored twice",
          "[hub]") {
  World world({"--log-level", "debug"});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    co_await agent.connect_and_hello();
    auto spec = co_await dispatch(agent);
    REQUIRE(spec.task_id == task_id);
    REQUIRE(spec.attempt_id == task_id + "-a1");
    co_await start(agent, spec);
    auto state = co_await op.state_of(task_id);
    CHECK(state == "running");

    agent.send(output(spec, StreamName::kStdout, 1, 0, "hello "),
               protocol::output_message_id(spec.attempt_id, StreamName::kStdout, 1));
    agent.send(output(spec, StreamName::kStdout, 2, 6, "world\n"),
               protocol::output_message_id(spec.attempt_id, StreamName::kStdout, 2));
    co_await acks_through(agent, StreamName::kStdout, 2);
    // The same frames again (a replay after a reconnect): acked, not stored.
    agent.send(output(spec, StreamName::kStdout, 1, 0, "hello "));
    auto again = expect<Ack>(co_await agent.receive());
    CHECK(again.through_seq == 2);
    agent.send(output(spec, StreamName::kStdout, 2, 6, "world\n"));
    auto frame = co_await agent.receive();
    CHECK(expect<Ack>(frame).through_seq == 2);
    auto stored = co_await stored_output(op, task_id, "stdout");
    CHECK(stored == "hello world\n");

    agent.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "hello world\n", "")},
               protocol::final_message_id(spec.attempt_id));
    auto final_ack = expect<Ack>(co_await agent.receive());
    CHECK(final_ack.acked == AckedKind::kFinal);
    CHECK(final_ack.verified == true);
    auto task = co_await task_json(op, task_id);
    CHECK(std::string(task["state"].GetString()) == "succeeded");
    CHECK(task["output_verified"].GetBool());
    agent.close();
  });
}

TEST_CASE("a seq ahead of the next is a retryable gap error naming where to resume", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    agent.send(output(spec, StreamName::kStderr, 1, 0, "abc"));
    co_await acks_through(agent, StreamName::kStderr, 1);
    agent.send(output(spec, StreamName::kStderr, 3, 7, "xyz"), "late-3");
    auto gap = expect<ErrorFrame>(co_await agent.receive());
    CHECK(gap.code == "output_sequence_gap");
    CHECK(gap.retryable);
    CHECK(gap.highest_accepted_seq == 1u);
    CHECK(gap.next_offset == 3u);
    CHECK(gap.related_message_id == "late-3");
    CHECK(gap.stream == StreamName::kStderr);
    // The right seq at the wrong offset cannot be fixed by resending.
    agent.send(output(spec, StreamName::kStderr, 2, 99, "def"));
    auto mismatch = expect<ErrorFrame>(co_await agent.receive());
    CHECK(mismatch.code == "output_offset_mismatch");
    CHECK_FALSE(mismatch.retryable);
    agent.send(output(spec, StreamName::kStderr, 2, 3, "def"));
    co_await acks_through(agent, StreamName::kStderr, 2);
    agent.close();
  });
}

TEST_CASE("acks are cumulative: one ack covers every frame up to its seq", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    uint64_t offset = 0;
    for (uint64_t seq = 1; seq <= 200; ++seq) {
      const std::string line = "line " + std::to_string(seq) + "\n";
      agent.send(output(spec, StreamName::kStdout, seq, offset, line));
      offset += line.size();
    }
    const int acks = co_await acks_through(agent, StreamName::kStdout, 200);
    // Frames that arrive together are acked together.
    CHECK(acks < 200);
    agent.close();
  });
}

TEST_CASE("final verification: accepted when bytes and digest match, incomplete output first",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    agent.send(output(spec, StreamName::kStdout, 1, 0, "first "));
    co_await acks_through(agent, StreamName::kStdout, 1);
    const TaskFinal final_frame{{spec.task_id, spec.attempt_id},
                                final_for(AttemptStatus::kFailed, 2, "first second", "")};

    // Too early over the channel: retryable, and it says where to resume.
    agent.send(final_frame, protocol::final_message_id(spec.attempt_id));
    auto early = expect<ErrorFrame>(co_await agent.receive());
    CHECK(early.code == "output_incomplete");
    CHECK(early.retryable);
    CHECK(early.highest_accepted_seq == 1u);
    CHECK(early.next_offset == 6u);
    // Too early over HTTP: 409 naming the missing range.
    auto http_early = co_await agent.put_final(spec.attempt_id, final_frame);
    REQUIRE(http_early.ok());
    CHECK(http_early->status == 409);
    CHECK_THAT(
        http_early->body,
        Catch::Contains(
            R"("missing":[{"stream":"stdout","from_seq":2,"from_offset":6,"expected_bytes":12}])"));
    auto state = co_await op.state_of(task_id);
    CHECK(state == "running");

    agent.send(output(spec, StreamName::kStdout, 2, 6, "second"));
    co_await acks_through(agent, StreamName::kStdout, 2);
    auto accepted = co_await agent.put_final(spec.attempt_id, final_frame);
    REQUIRE(accepted.ok());
    CHECK(accepted->status == 200);
    CHECK(accepted->body == R"({"accepted":true,"verified":true})");
    auto task = co_await task_json(op, task_id);
    CHECK(std::string(task["state"].GetString()) == "failed");
    CHECK(task["output_verified"].GetBool());
    CHECK(task["final"]["exit_code"].GetInt() == 2);
    agent.close();
  });
}

TEST_CASE("final verification: a digest mismatch ends the task as not verified", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    agent.send(output(spec, StreamName::kStdout, 1, 0, "AAAA"));
    co_await acks_through(agent, StreamName::kStdout, 1);
    // Same length, different bytes: the agent claims it wrote BBBB.
    agent.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "BBBB", "")});
    auto ack = expect<Ack>(co_await agent.receive());
    CHECK(ack.acked == AckedKind::kFinal);
    CHECK(ack.verified == false);
    auto task = co_await task_json(op, task_id);
    CHECK(std::string(task["state"].GetString()) == "succeeded");
    CHECK_FALSE(task["output_verified"].GetBool());
    CHECK_THAT(std::string(task["verification_error"].GetString()),
               Catch::Contains("SHA-256 of the stored stdout"));
    agent.close();
  });
}

TEST_CASE("finals are idempotent over the channel and HTTP; a different one is final_conflict",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const TaskFinal final_frame{{spec.task_id, spec.attempt_id},
                                final_for(AttemptStatus::kSucceeded, 0, "", "")};
    agent.send(final_frame, protocol::final_message_id(spec.attempt_id));
    auto frame = co_await agent.receive();
    CHECK(expect<Ack>(frame).verified == true);
    agent.send(final_frame, protocol::final_message_id(spec.attempt_id));  // resent
    auto again = expect<Ack>(co_await agent.receive());
    CHECK(again.acked == AckedKind::kFinal);
    auto http_again = co_await agent.put_final(spec.attempt_id, final_frame);
    REQUIRE(http_again.ok());
    CHECK(http_again->status == 200);

    TaskFinal different = final_frame;
    different.report.exit_code = 1;
    different.report.status = AttemptStatus::kFailed;
    agent.send(different);
    auto conflict = expect<ErrorFrame>(co_await agent.receive());
    CHECK(conflict.code == "final_conflict");
    CHECK_FALSE(conflict.retryable);
    auto http_conflict = co_await agent.put_final(spec.attempt_id, different);
    REQUIRE(http_conflict.ok());
    CHECK(http_conflict->status == 422);
    CHECK_THAT(http_conflict->body, Catch::Contains("final_conflict"));
    auto state = co_await op.state_of(spec.task_id);
    CHECK(state == "succeeded");
    agent.close();
  });
}

TEST_CASE("leases: an attempt not started in time is lost, retried, and its frames discarded",
          "[hub]") {
  World world({"--lease-s", "1"});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto retried = co_await op.submit(submit_body("edge-1", R"(,"max_attempts":2)"));
    auto first = co_await dispatch(agent);
    REQUIRE(first.attempt_id == retried + "-a1");
    // Not started within the 1 s lease: lost, and queued again for attempt 2.
    auto second = co_await dispatch(agent, 10);
    CHECK(second.task_id == retried);
    CHECK(second.attempt_id == retried + "-a2");
    auto task = co_await task_json(op, retried);
    CHECK(std::string(task["attempts"][0]["state"].GetString()) == "lost");
    CHECK_THAT(std::string(task["attempts"][0]["lost_reason"].GetString()),
               Catch::Contains("lease"));

    // The agent comes back talking about the lost attempt: discard it.
    protocol::AgentHello hello;
    hello.version = "test";
    hello.running = {{first.task_id, first.attempt_id}};
    auto ack = co_await agent.connect_and_hello(hello);
    REQUIRE(ack.discard.size() == 1);
    CHECK(ack.discard[0].attempt_id == first.attempt_id);
    CHECK_THAT(ack.discard[0].reason, Catch::Contains("lost"));
    agent.send(output(first, StreamName::kStdout, 1, 0, "too late"));
    auto discarded = expect<ErrorFrame>(co_await agent.receive());
    CHECK(discarded.code == "attempt_discarded");
    CHECK_FALSE(discarded.retryable);

    // With one attempt only, a lost attempt ends the task as lost.
    const auto single = co_await op.submit(submit_body("edge-1"));
    co_await dispatch(agent);
    auto reached = co_await op.wait_for_state(single, "lost", 10000);
    CHECK(reached);
    agent.close();
  });
}

TEST_CASE("leases: a running attempt whose agent is gone longer than the lease is lost", "[hub]") {
  World world({"--lease-s", "1"});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    agent.close();  // the agent goes away and does not come back
    auto reached = co_await op.wait_for_state(task_id, "lost", 10000);
    CHECK(reached);
    auto task = co_await task_json(op, task_id);
    CHECK_THAT(std::string(task["attempts"][0]["lost_reason"].GetString()),
               Catch::Contains("gone"));
  });
}

TEST_CASE("hello_ack reconciles: resume points, finals already held, unknown attempts discarded",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    co_await op.submit(submit_body("edge-1"));
    co_await op.submit(submit_body("edge-1"));
    co_await agent.connect_and_hello();
    auto running = co_await dispatch(agent);
    auto finished = co_await dispatch(agent);
    co_await start(agent, running);
    co_await start(agent, finished);
    agent.send(output(running, StreamName::kStdout, 1, 0, "abc"));
    agent.send(output(running, StreamName::kStdout, 2, 3, "def"));
    co_await acks_through(agent, StreamName::kStdout, 2);
    agent.send(TaskFinal{{finished.task_id, finished.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "", "")});
    expect<Ack>(co_await agent.receive());
    agent.close();

    // Reconnect as an agent that lost its acks: it still holds seqs 1-5.
    auto again = world.agent();
    protocol::AgentHello hello;
    hello.version = "test";
    hello.running = {{running.task_id, running.attempt_id}};
    hello.outbox = {{{running.task_id, running.attempt_id}, StreamName::kStdout, 1, 5}};
    hello.unacked_finals = {{finished.task_id, finished.attempt_id}, {"t-ghost", "t-ghost-a1"}};
    auto ack = co_await again.connect_and_hello(hello);
    bool stdout_resume = false;
    for (const auto& point : ack.resume) {
      if (point.attempt_id == running.attempt_id && point.stream == StreamName::kStdout) {
        CHECK(point.next_seq == 3);
        stdout_resume = true;
      }
    }
    CHECK(stdout_resume);
    REQUIRE(ack.finals_held.size() == 1);
    CHECK(ack.finals_held[0] == finished.attempt_id);
    REQUIRE(ack.discard.size() == 1);
    CHECK(ack.discard[0].attempt_id == "t-ghost-a1");
    again.close();
  });
}

TEST_CASE("401 without a valid token, 403 with someone else's, on every entry point", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    auto poll_with = [&](std::string token) -> core::Co<int> {
      auto reply = co_await agent.poll(0, std::move(token));
      REQUIRE(reply.ok());
      co_return reply->status;
    };
    auto status = co_await poll_with("not-a-token");
    CHECK(status == 401);
    auto status_2 = co_await poll_with(world.other_token);
    CHECK(status_2 == 403);
    auto status_3 = co_await poll_with(world.admin_token);
    CHECK(status_3 == 403);
    auto status_4 = co_await poll_with(world.agent_token);
    CHECK(status_4 == 204);

    // The WebSocket upgrade is refused with the same statuses.
    auto intruder = ScriptedAgent(world.loop, world.pool, *world.ws, world.hub.url(), "edge-1",
                                  world.other_token);
    auto refused = co_await intruder.connect();
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::StartsWith("403"));
    auto anonymous =
        ScriptedAgent(world.loop, world.pool, *world.ws, world.hub.url(), "edge-1", "nope");
    auto unauthorized = co_await anonymous.connect();
    REQUIRE_FALSE(unauthorized.ok());
    CHECK_THAT(unauthorized.error().message, Catch::StartsWith("401"));

    // The operator API wants an admin token.
    Operator as_agent(world.loop, world.pool, world.hub.url(), world.agent_token);
    auto forbidden = co_await as_agent.request("GET", "/api/v1/tasks");
    REQUIRE(forbidden.ok());
    CHECK(forbidden->status == 403);
    Operator nobody(world.loop, world.pool, world.hub.url(), "tto_nothing");
    auto denied = co_await nobody.request("POST", "/api/v1/tasks", submit_body("edge-1"));
    REQUIRE(denied.ok());
    CHECK(denied->status == 401);
    CHECK_THAT(denied->body, Catch::Contains("unauthorized"));
  });
}

TEST_CASE("one agent can never read, ack or finish another agent's task", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto owner = world.agent("edge-1");
    auto other = world.agent("edge-2");
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    co_await owner.connect_and_hello();
    auto spec = co_await dispatch(owner);
    co_await start(owner, spec);
    // edge-2 cannot pick up edge-1's tasks...
    auto nothing = co_await other.poll(0);
    REQUIRE(nothing.ok());
    CHECK(nothing->status == 204);
    // ...nor write to its attempt: the attempt does not exist as far as it knows.
    co_await other.connect_and_hello();
    other.send(output(spec, StreamName::kStdout, 1, 0, "forged"));
    auto unknown = expect<ErrorFrame>(co_await other.receive());
    CHECK(unknown.code == "unknown_attempt");
    CHECK_FALSE(unknown.retryable);
    other.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "", "")});
    auto frame = co_await other.receive();
    CHECK(expect<ErrorFrame>(frame).code == "unknown_attempt");
    // Named first: a braced temporary inside a co_await operand is destroyed
    // twice by GCC 12.
    const TaskFinal forged{{spec.task_id, spec.attempt_id},
                           final_for(AttemptStatus::kSucceeded, 0, "", "")};
    auto http = co_await other.put_final(spec.attempt_id, forged);
    REQUIRE(http.ok());
    CHECK(http->status == 403);
    auto state = co_await op.state_of(task_id);
    CHECK(state == "running");
    // ...nor pass itself off as edge-1 on its own channel.
    protocol::Frame impostor;
    impostor.message_id = "edge-2:impostor";
    impostor.agent_id = "edge-1";
    impostor.sent_at = core::utc_now();
    impostor.payload = output(spec, StreamName::kStdout, 1, 0, "forged");
    other.send_raw(protocol::encode_frame(impostor));
    auto refused = expect<ErrorFrame>(co_await other.receive());
    CHECK(refused.code == "forbidden");
    CHECK_THAT(refused.message, Catch::Contains("frame for agent edge-1 on edge-2's channel"));
    auto stored = co_await stored_output(op, task_id, "stdout");
    CHECK(stored == "");
    owner.close();
    other.close();
  });
}

TEST_CASE("SSE replays history, then goes live, and resumes after Last-Event-ID", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      agent.send(output(spec, StreamName::kStdout, seq, (seq - 1) * 2, std::to_string(seq) + "\n"));
    }
    co_await acks_through(agent, StreamName::kStdout, 5);

    // Everything stored so far, then the stream ends (follow=0).
    auto history = co_await op.request("GET", "/api/v1/tasks/" + task_id + "/events?follow=0");
    REQUIRE(history.ok());
    CHECK(history->header("content-type") == "text/event-stream");
    CHECK(history->header("x-accel-buffering") == "no");
    auto events = parse_sse(history->body);
    std::vector<std::string> kinds;
    for (const auto& event : events)
      kinds.push_back(event.type);
    CHECK(kinds == std::vector<std::string>{"status", "status", "status", "output", "output",
                                            "output", "output", "output", "end"});
    // Resume after the second output event: exactly the rest.
    const std::string resume_after = events[4].id;
    auto rest = co_await op.request(
        "GET", "/api/v1/tasks/" + task_id + "/events?follow=0&last_event_id=" + resume_after);
    REQUIRE(rest.ok());
    auto tail = parse_sse(rest->body);
    REQUIRE(tail.size() == 4);
    CHECK(tail[0].id == events[5].id);
    CHECK_THAT(tail[0].data, Catch::Contains(R"("seq":3)"));

    // output=0 leaves the bytes out: status, gaps and finals only.
    auto quiet =
        co_await op.request("GET", "/api/v1/tasks/" + task_id + "/events?follow=0&output=0");
    REQUIRE(quiet.ok());
    std::vector<std::string> quiet_kinds;
    for (const auto& event : parse_sse(quiet->body))
      quiet_kinds.push_back(event.type);
    CHECK(quiet_kinds == std::vector<std::string>{"status", "status", "status", "end"});
    auto bad = co_await op.request("GET", "/api/v1/tasks/" + task_id + "/events?output=yes");
    REQUIRE(bad.ok());
    CHECK(bad->status == 400);
    CHECK_THAT(bad->body, Catch::Contains("output: expected 0 or 1"));

    // Live: a follower started now sees the history, then new output, the
    // final and the end, in order.
    core::HttpCall call;
    call.server = *core::parse_url(world.hub.url());
    call.target = "/api/v1/tasks/" + task_id + "/events";
    call.headers = {{"Authorization", "Bearer " + world.admin_token},
                    {"Last-Event-ID", events[6].id}};
    call.read_timeout_s = 20;
    core::HttpCall quiet_call = call;
    quiet_call.target += "?output=0";
    core::CoGroup group;
    Result<core::HttpReply> live = make_error(Errc::kState, "unset", "");
    Result<core::HttpReply> live_quiet = make_error(Errc::kState, "unset", "");
    auto follower = [&]() -> core::Co<void> {
      live = co_await core::http_request(world.loop, world.pool, call);
    };
    auto quiet_follower = [&]() -> core::Co<void> {
      live_quiet = co_await core::http_request(world.loop, world.pool, quiet_call);
    };
    group.spawn(follower());
    group.spawn(quiet_follower());
    agent.send(output(spec, StreamName::kStdout, 6, 10, "6\n"));
    co_await acks_through(agent, StreamName::kStdout, 6);
    agent.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "1\n2\n3\n4\n5\n6\n", "")});
    expect<Ack>(co_await agent.receive());
    co_await group.join();
    REQUIRE(live.ok());
    auto live_events = parse_sse(live->body);
    std::vector<std::string> live_kinds;
    for (const auto& event : live_events)
      live_kinds.push_back(event.type);
    CHECK(live_kinds == std::vector<std::string>{"output", "output", "final", "status", "end"});
    CHECK_THAT(live_events[1].data, Catch::Contains(R"("data":"6\n")"));
    CHECK_THAT(live_events[2].data, Catch::Contains(R"("output_verified":true)"));
    REQUIRE(live_quiet.ok());
    std::vector<std::string> live_quiet_kinds;
    for (const auto& event : parse_sse(live_quiet->body))
      live_quiet_kinds.push_back(event.type);
    CHECK(live_quiet_kinds == std::vector<std::string>{"final", "status", "end"});
    agent.close();
  });
}

TEST_CASE("a slow SSE subscriber is cut off, never slows the agent, and resumes from storage",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;

    // A viewer that never reads, with the smallest receive buffer the kernel allows.
    const int viewer = ::socket(AF_INET, SOCK_STREAM, 0);
    int small = 1024;
    ::setsockopt(viewer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(world.hub.port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(viewer, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const std::string request = "GET /api/v1/tasks/" + task_id +
                                "/events HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer " +
                                world.admin_token + "\r\n\r\n";
    REQUIRE(::write(viewer, request.data(), request.size()) ==
            static_cast<ssize_t>(request.size()));

    // 12 MiB of output while the viewer sleeps: every frame is still acked.
    const std::string block(64 * 1024, 'z');
    const uint64_t frames = 192;
    for (uint64_t seq = 1; seq <= frames; ++seq) {
      agent.send(output(spec, StreamName::kStdout, seq, (seq - 1) * block.size(), block));
    }
    co_await acks_through(agent, StreamName::kStdout, frames);
    auto logged = co_await world.hub.wait_for_log("MiB behind; disconnected", 10000);
    CHECK(logged);

    // The viewer wakes: what it got ends early; it resumes from storage.
    std::function<Result<std::string>()> drain = [viewer] {
      std::string received;
      char buffer[65536];
      ssize_t n;
      while ((n = ::read(viewer, buffer, sizeof buffer)) > 0)
        received.append(buffer, static_cast<size_t>(n));
      ::close(viewer);
      return Result<std::string>(received);
    };
    auto received =
        co_await core::run_off_loop<std::string>(world.loop, world.pool, std::move(drain));
    REQUIRE(received.ok());
    const auto body_start = received->find("\r\n\r\n");
    REQUIRE(body_start != std::string::npos);
    // The hub streams without Content-Length and closes at the end: no chunking to undo.
    std::vector<cli::SseEvent> seen;
    cli::SseParser parser([&](const cli::SseEvent& event) { seen.push_back(event); });
    REQUIRE(parser.feed(received->substr(body_start + 4)).ok());
    uint64_t output_events = 0;
    for (const auto& event : seen)
      output_events += event.type == "output";
    CHECK(output_events < frames);
    auto rest =
        co_await op.request("GET", "/api/v1/tasks/" + task_id +
                                       "/events?follow=0&last_event_id=" + parser.last_event_id());
    REQUIRE(rest.ok());
    for (const auto& event : parse_sse(rest->body))
      output_events += event.type == "output";
    CHECK(output_events == frames);
    agent.close();
  });
}

TEST_CASE("on_conflict reject answers 409 with the active task; queue waits for the target",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto holder = co_await op.submit(submit_body("edge-1", R"(,"target":"deploy/web")"));
    auto busy = co_await op.request(
        "POST", "/api/v1/tasks",
        submit_body("edge-1", R"(,"target":"deploy/web","on_conflict":"reject")"));
    REQUIRE(busy.ok());
    CHECK(busy->status == 409);
    CHECK_THAT(busy->body, Catch::Contains(R"("active_task_id":")" + holder + "\""));
    // Queued behind the holder: not dispatched while the holder runs.
    const auto waiting = co_await op.submit(submit_body("edge-1", R"(,"target":"deploy/web")"));
    co_await agent.connect_and_hello();
    auto first = co_await dispatch(agent);
    CHECK(first.task_id == holder);
    auto none = co_await agent.poll(0);
    REQUIRE(none.ok());
    CHECK(none->status == 204);
    co_await start(agent, first);
    agent.send(TaskFinal{{first.task_id, first.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "", "")});
    expect<Ack>(co_await agent.receive());
    auto second = co_await dispatch(agent);
    CHECK(second.task_id == waiting);
    auto unknown_field =
        co_await op.request("POST", "/api/v1/tasks", submit_body("edge-1", R"(,"timeout":5)"));
    REQUIRE(unknown_field.ok());
    CHECK(unknown_field->status == 400);
    CHECK_THAT(unknown_field->body, Catch::Contains("task.timeout: unknown field"));
    agent.close();
  });
}

TEST_CASE("targets are hierarchical: a sibling is dispatched, an ancestor waits or gets 409",
          "[hub][targets]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto web = co_await started_task(op, agent, submit_body("edge-1", R"(,"target":"app/web")"));
    // A sibling's target is free while app/web runs.
    const auto db = co_await op.submit(submit_body("edge-1", R"(,"target":"app/db")"));
    auto db_spec = co_await dispatch(agent);
    CHECK(db_spec.task_id == db);
    CHECK(db_spec.target == "app/db");
    // The ancestor conflicts with both: refused with reject, naming the
    // oldest holder and both targets...
    auto busy =
        co_await op.request("POST", "/api/v1/tasks",
                            submit_body("edge-1", R"(,"target":"app","on_conflict":"reject")"));
    REQUIRE(busy.ok());
    CHECK(busy->status == 409);
    CHECK_THAT(busy->body, Catch::Contains(R"("code":"target_busy")"));
    CHECK_THAT(busy->body, Catch::Contains(R"("active_task_id":")" + web.task_id + "\""));
    CHECK_THAT(busy->body, Catch::Contains("target 'app' of agent edge-1 conflicts with target "
                                           "'app/web' held by task " +
                                           web.task_id));
    // ...and queued otherwise, until both have ended.
    const auto app = co_await op.submit(submit_body("edge-1", R"(,"target":"app")"));
    auto none = co_await agent.poll(0);
    REQUIRE(none.ok());
    CHECK(none->status == 204);
    co_await start(agent, db_spec);
    const std::vector<protocol::TaskSpec> holders = {web, db_spec};
    for (const auto& spec : holders) {
      agent.send(TaskFinal{{spec.task_id, spec.attempt_id},
                           final_for(AttemptStatus::kSucceeded, 0, "", "")});
      expect<Ack>(co_await agent.receive());
    }
    auto app_spec = co_await dispatch(agent);
    CHECK(app_spec.task_id == app);
    agent.close();
  });
}

TEST_CASE("a malformed frame gets an error and closes that channel only", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto broken = world.agent("edge-1");
    auto healthy = world.agent("edge-2");
    co_await broken.connect_and_hello();
    co_await healthy.connect_and_hello();
    broken.send_raw(
        R"({"v":1,"type":"task.output","message_id":"bad-1","task_id":"t","attempt_id":"t-a1","stream":"stdin"})");
    auto error = expect<ErrorFrame>(co_await broken.receive());
    CHECK(error.code == "invalid_frame");
    CHECK(error.related_message_id == "bad-1");
    CHECK_THAT(error.message, Catch::Contains("frame.stream"));
    auto closed = co_await broken.receive();
    CHECK_FALSE(closed.ok());
    CHECK(broken.socket()->close_code() == core::kClosePolicyViolation);
    // The other agent carries on.
    co_await op.submit(submit_body("edge-2"));
    auto spec = co_await dispatch(healthy);
    co_await start(healthy, spec);
    healthy.close();
  });
}

TEST_CASE("frames before hello are refused; cancel reaches the agent", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto connected = co_await agent.connect();
    REQUIRE(connected.ok());
    agent.send(protocol::TaskStarted{{"t-x", "t-x-a1"}, {1, ""}});
    auto refused = expect<ErrorFrame>(co_await agent.receive());
    CHECK(refused.code == "hello_required");
    CHECK(refused.retryable);
    protocol::AgentHello hello;
    hello.version = "test";
    agent.send(hello);
    expect<protocol::HubHelloAck>(co_await agent.receive());
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto spec = co_await dispatch(agent);
    co_await start(agent, spec);
    auto cancelled = co_await op.request("POST", "/api/v1/tasks/" + task_id + "/cancel",
                                         R"({"reason":"because"})");
    REQUIRE(cancelled.ok());
    CHECK(cancelled->status == 202);
    auto cancel = expect<protocol::TaskCancel>(co_await agent.receive());
    CHECK(cancel.attempt.attempt_id == spec.attempt_id);
    CHECK(cancel.reason == "because");
    // A queued task is cancelled at once, without an agent.
    const auto queued = co_await op.submit(submit_body("edge-1"));
    auto now = co_await op.request("POST", "/api/v1/tasks/" + queued + "/cancel");
    REQUIRE(now.ok());
    auto state = co_await op.state_of(queued);
    CHECK(state == "cancelled");
    agent.close();
  });
}

TEST_CASE("a hub killed with SIGKILL comes back with every acked byte and the sequence state",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    agent.send(output(spec, StreamName::kStdout, 1, 0, "before "));
    co_await acks_through(agent, StreamName::kStdout, 1);
    co_await world.hub.stop(SIGKILL);
    co_await world.hub.start();

    protocol::AgentHello hello;
    hello.version = "test";
    hello.running = {{spec.task_id, spec.attempt_id}};
    auto again = world.agent();
    auto ack = co_await again.connect_and_hello(hello);
    for (const auto& point : ack.resume) {
      if (point.stream == StreamName::kStdout) CHECK(point.next_seq == 2);
    }
    again.send(output(spec, StreamName::kStdout, 2, 7, "after"));
    co_await acks_through(again, StreamName::kStdout, 2);
    again.send(TaskFinal{{spec.task_id, spec.attempt_id},
                         final_for(AttemptStatus::kSucceeded, 0, "before after", "")});
    auto frame = co_await again.receive();
    CHECK(expect<Ack>(frame).verified == true);
    auto stored = co_await stored_output(op, task_id, "stdout");
    CHECK(stored == "before after");
    again.close();
  });
}

TEST_CASE(
    "a dispatch to an earlier run of the agent goes back to the queue when a new run says "
    "hello without it",
    "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto first_run = world.agent();
    first_run.set_instance("run-1");
    auto spec = co_await dispatch(first_run);
    CHECK(spec.attempt_id == task_id + "-a1");
    const auto dispatched = co_await op.state_of(task_id);
    CHECK(dispatched == "dispatched");

    // The process died before it started the task; its next run says hello.
    auto second_run = world.agent();
    second_run.set_instance("run-2");
    protocol::AgentHello hello;
    hello.instance = "run-2";
    auto ack = co_await second_run.connect_and_hello(hello);
    CHECK(ack.discard.empty());
    auto again = co_await dispatch(second_run);
    CHECK(again.task_id == task_id);
    CHECK(again.attempt_id == task_id + "-a2");  // not after the 60 s lease
    auto task = co_await task_json(op, task_id);
    CHECK(std::string(task["attempts"][0]["state"].GetString()) == "lost");
    CHECK_THAT(task["attempts"][0]["lost_reason"].GetString(),
               Catch::Contains("earlier run of agent edge-1"));
    // It did not use up the task's one attempt.
    CHECK(task["max_attempts"].GetInt() == 1);
    CHECK(std::string(task["state"].GetString()) == "dispatched");
    second_run.close();
  });
}

TEST_CASE("a hello from the same run keeps what was dispatched to it", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto agent = world.agent();
    agent.set_instance("run-1");
    auto spec = co_await dispatch(agent);
    protocol::AgentHello hello;
    hello.instance = "run-1";
    // A reconnect of the same process before it recorded the start.
    co_await agent.connect_and_hello(hello);
    const auto state = co_await op.state_of(task_id);
    CHECK(state == "dispatched");
    co_await start(agent, spec);
    agent.close();
  });
}

TEST_CASE(
    "a final that declares undelivered bytes is accepted as not verified; without them it "
    "waits for the output",
    "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    const auto task_id = spec.task_id;
    agent.send(output(spec, StreamName::kStdout, 1, 0, "first "));
    co_await acks_through(agent, StreamName::kStdout, 1);
    // 6 bytes stored of 12: the rest could not be delivered (section 5).
    auto report = final_for(AttemptStatus::kSucceeded, 0, "first second", "");
    auto waiting = report;
    agent.send(TaskFinal{{spec.task_id, spec.attempt_id}, waiting},
               protocol::final_message_id(spec.attempt_id));
    auto incomplete = expect<protocol::ErrorFrame>(co_await agent.receive());
    CHECK(incomplete.code == "output_incomplete");
    report.stdout_summary.dropped_bytes = 6;
    report.stdout_summary.undelivered_bytes = 6;
    report.error = "stdout could not be delivered from seq 2";
    agent.send(TaskFinal{{spec.task_id, spec.attempt_id}, report},
               protocol::final_message_id(spec.attempt_id));
    auto ack = expect<Ack>(co_await agent.receive());
    CHECK(ack.acked == AckedKind::kFinal);
    CHECK(ack.verified == false);
    auto task = co_await task_json(op, task_id);
    CHECK(std::string(task["state"].GetString()) == "succeeded");
    CHECK_THAT(task["verification_error"].GetString(),
               Catch::Contains("could not deliver the last 6 bytes of stdout"));
    agent.close();
  });
}

TEST_CASE("an agent's error frame is logged; its channel stays open", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    ErrorFrame said;
    said.code = "invalid_frame";
    said.message = "frame.type: unknown";
    said.related_message_id = "hub:7";
    agent.send(said);
    const bool logged =
        co_await world.hub.wait_for_log("edge-1 reports invalid_frame about hub:7", 5000);
    CHECK(logged);
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto spec = co_await dispatch(agent);
    co_await start(agent, spec);  // the channel still works
    agent.close();
  });
}

TEST_CASE("a partial hello from a new run retracts nothing it may have left out", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto first_run = world.agent();
    first_run.set_instance("run-1");
    auto spec = co_await dispatch(first_run);
    auto second_run = world.agent();
    protocol::AgentHello hello;
    hello.instance = "run-2";
    hello.partial = true;
    co_await second_run.connect_and_hello(hello);
    const auto state = co_await op.state_of(task_id);
    CHECK(state == "dispatched");  // left to the lease
    second_run.close();
  });
}
